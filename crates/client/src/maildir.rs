//! The local Maildir: where `pochta mail fetch` puts mail fetched over POP3, so
//! that the mail ends up stored on the client machine, and the `--via local`
//! backend that browses it.
//!
//! Layout (Maildir, <https://cr.yp.to/proto/maildir.html>, with the Maildir++
//! folder convention that Dovecot, Courier and mutt share):
//!
//! * INBOX is the top-level directory (`cur/`, `new/`, `tmp/`);
//! * the folder `Work/2024` is the directory `.Work.2024` beside them, each
//!   component in modified UTF-7 like Dovecot writes it;
//! * a file is named `UNIQUE[:2,INFO]`: `UNIQUE` is `secs.M<usec>P<pid>Q<n>R<rand>.host,S=size`
//!   and is the message's id, unchanged by flag changes and moves (both only
//!   rename the file); `INFO` holds the flags as letters (`D`raft, `F`lagged,
//!   `P`assed = `$Forwarded`, `R`eplied = `\Answered`, `S`een, `T`rashed =
//!   `\Deleted`) and keywords as `a`–`z`, numbered by the folder's
//!   `dovecot-keywords` file.
//!
//! Every write is durable: the file is written in `tmp/`, fsynced, renamed
//! into place, and the directory is fsynced, so a message that `deliver`
//! returned for survives a power cut (POP3 deletes on the server only after
//! that).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mail_parser::{Address, MessageParser};
use time::OffsetDateTime;

use crate::backend::{FlagChange, Folder, MailBackend, Query, Summary};
use crate::error::{ClientError, Result};
use crate::imap::{role_for_name, utf7};

/// The name of the file holding a folder's keyword letters (Dovecot's format:
/// `N keyword` per line), so that keywords set here are understood there.
const KEYWORDS_FILE: &str = "dovecot-keywords";

/// How much of a file `list` reads to parse its headers (the rest is body).
const HEADER_READ_LIMIT: u64 = 256 * 1024;

/// A Maildir that mail is delivered into.
#[derive(Debug, Clone)]
pub struct Maildir {
    dir: PathBuf,
}

impl Maildir {
    /// Opens the Maildir at `dir`, creating it and its `cur`, `new` and `tmp`
    /// subdirectories when missing, so that a first fetch needs no setup.
    pub fn open(dir: &Path) -> Result<Maildir> {
        for sub in ["cur", "new", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| ClientError::io(&p, e))?;
        }
        Ok(Maildir {
            dir: dir.to_path_buf(),
        })
    }

    /// Its top-level directory (INBOX), where state files such as POP3's
    /// `.pochta-uidl` live.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Stores `raw` as a new message in INBOX and returns its id (the unique
    /// part of the file name). The message is on disk (file and directory
    /// fsynced) when this returns: POP3 deletes on the server only after it.
    pub fn deliver(&self, raw: &[u8]) -> Result<String> {
        write_message(&self.dir, raw, None)
    }
}

/// Process-wide delivery counter: two deliveries in the same microsecond by the
/// same process still get different names.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// A unique file name per the Maildir spec: `time.M<usec>P<pid>Q<n>R<rand>.host,S=size`.
fn unique_name(size: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    let r: u64 = rand::random();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    // The spec: "/" and ":" in the host name are written as \057 and \072; the
    // comma separates the `,S=` field.
    let host = host
        .replace('/', "\\057")
        .replace(':', "\\072")
        .replace(',', "\\054");
    let host = if host.is_empty() {
        "localhost".into()
    } else {
        host
    };
    format!(
        "{}.M{}P{}Q{}R{:016x}.{},S={}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        r,
        host,
        size
    )
}

/// fsyncs a directory, so that a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ClientError::io(dir, e))
}

/// Writes `raw` into the Maildir folder `folder` durably: `tmp/`, fsync, rename
/// into `new/` (no `info`) or `cur/` (with `info`), fsync the directory.
/// Returns the unique name.
fn write_message(folder: &Path, raw: &[u8], info: Option<&str>) -> Result<String> {
    let unique = unique_name(raw.len());
    let tmp = folder.join("tmp").join(&unique);
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(raw)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(ClientError::io(&tmp, e));
    }
    let (sub, file) = match info {
        Some(info) => ("cur", format!("{unique}:2,{info}")),
        None => ("new", unique.clone()),
    };
    let dest = folder.join(sub).join(file);
    if let Err(e) = fs::rename(&tmp, &dest) {
        let _ = fs::remove_file(&tmp);
        return Err(ClientError::io(&dest, e));
    }
    sync_dir(&folder.join(sub))?;
    Ok(unique)
}

/// Browsing the local Maildir (`--via local`) through [`MailBackend`].
#[derive(Debug, Clone)]
pub struct MaildirBackend {
    root: PathBuf,
}

/// One message file found on disk.
#[derive(Debug, Clone)]
struct Entry {
    /// The unique part of the name: the id.
    id: String,
    /// The folder's name (`INBOX`, `Work/2024`).
    folder: String,
    /// The folder's directory.
    folder_dir: PathBuf,
    /// The file itself.
    path: PathBuf,
    /// The info letters after `:2,` (empty when none).
    info: String,
}

impl MaildirBackend {
    /// Opens the Maildir at `dir` for browsing (creating it when missing, like
    /// [`Maildir::open`], so that an account that never fetched lists nothing
    /// instead of failing).
    pub fn open(dir: &Path) -> Result<MaildirBackend> {
        Maildir::open(dir)?;
        Ok(MaildirBackend {
            root: dir.to_path_buf(),
        })
    }

    /// The directory of folder `name` (`INBOX` is the top level); `None` when
    /// the name cannot be a Maildir++ folder (empty components, dots).
    fn folder_path(&self, name: &str) -> Option<PathBuf> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Some(self.root.clone());
        }
        let name = name
            .strip_prefix("INBOX/")
            .filter(|_| name.len() > 6)
            .unwrap_or(name);
        let mut dir = String::new();
        for part in name.split('/') {
            if part.is_empty() || part.contains(['.', '\\', '\0']) {
                return None;
            }
            dir.push('.');
            dir.push_str(&utf7::encode(part));
        }
        Some(self.root.join(dir))
    }

    /// The directory of an existing folder, or [`ClientError::NoSuchFolder`].
    fn existing_folder(&self, name: &str) -> Result<PathBuf> {
        match self.folder_path(name) {
            Some(p) if p.join("cur").is_dir() && p.join("new").is_dir() => Ok(p),
            _ => Err(ClientError::NoSuchFolder(name.to_string())),
        }
    }

    /// Every folder: INBOX first, then the Maildir++ subfolders sorted by name.
    fn folder_dirs(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.root).map_err(|e| ClientError::io(&self.root, e))?;
        for ent in rd.flatten() {
            let file = ent.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(rest) = file.strip_prefix('.') else {
                continue;
            };
            if rest.is_empty() || rest.starts_with('.') {
                continue;
            }
            let path = ent.path();
            if !path.join("cur").is_dir() {
                continue;
            }
            let name: Vec<String> = rest.split('.').map(utf7::decode).collect();
            out.push((name.join("/"), path));
        }
        out.sort();
        out.insert(0, ("INBOX".to_string(), self.root.clone()));
        Ok(out)
    }

    /// The messages of one folder.
    fn entries(&self, folder: &str, dir: &Path) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let d = dir.join(sub);
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ClientError::io(&d, e)),
            };
            for ent in rd.flatten() {
                let file = ent.file_name();
                let Some(file) = file.to_str() else { continue };
                if file.starts_with('.') {
                    continue;
                }
                let (id, info) = split_name(file);
                out.push(Entry {
                    id: id.to_string(),
                    folder: folder.to_string(),
                    folder_dir: dir.to_path_buf(),
                    path: ent.path(),
                    // Mail in new/ has no info yet: unseen, no flags.
                    info: if sub == "new" {
                        String::new()
                    } else {
                        info.to_string()
                    },
                });
            }
        }
        Ok(out)
    }

    /// Finds the message with id `id` in any folder.
    fn find(&self, id: &str) -> Result<Entry> {
        if id.is_empty() || id.starts_with('.') || id.contains(['/', '\\', ':', '\0']) {
            return Err(ClientError::NoSuchMessage(id.to_string()));
        }
        for (name, dir) in self.folder_dirs()? {
            if let Some(e) = self.entries(&name, &dir)?.into_iter().find(|e| e.id == id) {
                return Ok(e);
            }
        }
        Err(ClientError::NoSuchMessage(id.to_string()))
    }
}

/// Splits a Maildir file name into its unique part and its info letters.
fn split_name(file: &str) -> (&str, &str) {
    match file.split_once(':') {
        Some((id, info)) => (id, info.strip_prefix("2,").unwrap_or("")),
        None => (file, ""),
    }
}

/// The folder's keyword table (`dovecot-keywords`): index = letter - 'a'.
fn read_keywords(folder_dir: &Path) -> Vec<Option<String>> {
    let mut table = vec![None; 26];
    if let Ok(text) = fs::read_to_string(folder_dir.join(KEYWORDS_FILE)) {
        for line in text.lines() {
            if let Some((n, kw)) = line.split_once(' ')
                && let Ok(n) = n.parse::<usize>()
                && n < 26
                && !kw.is_empty()
            {
                table[n] = Some(kw.to_string());
            }
        }
    }
    table
}

/// Writes the keyword table atomically (tmp file, fsync, rename, fsync dir).
fn write_keywords(folder_dir: &Path, table: &[Option<String>]) -> Result<()> {
    let mut text = String::new();
    for (n, kw) in table.iter().enumerate() {
        if let Some(kw) = kw {
            text.push_str(&format!("{n} {kw}\n"));
        }
    }
    write_atomically(&folder_dir.join(KEYWORDS_FILE), text.as_bytes())
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(ClientError::io(path, e));
    }
    sync_dir(dir)
}

/// The system flag a Maildir info letter stands for.
fn letter_flag(c: char) -> Option<&'static str> {
    Some(match c {
        'D' => "\\Draft",
        'F' => "\\Flagged",
        'P' => "$Forwarded",
        'R' => "\\Answered",
        'S' => "\\Seen",
        'T' => "\\Deleted",
        _ => return None,
    })
}

/// The info letter of a system flag (case-insensitive), if it has one.
fn flag_letter(flag: &str) -> Option<char> {
    let lower = flag.to_ascii_lowercase();
    Some(match lower.as_str() {
        "\\draft" => 'D',
        "\\flagged" => 'F',
        "$forwarded" => 'P',
        "\\answered" => 'R',
        "\\seen" => 'S',
        "\\deleted" => 'T',
        _ => return None,
    })
}

/// The flags of an info part, in IMAP spelling.
fn info_flags(info: &str, keywords: &[Option<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for c in info.chars() {
        if let Some(f) = letter_flag(c) {
            out.push(f.to_string());
        } else if c.is_ascii_lowercase() {
            let n = (c as u8 - b'a') as usize;
            if let Some(Some(kw)) = keywords.get(n) {
                out.push(kw.clone());
            }
        }
    }
    out
}

/// The info part for `flags`, adding unknown keywords to `keywords` (the
/// second value says whether the table changed).
fn flags_info(flags: &[String], keywords: &mut [Option<String>]) -> Result<(String, bool)> {
    let mut letters = BTreeSet::new();
    let mut changed = false;
    for f in flags {
        if let Some(c) = flag_letter(f) {
            letters.insert(c);
            continue;
        }
        if f.starts_with('\\') {
            // \Recent and unknown system flags cannot be stored.
            continue;
        }
        let pos = keywords
            .iter()
            .position(|k| k.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(f)));
        let n = match pos {
            Some(n) => n,
            None => {
                let free = keywords.iter().position(Option::is_none).ok_or_else(|| {
                    ClientError::Usage(format!(
                        "cannot add keyword {f:?}: a Maildir folder holds at most 26 keywords"
                    ))
                })?;
                keywords[free] = Some(f.clone());
                changed = true;
                free
            }
        };
        letters.insert((b'a' + n as u8) as char);
    }
    Ok((letters.into_iter().collect(), changed))
}

/// Reads at most `limit` bytes of `path`.
fn read_prefix(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| ClientError::io(path, e))?;
    let mut out = Vec::new();
    f.take(limit)
        .read_to_end(&mut out)
        .map_err(|e| ClientError::io(path, e))?;
    Ok(out)
}

/// Formats one address as "Name <addr>" or "addr".
pub(crate) fn format_addr(name: Option<&str>, addr: Option<&str>) -> String {
    match (name.map(str::trim).filter(|n| !n.is_empty()), addr) {
        (Some(n), Some(a)) if !a.is_empty() => format!("{n} <{a}>"),
        (Some(n), _) => n.to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => String::new(),
    }
}

/// Formats an address header as a comma-separated list.
pub(crate) fn format_address(addr: Option<&Address<'_>>) -> String {
    addr.map(|a| {
        a.iter()
            .map(|a| format_addr(a.name(), a.address()))
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// A mail-parser date as an [`OffsetDateTime`] in its own time zone.
pub(crate) fn to_offset_datetime(d: &mail_parser::DateTime) -> Option<OffsetDateTime> {
    let utc = OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok()?;
    let secs =
        (d.tz_hour as i32 * 3600 + d.tz_minute as i32 * 60) * if d.tz_before_gmt { -1 } else { 1 };
    match time::UtcOffset::from_whole_seconds(secs) {
        Ok(off) => Some(utc.to_offset(off)),
        Err(_) => Some(utc),
    }
}

/// Case-insensitive substring test (Unicode lower case).
pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// The page `query` asks for out of `items` (already sorted newest first).
pub(crate) fn page<T>(items: Vec<T>, query: &Query) -> Vec<T> {
    match query.limit {
        Some(limit) => {
            let skip = query.page.max(1).saturating_sub(1).saturating_mul(limit);
            items.into_iter().skip(skip).take(limit).collect()
        }
        None => items,
    }
}

/// A message file's summary and the data the query filters on.
struct Parsed {
    summary: Summary,
    to: String,
}

/// Parses an entry's headers (and, when `full`, keeps the whole text for
/// `text` searches) into a summary.
fn summarize(e: &Entry, keywords: &[Option<String>], raw: &[u8]) -> Parsed {
    let meta = fs::metadata(&e.path).ok();
    let size = meta.as_ref().map(|m| m.len()).unwrap_or(raw.len() as u64);
    let msg = MessageParser::new().parse_headers(raw);
    let date = msg
        .as_ref()
        .and_then(|m| m.date())
        .and_then(to_offset_datetime)
        .or_else(|| {
            meta.as_ref()
                .and_then(|m| m.modified().ok())
                .map(OffsetDateTime::from)
        });
    let from = format_address(msg.as_ref().and_then(|m| m.from()));
    let to = format_address(msg.as_ref().and_then(|m| m.to()));
    let subject = msg
        .as_ref()
        .and_then(|m| m.subject())
        .unwrap_or_default()
        .to_string();
    Parsed {
        summary: Summary {
            id: e.id.clone(),
            folder: e.folder.clone(),
            date,
            from,
            subject,
            flags: info_flags(&e.info, keywords),
            size,
        },
        to,
    }
}

/// Whether the whole message contains `needle` in a header or a text part.
fn text_matches(raw: &[u8], needle: &str) -> bool {
    let Some(msg) = MessageParser::new().parse(raw) else {
        return contains_ci(&String::from_utf8_lossy(raw), needle);
    };
    let header_end = msg.root_part().offset_body as usize;
    let headers = String::from_utf8_lossy(raw.get(..header_end).unwrap_or(raw));
    if contains_ci(&headers, needle)
        || msg.subject().is_some_and(|s| contains_ci(s, needle))
        || contains_ci(&format_address(msg.from()), needle)
        || contains_ci(&format_address(msg.to()), needle)
    {
        return true;
    }
    let mut i = 0;
    while let Some(text) = msg.body_text(i) {
        if contains_ci(&text, needle) {
            return true;
        }
        i += 1;
    }
    let mut i = 0;
    while let Some(html) = msg.body_html(i) {
        if contains_ci(&html, needle) {
            return true;
        }
        i += 1;
    }
    false
}

#[async_trait]
impl MailBackend for MaildirBackend {
    async fn folders(&mut self) -> Result<Vec<Folder>> {
        let dirs = self.folder_dirs()?;
        let mut out = Vec::new();
        for (name, dir) in &dirs {
            let entries = self.entries(name, dir)?;
            let unread = entries.iter().filter(|e| !e.info.contains('S')).count();
            out.push(Folder {
                role: if name == "INBOX" {
                    Some("inbox".into())
                } else {
                    role_for_name(name).map(str::to_string)
                },
                name: name.clone(),
                total: entries.len() as u64,
                unread: unread as u64,
            });
        }
        Ok(out)
    }

    async fn list(&mut self, query: &Query) -> Result<Vec<Summary>> {
        let folder = query.folder.as_deref().unwrap_or("INBOX");
        let dir = self.existing_folder(folder)?;
        let folder = if folder.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            folder
        };
        let keywords = read_keywords(&dir);
        let mut found = Vec::new();
        for e in self.entries(folder, &dir)? {
            if query.unread && e.info.contains('S') {
                continue;
            }
            if query.flagged && !e.info.contains('F') {
                continue;
            }
            let raw = if query.text.is_some() {
                match fs::read(&e.path) {
                    Ok(raw) => raw,
                    // Moved or expunged by someone else meanwhile.
                    Err(_) => continue,
                }
            } else {
                match read_prefix(&e.path, HEADER_READ_LIMIT) {
                    Ok(raw) => raw,
                    Err(_) => continue,
                }
            };
            let p = summarize(&e, &keywords, &raw);
            let s = &p.summary;
            if let Some(f) = &query.from
                && !contains_ci(&s.from, f)
            {
                continue;
            }
            if let Some(t) = &query.to
                && !contains_ci(&p.to, t)
            {
                continue;
            }
            if let Some(subj) = &query.subject
                && !contains_ci(&s.subject, subj)
            {
                continue;
            }
            if let Some(since) = query.since
                && s.date.is_none_or(|d| d.date() < since)
            {
                continue;
            }
            if let Some(before) = query.before
                && s.date.is_none_or(|d| d.date() >= before)
            {
                continue;
            }
            if let Some(text) = &query.text
                && !text_matches(&raw, text)
            {
                continue;
            }
            found.push(p.summary);
        }
        found.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| b.id.cmp(&a.id)));
        Ok(page(found, query))
    }

    async fn fetch_raw(&mut self, id: &str) -> Result<Vec<u8>> {
        let e = self.find(id)?;
        fs::read(&e.path).map_err(|err| ClientError::io(&e.path, err))
    }

    async fn flag(&mut self, ids: &[String], changes: &[FlagChange]) -> Result<()> {
        for id in ids {
            let e = self.find(id)?;
            let mut keywords = read_keywords(&e.folder_dir);
            let mut flags = info_flags(&e.info, &keywords);
            for c in changes {
                flags.retain(|f| !f.eq_ignore_ascii_case(&c.flag));
                if c.add {
                    flags.push(c.flag.clone());
                }
            }
            let (info, changed) = flags_info(&flags, &mut keywords)?;
            if changed {
                write_keywords(&e.folder_dir, &keywords)?;
            }
            let dest = e.folder_dir.join("cur").join(format!("{}:2,{info}", e.id));
            if dest != e.path {
                fs::rename(&e.path, &dest).map_err(|err| ClientError::io(&e.path, err))?;
                sync_dir(&e.folder_dir.join("cur"))?;
                if e.path.parent() != dest.parent()
                    && let Some(p) = e.path.parent()
                {
                    sync_dir(p)?;
                }
            }
        }
        Ok(())
    }

    async fn move_to(&mut self, ids: &[String], folder: &str) -> Result<Vec<String>> {
        let dest_dir = self.existing_folder(folder)?;
        let mut dest_keywords = read_keywords(&dest_dir);
        let mut out = Vec::new();
        for id in ids {
            let e = self.find(id)?;
            if e.folder_dir == dest_dir {
                out.push(e.id);
                continue;
            }
            // Keyword letters are per folder: translate them.
            let flags = info_flags(&e.info, &read_keywords(&e.folder_dir));
            let (info, changed) = flags_info(&flags, &mut dest_keywords)?;
            if changed {
                write_keywords(&dest_dir, &dest_keywords)?;
            }
            let in_new = e
                .path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "new");
            let dest = if in_new && info.is_empty() {
                dest_dir.join("new").join(&e.id)
            } else {
                dest_dir.join("cur").join(format!("{}:2,{info}", e.id))
            };
            fs::rename(&e.path, &dest).map_err(|err| ClientError::io(&e.path, err))?;
            if let Some(p) = dest.parent() {
                sync_dir(p)?;
            }
            if let Some(p) = e.path.parent() {
                sync_dir(p)?;
            }
            out.push(e.id);
        }
        Ok(out)
    }

    async fn expunge(&mut self, ids: &[String]) -> Result<()> {
        for id in ids {
            let e = self.find(id)?;
            fs::remove_file(&e.path).map_err(|err| ClientError::io(&e.path, err))?;
            if let Some(p) = e.path.parent() {
                sync_dir(p)?;
            }
        }
        Ok(())
    }

    async fn append(&mut self, folder: &str, raw: &[u8], flags: &[String]) -> Result<()> {
        let dir = self
            .folder_path(folder)
            .ok_or_else(|| ClientError::NoSuchFolder(folder.to_string()))?;
        if !dir.join("cur").is_dir() {
            // A sent copy or a draft into a folder the Maildir does not have
            // yet: create it (Maildir++ marks subfolders with `maildirfolder`).
            Maildir::open(&dir)?;
            let marker = dir.join("maildirfolder");
            File::create(&marker).map_err(|e| ClientError::io(&marker, e))?;
            sync_dir(&self.root)?;
        }
        let mut keywords = read_keywords(&dir);
        let (info, changed) = flags_info(flags, &mut keywords)?;
        if changed {
            write_keywords(&dir, &keywords)?;
        }
        let info = (!flags.is_empty()).then_some(info.as_str());
        write_message(&dir, raw, info)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(subject: &str, from: &str, date: &str, body: &str) -> Vec<u8> {
        format!(
            "From: {from}\r\nTo: Bob <bob@example.test>\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn deliver_is_byte_exact_with_unique_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(&dir.path().join("mail")).expect("open");
        let raw = b"Subject: x\r\n\r\n.leading dot\r\nline\r\n";
        let a = md.deliver(raw).expect("deliver");
        let b = md.deliver(raw).expect("deliver");
        assert_ne!(a, b);
        assert!(a.ends_with(&format!(",S={}", raw.len())), "{a}");
        assert!(!a.contains('/') && !a.contains(':'));
        let got = fs::read(md.path().join("new").join(&a)).expect("read");
        assert_eq!(got, raw);
        assert_eq!(fs::read_dir(md.path().join("tmp")).expect("tmp").count(), 0);
    }

    #[tokio::test]
    async fn backend_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("open");
        let old = md
            .deliver(&msg(
                "=?UTF-8?B?0J/RgNC40LLQtdGC?=",
                "=?UTF-8?Q?=D0=90=D0=BD=D1=8F?= <anya@example.test>",
                "Mon, 1 Jan 2024 10:00:00 +0300",
                "first body with needle",
            ))
            .expect("deliver");
        let new = md
            .deliver(&msg(
                "second",
                "carol@example.test",
                "Tue, 2 Jan 2024 10:00:00 +0000",
                "other",
            ))
            .expect("deliver");
        let mut be = MaildirBackend::open(dir.path()).expect("backend");

        let all = be.list(&Query::default()).await.expect("list");
        assert_eq!(
            all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            [new.as_str(), old.as_str()]
        );
        assert_eq!(all[1].subject, "Привет");
        assert_eq!(all[1].from, "Аня <anya@example.test>");
        assert!(all[1].flags.is_empty());

        let q = |f: fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q
        };
        let ids = |v: Vec<Summary>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(be
                .list(&q(|q| q.text = Some("NEEDLE".into())))
                .await
                .expect("text")),
            [old.as_str()]
        );
        assert_eq!(
            ids(be
                .list(&q(|q| q.from = Some("аня".into())))
                .await
                .expect("from")),
            [old.as_str()]
        );
        assert_eq!(
            ids(be
                .list(&q(|q| q.to = Some("bob@".into())))
                .await
                .expect("to"))
            .len(),
            2
        );
        assert_eq!(
            ids(be
                .list(&q(|q| q.since = Some(time::macros::date!(2024 - 01 - 02))))
                .await
                .expect("since")),
            [new.as_str()]
        );
        assert_eq!(
            ids(be
                .list(&q(|q| q.before = Some(time::macros::date!(2024 - 01 - 02))))
                .await
                .expect("before")),
            [old.as_str()]
        );
        assert_eq!(
            ids(be
                .list(&q(|q| {
                    q.limit = Some(1);
                    q.page = 2
                }))
                .await
                .expect("page")),
            [old.as_str()]
        );

        // Flags: a system flag and a keyword; the id survives the rename.
        be.flag(
            std::slice::from_ref(&old),
            &[
                FlagChange {
                    add: true,
                    flag: "\\Seen".into(),
                },
                FlagChange {
                    add: true,
                    flag: "work".into(),
                },
            ],
        )
        .await
        .expect("flag");
        let unread = ids(be.list(&q(|q| q.unread = true)).await.expect("unread"));
        assert_eq!(unread, [new.as_str()]);
        let l = be.list(&Query::default()).await.expect("list");
        assert_eq!(l[1].flags, ["\\Seen", "work"]);
        let names: Vec<String> = fs::read_dir(dir.path().join("cur"))
            .expect("cur")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("{old}:2,Sa")]);
        be.flag(
            std::slice::from_ref(&old),
            &[FlagChange {
                add: false,
                flag: "\\seen".into(),
            }],
        )
        .await
        .expect("unflag");
        assert_eq!(be.list(&q(|q| q.unread = true)).await.expect("l").len(), 2);

        // Append creates the folder; move keeps the id; counts follow.
        be.append(
            "Archive/2024",
            b"Subject: kept\r\n\r\nx\r\n",
            &["\\Seen".into()],
        )
        .await
        .expect("append");
        assert!(dir.path().join(".Archive.2024/cur").is_dir());
        let moved = be
            .move_to(std::slice::from_ref(&old), "Archive/2024")
            .await
            .expect("move");
        assert_eq!(moved, [old.as_str()]);
        let folders = be.folders().await.expect("folders");
        assert_eq!(
            folders
                .iter()
                .map(|f| (f.name.as_str(), f.role.as_deref(), f.total, f.unread))
                .collect::<Vec<_>>(),
            [("INBOX", Some("inbox"), 1, 1), ("Archive/2024", None, 2, 1)]
        );
        let raw = be.fetch_raw(&old).await.expect("raw");
        assert!(raw.starts_with(b"From: =?UTF-8?Q?"));
        let l = be
            .list(&q(|q| q.folder = Some("Archive/2024".into())))
            .await
            .expect("list");
        assert!(l.iter().any(|s| s.id == old && s.flags == ["work"]));

        be.expunge(std::slice::from_ref(&old))
            .await
            .expect("expunge");
        assert!(matches!(
            be.fetch_raw(&old).await,
            Err(ClientError::NoSuchMessage(_))
        ));
        assert!(matches!(
            be.fetch_raw("../../etc/passwd").await,
            Err(ClientError::NoSuchMessage(_))
        ));
        assert!(matches!(
            be.list(&q(|q| q.folder = Some("Nope".into()))).await,
            Err(ClientError::NoSuchFolder(_))
        ));
        assert!(matches!(
            be.move_to(std::slice::from_ref(&new), "Nope").await,
            Err(ClientError::NoSuchFolder(_))
        ));
    }

    #[test]
    fn folder_names_are_modified_utf7_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let be = MaildirBackend::open(dir.path()).expect("backend");
        let p = be.folder_path("Отправленные").expect("path");
        assert!(
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".&") && n.is_ascii()),
            "{p:?}"
        );
        assert!(be.folder_path("a.b").is_none());
        assert!(be.folder_path("../x").is_none());
    }
}
