//! JMAP without I/O: the session resource, method calls and their responses
//! (RFC 8620), and the Mail objects the user agent reads (RFC 8621) turned
//! into the [`crate::backend`] types. Everything here takes and returns
//! values, so it is tested on canned JSON; [`super::JmapBackend`] only moves
//! the bytes.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::backend::{FlagChange, Folder, Query, Summary};

/// The core capability (RFC 8620 §2).
pub const CORE: &str = "urn:ietf:params:jmap:core";
/// Mailboxes and emails (RFC 8621 §1.3.1).
pub const MAIL: &str = "urn:ietf:params:jmap:mail";
/// Identities and submissions (RFC 8621 §1.3.2).
pub const SUBMISSION: &str = "urn:ietf:params:jmap:submission";

/// The most objects asked for in one `/get` or changed in one `/set`, whatever
/// the server allows: keeps each response a sane size.
const MAX_OBJECTS: u64 = 5000;

/// What the client needs from the session resource (RFC 8620 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Where API requests are posted.
    pub api_url: String,
    /// The download template (`{accountId}`, `{blobId}`, `{type}`, `{name}`).
    pub download_url: String,
    /// The upload template (`{accountId}`).
    pub upload_url: String,
    /// The primary account for mail.
    pub account_id: String,
    /// Whether that account can submit (Identity, EmailSubmission).
    pub submission: bool,
    /// `maxSizeUpload`.
    pub max_size_upload: u64,
    /// `maxObjectsInGet`, capped at [`MAX_OBJECTS`].
    pub max_objects_in_get: usize,
    /// `maxObjectsInSet`, capped at [`MAX_OBJECTS`].
    pub max_objects_in_set: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSession {
    capabilities: HashMap<String, Value>,
    #[serde(default)]
    accounts: HashMap<String, RawAccount>,
    primary_accounts: HashMap<String, String>,
    api_url: String,
    download_url: String,
    upload_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAccount {
    #[serde(default)]
    account_capabilities: HashMap<String, Value>,
}

/// Parses the session resource; it must offer mail with a primary account.
pub fn parse_session(body: &[u8]) -> Result<Session, String> {
    let raw: RawSession = serde_json::from_slice(body)
        .map_err(|e| format!("the JMAP session resource is not valid: {e}"))?;
    if !raw.capabilities.contains_key(MAIL) {
        return Err("the server does not offer JMAP Mail (urn:ietf:params:jmap:mail)".into());
    }
    let account_id = raw
        .primary_accounts
        .get(MAIL)
        .cloned()
        .ok_or("the JMAP session names no primary mail account")?;
    let submission = raw.capabilities.contains_key(SUBMISSION)
        && raw.accounts.get(&account_id).is_none_or(|a| {
            a.account_capabilities.is_empty() || a.account_capabilities.contains_key(SUBMISSION)
        });
    let core = raw.capabilities.get(CORE);
    let limit = |name: &str, default: u64| {
        core.and_then(|c| c.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    let objects = |name: &str| usize::try_from(limit(name, 500).clamp(1, MAX_OBJECTS)).unwrap_or(1);
    Ok(Session {
        api_url: raw.api_url,
        download_url: raw.download_url,
        upload_url: raw.upload_url,
        account_id,
        submission,
        max_size_upload: limit("maxSizeUpload", 50_000_000),
        max_objects_in_get: objects("maxObjectsInGet"),
        max_objects_in_set: objects("maxObjectsInSet"),
    })
}

/// A request object (RFC 8620 §3.3) with `calls` as `[name, arguments, id]`.
pub fn request(using: &[&str], calls: Vec<Value>) -> Value {
    json!({ "using": using, "methodCalls": calls })
}

/// One method call.
pub fn call(name: &str, arguments: Value, id: &str) -> Value {
    json!([name, arguments, id])
}

/// The method responses of one API response (RFC 8620 §3.4).
#[derive(Debug, Clone)]
pub struct Responses(Vec<(String, Value, String)>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResponse {
    method_responses: Vec<(String, Value, String)>,
}

impl Responses {
    /// Parses a response object.
    pub fn parse(body: &[u8]) -> Result<Responses, String> {
        let raw: RawResponse = serde_json::from_slice(body)
            .map_err(|e| format!("the JMAP response is not valid: {e}"))?;
        Ok(Responses(raw.method_responses))
    }

    /// The arguments `method` answered for call `id`; a method error
    /// (`["error", {"type": …}, id]`, RFC 8620 §3.6.2) becomes its message.
    pub fn get(&self, id: &str, method: &str) -> Result<&Value, String> {
        let mut found = None;
        for (name, args, call_id) in &self.0 {
            if call_id != id {
                continue;
            }
            if name == "error" {
                return Err(method_error(method, args));
            }
            if name == method {
                found = Some(args);
                break;
            }
        }
        found.ok_or_else(|| format!("the server did not answer {method}"))
    }

    /// Like [`Responses::get`], deserialized into `T`.
    pub fn parse_as<T: for<'de> Deserialize<'de>>(
        &self,
        id: &str,
        method: &str,
    ) -> Result<T, String> {
        let args = self.get(id, method)?;
        T::deserialize(args).map_err(|e| format!("unexpected {method} response: {e}"))
    }
}

/// `Email/get: invalidArguments (the description)`.
fn method_error(method: &str, args: &Value) -> String {
    let kind = args
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("serverFail");
    match args.get("description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{method}: {kind} ({})", clip(d)),
        _ => format!("{method}: {kind}"),
    }
}

/// At most 300 characters of server text in an error message.
fn clip(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Whether `s` has JMAP Id syntax (RFC 8620 §1.2): what a message id from the
/// user must look like before it is sent.
pub fn is_id(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// ------------------------------------------------------------------ mailboxes

/// The `Mailbox/get` call for every mailbox with what [`Folder`] shows.
pub fn mailbox_get(account_id: &str, id: &str) -> Value {
    call(
        "Mailbox/get",
        json!({
            "accountId": account_id,
            "ids": null,
            "properties": ["id", "name", "parentId", "role", "totalEmails", "unreadEmails"],
        }),
        id,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMailbox {
    id: String,
    #[serde(default)]
    name: String,
    parent_id: Option<String>,
    role: Option<String>,
    #[serde(default)]
    total_emails: u64,
    #[serde(default)]
    unread_emails: u64,
}

#[derive(Deserialize)]
struct ListResponse<T> {
    list: Vec<T>,
}

/// A mailbox with its full name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The JMAP id.
    pub id: String,
    /// The folder as the user sees it (path from the top, `/`-separated; the
    /// inbox is `INBOX`, as over IMAP).
    pub folder: Folder,
}

/// The deepest hierarchy followed when making paths (also stops cycles).
const MAX_DEPTH: usize = 64;

/// Turns a `Mailbox/get` response into folders with full names, the inbox
/// first and the others by name.
pub fn parse_mailboxes(args: &Value) -> Result<Vec<Mailbox>, String> {
    let raw: ListResponse<RawMailbox> = ListResponse::deserialize(args)
        .map_err(|e| format!("unexpected Mailbox/get response: {e}"))?;
    let by_id: HashMap<&str, &RawMailbox> = raw.list.iter().map(|m| (m.id.as_str(), m)).collect();
    let is_inbox = |m: &RawMailbox| {
        m.parent_id.is_none()
            && (m
                .role
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("inbox"))
                || m.name.eq_ignore_ascii_case("INBOX"))
    };
    let own_name = |m: &RawMailbox| {
        if is_inbox(m) {
            "INBOX".to_string()
        } else {
            m.name.clone()
        }
    };
    let mut out: Vec<Mailbox> = raw
        .list
        .iter()
        .map(|m| {
            let mut parts = vec![own_name(m)];
            let mut parent = m.parent_id.as_deref();
            while let Some(p) = parent.and_then(|p| by_id.get(p)) {
                if parts.len() >= MAX_DEPTH {
                    break;
                }
                parts.push(own_name(p));
                parent = p.parent_id.as_deref();
            }
            parts.reverse();
            Mailbox {
                id: m.id.clone(),
                folder: Folder {
                    name: parts.join("/"),
                    role: m.role.as_ref().map(|r| r.to_ascii_lowercase()),
                    total: m.total_emails,
                    unread: m.unread_emails,
                },
            }
        })
        .collect();
    out.sort_by(|a, b| {
        let inbox = |m: &Mailbox| m.folder.name != "INBOX";
        (inbox(a), &a.folder.name).cmp(&(inbox(b), &b.folder.name))
    });
    Ok(out)
}

/// The mailbox the user means by `name`: the exact full name, `INBOX` in any
/// case, or a name that matches ignoring case when only one does.
pub fn find_mailbox<'a>(boxes: &'a [Mailbox], name: &str) -> Option<&'a Mailbox> {
    let name = name.trim_matches('/');
    if let Some(m) = boxes.iter().find(|m| m.folder.name == name) {
        return Some(m);
    }
    if name.eq_ignore_ascii_case("INBOX") {
        return boxes
            .iter()
            .find(|m| m.folder.role.as_deref() == Some("inbox"));
    }
    let mut matching = boxes
        .iter()
        .filter(|m| m.folder.name.eq_ignore_ascii_case(name));
    match (matching.next(), matching.next()) {
        (Some(m), None) => Some(m),
        _ => None,
    }
}

// --------------------------------------------------------------------- emails

/// The properties a listing line needs.
const SUMMARY_PROPERTIES: [&str; 8] = [
    "id",
    "receivedAt",
    "sentAt",
    "from",
    "subject",
    "keywords",
    "size",
    "mailboxIds",
];

/// The `Email/query` filter for `query` in the mailbox `mailbox_id`: one
/// FilterCondition, whose properties must all match (RFC 8621 §4.4.1).
pub fn email_filter(query: &Query, mailbox_id: &str) -> Value {
    let mut f = Map::new();
    f.insert("inMailbox".into(), json!(mailbox_id));
    let mut text = |key: &str, value: &Option<String>| {
        if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            f.insert(key.into(), json!(v));
        }
    };
    text("from", &query.from);
    text("to", &query.to);
    text("subject", &query.subject);
    text("text", &query.text);
    // `after` is inclusive, `before` exclusive (RFC 8621 §4.4.1), as
    // `since:` and `before:` are.
    if let Some(d) = query.since {
        f.insert("after".into(), json!(utc_midnight(d)));
    }
    if let Some(d) = query.before {
        f.insert("before".into(), json!(utc_midnight(d)));
    }
    if query.unread {
        f.insert("notKeyword".into(), json!("$seen"));
    }
    if query.flagged {
        f.insert("hasKeyword".into(), json!("$flagged"));
    }
    Value::Object(f)
}

/// `YYYY-MM-DDT00:00:00Z`, a UTCDate (RFC 8620 §1.4).
fn utc_midnight(d: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}T00:00:00Z",
        d.year().clamp(0, 9999),
        u8::from(d.month()),
        d.day()
    )
}

/// The request for one page of a listing: `Email/query` newest first and
/// `Email/get` of its ids through a result reference (RFC 8620 §3.7), so the
/// page costs one round trip.
pub fn list_calls(account_id: &str, filter: Value, position: usize, limit: usize) -> Vec<Value> {
    vec![
        call(
            "Email/query",
            json!({
                "accountId": account_id,
                "filter": filter,
                "sort": [{"property": "receivedAt", "isAscending": false}],
                "position": position,
                "limit": limit,
                "calculateTotal": true,
            }),
            "q",
        ),
        call(
            "Email/get",
            json!({
                "accountId": account_id,
                "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                "properties": SUMMARY_PROPERTIES,
            }),
            "g",
        ),
    ]
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The lines, in the query's order.
    pub summaries: Vec<Summary>,
    /// How many ids the query returned (some may have vanished before the get).
    pub ids: usize,
    /// All matching emails, when the server said.
    pub total: Option<u64>,
}

#[derive(Deserialize)]
struct QueryResponse {
    ids: Vec<String>,
    total: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEmail {
    id: String,
    received_at: Option<String>,
    sent_at: Option<String>,
    #[serde(default)]
    from: Option<Vec<EmailAddress>>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    keywords: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    size: u64,
}

#[derive(Deserialize)]
struct EmailAddress {
    name: Option<String>,
    email: Option<String>,
}

/// Parses the responses to [`list_calls`] into a page of `folder`.
pub fn parse_page(responses: &Responses, folder: &str) -> Result<Page, String> {
    let query: QueryResponse = responses.parse_as("q", "Email/query")?;
    let got: ListResponse<RawEmail> = responses.parse_as("g", "Email/get")?;
    let mut by_id: HashMap<String, RawEmail> =
        got.list.into_iter().map(|e| (e.id.clone(), e)).collect();
    let summaries = query
        .ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .map(|e| summary(e, folder))
        .collect();
    Ok(Page {
        summaries,
        ids: query.ids.len(),
        total: query.total,
    })
}

fn summary(e: RawEmail, folder: &str) -> Summary {
    let date = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    };
    let from = e
        .from
        .unwrap_or_default()
        .iter()
        .map(|a| {
            match (
                a.name.as_deref().filter(|n| !n.is_empty()),
                a.email.as_deref(),
            ) {
                (Some(n), Some(m)) => format!("{n} <{m}>"),
                (Some(n), None) => n.to_string(),
                (None, m) => m.unwrap_or_default().to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let keywords: Vec<&str> = e
        .keywords
        .as_ref()
        .map(|k| {
            k.iter()
                .filter(|(_, v)| **v == Value::Bool(true))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    Summary {
        id: e.id,
        folder: folder.to_string(),
        date: date(&e.sent_at).or_else(|| date(&e.received_at)),
        from,
        subject: e.subject.unwrap_or_default(),
        flags: imap_flags(&keywords),
        size: e.size,
    }
}

/// The IMAP system flags and their JMAP keywords (RFC 8621 §4.1.1).
const SYSTEM_FLAGS: [(&str, &str); 4] = [
    ("\\Seen", "$seen"),
    ("\\Answered", "$answered"),
    ("\\Flagged", "$flagged"),
    ("\\Draft", "$draft"),
];

/// Keywords in IMAP spelling: the system flags first, then the others as
/// they are.
pub fn imap_flags(keywords: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = SYSTEM_FLAGS
        .iter()
        .filter(|(_, k)| keywords.iter().any(|w| w.eq_ignore_ascii_case(k)))
        .map(|(f, _)| f.to_string())
        .collect();
    let mut others: Vec<String> = keywords
        .iter()
        .filter(|w| !SYSTEM_FLAGS.iter().any(|(_, k)| w.eq_ignore_ascii_case(k)))
        .map(|w| w.to_string())
        .collect();
    others.sort();
    flags.append(&mut others);
    flags
}

/// The JMAP keyword for a flag in IMAP spelling (`\Seen` → `$seen`) or a
/// keyword (lower-cased: keywords are case-insensitive, RFC 8621 §4.1.1).
/// Other `\` flags (`\Deleted`, `\Recent`) have no JMAP keyword.
pub fn keyword(flag: &str) -> Result<String, String> {
    if let Some((_, k)) = SYSTEM_FLAGS
        .iter()
        .find(|(f, _)| f.eq_ignore_ascii_case(flag))
    {
        return Ok(k.to_string());
    }
    if flag.starts_with('\\') {
        return Err(format!("the flag {flag} does not exist in JMAP"));
    }
    // The IMAP atom characters (RFC 8621 §4.1.1 keeps keywords IMAP-compatible).
    let ok = (1..=255).contains(&flag.len())
        && flag
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && !b"(){]%*\"\\".contains(&b));
    if ok {
        Ok(flag.to_ascii_lowercase())
    } else {
        Err(format!("{flag:?} is not a valid keyword"))
    }
}

/// The `Email/set` patch for flag changes: `keywords/$seen: true` to add,
/// `null` to remove (RFC 8620 §5.3 PatchObject).
pub fn keywords_patch(changes: &[FlagChange]) -> Result<Value, String> {
    let mut patch = Map::new();
    for c in changes {
        let k = keyword(&c.flag)?;
        // A JSON pointer (RFC 6901): `~` and `/` are escaped.
        let path = format!("keywords/{}", k.replace('~', "~0").replace('/', "~1"));
        patch.insert(
            path,
            if c.add {
                Value::Bool(true)
            } else {
                Value::Null
            },
        );
    }
    Ok(Value::Object(patch))
}

/// A keywords object (`{"$seen": true}`) for flags in IMAP spelling.
pub fn keywords_object(flags: &[String]) -> Result<Value, String> {
    let mut out = Map::new();
    for f in flags {
        out.insert(keyword(f)?, Value::Bool(true));
    }
    Ok(Value::Object(out))
}

/// `Email/get` of one email's blob id.
pub fn blob_id_call(account_id: &str, id: &str) -> Value {
    call(
        "Email/get",
        json!({"accountId": account_id, "ids": [id], "properties": ["blobId"]}),
        "b",
    )
}

/// The blob id from [`blob_id_call`]'s answer; `None` when the email does not
/// exist.
pub fn parse_blob_id(responses: &Responses) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WithBlob {
        blob_id: String,
    }
    let got: ListResponse<WithBlob> = responses.parse_as("b", "Email/get")?;
    Ok(got.list.into_iter().next().map(|e| e.blob_id))
}

// ---------------------------------------------------------------------- /set

/// Why one object was not created, updated or destroyed (RFC 8620 §5.3).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SetError {
    /// `notFound`, `forbiddenFrom`, `invalidProperties`…
    #[serde(rename = "type")]
    pub kind: String,
    /// The server's explanation.
    pub description: Option<String>,
    /// For `invalidProperties`.
    pub properties: Option<Vec<String>>,
    /// For `invalidRecipients` (RFC 8621 §7.5).
    pub invalid_recipients: Option<Vec<String>>,
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind.as_str() {
            "forbiddenFrom" => "the server does not let this account send as the From address",
            "forbiddenMailFrom" => "the server does not let this account use that envelope sender",
            "forbiddenToSend" => "this account may not send mail",
            "invalidRecipients" => "recipients refused",
            "noRecipients" => "no recipients",
            "tooManyRecipients" => "too many recipients",
            "tooLarge" => "the message is too large",
            "overQuota" => "over quota",
            "notFound" => "not found",
            "blobNotFound" => "the uploaded message is gone",
            _ => "",
        };
        write!(f, "{}", self.kind)?;
        if !what.is_empty() {
            write!(f, ": {what}")?;
        }
        if let Some(r) = self.invalid_recipients.as_ref().filter(|r| !r.is_empty()) {
            write!(f, " ({})", r.join(", "))?;
        }
        if let Some(p) = self.properties.as_ref().filter(|p| !p.is_empty()) {
            write!(f, " [{}]", p.join(", "))?;
        }
        if let Some(d) = self.description.as_deref().filter(|d| !d.is_empty()) {
            write!(f, " ({})", clip(d))?;
        }
        Ok(())
    }
}

/// The parts of a `/set` response the client checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetResponse {
    /// Creation id → the created object's server-set properties.
    #[serde(default)]
    pub created: Option<HashMap<String, Value>>,
    /// Creation id → why not.
    #[serde(default)]
    pub not_created: Option<HashMap<String, SetError>>,
    /// Id → why not.
    #[serde(default)]
    pub not_updated: Option<HashMap<String, SetError>>,
    /// Id → why not.
    #[serde(default)]
    pub not_destroyed: Option<HashMap<String, SetError>>,
}

impl SetResponse {
    /// The first failure among updates and destroys, in the order of `ids`.
    pub fn first_failure<'a>(&'a self, ids: &'a [String]) -> Option<(&'a str, &'a SetError)> {
        ids.iter().find_map(|id| {
            self.not_updated
                .as_ref()
                .and_then(|m| m.get(id))
                .or_else(|| self.not_destroyed.as_ref().and_then(|m| m.get(id)))
                .map(|e| (id.as_str(), e))
        })
    }

    /// The id of the object created as `creation_id`, or why it was not.
    pub fn created_id(&self, creation_id: &str) -> Result<String, Option<SetError>> {
        if let Some(e) = self.not_created.as_ref().and_then(|m| m.get(creation_id)) {
            return Err(Some(e.clone()));
        }
        self.created
            .as_ref()
            .and_then(|m| m.get(creation_id))
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(None)
    }
}

// ----------------------------------------------------------------- submission

/// An identity the account may send as (RFC 8621 §6).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// Its id.
    pub id: String,
    /// Its address, possibly `*@domain`.
    pub email: String,
}

/// Parses `Identity/get`.
pub fn parse_identities(responses: &Responses, id: &str) -> Result<Vec<Identity>, String> {
    let got: ListResponse<Identity> = responses.parse_as(id, "Identity/get")?;
    Ok(got.list)
}

/// The identity for the sender `from` (`addr` or `Name <addr>`): the same
/// address ignoring case, else a `*@domain` identity of its domain.
pub fn pick_identity<'a>(identities: &'a [Identity], from: &str) -> Option<&'a Identity> {
    let addr = bare_address(from);
    identities
        .iter()
        .find(|i| i.email.eq_ignore_ascii_case(addr))
        .or_else(|| {
            let domain = addr.rsplit_once('@').map(|(_, d)| d)?;
            identities.iter().find(|i| {
                i.email
                    .strip_prefix("*@")
                    .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            })
        })
}

/// `a@b` from `Name <a@b>` (or the trimmed text when there are no brackets).
pub fn bare_address(s: &str) -> &str {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => s[open + 1..close].trim(),
        _ => s.trim(),
    }
}

/// The request that files the uploaded message in `mailbox_id` with
/// `keywords` (`Email/import`, RFC 8621 §4.8) as creation id `m`, and, when
/// `submission` is given (identity id, envelope sender, recipients), sends it
/// with `EmailSubmission/set` referring to `#m` (RFC 8621 §7.5).
pub fn import_calls(
    account_id: &str,
    blob_id: &str,
    mailbox_id: &str,
    keywords: Value,
    submission: Option<(&str, &str, &[String])>,
) -> Vec<Value> {
    let mut calls = vec![call(
        "Email/import",
        json!({
            "accountId": account_id,
            "emails": {"m": {
                "blobId": blob_id,
                "mailboxIds": {mailbox_id: true},
                "keywords": keywords,
            }},
        }),
        "i",
    )];
    if let Some((identity, mail_from, rcpts)) = submission {
        let rcpt_to: Vec<Value> = rcpts
            .iter()
            .map(|r| json!({"email": bare_address(r), "parameters": null}))
            .collect();
        calls.push(call(
            "EmailSubmission/set",
            json!({
                "accountId": account_id,
                "create": {"s": {
                    "identityId": identity,
                    "emailId": "#m",
                    "envelope": {
                        "mailFrom": {"email": bare_address(mail_from), "parameters": null},
                        "rcptTo": rcpt_to,
                    },
                }},
            }),
            "s",
        ));
    }
    calls
}

/// The blob id of an upload's answer (RFC 8620 §6.1).
pub fn parse_upload(body: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Uploaded {
        blob_id: String,
    }
    serde_json::from_slice::<Uploaded>(body)
        .map(|u| u.blob_id)
        .map_err(|e| format!("unexpected upload response: {e}"))
}

/// A request-level error (RFC 8620 §3.6.1, RFC 7807 problem details) as
/// `type: detail`, or the start of the body when it is something else.
pub fn problem(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let kind = kind
            .strip_prefix("urn:ietf:params:jmap:error:")
            .unwrap_or(kind);
        let detail = v
            .get("detail")
            .or_else(|| v.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !kind.is_empty() || !detail.is_empty() {
            return clip(format!("{kind}: {detail}").trim_matches([' ', ':']));
        }
    }
    clip(String::from_utf8_lossy(body).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = r#"{
      "capabilities": {
        "urn:ietf:params:jmap:core": {"maxSizeUpload": 1000, "maxObjectsInGet": 2,
           "maxObjectsInSet": 1000000, "maxCallsInRequest": 16},
        "urn:ietf:params:jmap:mail": {},
        "urn:ietf:params:jmap:submission": {}
      },
      "accounts": {"A1": {"name": "u@x", "isPersonal": true, "isReadOnly": false,
         "accountCapabilities": {"urn:ietf:params:jmap:mail": {}, "urn:ietf:params:jmap:submission": {}}}},
      "primaryAccounts": {"urn:ietf:params:jmap:mail": "A1"},
      "username": "u@x",
      "apiUrl": "https://h/jmap/api/",
      "downloadUrl": "https://h/d/{accountId}/{blobId}/{name}?type={type}",
      "uploadUrl": "https://h/u/{accountId}/",
      "eventSourceUrl": "https://h/e",
      "state": "s1"
    }"#;

    #[test]
    fn session_limits_and_account() {
        let s = parse_session(SESSION.as_bytes()).unwrap();
        assert_eq!(s.account_id, "A1");
        assert!(s.submission);
        assert_eq!(s.max_size_upload, 1000);
        assert_eq!(s.max_objects_in_get, 2);
        assert_eq!(s.max_objects_in_set, MAX_OBJECTS as usize);
        assert_eq!(s.api_url, "https://h/jmap/api/");
    }

    #[test]
    fn session_without_mail_is_refused() {
        let no_mail = SESSION.replace("\"urn:ietf:params:jmap:mail\": {},", "");
        assert!(
            parse_session(no_mail.as_bytes())
                .unwrap_err()
                .contains("JMAP Mail")
        );
        let no_primary = SESSION.replace("\"urn:ietf:params:jmap:mail\": \"A1\"", "");
        assert!(parse_session(no_primary.as_bytes()).is_err());
        assert!(parse_session(b"<html>").is_err());
    }

    #[test]
    fn method_errors_name_the_type() {
        let r = Responses::parse(
            br#"{"methodResponses": [["error", {"type": "invalidArguments", "description": "bad"}, "q"],
               ["Email/get", {"list": [], "notFound": []}, "g"]], "sessionState": "x"}"#,
        )
        .unwrap();
        assert_eq!(
            r.get("q", "Email/query").unwrap_err(),
            "Email/query: invalidArguments (bad)"
        );
        assert!(r.get("g", "Email/get").is_ok());
        assert!(
            r.get("z", "Email/get")
                .unwrap_err()
                .contains("did not answer")
        );
        assert!(Responses::parse(b"{}").is_err());
    }

    #[test]
    fn mailbox_paths_inbox_first() {
        let args = json!({"list": [
            {"id": "m3", "name": "2024", "parentId": "m2", "role": null, "totalEmails": 1, "unreadEmails": 0},
            {"id": "m2", "name": "Archive", "parentId": null, "role": "archive", "totalEmails": 0, "unreadEmails": 0},
            {"id": "m1", "name": "Inbox", "parentId": null, "role": "inbox", "totalEmails": 5, "unreadEmails": 2},
            {"id": "m4", "name": "Sent", "parentId": null, "role": "Sent"},
            {"id": "c1", "name": "loop", "parentId": "c2"},
            {"id": "c2", "name": "pool", "parentId": "c1"}
        ], "notFound": []});
        let boxes = parse_mailboxes(&args).unwrap();
        let names: Vec<&str> = boxes.iter().map(|m| m.folder.name.as_str()).collect();
        assert_eq!(names[0], "INBOX");
        assert!(names.contains(&"Archive/2024"));
        assert_eq!(boxes[0].folder.total, 5);
        assert_eq!(boxes[0].folder.unread, 2);
        let sent = find_mailbox(&boxes, "sent").unwrap();
        assert_eq!(sent.id, "m4");
        assert_eq!(sent.folder.role.as_deref(), Some("sent"));
        assert_eq!(find_mailbox(&boxes, "inbox").unwrap().id, "m1");
        assert_eq!(find_mailbox(&boxes, "Archive/2024/").unwrap().id, "m3");
        assert!(find_mailbox(&boxes, "Nope").is_none());
        // A parent cycle ends, it does not loop.
        assert!(names.iter().any(|n| n.ends_with("loop")));
    }

    #[test]
    fn filter_from_query() {
        let q = Query {
            from: Some("alice".into()),
            to: Some(" ".into()),
            subject: Some("report".into()),
            text: Some("budget".into()),
            since: Some(time::macros::date!(2024 - 03 - 05)),
            before: Some(time::macros::date!(2024 - 04 - 01)),
            unread: true,
            flagged: true,
            ..Query::default()
        };
        assert_eq!(
            email_filter(&q, "M1"),
            json!({"inMailbox": "M1", "from": "alice", "subject": "report", "text": "budget",
                   "after": "2024-03-05T00:00:00Z", "before": "2024-04-01T00:00:00Z",
                   "notKeyword": "$seen", "hasKeyword": "$flagged"})
        );
        assert_eq!(
            email_filter(&Query::default(), "M1"),
            json!({"inMailbox": "M1"})
        );
    }

    #[test]
    fn list_uses_a_result_reference() {
        let calls = list_calls("A", json!({}), 20, 10);
        assert_eq!(calls[0][0], "Email/query");
        assert_eq!(calls[0][1]["position"], 20);
        assert_eq!(calls[0][1]["limit"], 10);
        assert_eq!(calls[0][1]["sort"][0]["isAscending"], false);
        assert_eq!(calls[1][1]["#ids"]["resultOf"], "q");
        assert_eq!(calls[1][1]["#ids"]["path"], "/ids");
        assert!(calls[1][1].get("ids").is_none());
    }

    #[test]
    fn page_keeps_the_query_order() {
        let r = Responses::parse(
            br#"{"methodResponses": [
              ["Email/query", {"ids": ["e2", "e1", "gone"], "position": 0, "total": 7}, "q"],
              ["Email/get", {"list": [
                {"id": "e1", "receivedAt": "2024-01-02T03:04:05Z", "sentAt": null,
                 "from": [{"name": "Alice", "email": "a@x"}, {"name": null, "email": "b@x"}],
                 "subject": "one", "keywords": {"$seen": true, "$flagged": true, "work": true, "off": false},
                 "size": 123, "mailboxIds": {"M": true}},
                {"id": "e2", "receivedAt": "2024-01-03T00:00:00Z", "sentAt": "2024-01-02T23:00:00+01:00",
                 "from": null, "subject": null, "keywords": {}, "size": 9}
              ], "notFound": ["gone"]}, "g"]], "sessionState": "s"}"#,
        )
        .unwrap();
        let page = parse_page(&r, "INBOX").unwrap();
        assert_eq!(page.ids, 3);
        assert_eq!(page.total, Some(7));
        let ids: Vec<&str> = page.summaries.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["e2", "e1"]);
        let e1 = &page.summaries[1];
        assert_eq!(e1.from, "Alice <a@x>, b@x");
        assert_eq!(e1.flags, ["\\Seen", "\\Flagged", "work"]);
        assert_eq!(e1.size, 123);
        assert_eq!(e1.folder, "INBOX");
        assert_eq!(e1.date.unwrap().unix_timestamp(), 1_704_164_645);
        let e2 = &page.summaries[0];
        assert_eq!(e2.subject, "");
        assert!(e2.flags.is_empty());
        // sentAt (the Date header) wins over receivedAt.
        assert_eq!(e2.date.unwrap().offset().whole_hours(), 1);
    }

    #[test]
    fn flags_and_keywords() {
        assert_eq!(keyword("\\Seen").unwrap(), "$seen");
        assert_eq!(keyword("\\flagged").unwrap(), "$flagged");
        assert_eq!(keyword("\\Answered").unwrap(), "$answered");
        assert_eq!(keyword("\\Draft").unwrap(), "$draft");
        assert_eq!(keyword("$Forwarded").unwrap(), "$forwarded");
        assert!(keyword("\\Deleted").is_err());
        assert!(keyword("two words").is_err());
        assert!(keyword("").is_err());
        let patch = keywords_patch(&[
            FlagChange {
                add: true,
                flag: "\\Seen".into(),
            },
            FlagChange {
                add: false,
                flag: "a~b".into(),
            },
        ])
        .unwrap();
        assert_eq!(
            patch,
            json!({"keywords/$seen": true, "keywords/a~0b": null})
        );
        assert_eq!(
            keywords_object(&["\\Seen".into(), "work".into()]).unwrap(),
            json!({"$seen": true, "work": true})
        );
        assert_eq!(
            imap_flags(&["$draft", "zz", "$SEEN", "$answered"]),
            ["\\Seen", "\\Answered", "\\Draft", "zz"]
        );
    }

    #[test]
    fn set_errors_are_explained() {
        let r: SetResponse = serde_json::from_value(json!({
            "notCreated": {"s": {"type": "forbiddenFrom", "description": "not yours"}},
            "notUpdated": {"e2": {"type": "notFound"}},
            "notDestroyed": null,
        }))
        .unwrap();
        let e = r.created_id("s").unwrap_err().unwrap();
        assert_eq!(
            e.to_string(),
            "forbiddenFrom: the server does not let this account send as the From address (not yours)"
        );
        let ids = vec!["e1".to_string(), "e2".to_string()];
        let (id, e) = r.first_failure(&ids).unwrap();
        assert_eq!((id, e.kind.as_str()), ("e2", "notFound"));
        let ok: SetResponse =
            serde_json::from_value(json!({"created": {"m": {"id": "E9", "blobId": "B"}}})).unwrap();
        assert_eq!(ok.created_id("m").unwrap(), "E9");
        assert_eq!(ok.created_id("x"), Err(None));
        let rcpts: SetError = serde_json::from_value(
            json!({"type": "invalidRecipients", "invalidRecipients": ["x@y"]}),
        )
        .unwrap();
        assert_eq!(
            rcpts.to_string(),
            "invalidRecipients: recipients refused (x@y)"
        );
    }

    #[test]
    fn identities_match_the_sender() {
        let ids = vec![
            Identity {
                id: "i1".into(),
                email: "a@x.test".into(),
            },
            Identity {
                id: "i2".into(),
                email: "*@y.test".into(),
            },
        ];
        assert_eq!(pick_identity(&ids, "A@X.test").unwrap().id, "i1");
        assert_eq!(pick_identity(&ids, "Ann <a@x.test>").unwrap().id, "i1");
        assert_eq!(pick_identity(&ids, "b@y.test").unwrap().id, "i2");
        assert!(pick_identity(&ids, "b@x.test").is_none());
    }

    #[test]
    fn import_and_submit_in_one_request() {
        let rcpts = vec!["b@x".to_string(), "C <c@y>".to_string()];
        let calls = import_calls(
            "A",
            "B1",
            "M9",
            json!({"$seen": true}),
            Some(("I1", "a@x", &rcpts)),
        );
        assert_eq!(calls[0][0], "Email/import");
        assert_eq!(
            calls[0][1]["emails"]["m"]["mailboxIds"],
            json!({"M9": true})
        );
        assert_eq!(
            calls[0][1]["emails"]["m"]["keywords"],
            json!({"$seen": true})
        );
        assert_eq!(calls[1][0], "EmailSubmission/set");
        let s = &calls[1][1]["create"]["s"];
        assert_eq!(s["emailId"], "#m");
        assert_eq!(s["identityId"], "I1");
        assert_eq!(s["envelope"]["mailFrom"]["email"], "a@x");
        assert_eq!(s["envelope"]["rcptTo"][1]["email"], "c@y");
        assert_eq!(import_calls("A", "B", "M", json!({}), None).len(), 1);
    }

    #[test]
    fn problems_and_uploads() {
        assert_eq!(
            problem(br#"{"type": "urn:ietf:params:jmap:error:limit", "status": 400, "detail": "too big"}"#),
            "limit: too big"
        );
        assert_eq!(problem(b"  plain text\n"), "plain text");
        assert_eq!(
            parse_upload(
                br#"{"accountId": "A", "blobId": "G1", "type": "message/rfc822", "size": 3}"#
            )
            .unwrap(),
            "G1"
        );
        assert!(parse_upload(b"{}").is_err());
        assert!(is_id("Mab-_9"));
        assert!(!is_id("INBOX:42"));
        assert!(!is_id(""));
    }
}
