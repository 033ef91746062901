//! Browsing and sending over JMAP (RFC 8620, RFC 8621): the mail stays on the
//! server, like IMAP, but over HTTPS with JSON.
//!
//! [`JmapBackend::connect`] fetches the session resource, then follows its
//! `apiUrl`, `downloadUrl` and `uploadUrl`. Ids are Email ids, which JMAP keeps
//! when a message moves between mailboxes. [`proto`] builds the requests and
//! reads the answers without I/O; [`http`] is the HTTP/1.1 client under it.

pub mod http;
pub mod proto;

use async_trait::async_trait;
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::backend::{FlagChange, Folder, MailBackend, Query, Summary};
use crate::error::{ClientError, Result};
use crate::tls::Login;
use http::{HttpClient, Target};
use proto::{Mailbox, Responses, Session};

/// The largest session resource accepted.
const MAX_SESSION: usize = 1 << 20;
/// The largest API response accepted.
const MAX_API_RESPONSE: usize = 64 << 20;
/// The largest message downloaded.
const MAX_DOWNLOAD: usize = 256 << 20;
/// The largest upload answer accepted.
const MAX_UPLOAD_RESPONSE: usize = 64 << 10;
/// Redirects followed to reach the session resource (RFC 8620 §2.2).
const MAX_REDIRECTS: usize = 5;
/// The most lines one unpaged listing collects.
const MAX_LISTING: usize = 1_000_000;

/// Capabilities for browsing.
const USING_MAIL: [&str; 2] = [proto::CORE, proto::MAIL];
/// Capabilities for sending.
const USING_SUBMISSION: [&str; 3] = [proto::CORE, proto::MAIL, proto::SUBMISSION];

/// A logged-in JMAP session: the user's primary mail account on one server.
pub struct JmapBackend {
    http: HttpClient,
    /// The server's origin, for messages.
    server: String,
    user: String,
    session: Session,
    /// The session URL, against which relative URLs in the session resolve.
    base: Target,
    api: Target,
    /// Mailboxes as last read (names and ids; counts may be stale).
    mailboxes: Option<Vec<Mailbox>>,
}

impl std::fmt::Debug for JmapBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JmapBackend")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("account", &self.session.account_id)
            .finish_non_exhaustive()
    }
}

/// The session URL for what the user configured: a URL with a path is used
/// as it is; a bare origin (`https://host:port`, or just `host[:port]`, then
/// https) gets `/.well-known/jmap` (RFC 8620 §2.2).
pub fn session_url(url: &str) -> Result<Target> {
    let url = url.trim();
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let mut target = Target::parse(&full).map_err(ClientError::Usage)?;
    if target.path == "/" {
        target.path = "/.well-known/jmap".into();
    }
    Ok(target)
}

impl JmapBackend {
    /// Logs in: fetches the session resource at `url` (the session URL or the
    /// server's base URL) with HTTP Basic authentication and picks the primary
    /// mail account. HTTPS only; `http://` only to loopback. Must run inside a
    /// tokio runtime (the connection is driven by a spawned task).
    pub async fn connect(
        url: &str,
        login: &Login,
        accept_invalid_certs: bool,
    ) -> Result<JmapBackend> {
        let mut target = session_url(url)?;
        let mut http = HttpClient::new(login, accept_invalid_certs);
        let mut redirects = 0;
        let response = loop {
            let r = http
                .send(Method::GET, &target, None, Bytes::new(), MAX_SESSION)
                .await?;
            match (r.status, r.location.as_deref()) {
                (301 | 302 | 303 | 307 | 308, Some(location)) if redirects < MAX_REDIRECTS => {
                    redirects += 1;
                    target = Target::parse(&http::resolve(&target, location)).map_err(|e| {
                        ClientError::protocol(target.origin(), format!("bad redirect: {e}"))
                    })?;
                }
                _ => break r,
            }
        };
        let server = target.origin();
        check_status(&server, &login.user, &response, "the JMAP session")?;
        let session =
            proto::parse_session(&response.body).map_err(|e| ClientError::protocol(&server, e))?;
        let api = Target::parse(&http::resolve(&target, &session.api_url))
            .map_err(|e| ClientError::protocol(&server, format!("apiUrl: {e}")))?;
        Ok(JmapBackend {
            http,
            server,
            user: login.user.clone(),
            session,
            base: target,
            api,
            mailboxes: None,
        })
    }

    fn protocol(&self, message: impl Into<String>) -> ClientError {
        ClientError::protocol(&self.server, message)
    }

    /// Posts one API request and returns its method responses.
    async fn call(&mut self, using: &[&str], calls: Vec<Value>) -> Result<Responses> {
        let body = serde_json::to_vec(&proto::request(using, calls))
            .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?;
        let api = self.api.clone();
        let r = self
            .http
            .send(
                Method::POST,
                &api,
                Some("application/json"),
                Bytes::from(body),
                MAX_API_RESPONSE,
            )
            .await?;
        check_status(&self.server, &self.user, &r, "the JMAP request")?;
        Responses::parse(&r.body).map_err(|e| self.protocol(e))
    }

    /// Reads the mailboxes again (names, ids, counts).
    async fn refresh_mailboxes(&mut self) -> Result<&[Mailbox]> {
        let calls = vec![proto::mailbox_get(&self.session.account_id, "m")];
        let r = self.call(&USING_MAIL, calls).await?;
        let args = r.get("m", "Mailbox/get").map_err(|e| self.protocol(e))?;
        let boxes = proto::parse_mailboxes(args).map_err(|e| self.protocol(e))?;
        Ok(self.mailboxes.insert(boxes))
    }

    /// The mailbox the user means by `name` (see [`proto::find_mailbox`]); the
    /// list is read again once when the name is not known.
    async fn mailbox(&mut self, name: &str) -> Result<Mailbox> {
        if let Some(m) = self
            .mailboxes
            .as_deref()
            .and_then(|b| proto::find_mailbox(b, name))
        {
            return Ok(m.clone());
        }
        let boxes = self.refresh_mailboxes().await?;
        proto::find_mailbox(boxes, name)
            .cloned()
            .ok_or_else(|| ClientError::NoSuchFolder(name.to_string()))
    }

    /// Where a copy of sent mail goes: the `sent` mailbox, else `drafts`.
    async fn sent_mailbox(&mut self) -> Result<Mailbox> {
        let boxes = self.refresh_mailboxes().await?;
        ["sent", "drafts"]
            .iter()
            .find_map(|role| {
                boxes
                    .iter()
                    .find(|m| m.folder.role.as_deref() == Some(role))
            })
            .cloned()
            .ok_or_else(|| {
                self.protocol("the account has no mailbox with the role sent to keep a copy in")
            })
    }

    /// Ids the user gave must be JMAP ids: anything else cannot exist here.
    fn check_ids(ids: &[String]) -> Result<()> {
        match ids.iter().find(|id| !proto::is_id(id)) {
            Some(bad) => Err(ClientError::NoSuchMessage(bad.clone())),
            None => Ok(()),
        }
    }

    /// `Email/set` with `update` patches or `destroy`, in batches the server
    /// accepts; the first object refused ends it with its reason.
    async fn email_set(&mut self, ids: &[String], patch: Option<&Value>) -> Result<()> {
        Self::check_ids(ids)?;
        for chunk in ids.chunks(self.session.max_objects_in_set) {
            let mut args = json!({"accountId": self.session.account_id});
            match patch {
                Some(p) => {
                    let update: serde_json::Map<String, Value> =
                        chunk.iter().map(|id| (id.clone(), p.clone())).collect();
                    args["update"] = Value::Object(update);
                }
                None => args["destroy"] = json!(chunk),
            }
            let r = self
                .call(&USING_MAIL, vec![proto::call("Email/set", args, "s")])
                .await?;
            let set: proto::SetResponse =
                r.parse_as("s", "Email/set").map_err(|e| self.protocol(e))?;
            if let Some((id, e)) = set.first_failure(chunk) {
                return Err(if e.kind == "notFound" {
                    ClientError::NoSuchMessage(id.to_string())
                } else {
                    self.protocol(format!("message {id}: {e}"))
                });
            }
        }
        Ok(())
    }

    /// Uploads `raw` as a `message/rfc822` blob (RFC 8620 §6.1).
    async fn upload(&mut self, raw: &[u8]) -> Result<String> {
        if raw.len() as u64 > self.session.max_size_upload {
            return Err(self.protocol(format!(
                "the message ({} octets) is larger than the server accepts ({} octets)",
                raw.len(),
                self.session.max_size_upload
            )));
        }
        let url = http::expand_template(
            &self.session.upload_url,
            &[("accountId", &self.session.account_id)],
        );
        let target = Target::parse(&http::resolve(&self.base, &url))
            .map_err(|e| self.protocol(format!("uploadUrl: {e}")))?;
        let r = self
            .http
            .send(
                Method::POST,
                &target,
                Some("message/rfc822"),
                Bytes::copy_from_slice(raw),
                MAX_UPLOAD_RESPONSE,
            )
            .await?;
        check_status(&self.server, &self.user, &r, "the upload")?;
        proto::parse_upload(&r.body).map_err(|e| self.protocol(e))
    }

    /// Imports the uploaded `blob_id` into `mailbox` with `keywords`, and
    /// when `submission` is given sends it in the same request; returns the
    /// responses and the new email's id.
    async fn import(
        &mut self,
        using: &[&str],
        blob_id: &str,
        mailbox: &Mailbox,
        keywords: Value,
        submission: Option<(&str, &str, &[String])>,
    ) -> Result<(Responses, String)> {
        let calls = proto::import_calls(
            &self.session.account_id,
            blob_id,
            &mailbox.id,
            keywords,
            submission,
        );
        let r = self.call(using, calls).await?;
        let set: proto::SetResponse = r
            .parse_as("i", "Email/import")
            .map_err(|e| self.protocol(e))?;
        let id = set.created_id("m").map_err(|e| match e {
            Some(e) => self.protocol(format!(
                "the message could not be stored in {}: {e}",
                mailbox.folder.name
            )),
            None => self.protocol("Email/import created nothing"),
        })?;
        Ok((r, id))
    }

    /// Sends `raw` with JMAP EmailSubmission (RFC 8621 §7) from `from` to
    /// `rcpts` (the envelope, so Bcc recipients are included), after storing
    /// it in the Sent mailbox with `$seen` — which is the sent copy. The
    /// identity is the account's one for `from`; none is created. When the
    /// server refuses to send, the stored copy is removed again and the reason
    /// (e.g. `forbiddenFrom`) is the error.
    pub async fn submit(&mut self, from: &str, rcpts: &[String], raw: &[u8]) -> Result<()> {
        if !self.session.submission {
            return Err(self.protocol(
                "the server does not offer JMAP submission (urn:ietf:params:jmap:submission); send over SMTP",
            ));
        }
        if rcpts.is_empty() {
            return Err(ClientError::Usage("no recipients".into()));
        }
        let account = self.session.account_id.clone();
        let r = self
            .call(
                &USING_SUBMISSION,
                vec![proto::call(
                    "Identity/get",
                    json!({"accountId": account, "ids": null, "properties": ["id", "email"]}),
                    "id",
                )],
            )
            .await?;
        let identities = proto::parse_identities(&r, "id").map_err(|e| self.protocol(e))?;
        let identity = proto::pick_identity(&identities, from)
            .ok_or_else(|| {
                let known: Vec<&str> = identities.iter().map(|i| i.email.as_str()).collect();
                ClientError::Usage(format!(
                    "the JMAP account has no identity for {}; it can send as: {}",
                    proto::bare_address(from),
                    if known.is_empty() {
                        "nothing".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })?
            .id
            .clone();
        let sent = self.sent_mailbox().await?;
        let blob = self.upload(raw).await?;
        let (r, email_id) = self
            .import(
                &USING_SUBMISSION,
                &blob,
                &sent,
                json!({"$seen": true}),
                Some((&identity, from, rcpts)),
            )
            .await?;
        let outcome = r
            .parse_as::<proto::SetResponse>("s", "EmailSubmission/set")
            .map_err(|e| format!("the server refused to send the message: {e}"))
            .and_then(|set| {
                set.created_id("s").map(|_| ()).map_err(|e| match e {
                    Some(e) => format!("the server refused to send the message: {e}"),
                    None => "EmailSubmission/set created nothing".to_string(),
                })
            });
        if let Err(message) = outcome {
            // Not sent: do not leave it in Sent as if it were.
            let _ = self.email_set(std::slice::from_ref(&email_id), None).await;
            return Err(self.protocol(message));
        }
        Ok(())
    }
}

/// Turns an unsuccessful status into the error a person understands: 401 is
/// a refused login, others quote the server's problem details (RFC 8620
/// §3.6.1).
fn check_status(server: &str, user: &str, r: &http::Response, what: &str) -> Result<()> {
    match r.status {
        200..=299 => Ok(()),
        401 => Err(ClientError::Auth {
            server: server.to_string(),
            user: user.to_string(),
            reply: match proto::problem(&r.body) {
                p if p.is_empty() => "401 Unauthorized".into(),
                p => format!("401 {p}"),
            },
        }),
        status => {
            let problem = proto::problem(&r.body);
            let hint = match status {
                404 if what == "the JMAP session" => " (is this the JMAP URL?)",
                429 | 503 => " (try again later)",
                _ => "",
            };
            Err(ClientError::protocol(
                server,
                format!("{what} failed with HTTP {status}{hint}: {problem}")
                    .trim_end_matches([' ', ':'])
                    .to_string(),
            ))
        }
    }
}

#[async_trait]
impl MailBackend for JmapBackend {
    async fn folders(&mut self) -> Result<Vec<Folder>> {
        let boxes = self.refresh_mailboxes().await?;
        Ok(boxes.iter().map(|m| m.folder.clone()).collect())
    }

    async fn list(&mut self, query: &Query) -> Result<Vec<Summary>> {
        let mailbox = self
            .mailbox(query.folder.as_deref().unwrap_or("INBOX"))
            .await?;
        let filter = proto::email_filter(query, &mailbox.id);
        let (mut position, wanted) = match query.limit {
            Some(limit) => (limit.saturating_mul(query.page.max(1) - 1), limit),
            None => (0, MAX_LISTING),
        };
        let mut out: Vec<Summary> = Vec::new();
        while out.len() < wanted {
            let ask = (wanted - out.len()).min(self.session.max_objects_in_get);
            let calls = proto::list_calls(&self.session.account_id, filter.clone(), position, ask);
            let r = self.call(&USING_MAIL, calls).await?;
            let page = proto::parse_page(&r, &mailbox.folder.name).map_err(|e| self.protocol(e))?;
            out.extend(page.summaries);
            position = position.saturating_add(page.ids);
            let at_end = page.total.is_some_and(|t| position as u64 >= t);
            if page.ids == 0 || page.ids < ask || at_end {
                break;
            }
        }
        out.truncate(wanted);
        Ok(out)
    }

    async fn fetch_raw(&mut self, id: &str) -> Result<Vec<u8>> {
        Self::check_ids(&[id.to_string()])?;
        let r = self
            .call(
                &USING_MAIL,
                vec![proto::blob_id_call(&self.session.account_id, id)],
            )
            .await?;
        let blob = proto::parse_blob_id(&r)
            .map_err(|e| self.protocol(e))?
            .ok_or_else(|| ClientError::NoSuchMessage(id.to_string()))?;
        let url = http::expand_template(
            &self.session.download_url,
            &[
                ("accountId", &self.session.account_id),
                ("blobId", &blob),
                ("type", "message/rfc822"),
                ("name", "message.eml"),
            ],
        );
        let target = Target::parse(&http::resolve(&self.base, &url))
            .map_err(|e| self.protocol(format!("downloadUrl: {e}")))?;
        let r = self
            .http
            .send(Method::GET, &target, None, Bytes::new(), MAX_DOWNLOAD)
            .await?;
        if r.status == 404 {
            return Err(ClientError::NoSuchMessage(id.to_string()));
        }
        check_status(&self.server, &self.user, &r, "the download")?;
        Ok(r.body.to_vec())
    }

    async fn flag(&mut self, ids: &[String], changes: &[FlagChange]) -> Result<()> {
        if ids.is_empty() || changes.is_empty() {
            return Ok(());
        }
        let patch = proto::keywords_patch(changes).map_err(ClientError::Usage)?;
        self.email_set(ids, Some(&patch)).await
    }

    async fn move_to(&mut self, ids: &[String], folder: &str) -> Result<Vec<String>> {
        let target = self.mailbox(folder).await?;
        if !ids.is_empty() {
            // The whole mailboxIds is replaced: out of every other mailbox.
            let patch = json!({"mailboxIds": {target.id: true}});
            self.email_set(ids, Some(&patch)).await?;
        }
        // JMAP ids do not change when an email moves.
        Ok(ids.to_vec())
    }

    async fn expunge(&mut self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.email_set(ids, None).await
    }

    async fn append(&mut self, folder: &str, raw: &[u8], flags: &[String]) -> Result<()> {
        let mailbox = self.mailbox(folder).await?;
        let keywords = proto::keywords_object(flags).map_err(ClientError::Usage)?;
        let blob = self.upload(raw).await?;
        self.import(&USING_MAIL, &blob, &mailbox, keywords, None)
            .await
            .map(|_| ())
    }

    async fn folder_with_role(&mut self, role: &str) -> Result<Option<String>> {
        let boxes = self.refresh_mailboxes().await?;
        Ok(boxes
            .iter()
            .find(|m| {
                m.folder
                    .role
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(role))
            })
            .map(|m| m.folder.name.clone()))
    }

    async fn close(&mut self) -> Result<()> {
        // Dropping the connection closes it; JMAP has no logout.
        self.mailboxes = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
