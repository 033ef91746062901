//! SELECT/EXAMINE (with CONDSTORE and QRESYNC), CLOSE, UNSELECT, EXPUNGE.

use pochta_proto_imap::encode;
use pochta_proto_imap::types::*;
use pochta_store::{ChangeOp, ObjectKind, Role, StoreError, Uid};

use crate::exec::{Executor, Fail, Handled, Output, write_flags_fetch};
use crate::mailboxes::mailbox_object_id;
use crate::selected::Selected;

/// Keywords every mailbox accepts and that clients look for in FLAGS.
pub(crate) const COMMON_KEYWORDS: [&str; 5] =
    ["$Forwarded", "$MDNSent", "$Junk", "$NotJunk", "$Phishing"];

/// `* FLAGS (...)`: the system flags, the common keywords and those in use.
pub(crate) fn write_flags_line(b: &mut Vec<u8>, keywords: &[String]) {
    b.extend_from_slice(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for k in COMMON_KEYWORDS
        .iter()
        .copied()
        .chain(keywords.iter().map(String::as_str))
    {
        b.push(b' ');
        b.extend_from_slice(k.as_bytes());
    }
    b.extend_from_slice(b")\r\n");
}

/// `* OK [PERMANENTFLAGS (...)]`: everything in FLAGS plus `\*` (any new keyword).
pub(crate) fn write_permanent_flags(b: &mut Vec<u8>, keywords: &[String], read_only: bool) {
    if read_only {
        b.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        return;
    }
    b.extend_from_slice(b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for k in COMMON_KEYWORDS
        .iter()
        .copied()
        .chain(keywords.iter().map(String::as_str))
    {
        b.push(b' ');
        b.extend_from_slice(k.as_bytes());
    }
    b.extend_from_slice(b" \\*)] Flags permitted\r\n");
}

impl Executor {
    pub(crate) async fn select(
        &mut self,
        raw: &[u8],
        params: SelectParams,
        read_only: bool,
        out: &mut Output<'_>,
    ) -> Handled {
        // Selecting always leaves the previous mailbox, even if this one fails.
        let previous = self.selected.take();
        if previous.is_some() && (self.enabled.condstore || self.enabled.rev2) {
            out.buf
                .extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        // Selecting the same mailbox again keeps what its searches loaded.
        let light = previous.and_then(|p| p.light);
        if params.qresync.is_some() && !self.enabled.qresync {
            return Err(Fail::Bad(
                "QRESYNC must be enabled first (ENABLE QRESYNC)".into(),
            ));
        }
        if params.condstore {
            self.enabled.condstore = true;
        }
        let name = self.mailbox_name(raw)?;
        let tree = self.tree().await?;
        let mailbox = self.find(&tree, &name)?.clone();
        let full = tree.name(mailbox.id).unwrap_or(&name).to_string();
        let account = self.account.id;
        // State first, then the map: anything in between is replayed from the log.
        let known = self.store.state(account).await?;
        let map = self.store.uid_map(account, mailbox.id).await?;
        let uids: Vec<Uid> = map.iter().map(|(u, _)| *u).collect();
        let mut sel = Selected::new(
            mailbox.id,
            mailbox.uid_validity,
            read_only,
            uids,
            known,
            mailbox.highest_modseq,
        );
        sel.learn_keywords(&mailbox.keywords);
        sel.light = light.filter(|c| c.scope() == (account, Some(mailbox.id)));
        let b = &mut out.buf;
        write_flags_line(b, &sel.keywords);
        b.extend_from_slice(format!("* {} EXISTS\r\n", sel.exists()).as_bytes());
        if !self.enabled.rev2 {
            b.extend_from_slice(b"* 0 RECENT\r\n");
            if mailbox.unseen > 0
                && let Some(uid) = self.store.first_unseen(account, mailbox.id).await?
                && let Some(msn) = sel.msn(uid)
            {
                b.extend_from_slice(format!("* OK [UNSEEN {msn}] First unseen\r\n").as_bytes());
            }
        }
        b.extend_from_slice(
            format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", mailbox.uid_validity).as_bytes(),
        );
        b.extend_from_slice(
            format!("* OK [UIDNEXT {}] Predicted next UID\r\n", mailbox.uid_next).as_bytes(),
        );
        write_permanent_flags(b, &sel.keywords, read_only);
        if self.enabled.condstore {
            b.extend_from_slice(
                format!(
                    "* OK [HIGHESTMODSEQ {}] Highest\r\n",
                    mailbox.highest_modseq.max(1)
                )
                .as_bytes(),
            );
        }
        b.extend_from_slice(
            format!(
                "* OK [MAILBOXID ({})] Ok\r\n",
                mailbox_object_id(mailbox.id)
            )
            .as_bytes(),
        );
        if self.enabled.rev2 {
            // RFC 9051 §6.3.2: the mailbox's LIST response, with its real name.
            b.extend_from_slice(b"* LIST (");
            let su = mailbox.role.and_then(Role::special_use);
            b.extend_from_slice(su.unwrap_or("").as_bytes());
            b.extend_from_slice(b") \"/\" ");
            encode::mailbox(b, &full, self.charset());
            b.extend_from_slice(b"\r\n");
        }
        self.selected = Some(sel);
        if let Some(q) = params.qresync {
            self.qresync_select(&q, out).await?;
        }
        let code = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        Ok((
            Some(code.into()),
            format!("{} completed", if read_only { "EXAMINE" } else { "SELECT" }),
        ))
    }

    /// RFC 7162 §3.2.5: what changed since the client's MODSEQ: VANISHED (EARLIER)
    /// for expunged UIDs, then FETCH for changed messages.
    async fn qresync_select(&mut self, q: &QResync, out: &mut Output<'_>) -> Result<(), Fail> {
        let account = self.account.id;
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if q.uid_validity != sel.uid_validity {
            return Ok(());
        }
        // `*` in the client's known UIDs means the largest UID ever assigned here;
        // explicit UIDs may name messages that are gone, which is the point.
        let last_assigned = last_assigned(&self.store, account, sel.id).await?;
        let log = match self.store.change_log(account, q.modseq, usize::MAX).await {
            Ok(log) => log,
            Err(StoreError::Pruned { .. }) => {
                // The log no longer reaches back to the client's MODSEQ: every
                // UID it may know that is not here now.
                let absent = sel.absent(q.known_uids.as_ref(), last_assigned);
                return self.qresync_flags(q, absent, out).await;
            }
            Err(e) => return Err(e.into()),
        };
        let known_uids: Option<Vec<Uid>> = q.known_uids.as_ref().map(|s| expand(s, last_assigned));
        let mut vanished: Vec<Uid> = log
            .iter()
            .filter(|c| {
                c.kind == ObjectKind::Email
                    && c.mailbox_id == Some(sel.id)
                    && matches!(c.op, ChangeOp::Destroyed | ChangeOp::LeftMailbox)
            })
            .filter_map(|c| c.uid)
            .filter(|u| sel.msn(*u).is_none())
            .filter(|u| {
                known_uids
                    .as_ref()
                    .is_none_or(|k| k.binary_search(u).is_ok())
            })
            .collect();
        vanished.sort_unstable();
        vanished.dedup();
        self.qresync_flags(q, to_ranges(&vanished), out).await
    }

    /// The rest of a QRESYNC SELECT: VANISHED (EARLIER) for `vanished`, then
    /// FETCH for the messages changed since the client's MODSEQ.
    async fn qresync_flags(
        &mut self,
        q: &QResync,
        vanished: Vec<(Uid, Uid)>,
        out: &mut Output<'_>,
    ) -> Result<(), Fail> {
        let account = self.account.id;
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if !vanished.is_empty() {
            out.buf.extend_from_slice(b"* VANISHED (EARLIER) ");
            encode::ranges(&mut out.buf, &vanished);
            out.buf.extend_from_slice(b"\r\n");
        }
        let changed = self.store.changed_since(account, sel.id, q.modseq).await?;
        for m in &changed {
            if let Some(msn) = sel.msn(m.uid) {
                write_flags_fetch(&mut out.buf, msn, m, true);
            }
        }
        Ok(())
    }

    pub(crate) async fn close(&mut self, expunge: bool) -> Handled {
        let Some(sel) = self.selected.take() else {
            return Err(Fail::Bad("No mailbox selected".into()));
        };
        if expunge && !sel.read_only && sel_deleted(&self.store, self.account.id, sel.id).await? {
            let ids: Vec<u64> = self
                .store
                .deleted(self.account.id, sel.id)
                .await?
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            if !ids.is_empty() {
                self.store.expunge(self.account.id, &ids).await?;
            }
        }
        Ok((
            None,
            if expunge {
                "CLOSE completed"
            } else {
                "UNSELECT completed"
            }
            .into(),
        ))
    }

    pub(crate) async fn expunge(
        &mut self,
        set: Option<SequenceSet>,
        out: &mut Output<'_>,
    ) -> Handled {
        let account = self.account.id;
        let vanished = self.enabled.qresync;
        let Some(sel) = self.selected.as_mut() else {
            return Err(Fail::Bad("No mailbox selected".into()));
        };
        if sel.read_only {
            return Err(Fail::No(
                Some("READ-ONLY".into()),
                "Mailbox is read-only".into(),
            ));
        }
        if !sel_deleted(&self.store, account, sel.id).await? {
            return Ok((None, "EXPUNGE completed".into()));
        }
        // Only messages with \Deleted are read, and only those the client knows.
        let only: Option<Vec<Uid>> = set.as_ref().map(|s| sel.resolve(s, true));
        let doomed: Vec<(Uid, u64)> = self
            .store
            .deleted(account, sel.id)
            .await?
            .into_iter()
            .filter(|(u, _)| sel.msn(*u).is_some())
            .filter(|(u, _)| only.as_ref().is_none_or(|o| o.binary_search(u).is_ok()))
            .collect();
        if doomed.is_empty() {
            return Ok((None, "EXPUNGE completed".into()));
        }
        let ids: Vec<u64> = doomed.iter().map(|(_, id)| *id).collect();
        let uids: Vec<Uid> = doomed.iter().map(|(u, _)| *u).collect();
        let modseq = self.store.expunge(account, &ids).await?;
        sel.own(modseq);
        if vanished {
            out.buf.extend_from_slice(b"* VANISHED ");
            encode::sequence_set(&mut out.buf, &uids);
            out.buf.extend_from_slice(b"\r\n");
        } else {
            for &u in uids.iter().rev() {
                if let Some(msn) = sel.msn(u) {
                    out.buf
                        .extend_from_slice(format!("* {msn} EXPUNGE\r\n").as_bytes());
                }
            }
        }
        sel.remove_own(&uids);
        if self.enabled.condstore {
            // RFC 7162 §3.2.10: the new HIGHESTMODSEQ in the tagged OK.
            return Ok((
                Some(format!("HIGHESTMODSEQ {modseq}")),
                "EXPUNGE completed".into(),
            ));
        }
        Ok((None, "EXPUNGE completed".into()))
    }
}

/// The largest UID ever assigned in `mailbox` (UIDNEXT - 1; 0 when it is gone):
/// what `*` reaches when a client asks about messages that may have vanished.
pub(crate) async fn last_assigned(
    store: &std::sync::Arc<dyn pochta_store::Store>,
    account: u64,
    mailbox: u64,
) -> Result<Uid, Fail> {
    Ok(mailbox_row(store, account, mailbox)
        .await?
        .map_or(0, |m| m.uid_next.saturating_sub(1)))
}

/// The store's row of one mailbox (its counters), `None` when it is gone.
async fn mailbox_row(
    store: &std::sync::Arc<dyn pochta_store::Store>,
    account: u64,
    mailbox: u64,
) -> Result<Option<pochta_store::Mailbox>, Fail> {
    Ok(store
        .mailboxes(account)
        .await?
        .into_iter()
        .find(|m| m.id == mailbox))
}

/// True when the mailbox's counter says some message has `\Deleted`: the
/// common case of none costs no scan.
async fn sel_deleted(
    store: &std::sync::Arc<dyn pochta_store::Store>,
    account: u64,
    mailbox: u64,
) -> Result<bool, Fail> {
    Ok(mailbox_row(store, account, mailbox)
        .await?
        .is_some_and(|m| m.deleted > 0))
}

/// Compresses sorted UIDs into inclusive ranges for the store.
pub(crate) fn to_ranges(sorted: &[Uid]) -> Vec<(Uid, Uid)> {
    let mut out: Vec<(Uid, Uid)> = Vec::new();
    for &u in sorted {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(u) => last.1 = u,
            _ => out.push((u, u)),
        }
    }
    out
}

/// Expands a UID set (no `$`), `*` being `max`, to at most a million UIDs.
fn expand(set: &SequenceSet, max: Uid) -> Vec<Uid> {
    let SequenceSet::Ranges(ranges) = set else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &(a, b) in ranges {
        let v = |n: SeqNum| match n {
            SeqNum::Value(v) => v,
            SeqNum::Star => max,
        };
        let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
        if hi >= lo && out.len() + (hi - lo) as usize <= 1_000_000 {
            out.extend(lo..=hi);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}
