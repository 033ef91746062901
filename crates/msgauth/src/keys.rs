//! DKIM keys: generation, the files they live in, and signing with them.
//!
//! Keys live in `<data>/dkim/<domain>/<selector>.pem` (PKCS#8 for Ed25519,
//! PKCS#1 for RSA). Every key of a domain signs, so a domain with an Ed25519
//! and an RSA key carries both signatures (RFC 8463 §4 recommends this while
//! verifiers without Ed25519 remain). The directory is re-read when it changes,
//! so keys generated while the server runs are used without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::KeyError;

/// Header fields signed when present. `From` is listed twice so that no second
/// From can be added without breaking the signature (RFC 6376 §8.15).
const SIGNED_HEADERS: [&str; 17] = [
    "From",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// How often the key directory is looked at for changes, at most: a few
/// directory reads per second cost nothing next to sending mail.
const RESCAN_INTERVAL: Duration = Duration::from_millis(200);

/// A key type `pochta dkim generate` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519-SHA256 (RFC 8463): short keys and signatures.
    Ed25519,
    /// RSA-SHA256 with 2048-bit keys: what every verifier understands.
    Rsa2048,
}

impl KeyAlgorithm {
    /// The `k=` tag of the DNS record.
    pub fn dns_name(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa2048 => "rsa",
        }
    }
}

/// A new key, written to disk, and the DNS record that publishes it.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The selector (`s=`).
    pub selector: String,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// Where the private key was written.
    pub path: PathBuf,
    /// The owner name of the TXT record: `<selector>._domainkey.<domain>`.
    pub dns_name: String,
    /// The TXT record's text: `v=DKIM1; k=...; p=...`.
    pub dns_txt: String,
}

/// Creates a key for `domain` under `dir` (the data directory's `dkim`), refusing
/// to overwrite an existing one. The file is readable by its owner only.
pub fn generate(
    dir: &Path,
    domain: &str,
    selector: &str,
    algorithm: KeyAlgorithm,
) -> Result<GeneratedKey, KeyError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty()
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(KeyError::Crypto(format!("{domain:?} is not a domain name")));
    }
    if selector.is_empty()
        || !selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(KeyError::Crypto(format!(
            "{selector:?} is not a valid selector (letters, digits, - and _)"
        )));
    }
    let (pem, public) = match algorithm {
        KeyAlgorithm::Ed25519 => ed25519_key()?,
        KeyAlgorithm::Rsa2048 => rsa_key()?,
    };
    let domain_dir = dir.join(&domain);
    std::fs::create_dir_all(&domain_dir).map_err(|e| io(&domain_dir, e))?;
    let path = domain_dir.join(format!("{selector}.pem"));
    write_new_private(&path, pem.as_bytes())?;
    let p = base64::engine::general_purpose::STANDARD.encode(public);
    Ok(GeneratedKey {
        selector: selector.to_string(),
        algorithm,
        path,
        dns_name: format!("{selector}._domainkey.{domain}"),
        dns_txt: format!("v=DKIM1; k={}; p={p}", algorithm.dns_name()),
    })
}

fn ed25519_key() -> Result<(String, Vec<u8>), KeyError> {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|e| KeyError::Crypto(format!("cannot generate an Ed25519 key: {e}")))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| KeyError::Crypto(format!("generated Ed25519 key unusable: {e}")))?;
    let pem = pem_encode("PRIVATE KEY", pkcs8.as_ref());
    Ok((pem, pair.public_key().as_ref().to_vec()))
}

fn rsa_key() -> Result<(String, Vec<u8>), KeyError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePublicKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .map_err(|e| KeyError::Crypto(format!("cannot generate an RSA key: {e}")))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
    // The record carries SubjectPublicKeyInfo: what OpenSSL-based verifiers read.
    let public = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
    Ok((
        pem_encode("RSA PRIVATE KEY", der.as_bytes()),
        public.as_bytes().to_vec(),
    ))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_new_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| io(path, e))?;
    f.write_all(data).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))?;
    Ok(())
}

fn io(path: &Path, source: std::io::Error) -> KeyError {
    KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

impl Signer {
    fn sign(&self, raw: &[u8]) -> Result<String, mail_auth::Error> {
        Ok(tidy_end(match self {
            Signer::Rsa(s) => s.sign(raw)?.to_header(),
            Signer::Ed25519(s) => s.sign(raw)?.to_header(),
        }))
    }
}

/// mail-auth folds the `b=` value and then writes the final `;`, which lands
/// alone on a folded line when the value fills the last one. RFC 6376 §3.7
/// drops that white space before hashing, but some verifiers (dkimpy) keep it
/// and then fail the signature; without the fold every verifier agrees.
fn tidy_end(header: String) -> String {
    match header.strip_suffix(";\r\n") {
        Some(head) if head.ends_with([' ', '\t', '\r', '\n']) => {
            format!("{};\r\n", head.trim_end_matches([' ', '\t', '\r', '\n']))
        }
        _ => header,
    }
}

struct Loaded {
    /// Signers by domain (lower case).
    domains: BTreeMap<String, Vec<(String, Signer)>>,
    /// Modification times of the directory and its domain directories.
    stamp: Vec<(PathBuf, Option<SystemTime>)>,
    checked: Instant,
}

/// The DKIM keys of our domains, re-read when the directory changes.
pub struct DkimKeys {
    dir: PathBuf,
    loaded: RwLock<Loaded>,
}

impl std::fmt::Debug for DkimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKeys").field("dir", &self.dir).finish()
    }
}

impl DkimKeys {
    /// Reads the keys under `dir` (which need not exist yet). Unreadable key files
    /// are logged and skipped: one bad file must not stop all signing.
    pub fn open(dir: &Path) -> DkimKeys {
        DkimKeys {
            dir: dir.to_path_buf(),
            loaded: RwLock::new(load(dir)),
        }
    }

    /// The domains that have at least one key.
    pub fn domains(&self) -> Vec<String> {
        self.refresh();
        self.read(|l| l.domains.keys().cloned().collect())
    }

    /// The `(selector, algorithm)` of each key of a domain.
    pub fn selectors(&self, domain: &str) -> Vec<String> {
        self.refresh();
        let domain = domain.to_ascii_lowercase();
        self.read(|l| {
            l.domains
                .get(&domain)
                .map(|v| v.iter().map(|(s, _)| s.clone()).collect())
                .unwrap_or_default()
        })
    }

    /// The DKIM-Signature fields (CRLF-terminated) to prepend to `raw` for
    /// `domain`, one per key; empty when the domain has no key.
    pub fn sign(&self, domain: &str, raw: &[u8]) -> Result<String, KeyError> {
        self.refresh();
        let domain = domain.to_ascii_lowercase();
        self.read(|l| {
            let mut out = String::new();
            for (selector, signer) in l.domains.get(&domain).into_iter().flatten() {
                let header = signer.sign(raw).map_err(|e| {
                    KeyError::Crypto(format!("signing with {selector}._domainkey.{domain}: {e}"))
                })?;
                out.push_str(&header);
            }
            Ok(out)
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Loaded) -> T) -> T {
        match self.loaded.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn refresh(&self) {
        let due = self.read(|l| l.checked.elapsed() >= RESCAN_INTERVAL);
        if !due {
            return;
        }
        let stamp = stamps(&self.dir);
        let mut guard = match self.loaded.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.stamp != stamp {
            *guard = load(&self.dir);
        } else {
            guard.checked = Instant::now();
        }
    }
}

fn stamps(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut out = vec![(dir.to_path_buf(), mtime(dir))];
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            let t = mtime(&d);
            out.push((d, t));
        }
    }
    out
}

fn load(dir: &Path) -> Loaded {
    let stamp = stamps(dir);
    let mut domains: BTreeMap<String, Vec<(String, Signer)>> = BTreeMap::new();
    for (domain_dir, _) in stamp.iter().skip(1) {
        let Some(domain) = domain_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let domain = domain.to_ascii_lowercase();
        let Ok(entries) = std::fs::read_dir(domain_dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pem"))
            .collect();
        files.sort();
        for file in files {
            let Some(selector) = file.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            match load_key(&file, &domain, selector) {
                Ok(signer) => domains
                    .entry(domain.clone())
                    .or_default()
                    .push((selector.to_string(), signer)),
                Err(e) => tracing::error!(error = %e, "DKIM key skipped"),
            }
        }
    }
    Loaded {
        domains,
        stamp,
        checked: Instant::now(),
    }
}

fn load_key(path: &Path, domain: &str, selector: &str) -> Result<Signer, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| io(path, e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| invalid(format!("not a PEM private key: {e}")))?;
    let headers = SIGNED_HEADERS;
    match key {
        PrivateKeyDer::Pkcs8(der) => {
            // Ed25519 keys are PKCS#8; an RSA key may be too.
            if let Ok(k) = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()) {
                return Ok(Signer::Ed25519(
                    DkimSigner::from_key(k)
                        .domain(domain)
                        .selector(selector)
                        .headers(headers),
                ));
            }
            let k = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(der))
                .map_err(|e| invalid(format!("neither an Ed25519 nor an RSA key: {e}")))?;
            Ok(Signer::Rsa(
                DkimSigner::from_key(k)
                    .domain(domain)
                    .selector(selector)
                    .headers(headers),
            ))
        }
        PrivateKeyDer::Pkcs1(_) => {
            let k = RsaKey::<Sha256>::from_key_der(key)
                .map_err(|e| invalid(format!("not a usable RSA key: {e}")))?;
            Ok(Signer::Rsa(
                DkimSigner::from_key(k)
                    .domain(domain)
                    .selector(selector)
                    .headers(headers),
            ))
        }
        _ => Err(invalid("only Ed25519 and RSA keys are supported".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_fold_before_the_final_semicolon() {
        assert_eq!(
            tidy_end("DKIM-Signature: a=1; b=abc\r\n\t;\r\n".into()),
            "DKIM-Signature: a=1; b=abc;\r\n"
        );
        assert_eq!(
            tidy_end("DKIM-Signature: a=1; b=abc;\r\n".into()),
            "DKIM-Signature: a=1; b=abc;\r\n"
        );
        assert_eq!(tidy_end("odd".into()), "odd");
    }
}
