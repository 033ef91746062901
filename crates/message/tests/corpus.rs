//! Runs the parser over the shared e-mail corpus (read-only, never copied into the
//! repository) and asserts the structural invariants on every message.
//!
//! The corpus is looked for in `$POCHTA_EML_CORPUS`, then in `shared/corpora/eml` beside
//! the work tree (where CI puts it), then in `/work/shared/corpora/eml`. The test returns
//! early with a note when none exists.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::parse_checked;

fn corpus_dir() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("POCHTA_EML_CORPUS").map(PathBuf::from),
        Some(manifest.join("../../../shared/corpora/eml")),
        Some(PathBuf::from("/work/shared/corpora/eml")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_dir())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"))
        {
            out.push(path);
        }
    }
}

#[test]
fn shared_corpus_invariants() {
    let Some(dir) = corpus_dir() else {
        println!("note: no shared e-mail corpus found; skipping shared_corpus_invariants");
        return;
    };
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    println!("checking {} messages from {}", files.len(), dir.display());
    for path in &files {
        let raw = std::fs::read(path).unwrap();
        let what = path.display().to_string();
        parse_checked(&raw, &what);

        // The same message with CRLF line ends, and with LF only.
        let mut crlf = Vec::with_capacity(raw.len() + raw.len() / 20);
        let mut last = 0u8;
        for &b in &raw {
            if b == b'\n' && last != b'\r' {
                crlf.push(b'\r');
            }
            crlf.push(b);
            last = b;
        }
        parse_checked(&crlf, &format!("{what} (CRLF)"));
        let lf: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
        parse_checked(&lf, &format!("{what} (LF)"));

        // Truncated at a spread of offsets.
        let step = (raw.len() / 24).max(1);
        for cut in (0..raw.len()).step_by(step) {
            parse_checked(&raw[..cut], &format!("{what} cut at {cut}"));
        }
    }
}
