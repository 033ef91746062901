//! Fetching mail over POP3 (RFC 1939) into the local Maildir: the mail ends up
//! stored on the client machine.
//!
//! The order of events is what makes it safe:
//!
//! 1. `RETR n`, with dot-unstuffing (RFC 1939 §3); the message is kept as the
//!    server sent it, line ends included;
//! 2. [`Maildir::deliver`]: written, fsynced, renamed into `new/`, directory
//!    fsynced;
//! 3. its UIDL appended to the state file `.pochta-uidl` (fsynced);
//! 4. only then `DELE n` (unless `keep`);
//! 5. `QUIT`: the server deletes in its UPDATE state, so a dropped connection
//!    deletes nothing (RFC 1939 §6).
//!
//! The state file lists the UIDLs (RFC 1939 §7) of messages already in the
//! Maildir. With `keep`, they are skipped next time; without it, a message
//! that is already here (fetched with `keep` before, or by a run that died
//! before QUIT) is deleted on the server without being downloaded again, so
//! a crash never produces a duplicate.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ClientError, Result};
use crate::maildir::{Maildir, write_atomically};
use crate::tls::{Endpoint, Login, Security, Stream};

/// The state file in the Maildir's directory: one UIDL per line.
pub const UIDL_STATE_FILE: &str = ".pochta-uidl";
/// How long the server may stay silent.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest status line or listing line accepted.
const MAX_LINE: usize = 64 * 1024;
/// Longest line inside a message (RFC 5322 says 998; real mail is worse).
const MAX_DATA_LINE: usize = 4 << 20;
/// Largest message accepted.
const MAX_MESSAGE: usize = 512 << 20;
/// Largest LIST/UIDL listing accepted.
const MAX_LISTING: usize = 64 << 20;

/// What `pochta mail fetch` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Leave the messages on the server (no DELE) and remember their UIDLs.
    pub keep: bool,
    /// Show a progress bar on stderr (only drawn when it is a terminal).
    pub progress: bool,
}

/// What a fetch did, for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchSummary {
    /// Messages downloaded into the Maildir.
    pub fetched: usize,
    /// Messages not downloaded because the Maildir has them already.
    pub skipped: usize,
    /// Messages deleted on the server (after QUIT confirmed it).
    pub deleted: usize,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Things the user should know (e.g. the server has no UIDL, so `--keep`
    /// cannot skip what it fetched before).
    pub warnings: Vec<String>,
}

/// The connection: buffered lines in, commands out.
struct Conn {
    stream: Option<Stream>,
    buf: Vec<u8>,
    pos: usize,
    server: String,
}

impl Conn {
    fn error(&self, message: impl Into<String>) -> ClientError {
        ClientError::protocol(self.server.clone(), message)
    }

    /// One line, CRLF included, at most `limit` bytes.
    async fn line(&mut self, limit: usize) -> Result<Vec<u8>> {
        loop {
            if let Some(p) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let end = self.pos + p + 1;
                if end - self.pos > limit {
                    return Err(self.error(format!("a line longer than {limit} bytes")));
                }
                let line = self.buf[self.pos..end].to_vec();
                self.pos = end;
                return Ok(line);
            }
            if self.buf.len() - self.pos > limit {
                return Err(self.error(format!("a line longer than {limit} bytes")));
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(self.error("the connection is closed"));
            };
            let mut chunk = [0u8; 16 * 1024];
            let n = match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk)).await {
                Ok(Ok(0)) => {
                    self.stream = None;
                    return Err(self.error("the server closed the connection unexpectedly"));
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    self.stream = None;
                    return Err(self.error(format!("connection lost: {e}")));
                }
                Err(_) => {
                    self.stream = None;
                    return Err(
                        self.error(format!("no answer for {} seconds", READ_TIMEOUT.as_secs()))
                    );
                }
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, line: &str) -> Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(self.error("the connection is closed"));
        };
        let written = tokio::time::timeout(READ_TIMEOUT, async {
            stream.write_all(line.as_bytes()).await?;
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.stream = None;
                Err(self.error("connection lost while sending"))
            }
        }
    }

    /// A status line: `Ok(text)` for `+OK`, `Err(text)` for `-ERR`.
    async fn status(&mut self) -> Result<std::result::Result<String, String>> {
        let line = self.line(MAX_LINE).await?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if let Some(rest) = text.strip_prefix("+OK") {
            Ok(Ok(rest.trim().to_string()))
        } else if let Some(rest) = text.strip_prefix("-ERR") {
            Ok(Err(rest.trim().to_string()))
        } else {
            self.stream = None;
            Err(self.error(format!("not a POP3 reply: {text:?}")))
        }
    }

    async fn command(&mut self, line: &str) -> Result<std::result::Result<String, String>> {
        self.send(line).await?;
        self.status().await
    }

    /// The body of a multi-line reply, dot-unstuffed (RFC 1939 §3), line ends
    /// kept as sent.
    async fn multiline(&mut self, line_limit: usize, total_limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let line = self.line(line_limit).await?;
            if line == b".\r\n" || line == b".\n" {
                return Ok(out);
            }
            let data = line.strip_prefix(b".").unwrap_or(&line);
            if out.len() + data.len() > total_limit {
                self.stream = None;
                return Err(self.error(format!("a reply larger than {total_limit} bytes")));
            }
            out.extend_from_slice(data);
        }
    }

    /// CAPA's lines (upper-cased), or `None` when the server has no CAPA.
    async fn capa(&mut self) -> Result<Option<Vec<String>>> {
        if self.command("CAPA").await?.is_err() {
            return Ok(None);
        }
        let body = self.multiline(MAX_LINE, MAX_LINE * 16).await?;
        Ok(Some(
            String::from_utf8_lossy(&body)
                .lines()
                .map(|l| l.trim().to_ascii_uppercase())
                .collect(),
        ))
    }

    /// `n value` pairs of a LIST or UIDL listing.
    async fn listing(&mut self) -> Result<Vec<(u32, String)>> {
        let body = self.multiline(MAX_LINE, MAX_LISTING).await?;
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let mut w = line.split_whitespace();
            let (Some(n), Some(v)) = (w.next(), w.next()) else {
                continue;
            };
            match n.parse::<u32>() {
                Ok(n) => out.push((n, v.to_string())),
                Err(_) => return Err(self.error(format!("a bad listing line {line:?}"))),
            }
        }
        Ok(out)
    }
}

/// The UIDLs already in the Maildir (complete lines of the state file only: a
/// line torn by a crash is not trusted).
fn read_state(path: &PathBuf) -> Result<BTreeSet<String>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let complete = match text.rfind('\n') {
                Some(p) => &text[..p],
                None => "",
            };
            Ok(complete
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(ClientError::io(path, e)),
    }
}

/// Appends one UIDL to the state file and fsyncs it.
fn remember(path: &PathBuf, uidl: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ClientError::io(path, e))?;
    f.write_all(format!("{uidl}\n").as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| ClientError::io(path, e))
}

/// A progress bar on stderr when asked for and stderr is a terminal.
fn progress_bar(wanted: bool, total: u64) -> Option<indicatif::ProgressBar> {
    if !wanted || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// Downloads every new message from the POP3 server into `maildir`, deleting
/// each on the server (unless `opts.keep`) only after it is safely on disk.
pub async fn fetch(
    endpoint: &Endpoint,
    login: &Login,
    maildir: &Maildir,
    opts: &FetchOptions,
) -> Result<FetchSummary> {
    let stream = Stream::connect(endpoint).await?;
    let mut c = Conn {
        stream: Some(stream),
        buf: Vec::new(),
        pos: 0,
        server: endpoint.display(),
    };
    if let Err(text) = c.status().await? {
        return Err(c.error(format!("the server refused the connection: {text}")));
    }
    let mut capa = c.capa().await?;
    let is_tls = |c: &Conn| c.stream.as_ref().is_some_and(Stream::is_tls);
    if endpoint.security == Security::Starttls && !is_tls(&c) {
        // RFC 2595 §4: STLS; a server without CAPA may still have it.
        if capa
            .as_ref()
            .is_some_and(|caps| !caps.iter().any(|l| l == "STLS"))
        {
            return Err(
                c.error("the server does not offer STLS; use security `tls` (port 995) instead")
            );
        }
        if let Err(text) = c.command("STLS").await? {
            return Err(c.error(format!("STLS refused: {text}")));
        }
        if c.buf.len() > c.pos {
            return Err(c.error("the server sent data after accepting STLS"));
        }
        let plain = c.stream.take().ok_or_else(|| c.error("closed"))?;
        c.stream = Some(plain.starttls(endpoint).await?);
        c.buf.clear();
        c.pos = 0;
        capa = c.capa().await?;
    }
    if !is_tls(&c) && endpoint.security != Security::Plain {
        return Err(c.error("refusing to log in without TLS"));
    }

    // RFC 5034 AUTH PLAIN when CAPA lists it, else USER/PASS.
    let sasl_plain = capa.as_ref().is_some_and(|caps| {
        caps.iter().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("SASL") && w.any(|m| m == "PLAIN")
        })
    });
    let auth_failed = |c: &Conn, reply: String| ClientError::Auth {
        server: c.server.clone(),
        user: login.user.clone(),
        reply,
    };
    if sasl_plain {
        let mut plain = vec![0];
        plain.extend_from_slice(login.user.as_bytes());
        plain.push(0);
        plain.extend_from_slice(login.password.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        c.send(&format!("AUTH PLAIN {b64}")).await?;
        let line = c.line(MAX_LINE).await?;
        if line.starts_with(b"+ ") || line == b"+\r\n" {
            // A server that ignored the initial response asks for it.
            c.send(&b64).await?;
        } else {
            c.pos -= line.len();
        }
        if let Err(text) = c.status().await? {
            return Err(auth_failed(&c, text));
        }
    } else {
        if [&login.user, &login.password]
            .iter()
            .any(|s| s.contains(['\r', '\n']))
        {
            return Err(ClientError::Usage(
                "a POP3 login name or password cannot contain line breaks".into(),
            ));
        }
        if let Err(text) = c.command(&format!("USER {}", login.user)).await? {
            return Err(auth_failed(&c, text));
        }
        if let Err(text) = c.command(&format!("PASS {}", login.password)).await? {
            return Err(auth_failed(&c, text));
        }
    }

    if let Err(text) = c.command("LIST").await? {
        return Err(c.error(format!("LIST failed: {text}")));
    }
    let sizes: BTreeMap<u32, u64> = c
        .listing()
        .await?
        .into_iter()
        .map(|(n, s)| (n, s.parse().unwrap_or(0)))
        .collect();
    let uidls: Option<BTreeMap<u32, String>> = match c.command("UIDL").await? {
        Ok(_) => Some(
            c.listing()
                .await?
                .into_iter()
                .filter(|(_, u)| u.len() <= 512)
                .collect(),
        ),
        Err(_) => None,
    };

    let mut summary = FetchSummary::default();
    if uidls.is_none() && opts.keep {
        summary.warnings.push(format!(
            "{} does not support UIDL: with --keep every message is fetched again each time",
            c.server
        ));
    }
    let state_path = maildir.path().join(UIDL_STATE_FILE);
    let known = read_state(&state_path)?;

    // What to download, for the progress bar's total.
    let todo: u64 = sizes
        .iter()
        .filter(|(n, _)| {
            uidls
                .as_ref()
                .and_then(|u| u.get(n))
                .is_none_or(|u| !known.contains(u))
        })
        .map(|(_, s)| *s)
        .sum();
    let bar = progress_bar(opts.progress, todo);
    let mut deleted_uidls = BTreeSet::new();
    let mut dele_sent = 0;
    let result: Result<()> = async {
        for (&n, &size) in &sizes {
            let uidl = uidls.as_ref().and_then(|u| u.get(&n));
            if let Some(u) = uidl
                && known.contains(u)
            {
                summary.skipped += 1;
            } else {
                if let Err(text) = c.command(&format!("RETR {n}")).await? {
                    return Err(c.error(format!("RETR {n} failed: {text}")));
                }
                let raw = c.multiline(MAX_DATA_LINE, MAX_MESSAGE).await?;
                maildir.deliver(&raw)?;
                if let Some(u) = uidl {
                    remember(&state_path, u)?;
                }
                summary.fetched += 1;
                summary.bytes += raw.len() as u64;
                if let Some(b) = &bar {
                    b.inc(size);
                }
            }
            if !opts.keep {
                if let Err(text) = c.command(&format!("DELE {n}")).await? {
                    return Err(c.error(format!("DELE {n} failed: {text}")));
                }
                dele_sent += 1;
                if let Some(u) = uidl {
                    deleted_uidls.insert(u.clone());
                }
            }
        }
        Ok(())
    }
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // On an error the connection is dropped without QUIT: the server deletes
    // nothing, and what was delivered is in the state file for next time.
    result?;
    match c.command("QUIT").await {
        Ok(Ok(_)) => summary.deleted = dele_sent,
        Ok(Err(text)) => {
            summary.warnings.push(format!(
                "the server could not delete the fetched messages: {text}"
            ));
            return finish_state(&state_path, &known, uidls.as_ref(), None, summary);
        }
        Err(e) => {
            if dele_sent > 0 {
                return Err(e);
            }
        }
    }
    if let Some(mut s) = c.stream.take() {
        let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
    }
    finish_state(
        &state_path,
        &known,
        uidls.as_ref(),
        Some(&deleted_uidls),
        summary,
    )
}

/// Rewrites the state file to the UIDLs still on the server that the Maildir
/// has (so it does not grow forever), atomically.
fn finish_state(
    path: &PathBuf,
    known_before: &BTreeSet<String>,
    uidls: Option<&BTreeMap<u32, String>>,
    deleted: Option<&BTreeSet<String>>,
    summary: FetchSummary,
) -> Result<FetchSummary> {
    let Some(uidls) = uidls else {
        return Ok(summary);
    };
    let have = read_state(path)?;
    let mut keep: Vec<&String> = uidls
        .values()
        .filter(|u| have.contains(*u) || known_before.contains(*u))
        .filter(|u| deleted.is_none_or(|d| !d.contains(*u)))
        .collect();
    keep.sort();
    keep.dedup();
    let mut text = String::new();
    for u in keep {
        text.push_str(u);
        text.push('\n');
    }
    write_atomically(path, text.as_bytes())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::tests::{Step, alice, c, fake_server, plain_endpoint, s};

    fn files(md: &Maildir) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(md.path().join("new"))
            .expect("new")
            .flatten()
            .map(|e| std::fs::read(e.path()).expect("read"))
            .collect();
        out.sort();
        out
    }

    async fn done(task: tokio::task::JoinHandle<std::result::Result<(), String>>) {
        let r = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("finished")
            .expect("no panic");
        if let Err(e) = r {
            panic!("the client sent something unexpected: {e}");
        }
    }

    #[tokio::test]
    async fn fetch_unstuffs_delivers_then_deletes_and_remembers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        // A UIDL fetched before (with --keep): deleted, not downloaded again.
        std::fs::write(md.path().join(UIDL_STATE_FILE), "old\nstale\ntorn").expect("state");
        let new_dir = md.path().join("new");
        let steps = vec![
            s("+OK ready\r\n"),
            c("CAPA"),
            s("+OK\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN\r\n.\r\n"),
            c("AUTH PLAIN AGFsaWNlAHMzY3JldA=="),
            s("+OK welcome\r\n"),
            c("LIST"),
            s("+OK 3 messages\r\n1 120\r\n2 10\r\n3 30\r\n.\r\n"),
            c("UIDL"),
            s("+OK\r\n1 aaa\r\n2 old\r\n3 torn\r\n.\r\n"),
            c("RETR 1"),
            s("+OK\r\nSubject: one\r\n\r\n..leading dot\r\n.\r\n"),
            // The message must be on disk before its DELE.
            c("DELE 1"),
            Step::Check(Box::new(move || {
                match std::fs::read_dir(&new_dir).map(|d| d.count()) {
                    Ok(1) => Ok(()),
                    other => Err(format!("new/ holds {other:?} files at DELE 1")),
                }
            })),
            s("+OK\r\n"),
            c("DELE 2"),
            s("+OK\r\n"),
            c("RETR 3"),
            s("+OK\r\nSubject: three\n\nbare LF kept\n.\r\n"),
            c("DELE 3"),
            s("+OK\r\n"),
            c("QUIT"),
            s("+OK bye\r\n"),
            Step::Eof,
        ];
        let (port, task) = fake_server(steps).await;
        let sum = fetch(
            &plain_endpoint(port),
            &alice(),
            &md,
            &FetchOptions {
                keep: false,
                progress: true,
            },
        )
        .await
        .expect("fetch");
        done(task).await;
        assert_eq!(
            sum,
            FetchSummary {
                fetched: 2,
                skipped: 1,
                deleted: 3,
                bytes: 59,
                warnings: vec![],
            }
        );
        assert_eq!(
            files(&md),
            [
                b"Subject: one\r\n\r\n.leading dot\r\n".to_vec(),
                b"Subject: three\n\nbare LF kept\n".to_vec(),
            ]
        );
        // Everything was deleted: the state file is empty again.
        assert_eq!(
            std::fs::read_to_string(md.path().join(UIDL_STATE_FILE)).expect("state"),
            ""
        );
    }

    #[tokio::test]
    async fn keep_skips_known_uidls_and_sends_no_dele() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        std::fs::write(md.path().join(UIDL_STATE_FILE), "b\n").expect("state");
        let steps = vec![
            s("+OK ready\r\n"),
            c("CAPA"),
            s("-ERR what?\r\n"),
            c("USER alice"),
            s("+OK\r\n"),
            c("PASS s3cret"),
            s("+OK\r\n"),
            c("LIST"),
            s("+OK\r\n1 5\r\n2 5\r\n.\r\n"),
            c("UIDL"),
            s("+OK\r\n1 a\r\n2 b\r\n.\r\n"),
            c("RETR 1"),
            s("+OK\r\nX: 1\r\n\r\n.\r\n"),
            c("QUIT"),
            s("+OK\r\n"),
            Step::Eof,
        ];
        let (port, task) = fake_server(steps).await;
        let opts = FetchOptions {
            keep: true,
            progress: false,
        };
        let sum = fetch(&plain_endpoint(port), &alice(), &md, &opts)
            .await
            .expect("fetch");
        done(task).await;
        assert_eq!((sum.fetched, sum.skipped, sum.deleted), (1, 1, 0));
        assert_eq!(
            std::fs::read_to_string(md.path().join(UIDL_STATE_FILE)).expect("state"),
            "a\nb\n"
        );
    }

    #[tokio::test]
    async fn no_uidl_fetches_all_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        let steps = vec![
            s("+OK ready\r\n"),
            c("CAPA"),
            s("+OK\r\nUSER\r\n.\r\n"),
            c("USER alice"),
            s("+OK\r\n"),
            c("PASS s3cret"),
            s("+OK\r\n"),
            c("LIST"),
            s("+OK\r\n1 5\r\n.\r\n"),
            c("UIDL"),
            s("-ERR no\r\n"),
            c("RETR 1"),
            s("+OK\r\nX: 1\r\n\r\n.\r\n"),
            c("QUIT"),
            s("+OK\r\n"),
            Step::Eof,
        ];
        let (port, task) = fake_server(steps).await;
        let opts = FetchOptions {
            keep: true,
            progress: false,
        };
        let sum = fetch(&plain_endpoint(port), &alice(), &md, &opts)
            .await
            .expect("fetch");
        done(task).await;
        assert_eq!(sum.fetched, 1);
        assert_eq!(sum.warnings.len(), 1, "{:?}", sum.warnings);
    }

    #[tokio::test]
    async fn a_dropped_connection_deletes_nothing_and_keeps_what_arrived() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        let steps = vec![
            s("+OK ready\r\n"),
            c("CAPA"),
            s("+OK\r\nSASL PLAIN\r\nUIDL\r\n.\r\n"),
            c("AUTH PLAIN AGFsaWNlAHMzY3JldA=="),
            s("+OK\r\n"),
            c("LIST"),
            s("+OK\r\n1 5\r\n2 5\r\n.\r\n"),
            c("UIDL"),
            s("+OK\r\n1 a\r\n2 b\r\n.\r\n"),
            c("RETR 1"),
            s("+OK\r\nX: 1\r\n\r\n.\r\n"),
            c("DELE 1"),
            s("+OK\r\n"),
            c("RETR 2"),
            s("+OK\r\nX: 2\r\n\r\npart of it"),
            Step::Close,
        ];
        let (port, task) = fake_server(steps).await;
        let err = fetch(
            &plain_endpoint(port),
            &alice(),
            &md,
            &FetchOptions::default(),
        )
        .await
        .expect_err("dropped");
        done(task).await;
        assert!(err.to_string().contains("closed"), "{err}");
        assert_eq!(files(&md), [b"X: 1\r\n\r\n".to_vec()]);
        // Message 1 is remembered: the next run deletes it without fetching.
        assert_eq!(
            read_state(&md.path().join(UIDL_STATE_FILE)).expect("state"),
            BTreeSet::from(["a".to_string()])
        );
    }

    #[tokio::test]
    async fn wrong_password_and_missing_stls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        let steps = vec![
            s("+OK ready\r\n"),
            c("CAPA"),
            s("+OK\r\nUSER\r\n.\r\n"),
            c("USER alice"),
            s("+OK\r\n"),
            c("PASS s3cret"),
            s("-ERR [AUTH] invalid password\r\n"),
            Step::Eof,
        ];
        let (port, task) = fake_server(steps).await;
        let err = fetch(
            &plain_endpoint(port),
            &alice(),
            &md,
            &FetchOptions::default(),
        )
        .await
        .expect_err("refused");
        done(task).await;
        assert!(
            matches!(err, ClientError::Auth { ref reply, .. } if reply == "[AUTH] invalid password"),
            "{err}"
        );

        let steps = vec![
            s("+OK ready\r\n"),
            c("CAPA"),
            s("+OK\r\nUSER\r\n.\r\n"),
            Step::Eof,
        ];
        let (port, task) = fake_server(steps).await;
        let mut ep = plain_endpoint(port);
        ep.security = Security::Starttls;
        let err = fetch(&ep, &alice(), &md, &FetchOptions::default())
            .await
            .expect_err("no STLS");
        done(task).await;
        assert!(err.to_string().contains("STLS"), "{err}");
    }
}
