//! Executes IMAP commands for one logged-in session against the mail store.
//!
//! The connection-level protocol (framing, continuations, SASL, IDLE, TLS,
//! COMPRESS) is `pochta_proto_imap::session`; everything that touches mail is
//! here. Each command writes its untagged responses and its tagged completion to
//! the [`Output`], then the pending updates of other sessions are announced as
//! RFC 9051 §7.5.1 permits for that command.

use std::sync::Arc;

use async_trait::async_trait;
use pochta_proto_imap::encode::{self, Charset, Status};
use pochta_proto_imap::types::*;
use pochta_store::{Account, AccountId, Flags, MessageSummary, ModSeq, Store, StoreError, Uid};

use crate::names::Tree;
use crate::selected::Selected;

/// Buffered output above this size is written out while a command runs (large
/// FETCH results), so a session never holds a whole mailbox in memory.
pub const FLUSH_AT: usize = 256 * 1024;

/// Where responses go: the connection, or a buffer in tests.
#[async_trait]
pub trait Sink: Send {
    /// Writes `data` to the client.
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()>;
}

/// A sink that keeps everything (tests, transcripts).
#[derive(Default)]
pub struct VecSink(pub Vec<u8>);

#[async_trait]
impl Sink for VecSink {
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
}

/// Responses being produced, flushed to the sink when large.
pub struct Output<'a> {
    /// Bytes not yet written.
    pub buf: Vec<u8>,
    sink: &'a mut dyn Sink,
}

impl<'a> Output<'a> {
    /// Output into `sink`.
    pub fn new(sink: &'a mut dyn Sink) -> Output<'a> {
        Output {
            buf: Vec::with_capacity(4096),
            sink,
        }
    }

    /// Writes the buffer out when it has grown large.
    pub async fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the buffer out.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.sink.send(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Server-wide IMAP settings.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// APPENDLIMIT: the largest message APPEND accepts.
    pub max_append: u64,
    /// The light-metadata caches the sessions share (one per searched mailbox).
    pub light: Arc<pochta_store::LightRegistry>,
}

/// Extensions the client has switched on (ENABLE, or implied by commands).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    /// `ENABLE IMAP4rev2`.
    pub rev2: bool,
    /// `ENABLE UTF8=ACCEPT`.
    pub utf8: bool,
    /// CONDSTORE (ENABLE, SELECT (CONDSTORE), or a command using MODSEQ).
    pub condstore: bool,
    /// `ENABLE QRESYNC` (implies CONDSTORE).
    pub qresync: bool,
}

/// How a command changed the session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// No change.
    None,
    /// A mailbox is now selected.
    Selected,
    /// No mailbox is selected any more.
    Deselected,
    /// Close the connection (after a BYE was written).
    Bye,
}

/// Whether untagged EXPUNGE may follow a command (RFC 9051 §7.5.1).
fn allows_expunge(cmd: &CommandBody) -> bool {
    !matches!(
        cmd,
        CommandBody::Fetch { uid: false, .. }
            | CommandBody::Store { uid: false, .. }
            | CommandBody::Search { uid: false, .. }
            | CommandBody::Copy { uid: false, .. }
            | CommandBody::Sort { uid: false, .. }
            | CommandBody::Thread { uid: false, .. }
    )
}

/// One logged-in session's command executor.
pub struct Executor {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) account: Account,
    pub(crate) settings: Arc<ImapSettings>,
    /// Extensions switched on.
    pub enabled: Enabled,
    pub(crate) selected: Option<Selected>,
    /// The account's change notifications, subscribed before anything is
    /// read, so that "no notification past state S" means "nothing to read
    /// from the change log past S" (see [`Executor::may_have_changed`]).
    pub(crate) notified: tokio::sync::watch::Receiver<ModSeq>,
    /// The mailbox tree as last read, with the notified state just before the
    /// read: reused while nothing newer is published (every store write that
    /// changes a mailbox or its counters publishes).
    tree: std::sync::Mutex<Option<(ModSeq, Arc<Tree>)>>,
}

/// A failure a handler reports with a tagged NO or BAD.
pub(crate) enum Fail {
    No(Option<String>, String),
    Bad(String),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        store_fail(e)
    }
}

/// Maps a store failure to the IMAP response code clients act on (RFC 5530).
pub(crate) fn store_fail(e: StoreError) -> Fail {
    match e {
        StoreError::NotFound(what) => {
            Fail::No(Some("NONEXISTENT".into()), format!("Not found: {what}"))
        }
        StoreError::AlreadyExists(what) => Fail::No(
            Some("ALREADYEXISTS".into()),
            format!("Already exists: {what}"),
        ),
        StoreError::OverQuota => Fail::No(Some("OVERQUOTA".into()), "Quota exceeded".into()),
        StoreError::HasChildren => Fail::No(
            Some("HASCHILDREN".into()),
            "Mailbox has children, delete them first".into(),
        ),
        StoreError::Full => Fail::No(
            Some("UNAVAILABLE".into()),
            "Out of disk space, try again later".into(),
        ),
        StoreError::Invalid(why) => Fail::No(Some("CANNOT".into()), why),
        StoreError::Unavailable(why) => Fail::No(
            Some("UNAVAILABLE".into()),
            format!("Try again later: {why}"),
        ),
        other => {
            tracing::error!(error = %other, "store failure");
            Fail::No(
                Some("SERVERBUG".into()),
                "Internal error, the administrator has been told".into(),
            )
        }
    }
}

/// A command's completion: the response code (with its arguments) and text.
pub(crate) type Handled = Result<(Option<String>, String), Fail>;

impl Executor {
    /// An executor for `account`.
    pub fn new(store: Arc<dyn Store>, account: Account, settings: Arc<ImapSettings>) -> Executor {
        let notified = store.subscribe(account.id);
        Executor {
            notified,
            tree: std::sync::Mutex::new(None),
            store,
            account,
            settings,
            enabled: Enabled::default(),
            selected: None,
        }
    }

    /// Whether the account may have changed after state `known`. The store
    /// publishes every committed state after the commit and before the writer
    /// hears back, so a change made by any session or delivery of this server
    /// has been published before anyone can have seen its effect; without a
    /// newer notification the change log read every command does (in another
    /// thread, two context switches) is skipped. A notifier that crosses
    /// machines may deliver later: the change then shows at a later command,
    /// as IMAP allows.
    pub(crate) fn may_have_changed(&self, known: ModSeq) -> bool {
        *self.notified.borrow() > known
    }

    /// The account's id.
    pub fn account_id(&self) -> AccountId {
        self.account.id
    }

    /// The logged-in account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// Receives the account's state after each change (wakes IDLE).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<ModSeq> {
        self.store.subscribe(self.account.id)
    }

    /// True when a mailbox is selected.
    pub fn is_selected(&self) -> bool {
        self.selected.is_some()
    }

    /// How strings and names are written for this client.
    pub fn charset(&self) -> Charset {
        if self.enabled.utf8 || self.enabled.rev2 {
            Charset::Utf8
        } else {
            Charset::Ascii
        }
    }

    /// Decodes a mailbox name as sent: UTF-8 for UTF-8 clients, modified UTF-7
    /// otherwise (accepting plain UTF-8 from lenient rev1 clients).
    pub(crate) fn mailbox_name(&self, raw: &[u8]) -> Result<String, Fail> {
        if self.charset() == Charset::Utf8 {
            return String::from_utf8(raw.to_vec())
                .map_err(|_| Fail::Bad("Mailbox name is not valid UTF-8".into()));
        }
        if let Some(n) = encode::mutf7_decode(raw) {
            return Ok(n);
        }
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(Fail::Bad("Mailbox name is not valid modified UTF-7".into())),
        }
    }

    pub(crate) async fn tree(&self) -> Result<Arc<Tree>, Fail> {
        let now = *self.notified.borrow();
        let cached = self.tree.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((at, tree)) = cached
            && now <= at
        {
            return Ok(tree);
        }
        let tree = Arc::new(Tree::new(self.store.mailboxes(self.account.id).await?));
        *self.tree.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, tree.clone()));
        Ok(tree)
    }

    /// Runs one command and writes its responses and completion. Returns the
    /// state transition it caused.
    pub async fn execute(
        &mut self,
        tag: &str,
        cmd: CommandBody,
        out: &mut Output<'_>,
    ) -> std::io::Result<Transition> {
        let allow_expunge = allows_expunge(&cmd);
        let mut transition = Transition::None;
        let result = match cmd {
            CommandBody::Enable(caps) => self.enable(&caps, out),
            CommandBody::Namespace => {
                out.buf
                    .extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Ok((None, "NAMESPACE completed".into()))
            }
            CommandBody::Noop => Ok((None, "NOOP completed".into())),
            CommandBody::Check => {
                if self.selected.is_none() {
                    Err(Fail::Bad("No mailbox selected".into()))
                } else {
                    Ok((None, "CHECK completed".into()))
                }
            }
            CommandBody::Create {
                mailbox,
                special_use,
            } => self.create(&mailbox, &special_use).await,
            CommandBody::Delete { mailbox } => self.delete(&mailbox).await,
            CommandBody::Rename { from, to } => self.rename(&from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(&mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&mailbox, false).await,
            CommandBody::List {
                select,
                reference,
                patterns,
                returns,
            } => {
                self.list(&select, &reference, &patterns, &returns, false, out)
                    .await
            }
            CommandBody::Lsub { reference, pattern } => {
                self.list(
                    &[ListSelect::Subscribed],
                    &reference,
                    &[pattern],
                    &[],
                    true,
                    out,
                )
                .await
            }
            CommandBody::Status { mailbox, items } => self.status(&mailbox, &items, out).await,
            CommandBody::Append { mailbox, messages } => self.append(&mailbox, messages).await,
            CommandBody::Select { mailbox, params } => {
                let r = self.select(&mailbox, params, false, out).await;
                transition = if r.is_ok() {
                    Transition::Selected
                } else {
                    Transition::Deselected
                };
                r
            }
            CommandBody::Examine { mailbox, params } => {
                let r = self.select(&mailbox, params, true, out).await;
                transition = if r.is_ok() {
                    Transition::Selected
                } else {
                    Transition::Deselected
                };
                r
            }
            CommandBody::Close => {
                let r = self.close(true).await;
                if r.is_ok() {
                    transition = Transition::Deselected;
                }
                r
            }
            CommandBody::Unselect => {
                let r = self.close(false).await;
                if r.is_ok() {
                    transition = Transition::Deselected;
                }
                r
            }
            CommandBody::Expunge => self.expunge(None, out).await,
            CommandBody::UidExpunge(set) => self.expunge(Some(set), out).await,
            CommandBody::Store {
                uid,
                set,
                unchanged_since,
                mode,
                silent,
                flags,
            } => {
                self.store_cmd(uid, &set, unchanged_since, mode, silent, &flags, out)
                    .await
            }
            CommandBody::Copy { uid, set, mailbox } => {
                self.copy_or_move(uid, &set, &mailbox, false, out).await
            }
            CommandBody::Move { uid, set, mailbox } => {
                self.copy_or_move(uid, &set, &mailbox, true, out).await
            }
            CommandBody::Fetch {
                uid,
                set,
                attrs,
                modifiers,
            } => self.fetch(uid, &set, &attrs, modifiers, out).await,
            CommandBody::Search {
                uid,
                returns,
                charset,
                criteria,
            } => {
                self.search(tag, uid, returns, charset.as_deref(), &criteria, out)
                    .await
            }
            CommandBody::Sort {
                uid,
                returns,
                criteria,
                charset,
                search,
            } => {
                self.sort(tag, uid, returns, &criteria, &charset, &search, out)
                    .await
            }
            CommandBody::Thread {
                uid,
                algorithm,
                charset,
                search,
            } => self.thread(uid, algorithm, &charset, &search, out).await,
            CommandBody::GetQuota { root } => self.get_quota(&root, out).await,
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(&mailbox, out).await,
            CommandBody::SetQuota { .. } => Err(Fail::No(
                Some("NOPERM".into()),
                "Quotas are set by the administrator (pochta user quota)".into(),
            )),
            other => Err(Fail::Bad(format!(
                "{} is not valid in this state",
                command_name(&other)
            ))),
        };
        // Tell the client what others changed, as far as this command allows.
        if let Err(e) = self.updates(allow_expunge, out).await {
            tracing::warn!(error = %e, "cannot read the change log");
        }
        if self.selected.as_ref().is_some_and(|s| s.deleted) {
            out.buf
                .extend_from_slice(b"* BYE The selected mailbox was deleted\r\n");
            transition = Transition::Bye;
        }
        match result {
            Ok((code, text)) => {
                encode::status(&mut out.buf, tag, Status::Ok, code.as_deref(), &text)
            }
            Err(Fail::No(code, text)) => {
                encode::status(&mut out.buf, tag, Status::No, code.as_deref(), &text)
            }
            Err(Fail::Bad(text)) => encode::status(&mut out.buf, tag, Status::Bad, None, &text),
        }
        Ok(transition)
    }

    /// Reads the change log and announces what the client may hear now. Also the
    /// body of NOOP and of IDLE's wake-ups.
    pub async fn updates(
        &mut self,
        allow_expunge: bool,
        out: &mut Output<'_>,
    ) -> Result<(), StoreError> {
        let account = self.account.id;
        let vanished = self.enabled.qresync;
        let condstore = self.enabled.condstore;
        let Some(known) = self.selected.as_ref().map(|s| s.known) else {
            return Ok(());
        };
        let changed = self.may_have_changed(known);
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        if changed {
            sel.pull(self.store.as_ref(), account).await?;
        }
        let announced = sel.announce(&mut out.buf, allow_expunge, vanished);
        if announced.flags.is_empty() {
            return Ok(());
        }
        let ranges: Vec<(Uid, Uid)> = announced.flags.iter().map(|&u| (u, u)).collect();
        let summaries = self.store.messages_by_uid(account, sel.id, &ranges).await?;
        if sel.learn_keywords(summaries.iter().flat_map(|m| &m.keywords)) {
            crate::select::write_flags_line(&mut out.buf, &sel.keywords);
            crate::select::write_permanent_flags(&mut out.buf, &sel.keywords, sel.read_only);
        }
        for m in &summaries {
            if let Some(msn) = sel.msn(m.uid) {
                write_flags_fetch(&mut out.buf, msn, m, condstore);
            }
        }
        Ok(())
    }

    fn enable(&mut self, caps: &[String], out: &mut Output<'_>) -> Handled {
        let mut on = Vec::new();
        for c in caps {
            let c = c.to_ascii_uppercase();
            let newly = match c.as_str() {
                "IMAP4REV2" => !std::mem::replace(&mut self.enabled.rev2, true),
                "UTF8=ACCEPT" => !std::mem::replace(&mut self.enabled.utf8, true),
                "CONDSTORE" => !std::mem::replace(&mut self.enabled.condstore, true),
                "QRESYNC" => {
                    self.enabled.condstore = true;
                    !std::mem::replace(&mut self.enabled.qresync, true)
                }
                _ => false,
            };
            if newly {
                on.push(c);
            }
        }
        // RFC 5161: list only what this command enabled.
        out.buf.extend_from_slice(b"* ENABLED");
        for c in &on {
            out.buf.push(b' ');
            out.buf.extend_from_slice(c.as_bytes());
        }
        out.buf.extend_from_slice(b"\r\n");
        Ok((None, "ENABLE completed".into()))
    }
}

/// `* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`, for flag changes.
pub(crate) fn write_flags_fetch(out: &mut Vec<u8>, msn: u32, m: &MessageSummary, modseq: bool) {
    out.extend_from_slice(format!("* {msn} FETCH (UID {} FLAGS ", m.uid).as_bytes());
    write_flags(out, m.flags, &m.keywords);
    if modseq {
        out.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
    }
    out.extend_from_slice(b")\r\n");
}

/// A flag list from stored flags.
pub(crate) fn write_flags(out: &mut Vec<u8>, flags: Flags, keywords: &[String]) {
    let system = flags.imap_names();
    encode::flag_list(out, &system, keywords.iter().map(String::as_str));
}

/// Converts IMAP flags to the store's system flags and keywords (\Recent is
/// not settable and is dropped).
pub(crate) fn to_store_flags(flags: &[Flag]) -> (Flags, Vec<String>) {
    let mut sys = Flags::NONE;
    let mut kw = Vec::new();
    for f in flags {
        match f {
            Flag::Seen => sys = sys | Flags::SEEN,
            Flag::Answered => sys = sys | Flags::ANSWERED,
            Flag::Flagged => sys = sys | Flags::FLAGGED,
            Flag::Deleted => sys = sys | Flags::DELETED,
            Flag::Draft => sys = sys | Flags::DRAFT,
            Flag::Recent | Flag::Extension(_) => {}
            Flag::Keyword(k) => kw.push(k.clone()),
        }
    }
    (sys, kw)
}

/// The command's name, for error texts.
pub(crate) fn command_name(cmd: &CommandBody) -> &'static str {
    match cmd {
        CommandBody::Capability => "CAPABILITY",
        CommandBody::Noop => "NOOP",
        CommandBody::Logout => "LOGOUT",
        CommandBody::Id(_) => "ID",
        CommandBody::StartTls => "STARTTLS",
        CommandBody::Authenticate { .. } => "AUTHENTICATE",
        CommandBody::Login { .. } => "LOGIN",
        CommandBody::Enable(_) => "ENABLE",
        CommandBody::Select { .. } => "SELECT",
        CommandBody::Examine { .. } => "EXAMINE",
        CommandBody::Create { .. } => "CREATE",
        CommandBody::Delete { .. } => "DELETE",
        CommandBody::Rename { .. } => "RENAME",
        CommandBody::Subscribe { .. } => "SUBSCRIBE",
        CommandBody::Unsubscribe { .. } => "UNSUBSCRIBE",
        CommandBody::List { .. } => "LIST",
        CommandBody::Lsub { .. } => "LSUB",
        CommandBody::Namespace => "NAMESPACE",
        CommandBody::Status { .. } => "STATUS",
        CommandBody::Append { .. } => "APPEND",
        CommandBody::Idle => "IDLE",
        CommandBody::Check => "CHECK",
        CommandBody::Close => "CLOSE",
        CommandBody::Unselect => "UNSELECT",
        CommandBody::Expunge => "EXPUNGE",
        CommandBody::UidExpunge(_) => "UID EXPUNGE",
        CommandBody::Search { .. } => "SEARCH",
        CommandBody::Fetch { .. } => "FETCH",
        CommandBody::Store { .. } => "STORE",
        CommandBody::Copy { .. } => "COPY",
        CommandBody::Move { .. } => "MOVE",
        CommandBody::Sort { .. } => "SORT",
        CommandBody::Thread { .. } => "THREAD",
        CommandBody::GetQuota { .. } => "GETQUOTA",
        CommandBody::GetQuotaRoot { .. } => "GETQUOTAROOT",
        CommandBody::SetQuota { .. } => "SETQUOTA",
        CommandBody::Compress(_) => "COMPRESS",
    }
}
