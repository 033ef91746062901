//! JMAP mail on pochta's store: the methods of RFC 8621 (and RFC 8620's
//! Blob/copy) behind a [`pochta_jmap_proto::MethodHandler`].
//!
//! Everything reads and writes through the [`Store`] trait, the same one IMAP,
//! POP3 and SMTP delivery use, so a change made here is an IMAP change too and
//! the other way round: JMAP states are the store's per-type change-log states,
//! and ids are IMAP's OBJECTIDs ([`ids`]). HTTP (sessions, authentication,
//! upload, download, push) is in the `pochta-http` crate; this one is called
//! with an authenticated account and a parsed request.
//!
//! Module per data type: [`mailbox`], [`thread`], [`email`], [`snippet`],
//! [`identity`], [`submission`], [`vacation`], [`blob`].

#![forbid(unsafe_code)]

pub mod blob;
pub mod email;
pub mod identity;
pub mod ids;
pub mod light;
pub mod mailbox;
pub mod snippet;
pub mod submission;
pub mod thread;
pub mod vacation;

use std::sync::Arc;

use async_trait::async_trait;
use pochta_delivery::LocalDelivery;
use pochta_jmap_proto::{
    Account as SessionAccount, CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_SUBMISSION,
    CAPABILITY_VACATION_RESPONSE, CallContext, CoreCapability, Id, MethodError, MethodErrorKind,
    MethodHandler, Request, RequestError, Response, Session, SessionUrls,
};
use pochta_store::{Account, ObjectKind, Store, StoreError};
use serde_json::{Map, Value, json};

/// Settings of the JMAP service.
#[derive(Debug, Clone)]
pub struct JmapSettings {
    /// Our host name (Message-IDs of created mail, reports).
    pub hostname: String,
    /// The core limits advertised in the session and enforced.
    pub core: CoreCapability,
    /// Largest message accepted (Email/import, Email/set create, submission).
    pub max_message_size: u64,
    /// Most recipients per submission.
    pub max_recipients: usize,
    /// The light-metadata caches, shared with IMAP when the server passes
    /// the same registry to both (a mailbox searched over both is kept once).
    pub light_registry: Arc<pochta_store::LightRegistry>,
}

impl JmapSettings {
    /// Defaults for `hostname`.
    pub fn new(hostname: impl Into<String>) -> JmapSettings {
        JmapSettings {
            hostname: hostname.into(),
            core: CoreCapability::default(),
            max_message_size: 50 << 20,
            max_recipients: 100,
            light_registry: Arc::default(),
        }
    }
}

/// The JMAP service: shared by every request.
pub struct Jmap {
    /// The mail store.
    pub store: Arc<dyn Store>,
    /// Delivery, for EmailSubmission (local recipients at once, remote ones
    /// through the relay queue, exactly like SMTP submission).
    pub delivery: Arc<LocalDelivery>,
    /// Settings.
    pub settings: JmapSettings,
    /// The light metadata Email/query reads, kept between requests.
    pub light: light::LightCaches,
}

/// The capabilities this server supports, for `using`.
pub const SUPPORTED: [&str; 4] = [
    CAPABILITY_CORE,
    CAPABILITY_MAIL,
    CAPABILITY_SUBMISSION,
    CAPABILITY_VACATION_RESPONSE,
];

impl Jmap {
    /// The service.
    pub fn new(
        store: Arc<dyn Store>,
        delivery: Arc<LocalDelivery>,
        settings: JmapSettings,
    ) -> Arc<Jmap> {
        let light = light::LightCaches::new(settings.light_registry.clone());
        Arc::new(Jmap {
            store,
            delivery,
            settings,
            light,
        })
    }

    /// The session resource (RFC 8620 §2) for `account`, with URLs under `base`
    /// (e.g. `https://mail.example.com`).
    pub fn session(&self, account: &Account, base: &str, websocket: Option<&str>) -> Session {
        let mut session = self.build_session(account, base, websocket);
        session.state = self.session_state(account);
        session
    }

    /// The session state: a hash of the session without its URLs, so the state
    /// a response reports (`sessionState`) is the same whatever host name or
    /// transport the client used to fetch the session.
    pub fn session_state(&self, account: &Account) -> String {
        self.build_session(account, "", None).compute_state()
    }

    fn build_session(&self, account: &Account, base: &str, websocket: Option<&str>) -> Session {
        let urls = SessionUrls::under(base);
        let mut session = Session::new(account.address.to_string(), urls, &self.settings.core);
        session.add_capability(CAPABILITY_MAIL, json!({}));
        session.add_capability(CAPABILITY_SUBMISSION, json!({}));
        session.add_capability(CAPABILITY_VACATION_RESPONSE, json!({}));
        if let Some(url) = websocket {
            session.add_capability(
                pochta_jmap_proto::CAPABILITY_WEBSOCKET,
                json!({ "url": url, "supportsPush": true }),
            );
        }
        let mut caps = std::collections::BTreeMap::new();
        caps.insert(
            CAPABILITY_MAIL.into(),
            json!({
                "maxMailboxesPerEmail": 1,
                "maxMailboxDepth": null,
                "maxSizeMailboxName": 255,
                "maxSizeAttachmentsPerEmail": self.settings.max_message_size,
                "emailQuerySortOptions": email::SORT_PROPERTIES,
                "mayCreateTopLevelMailbox": true
            }),
        );
        caps.insert(
            CAPABILITY_SUBMISSION.into(),
            json!({ "maxDelayedSend": 0, "submissionExtensions": {} }),
        );
        caps.insert(CAPABILITY_VACATION_RESPONSE.into(), json!({}));
        session.add_account(
            ids::account(account.id),
            SessionAccount {
                name: account.address.to_string(),
                is_personal: true,
                is_read_only: false,
                account_capabilities: caps,
            },
            &[
                CAPABILITY_MAIL,
                CAPABILITY_SUBMISSION,
                CAPABILITY_VACATION_RESPONSE,
            ],
        );
        session
    }

    /// Runs a request body for `account` (already authenticated).
    pub async fn handle(&self, account: &Account, body: &[u8]) -> Result<Response, RequestError> {
        let request = Request::parse(body, &self.settings.core)?;
        self.run(account, request).await
    }

    /// Runs a parsed request (the WebSocket transport parses its own).
    pub async fn run(&self, account: &Account, request: Request) -> Result<Response, RequestError> {
        let mut handler = Ctx {
            jmap: self,
            account: account.clone(),
        };
        let response =
            pochta_jmap_proto::process(request, &mut handler, &self.settings.core, &SUPPORTED)
                .await?;
        // The session state changes only with the account list and the server's
        // settings, so it is recomputed rather than stored.
        Ok(response.with_session_state(self.session_state(account)))
    }

    /// The JMAP state of one data type, for push (`StateChange`).
    pub async fn type_state(&self, account: &Account, type_name: &str) -> Option<String> {
        let kind = match type_name {
            "Email" | "Thread" | "EmailDelivery" => ObjectKind::Email,
            "Mailbox" => ObjectKind::Mailbox,
            "Identity" => ObjectKind::Identity,
            "EmailSubmission" => ObjectKind::EmailSubmission,
            "VacationResponse" => ObjectKind::VacationResponse,
            _ => return None,
        };
        self.store
            .kind_state(account.id, kind)
            .await
            .ok()
            .map(|s| s.to_string())
    }
}

/// The push data types (RFC 8620 §7.1) this server reports.
pub const PUSH_TYPES: [&str; 7] = [
    "Mailbox",
    "Email",
    "Thread",
    "EmailDelivery",
    "Identity",
    "EmailSubmission",
    "VacationResponse",
];

/// One request's view: the service and the authenticated account.
pub struct Ctx<'a> {
    /// The service.
    pub jmap: &'a Jmap,
    /// Who is asking.
    pub account: Account,
}

impl Ctx<'_> {
    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.jmap.store.as_ref()
    }

    /// Checks that a method's `accountId` is ours (RFC 8620 §3.6.2:
    /// `accountNotFound` otherwise).
    pub fn check_account(&self, id: &Id) -> Result<(), MethodError> {
        match ids::parse_account(id.as_str()) {
            Some(a) if a == self.account.id => Ok(()),
            _ => Err(MethodError::with_description(
                MethodErrorKind::AccountNotFound,
                format!("no account {id} for this user"),
            )),
        }
    }

    /// The account's JMAP id.
    pub fn account_id(&self) -> Id {
        ids::account(self.account.id)
    }
}

/// A store failure as a method error: `serverUnavailable` when it may pass,
/// `serverFail` otherwise. The details go to the log, not to the client.
pub fn store_error(e: StoreError) -> MethodError {
    if let StoreError::Pruned { .. } = e {
        // Not a fault: the client's state is older than the change log.
        return MethodError::with_description(
            MethodErrorKind::CannotCalculateChanges,
            format!("{e}: fetch everything again"),
        );
    }
    tracing::warn!(error = %e, "store error in a JMAP method");
    match e {
        StoreError::Full => MethodError::with_description(
            MethodErrorKind::ServerUnavailable,
            "the server is out of disk space; try again later",
        ),
        StoreError::Unavailable(_) => MethodError::with_description(
            MethodErrorKind::ServerUnavailable,
            "the store is busy; try again",
        ),
        _ => MethodError::server_fail("internal error"),
    }
}

/// Methods and the capability each needs.
const METHODS: [(&str, &str); 27] = [
    ("Blob/copy", CAPABILITY_CORE),
    ("Mailbox/get", CAPABILITY_MAIL),
    ("Mailbox/changes", CAPABILITY_MAIL),
    ("Mailbox/query", CAPABILITY_MAIL),
    ("Mailbox/queryChanges", CAPABILITY_MAIL),
    ("Mailbox/set", CAPABILITY_MAIL),
    ("Thread/get", CAPABILITY_MAIL),
    ("Thread/changes", CAPABILITY_MAIL),
    ("Email/get", CAPABILITY_MAIL),
    ("Email/changes", CAPABILITY_MAIL),
    ("Email/query", CAPABILITY_MAIL),
    ("Email/queryChanges", CAPABILITY_MAIL),
    ("Email/set", CAPABILITY_MAIL),
    ("Email/copy", CAPABILITY_MAIL),
    ("Email/import", CAPABILITY_MAIL),
    ("Email/parse", CAPABILITY_MAIL),
    ("SearchSnippet/get", CAPABILITY_MAIL),
    ("Identity/get", CAPABILITY_SUBMISSION),
    ("Identity/changes", CAPABILITY_SUBMISSION),
    ("Identity/set", CAPABILITY_SUBMISSION),
    ("EmailSubmission/get", CAPABILITY_SUBMISSION),
    ("EmailSubmission/changes", CAPABILITY_SUBMISSION),
    ("EmailSubmission/query", CAPABILITY_SUBMISSION),
    ("EmailSubmission/queryChanges", CAPABILITY_SUBMISSION),
    ("EmailSubmission/set", CAPABILITY_SUBMISSION),
    ("VacationResponse/get", CAPABILITY_VACATION_RESPONSE),
    ("VacationResponse/set", CAPABILITY_VACATION_RESPONSE),
];

#[async_trait]
impl MethodHandler for Ctx<'_> {
    fn capability(&self, method: &str) -> Option<&'static str> {
        METHODS.iter().find(|(m, _)| *m == method).map(|(_, c)| *c)
    }

    async fn call(
        &mut self,
        method: &str,
        args: Map<String, Value>,
        ctx: &mut CallContext,
    ) -> Result<Vec<(String, Value)>, MethodError> {
        let one = |v: Value| vec![(method.to_string(), v)];
        Ok(match method {
            "Blob/copy" => one(blob::copy(self, args, ctx).await?),
            "Mailbox/get" => one(mailbox::get(self, args, ctx).await?),
            "Mailbox/changes" => one(mailbox::changes(self, args, ctx).await?),
            "Mailbox/query" => one(mailbox::query(self, args, ctx).await?),
            "Mailbox/queryChanges" => one(mailbox::query_changes(self, args, ctx).await?),
            "Mailbox/set" => one(mailbox::set(self, args, ctx).await?),
            "Thread/get" => one(thread::get(self, args, ctx).await?),
            "Thread/changes" => one(thread::changes(self, args, ctx).await?),
            "Email/get" => one(email::get(self, args, ctx).await?),
            "Email/changes" => one(email::changes(self, args, ctx).await?),
            "Email/query" => one(email::query(self, args, ctx).await?),
            "Email/queryChanges" => one(email::query_changes(self, args, ctx).await?),
            "Email/set" => one(email::set(self, args, ctx).await?),
            "Email/copy" => one(email::copy(self, args, ctx).await?),
            "Email/import" => one(email::import(self, args, ctx).await?),
            "Email/parse" => one(email::parse(self, args, ctx).await?),
            "SearchSnippet/get" => one(snippet::get(self, args, ctx).await?),
            "Identity/get" => one(identity::get(self, args, ctx).await?),
            "Identity/changes" => one(identity::changes(self, args, ctx).await?),
            "Identity/set" => one(identity::set(self, args, ctx).await?),
            "EmailSubmission/get" => one(submission::get(self, args, ctx).await?),
            "EmailSubmission/changes" => one(submission::changes(self, args, ctx).await?),
            "EmailSubmission/query" => one(submission::query(self, args, ctx).await?),
            "EmailSubmission/queryChanges" => {
                one(submission::query_changes(self, args, ctx).await?)
            }
            // May answer with an implicit Email/set too (RFC 8621 §7.5).
            "EmailSubmission/set" => submission::set(self, args, ctx).await?,
            "VacationResponse/get" => one(vacation::get(self, args, ctx).await?),
            "VacationResponse/set" => one(vacation::set(self, args, ctx).await?),
            other => {
                return Err(MethodError::unknown_method(format!(
                    "{other} is not supported"
                )));
            }
        })
    }
}
