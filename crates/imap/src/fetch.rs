//! FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 7162 CHANGEDSINCE/VANISHED).

use std::collections::HashMap;

use pochta_message::MessageMeta;
use pochta_proto_imap::encode;
use pochta_proto_imap::fetch::{self as render, FetchOptions};
use pochta_proto_imap::types::*;
use pochta_proto_imap::view::{MessageView, SystemFlags};
use pochta_store::{ChangeOp, FlagChange, Flags, MessageSummary, ObjectKind, StoreError, Uid};

use crate::exec::{Executor, Fail, Handled, Output};
use crate::select::{last_assigned, to_ranges};

/// Messages loaded per round trip when only index data is asked for.
const CHEAP_BATCH: usize = 5000;
/// Messages loaded per round trip when metadata or bytes are needed.
const RICH_BATCH: usize = 100;

/// True when an item needs the parsed metadata (rather than index fields only).
fn needs_meta(attrs: &[FetchAttr]) -> bool {
    attrs.iter().any(|a| {
        !matches!(
            a,
            FetchAttr::Flags
                | FetchAttr::InternalDate
                | FetchAttr::Rfc822Size
                | FetchAttr::Uid
                | FetchAttr::ModSeq
                | FetchAttr::EmailId
                | FetchAttr::ThreadId
                | FetchAttr::SaveDate
        )
    })
}

/// The IMAP view of a stored message.
pub(crate) fn view<'a>(
    m: &'a MessageSummary,
    msn: u32,
    meta: &'a MessageMeta,
    raw: Option<&'a [u8]>,
) -> MessageView<'a> {
    MessageView {
        msn,
        uid: m.uid,
        email_id: m.id,
        thread_id: m.thread_id,
        flags: SystemFlags {
            seen: m.flags.contains(Flags::SEEN),
            answered: m.flags.contains(Flags::ANSWERED),
            flagged: m.flags.contains(Flags::FLAGGED),
            deleted: m.flags.contains(Flags::DELETED),
            draft: m.flags.contains(Flags::DRAFT),
            recent: false,
        },
        keywords: &m.keywords,
        internal_date: m.internal_date,
        size: m.size,
        modseq: m.modseq,
        meta,
        raw,
    }
}

impl Executor {
    pub(crate) async fn fetch(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        attrs: &[FetchAttr],
        modifiers: FetchModifiers,
        out: &mut Output<'_>,
    ) -> Handled {
        let account = self.account.id;
        if modifiers.changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.enabled.condstore = true;
        }
        if modifiers.vanished && !(uid && self.enabled.qresync && modifiers.changed_since.is_some())
        {
            return Err(Fail::Bad(
                "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC".into(),
            ));
        }
        let opts = FetchOptions {
            charset: self.charset(),
            include_uid: uid,
            include_modseq: self.enabled.condstore,
            include_flags: false,
        };
        let Some(sel) = self.selected.as_mut() else {
            return Err(Fail::Bad("No mailbox selected".into()));
        };
        if !uid && sel.msn_out_of_range(set) {
            return Err(Fail::Bad("Invalid message sequence number".into()));
        }
        let uids = sel.resolve(set, uid);
        if let (true, Some(since)) = (modifiers.vanished, modifiers.changed_since) {
            // RFC 7162 §3.2.6: UIDs in the set expunged since `since`.
            let gone = match self.store.change_log(account, since, usize::MAX).await {
                Ok(log) => {
                    let mut gone: Vec<Uid> = log
                        .iter()
                        .filter(|c| c.kind == ObjectKind::Email && c.mailbox_id == Some(sel.id))
                        .filter(|c| matches!(c.op, ChangeOp::Destroyed | ChangeOp::LeftMailbox))
                        .filter_map(|c| c.uid)
                        .filter(|u| sel.msn(*u).is_none() && in_set(set, *u, sel.max_uid()))
                        .collect();
                    gone.sort_unstable();
                    gone.dedup();
                    to_ranges(&gone)
                }
                // No longer logged that far back: every UID of the set not here,
                // up to the last one assigned (`*` reaches past the client's view).
                Err(StoreError::Pruned { .. }) => {
                    let last = last_assigned(&self.store, account, sel.id).await?;
                    sel.absent(Some(set), last.max(sel.max_uid()))
                }
                Err(e) => return Err(e.into()),
            };
            if !gone.is_empty() {
                out.buf.extend_from_slice(b"* VANISHED (EARLIER) ");
                encode::ranges(&mut out.buf, &gone);
                out.buf.extend_from_slice(b"\r\n");
            }
        }
        let rich = needs_meta(attrs);
        let raw_needed = render::needs_raw(attrs);
        let set_seen = render::sets_seen(attrs) && !sel.read_only;
        let empty = pochta_message::parse(b"");
        let mut missing = false;
        let mut unknown_cte = None;
        for chunk in uids.chunks(if rich || raw_needed {
            RICH_BATCH
        } else {
            CHEAP_BATCH
        }) {
            // With metadata wanted, one query reads the rows and their metadata.
            let (mut summaries, metas): (Vec<MessageSummary>, Vec<MessageMeta>) = if rich {
                self.store
                    .records_by_uid(account, sel.id, &to_ranges(chunk))
                    .await?
                    .into_iter()
                    .map(|r| (r.summary, r.meta))
                    .unzip()
            } else {
                let summaries = self
                    .store
                    .messages_by_uid(account, sel.id, &to_ranges(chunk))
                    .await?;
                (summaries, Vec::new())
            };
            missing |= summaries.len() < chunk.len();
            if set_seen {
                let unseen: Vec<u64> = summaries
                    .iter()
                    .filter(|m| !m.flags.contains(Flags::SEEN))
                    .filter(|m| modifiers.changed_since.is_none_or(|since| m.modseq > since))
                    .map(|m| m.id)
                    .collect();
                if !unseen.is_empty() {
                    let update = self
                        .store
                        .store_flags(
                            account,
                            &unseen,
                            FlagChange::Add(Flags::SEEN, Vec::new()),
                            None,
                        )
                        .await?;
                    sel.own(update.state);
                    let changed: HashMap<u64, u64> =
                        update.changed.iter().map(|c| (c.id, c.modseq)).collect();
                    for m in &mut summaries {
                        if let Some(&modseq) = changed.get(&m.id) {
                            m.flags = m.flags | Flags::SEEN;
                            m.modseq = modseq;
                        }
                    }
                }
            }
            for (i, m) in summaries.iter().enumerate() {
                if modifiers
                    .changed_since
                    .is_some_and(|since| m.modseq <= since)
                {
                    continue;
                }
                let Some(msn) = sel.msn(m.uid) else { continue };
                let raw = if raw_needed {
                    match self.store.read_blob(account, m.blob_id).await {
                        Ok(b) => Some(b),
                        Err(pochta_store::StoreError::NotFound(_)) => {
                            missing = true;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    None
                };
                let meta = metas.get(i).unwrap_or(&empty);
                let v = view(m, msn, meta, raw.as_deref());
                let mut o = opts;
                o.include_flags = set_seen;
                if let Err(e) = render::write_fetch(&mut out.buf, &v, attrs, &o) {
                    unknown_cte = Some(e);
                    break;
                }
                out.maybe_flush()
                    .await
                    .map_err(|e| Fail::No(None, e.to_string()))?;
            }
            if unknown_cte.is_some() {
                break;
            }
        }
        if let Some(e) = unknown_cte {
            return Err(Fail::No(
                e.response_code().map(str::to_string),
                e.to_string(),
            ));
        }
        if missing {
            return Ok((
                Some("EXPUNGEISSUED".into()),
                "Some messages were expunged meanwhile".into(),
            ));
        }
        Ok((None, "FETCH completed".into()))
    }
}

/// Whether `uid` is named by a UID set (for VANISHED (EARLIER)).
fn in_set(set: &SequenceSet, uid: Uid, max: Uid) -> bool {
    match set {
        SequenceSet::Saved => false,
        SequenceSet::Ranges(r) => r.iter().any(|&(a, b)| {
            let v = |n: SeqNum| match n {
                SeqNum::Value(v) => v,
                SeqNum::Star => max.max(uid),
            };
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&uid)
        }),
    }
}
