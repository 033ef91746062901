//! Local delivery: putting a received message into the recipients' mailboxes.
//!
//! This is the transfer agent's third job from the mission. Protocol front-ends
//! (SMTP today; JMAP EmailSubmission and the relay queue later) ask it two
//! questions while a transaction is open — is this recipient ours, may this user
//! send as this address — and hand it the finished message. It adds the trace
//! headers (RFC 5321 §4.4), completes submitted messages (RFC 6409 §8), resolves
//! aliases and files one copy for every account in one durable store transaction.
//! After the commit, [`DeliveryHook`]s hear of each account that got a copy (JMAP's
//! VacationResponse answers from there).

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pochta_addr::{Address, Domain};
use pochta_store::{
    AccountId, Delivery, DeliveryTarget, Outbound, OutboundRecipient, Resolution, Store, StoreError,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Messages larger than this are parsed on a blocking thread, so that a big
/// attachment does not stall the async workers.
const PARSE_INLINE_MAX: usize = 256 * 1024;

/// A message with this many `Received:` fields is in a loop (Postfix's
/// `hopcount_limit` is 50 too).
pub const MAX_HOPS: usize = 50;

/// Whether a recipient can be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientCheck {
    /// A local account or alias.
    Local,
    /// A local domain, but nobody by that name.
    UnknownUser,
    /// Not one of our domains.
    NotLocal,
    /// A local account that is at or over its quota.
    OverQuota,
    /// The directory could not be asked; try again later.
    TempFail,
}

/// Who handed us the message and how, for the Received header.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The EHLO/HELO name.
    pub helo: Option<String>,
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// `ESMTP`, `SMTP`, `UTF8SMTP` …; `S`/`A` suffixes are added here (RFC 3848).
    pub protocol: &'static str,
    /// TLS version and cipher, if encrypted.
    pub tls: Option<(String, String)>,
    /// The authenticated user, if any.
    pub user: Option<String>,
}

/// A message ready for local delivery.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The envelope sender (`None` for `<>`).
    pub mail_from: Option<Address>,
    /// Accepted recipients.
    pub recipients: Vec<Address>,
    /// The message as received.
    pub body: Vec<u8>,
    /// How it arrived.
    pub trace: Trace,
    /// True for submission: add Message-ID and Date when missing (RFC 6409 §8).
    pub submission: bool,
    /// Recipients outside our domains may be queued for relay (an authenticated
    /// submission). Without it they are dropped (the session refused them anyway).
    pub relay: bool,
    /// DSN parameters of each recipient, in the order of `recipients` (missing
    /// entries mean none given).
    pub recipient_dsn: Vec<RecipientDsn>,
    /// RFC 3461 `ENVID`.
    pub envid: Option<String>,
    /// Return the whole message in a failure report (`RET=FULL`, or not given);
    /// false for `RET=HDRS`.
    pub ret_full: bool,
    /// The message needs SMTPUTF8 from the next hop.
    pub smtputf8: bool,
    /// Header fields to put on top, CRLF-terminated (`Authentication-Results:`).
    pub extra_headers: String,
}

/// A recipient's DSN parameters, for the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientDsn {
    /// The original recipient (`ORCPT`), a plain address.
    pub orcpt: Option<String>,
    /// `NOTIFY` as [`pochta_store::dsn_notify`] bits; 0 when not given.
    pub notify: u8,
}

impl Incoming {
    /// A message with only the essentials; the relay and DSN fields empty.
    pub fn new(
        mail_from: Option<Address>,
        recipients: Vec<Address>,
        body: Vec<u8>,
        trace: Trace,
    ) -> Incoming {
        Incoming {
            mail_from,
            recipients,
            body,
            trace,
            submission: false,
            relay: false,
            recipient_dsn: Vec::new(),
            envid: None,
            ret_full: true,
            smtputf8: false,
            extra_headers: String::new(),
        }
    }
}

/// The outcome of a delivery.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Our id for this message, also in its Received header and the logs.
    pub id: String,
    /// Size as stored, with our headers.
    pub size: usize,
    /// Accounts that got a copy.
    pub accounts: usize,
    /// The Message-ID header, if the message has one.
    pub message_id: Option<String>,
    /// Recipients queued for relay.
    pub queued: usize,
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// None of the recipients exists any more.
    #[error("no recipient could be resolved")]
    NoRecipients,
    /// The message has passed through too many servers: a mail loop (RFC 5321 §6.3).
    #[error("too many hops ({0} Received header fields)")]
    TooManyHops(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a [`DeliveryHook`] learns of a message just filed into a local account.
#[derive(Debug, Clone, Copy)]
pub struct DeliveredMessage<'a> {
    /// The account that got a copy.
    pub account: AccountId,
    /// The envelope recipients that reached this account: its own address, an
    /// alias, a `+detail` form.
    pub recipients: &'a [Address],
    /// The envelope sender (`None` for `<>`).
    pub mail_from: Option<&'a Address>,
    /// The message's top-level header section as stored (our trace headers
    /// included), up to and including the blank line that ends it.
    pub header: &'a [u8],
}

/// Code that wants to hear of every message delivered to a local account
/// (e.g. automatic vacation replies). Hooks run after the message is
/// committed, once per receiving account, before [`LocalDelivery::deliver`]
/// returns; they cannot fail the delivery, so they log their own errors. A
/// hook may deliver mail itself through the `delivery` it is given (which runs
/// the hooks again for that message: replies must not answer replies).
#[async_trait]
pub trait DeliveryHook: Send + Sync {
    /// `message` was just committed to `message.account`.
    async fn delivered(&self, delivery: &LocalDelivery, message: DeliveredMessage<'_>);
}

/// Delivers into the local store, and queues what is for other domains.
pub struct LocalDelivery {
    store: Arc<dyn Store>,
    hostname: String,
    domains: Vec<Domain>,
    /// How long queued mail is retried before it bounces.
    queue_expire: std::time::Duration,
    /// Told of each account that got a copy, after the commit.
    hooks: Vec<Arc<dyn DeliveryHook>>,
}

impl LocalDelivery {
    /// Delivery into `store` for `domains`, naming us `hostname` in trace headers.
    pub fn new(store: Arc<dyn Store>, hostname: String, domains: Vec<Domain>) -> LocalDelivery {
        LocalDelivery {
            store,
            hostname,
            domains,
            queue_expire: std::time::Duration::from_secs(5 * 86400),
            hooks: Vec::new(),
        }
    }

    /// Adds a hook told of every message filed into a local account (see
    /// [`DeliveryHook`]); hooks run in the order added.
    pub fn with_hook(mut self, hook: Arc<dyn DeliveryHook>) -> LocalDelivery {
        self.hooks.push(hook);
        self
    }

    /// Our host name, as in trace headers.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Sets how long relayed mail stays in the queue before it bounces.
    pub fn with_queue_expiry(mut self, expire: std::time::Duration) -> LocalDelivery {
        self.queue_expire = expire;
        self
    }

    /// True for one of our domains. Address literals never are.
    pub fn is_local_domain(&self, domain: &Domain) -> bool {
        !domain.is_literal() && self.domains.contains(domain)
    }

    /// Can mail for `address` be accepted here?
    pub async fn check_recipient(&self, address: &Address) -> RecipientCheck {
        if !self.is_local_domain(address.domain()) {
            return RecipientCheck::NotLocal;
        }
        match self.store.resolve(address).await {
            Ok(Resolution::Accounts(ids)) => {
                // One full mailbox among an alias's targets refuses the alias:
                // accepting would fail the whole delivery later.
                for id in ids {
                    if let Ok(q) = self.store.quota(id).await
                        && q.limit.is_some_and(|l| q.used >= l)
                    {
                        return RecipientCheck::OverQuota;
                    }
                }
                RecipientCheck::Local
            }
            Ok(Resolution::Unknown) => RecipientCheck::UnknownUser,
            Err(e) => {
                tracing::warn!(error = %e, "recipient lookup failed");
                RecipientCheck::TempFail
            }
        }
    }

    /// May the account `user` (its address) send with `sender` as envelope sender?
    /// Yes for its own address and any alias (or `+detail` form) that reaches it.
    pub async fn may_send_as(
        &self,
        user: &str,
        sender: Option<&Address>,
    ) -> Result<bool, StoreError> {
        let Some(sender) = sender else {
            return Ok(false);
        };
        let Ok(user) = Address::parse(user) else {
            return Ok(false);
        };
        if !self.is_local_domain(sender.domain()) {
            return Ok(false);
        }
        let Some(account) = self.store.account(&user).await? else {
            return Ok(false);
        };
        Ok(match self.store.resolve(sender).await? {
            Resolution::Accounts(ids) => ids.contains(&account.id),
            Resolution::Unknown => false,
        })
    }

    /// Adds the trace headers and files the message for every recipient's account,
    /// in one durable transaction. Returns once it is committed.
    pub async fn deliver(&self, msg: Incoming) -> Result<Delivered, DeliveryError> {
        let hops = pochta_message::count_headers(&msg.body, "Received");
        if hops >= MAX_HOPS {
            return Err(DeliveryError::TooManyHops(hops));
        }
        let id = new_id();
        let now = OffsetDateTime::now_utc();
        let mut targets: Vec<DeliveryTarget> = Vec::new();
        let mut remote: Vec<OutboundRecipient> = Vec::new();
        // Local recipients whose sender asked to hear of the delivery (NOTIFY=SUCCESS).
        let mut confirm: Vec<(Address, Option<String>)> = Vec::new();
        // Each receiving account with the envelope recipients that reached it,
        // for the hooks.
        let mut reached: Vec<(AccountId, Vec<Address>)> = Vec::new();
        for (i, rcpt) in msg.recipients.iter().enumerate() {
            if !self.is_local_domain(rcpt.domain()) {
                if msg.relay {
                    let dsn = msg.recipient_dsn.get(i).cloned().unwrap_or_default();
                    if !remote.iter().any(|r| r.address == *rcpt) {
                        remote.push(OutboundRecipient {
                            address: rcpt.clone(),
                            orcpt: dsn.orcpt,
                            notify: dsn.notify,
                        });
                    }
                } else {
                    tracing::warn!(recipient = %rcpt, "non-local recipient without relay permission dropped");
                }
                continue;
            }
            match self.store.resolve(rcpt).await? {
                Resolution::Accounts(ids) => {
                    let dsn = msg.recipient_dsn.get(i).cloned().unwrap_or_default();
                    if dsn.notify & pochta_store::dsn_notify::SUCCESS != 0
                        && dsn.notify & pochta_store::dsn_notify::NEVER == 0
                    {
                        confirm.push((rcpt.clone(), dsn.orcpt));
                    }
                    for account in ids {
                        if !targets.iter().any(|t| t.account == account) {
                            targets.push(DeliveryTarget::inbox(account));
                        }
                        match reached.iter_mut().find(|(a, _)| *a == account) {
                            Some((_, rcpts)) => rcpts.push(rcpt.clone()),
                            None => reached.push((account, vec![rcpt.clone()])),
                        }
                    }
                }
                Resolution::Unknown => {
                    // Deleted between RCPT and the end of DATA.
                    tracing::warn!(recipient = %rcpt, "recipient vanished before delivery");
                }
            }
        }
        if targets.is_empty() && remote.is_empty() {
            return Err(DeliveryError::NoRecipients);
        }
        let outbound = if remote.is_empty() {
            None
        } else {
            // The submitting account, for `pochta queue list` and future quotas.
            let account = match msg.trace.user.as_deref().map(Address::parse) {
                Some(Ok(user)) => self.store.account(&user).await?.map(|a| a.id),
                _ => None,
            };
            Some(Outbound {
                mail_from: msg.mail_from.clone(),
                smtputf8: msg.smtputf8
                    || !remote.iter().all(|r| r.address.is_ascii())
                    || msg.mail_from.as_ref().is_some_and(|a| !a.is_ascii()),
                recipients: remote,
                envid: msg.envid.clone(),
                ret_full: msg.ret_full,
                account,
                expires_at: now.unix_timestamp()
                    + i64::try_from(self.queue_expire.as_secs()).unwrap_or(i64::MAX / 2),
                eightbit: msg.body.iter().any(|b| *b >= 0x80),
            })
        };
        let raw = self.with_headers(&msg, &id, now);
        let meta = if targets.is_empty() {
            // Only queued for relay: no mailbox row needs the parsed metadata,
            // so skip the parse (6 % of the relay's CPU).
            pochta_message::parse(b"")
        } else if raw.len() > PARSE_INLINE_MAX {
            let copy = raw.clone();
            tokio::task::spawn_blocking(move || pochta_message::parse(&copy))
                .await
                .map_err(|e| StoreError::Unavailable(format!("parser task failed: {e}")))?
        } else {
            pochta_message::parse(&raw)
        };
        let message_id = if targets.is_empty() {
            pochta_message::find_header(&raw, "Message-ID").map(|v| {
                String::from_utf8_lossy(v)
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        } else {
            meta.message_id.clone()
        };
        let size = raw.len();
        let accounts = targets.len();
        let queued = outbound.as_ref().map_or(0, |o| o.recipients.len());
        let header = if confirm.is_empty() && (self.hooks.is_empty() || reached.is_empty()) {
            Vec::new()
        } else {
            raw[..pochta_message::header_end(&raw)].to_vec()
        };
        self.store
            .deliver(Delivery {
                raw,
                meta,
                internal_date: now.unix_timestamp(),
                targets,
                outbound,
            })
            .await?;
        if let Some(sender) = &msg.mail_from
            && !confirm.is_empty()
        {
            self.confirm_delivery(sender, &msg, &confirm, &header, now)
                .await;
        }
        for hook in &self.hooks {
            for (account, recipients) in &reached {
                hook.delivered(
                    self,
                    DeliveredMessage {
                        account: *account,
                        recipients,
                        mail_from: msg.mail_from.as_ref(),
                        header: &header,
                    },
                )
                .await;
            }
        }
        Ok(Delivered {
            id,
            size,
            accounts,
            message_id,
            queued,
        })
    }

    /// Sends the sender a "delivered" report (RFC 3464) for recipients that asked
    /// for one. Best effort, after the message itself is committed: a crash in
    /// between loses the report, never the message.
    async fn confirm_delivery(
        &self,
        sender: &Address,
        msg: &Incoming,
        confirm: &[(Address, Option<String>)],
        header: &[u8],
        now: OffsetDateTime,
    ) {
        use pochta_queue::dsn::{DsnAction, DsnInput, DsnRecipient, build};
        let recipients: Vec<DsnRecipient> = confirm
            .iter()
            .map(|(address, orcpt)| DsnRecipient {
                address: address.clone(),
                orcpt: orcpt.clone(),
                action: DsnAction::Delivered,
                status: "2.0.0".into(),
                diagnostic: None,
                remote: None,
                explanation: "delivered to the mailbox".into(),
            })
            .collect();
        let raw = build(&DsnInput {
            hostname: &self.hostname,
            to: sender,
            envid: msg.envid.as_deref(),
            arrival: now.unix_timestamp(),
            retry_until: None,
            now: now.unix_timestamp(),
            recipients: &recipients,
            original: header,
            ret_full: false,
        });
        let meta = pochta_message::parse(&raw);
        let mut report = Delivery {
            raw,
            meta,
            internal_date: now.unix_timestamp(),
            targets: Vec::new(),
            outbound: None,
        };
        if self.is_local_domain(sender.domain()) {
            match self.store.resolve(sender).await {
                Ok(Resolution::Accounts(ids)) => {
                    report.targets = ids.into_iter().map(DeliveryTarget::inbox).collect();
                }
                _ => return,
            }
        } else {
            report.outbound = Some(Outbound {
                mail_from: None,
                recipients: vec![OutboundRecipient {
                    address: sender.clone(),
                    orcpt: None,
                    notify: 0,
                }],
                envid: None,
                ret_full: false,
                account: None,
                expires_at: now.unix_timestamp()
                    + i64::try_from(self.queue_expire.as_secs()).unwrap_or(i64::MAX / 2),
                smtputf8: !sender.is_ascii(),
                eightbit: false,
            });
        }
        if let Err(e) = self.store.deliver(report).await {
            tracing::warn!(error = %e, sender = %sender, "cannot send the delivery report");
        }
    }

    /// The message with Return-Path and Received prepended (and, for submission,
    /// Message-ID and Date when missing).
    fn with_headers(&self, msg: &Incoming, id: &str, now: OffsetDateTime) -> Vec<u8> {
        let date = now.format(&Rfc2822).unwrap_or_default();
        let mut h = String::with_capacity(512);
        let from = msg
            .mail_from
            .as_ref()
            .map(Address::to_smtp)
            .unwrap_or_default();
        h.push_str(&format!("Return-Path: <{from}>\r\n"));
        h.push_str(&msg.extra_headers);
        h.push_str(&self.received(msg, id, &date));
        if msg.submission {
            if pochta_message::find_header(&msg.body, "Message-ID").is_none() {
                h.push_str(&format!(
                    "Message-ID: <{id}.{}@{}>\r\n",
                    now.unix_timestamp(),
                    self.hostname
                ));
            }
            if pochta_message::find_header(&msg.body, "Date").is_none() {
                h.push_str(&format!("Date: {date}\r\n"));
            }
        }
        let mut raw = Vec::with_capacity(h.len() + msg.body.len());
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&msg.body);
        raw
    }

    /// RFC 5321 §4.4 time stamp line, with RFC 3848 protocol names.
    fn received(&self, msg: &Incoming, id: &str, date: &str) -> String {
        let t = &msg.trace;
        let helo = clean(t.helo.as_deref().unwrap_or("unknown"));
        let peer = match t.peer {
            Some(IpAddr::V4(ip)) => format!("[{ip}]"),
            Some(IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
            None => "[unknown]".into(),
        };
        let mut with = t.protocol.to_string();
        // RFC 3848's S and A suffixes exist for the SMTP family only
        // (ESMTPSA, UTF8SMTPS...); other protocols (HTTP for JMAP) go bare.
        if t.protocol.ends_with("SMTP") {
            if t.tls.is_some() {
                with.push('S');
            }
            if t.user.is_some() {
                with.push('A');
            }
        }
        let mut s = format!(
            "Received: from {helo} ({peer})\r\n\tby {} (pochta) with {with} id {id}",
            self.hostname
        );
        if let Some((version, cipher)) = &t.tls {
            s.push_str(&format!(
                "\r\n\t(version={} cipher={})",
                clean(version),
                clean(cipher)
            ));
        }
        if let Some(user) = &t.user {
            s.push_str(&format!("\r\n\t(authenticated as {})", clean(user)));
        }
        // Name the recipient only when there is one: listing several would
        // disclose Bcc recipients to each other.
        if let [only] = msg.recipients.as_slice() {
            s.push_str(&format!("\r\n\tfor <{}>", only.to_smtp()));
        }
        s.push_str(&format!(";\r\n\t{date}\r\n"));
        s
    }
}

/// Keeps client-supplied text from breaking the header: printable ASCII and
/// UTF-8 only, no parentheses that would unbalance the comment, bounded length.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '(' && *c != ')')
        .take(255)
        .collect()
}

/// A short random id for a delivered message (hex, 16 digits).
pub fn new_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pochta_store::{Alias, NewAccount, SqliteStore};

    async fn setup() -> (tempfile::TempDir, Arc<dyn Store>, LocalDelivery) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        for a in ["alice@example.com", "bob@example.com"] {
            store
                .create_account(NewAccount {
                    address: Address::parse(a).unwrap(),
                    password_hash: "x".into(),
                    quota: None,
                })
                .await
                .unwrap();
        }
        store
            .add_alias(Alias {
                address: Address::parse("team@example.com").unwrap(),
                targets: vec![
                    Address::parse("alice@example.com").unwrap(),
                    Address::parse("bob@example.com").unwrap(),
                ],
            })
            .await
            .unwrap();
        let d = LocalDelivery::new(
            store.clone(),
            "mx.example.com".into(),
            vec![Domain::parse("example.com").unwrap()],
        );
        (dir, store, d)
    }

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[tokio::test]
    async fn recipient_checks() {
        let (_d, _s, d) = setup().await;
        assert_eq!(
            d.check_recipient(&a("ALICE@example.com")).await,
            RecipientCheck::Local
        );
        assert_eq!(
            d.check_recipient(&a("team@example.com")).await,
            RecipientCheck::Local
        );
        assert_eq!(
            d.check_recipient(&a("bob+x@example.com")).await,
            RecipientCheck::Local
        );
        assert_eq!(
            d.check_recipient(&a("carol@example.com")).await,
            RecipientCheck::UnknownUser
        );
        assert_eq!(
            d.check_recipient(&a("alice@example.net")).await,
            RecipientCheck::NotLocal
        );
        assert_eq!(
            d.check_recipient(&a("alice@[127.0.0.1]")).await,
            RecipientCheck::NotLocal
        );
    }

    #[tokio::test]
    async fn senders_own_their_addresses_and_aliases() {
        let (_d, _s, d) = setup().await;
        let user = "alice@example.com";
        assert!(
            d.may_send_as(user, Some(&a("alice@example.com")))
                .await
                .unwrap()
        );
        assert!(
            d.may_send_as(user, Some(&a("Alice+news@Example.com")))
                .await
                .unwrap()
        );
        assert!(
            d.may_send_as(user, Some(&a("team@example.com")))
                .await
                .unwrap()
        );
        assert!(
            !d.may_send_as(user, Some(&a("bob@example.com")))
                .await
                .unwrap()
        );
        assert!(
            !d.may_send_as(user, Some(&a("alice@example.net")))
                .await
                .unwrap()
        );
        assert!(!d.may_send_as(user, None).await.unwrap());
    }

    #[tokio::test]
    async fn delivery_adds_trace_headers_and_dedupes_accounts() {
        let (_d, store, d) = setup().await;
        let body = b"Subject: hi\r\n\r\nhello\r\n".to_vec();
        let out = d
            .deliver(Incoming {
                mail_from: Some(a("x@remote.example")),
                recipients: vec![a("team@example.com"), a("alice@example.com")],
                body: body.clone(),
                trace: Trace {
                    helo: Some("client.remote.example".into()),
                    peer: Some("192.0.2.7".parse().unwrap()),
                    protocol: "ESMTP",
                    tls: Some(("TLSv1.3".into(), "TLS13_AES_128_GCM_SHA256".into())),
                    user: None,
                },
                submission: false,
                ..Incoming::new(None, vec![], vec![], Trace::default())
            })
            .await
            .unwrap();
        assert_eq!(out.accounts, 2, "alice once, bob once");
        let alice = store
            .account(&a("alice@example.com"))
            .await
            .unwrap()
            .unwrap();
        let inbox = store.mailboxes(alice.id).await.unwrap()[0].clone();
        let msgs = store.messages(alice.id, inbox.id).await.unwrap();
        assert_eq!(msgs.len(), 1);
        let raw = store.read_blob(alice.id, msgs[0].blob_id).await.unwrap();
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(text.starts_with("Return-Path: <x@remote.example>\r\nReceived: from client.remote.example ([192.0.2.7])\r\n\tby mx.example.com (pochta) with ESMTPS id "), "{text}");
        assert!(text.contains("(version=TLSv1.3 cipher=TLS13_AES_128_GCM_SHA256)"));
        assert!(!text.contains("for <"), "two recipients: none named");
        assert!(raw.ends_with(&body), "the message itself is untouched");
        assert!(!text.contains("Message-ID:"), "MX does not add Message-ID");
    }

    #[tokio::test]
    async fn remote_recipients_are_queued_only_when_relaying() {
        let (_d, store, d) = setup().await;
        let trace = Trace {
            helo: Some("laptop".into()),
            peer: Some("192.0.2.9".parse().unwrap()),
            protocol: "ESMTP",
            tls: Some(("TLSv1.3".into(), "X".into())),
            user: Some("alice@example.com".into()),
        };
        let mut msg = Incoming::new(
            Some(a("alice@example.com")),
            vec![
                a("bob@example.com"),
                a("x@remote.example"),
                a("y@remote.example"),
            ],
            b"Subject: out\r\n\r\nhello \xc3\xa9\r\n".to_vec(),
            trace.clone(),
        );
        msg.submission = true;
        msg.relay = true;
        msg.envid = Some("E1".into());
        msg.ret_full = false;
        msg.recipient_dsn = vec![
            RecipientDsn::default(),
            RecipientDsn {
                orcpt: Some("X@Remote.Example".into()),
                notify: pochta_store::dsn_notify::SUCCESS,
            },
        ];
        let out = d.deliver(msg.clone()).await.unwrap();
        assert_eq!((out.accounts, out.queued), (1, 2));
        let q = store.queue_list().await.unwrap();
        assert_eq!(q.len(), 1);
        let m = &q[0];
        assert_eq!(m.envid.as_deref(), Some("E1"));
        assert!(!m.ret_full);
        assert!(m.eightbit, "the body has 8-bit text");
        assert!(m.account.is_some(), "the submitting account is recorded");
        let rcpts: Vec<(String, Option<String>, u8)> = m
            .recipients
            .iter()
            .map(|r| (r.address.key(), r.orcpt.clone(), r.notify))
            .collect();
        assert_eq!(
            rcpts,
            [
                (
                    "x@remote.example".into(),
                    Some("X@Remote.Example".into()),
                    1
                ),
                ("y@remote.example".into(), None, 0),
            ]
        );
        let queued = String::from_utf8(store.queue_blob(m.id).await.unwrap()).unwrap();
        assert!(
            queued.starts_with("Return-Path: <alice@example.com>\r\n"),
            "{queued}"
        );
        assert!(
            queued.contains("Message-ID: <"),
            "completed before queueing: {queued}"
        );

        // Without relay permission the remote ones are dropped...
        msg.relay = false;
        let out = d.deliver(msg.clone()).await.unwrap();
        assert_eq!((out.accounts, out.queued), (1, 0));
        // ... and with only remote ones nothing is delivered at all.
        msg.recipients = vec![a("x@remote.example")];
        assert!(matches!(
            d.deliver(msg).await,
            Err(DeliveryError::NoRecipients)
        ));
    }

    #[tokio::test]
    async fn notify_success_gets_a_delivered_report() {
        let (_d, store, d) = setup().await;
        let mut msg = Incoming::new(
            Some(a("bob@example.com")),
            vec![a("alice@example.com")],
            b"Subject: please confirm\r\n\r\nx\r\n".to_vec(),
            Trace::default(),
        );
        msg.envid = Some("ENV-9".into());
        msg.recipient_dsn = vec![RecipientDsn {
            orcpt: Some("alice@example.com".into()),
            notify: pochta_store::dsn_notify::SUCCESS,
        }];
        d.deliver(msg).await.unwrap();
        let bob = store.account(&a("bob@example.com")).await.unwrap().unwrap();
        let inbox = store.mailboxes(bob.id).await.unwrap()[0].clone();
        let msgs = store.messages(bob.id, inbox.id).await.unwrap();
        assert_eq!(msgs.len(), 1, "one report for bob");
        let raw = store.read_blob(bob.id, msgs[0].blob_id).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(text.contains("Action: delivered"), "{text}");
        assert!(
            text.contains("Final-Recipient: rfc822; alice@example.com"),
            "{text}"
        );
        assert!(text.contains("Original-Envelope-Id: ENV-9"), "{text}");
        assert!(
            text.contains("Subject: please confirm"),
            "the header comes back: {text}"
        );
        assert!(!text.contains("\r\nx\r\n--"), "not the body: {text}");
    }

    #[tokio::test]
    async fn looping_mail_is_refused() {
        let (_d, _s, d) = setup().await;
        let mut body = "Received: from x by y; now\r\n".repeat(MAX_HOPS);
        body.push_str("Subject: loop\r\n\r\nx\r\n");
        let msg = Incoming::new(
            None,
            vec![a("alice@example.com")],
            body.into_bytes(),
            Trace::default(),
        );
        assert!(matches!(
            d.deliver(msg).await,
            Err(DeliveryError::TooManyHops(50))
        ));
    }

    #[tokio::test]
    async fn extra_headers_go_on_top() {
        let (_d, store, d) = setup().await;
        let mut msg = Incoming::new(
            Some(a("x@remote.example")),
            vec![a("alice@example.com")],
            b"Subject: s\r\n\r\nx\r\n".to_vec(),
            Trace::default(),
        );
        msg.extra_headers = "Authentication-Results: mx.example.com; spf=pass\r\n".into();
        d.deliver(msg).await.unwrap();
        let alice = store
            .account(&a("alice@example.com"))
            .await
            .unwrap()
            .unwrap();
        let inbox = store.mailboxes(alice.id).await.unwrap()[0].clone();
        let msgs = store.messages(alice.id, inbox.id).await.unwrap();
        let raw = store.read_blob(alice.id, msgs[0].blob_id).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("Return-Path: <x@remote.example>\r\nAuthentication-Results: mx.example.com; spf=pass\r\nReceived: "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn submission_completes_message_id_and_date() {
        let (_d, store, d) = setup().await;
        d.deliver(Incoming {
            mail_from: Some(a("alice@example.com")),
            recipients: vec![a("bob@example.com")],
            body: b"Subject: s\r\n\r\nx\r\n".to_vec(),
            trace: Trace {
                helo: Some("laptop (evil)\r\nX-Injected: 1".into()),
                peer: Some("::1".parse().unwrap()),
                protocol: "ESMTP",
                tls: None,
                user: Some("alice@example.com".into()),
            },
            submission: true,
            ..Incoming::new(None, vec![], vec![], Trace::default())
        })
        .await
        .unwrap();
        let bob = store.account(&a("bob@example.com")).await.unwrap().unwrap();
        let inbox = store.mailboxes(bob.id).await.unwrap()[0].clone();
        let m = &store.messages(bob.id, inbox.id).await.unwrap()[0];
        let text = String::from_utf8(store.read_blob(bob.id, m.blob_id).await.unwrap()).unwrap();
        assert!(text.contains("with ESMTPA id"), "{text}");
        assert!(text.contains("([IPv6:::1])"));
        assert!(text.contains("(authenticated as alice@example.com)"));
        assert!(text.contains("\tfor <bob@example.com>;"));
        assert!(text.contains("\r\nMessage-ID: <"));
        assert!(text.contains("\r\nDate: "));
        assert!(
            !text.contains("\r\nX-Injected"),
            "HELO text cannot add headers: {text}"
        );
        let meta = store.message(bob.id, m.id).await.unwrap().unwrap().meta;
        assert!(meta.message_id.unwrap().ends_with("@mx.example.com"));
    }

    /// One call of a hook: account, recipients, sender, header.
    type Heard = (AccountId, Vec<String>, Option<String>, String);

    /// Records what it is told.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<Heard>>);

    #[async_trait]
    impl DeliveryHook for Recorder {
        async fn delivered(&self, _delivery: &LocalDelivery, m: DeliveredMessage<'_>) {
            self.0.lock().unwrap().push((
                m.account,
                m.recipients.iter().map(Address::key).collect(),
                m.mail_from.map(Address::key),
                String::from_utf8_lossy(m.header).into_owned(),
            ));
        }
    }

    #[tokio::test]
    async fn hooks_hear_of_each_receiving_account_after_the_commit() {
        let (_d, store, d) = setup().await;
        let recorder = Arc::new(Recorder::default());
        let d = d.with_hook(recorder.clone());
        let mut msg = Incoming::new(
            Some(a("x@remote.example")),
            vec![
                a("team@example.com"),
                a("alice@example.com"),
                a("y@remote.example"),
            ],
            b"Subject: s\r\n\r\nbody\r\n".to_vec(),
            Trace::default(),
        );
        msg.relay = true;
        d.deliver(msg).await.unwrap();
        let alice = store
            .account(&a("alice@example.com"))
            .await
            .unwrap()
            .unwrap();
        let bob = store.account(&a("bob@example.com")).await.unwrap().unwrap();
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            2,
            "alice and bob once each, nothing for the remote one"
        );
        assert_eq!(seen[0].0, alice.id);
        assert_eq!(seen[0].1, ["team@example.com", "alice@example.com"]);
        assert_eq!(seen[1].0, bob.id);
        assert_eq!(seen[1].1, ["team@example.com"]);
        assert_eq!(seen[0].2.as_deref(), Some("x@remote.example"));
        assert!(seen[0].3.starts_with("Return-Path: <x@remote.example>\r\n"));
        assert!(seen[0].3.ends_with("Subject: s\r\n\r\n"), "{}", seen[0].3);
        // Committed before the hook ran.
        let inbox = store.mailboxes(alice.id).await.unwrap()[0].clone();
        assert_eq!(store.messages(alice.id, inbox.id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn vanished_recipients_are_skipped() {
        let (_d, store, d) = setup().await;
        store.delete_account(&a("bob@example.com")).await.unwrap();
        let err = d
            .deliver(Incoming {
                mail_from: None,
                recipients: vec![a("bob@example.com")],
                body: b"x\r\n".to_vec(),
                trace: Trace::default(),
                submission: false,
                ..Incoming::new(None, vec![], vec![], Trace::default())
            })
            .await;
        assert!(matches!(err, Err(DeliveryError::NoRecipients)));
    }
}
