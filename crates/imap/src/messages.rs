//! Commands that change messages: STORE, COPY, MOVE, APPEND (RFC 9051 §6.3.12,
//! §6.4.6–6.4.8, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 7162 UNCHANGEDSINCE,
//! RFC 3502 MULTIAPPEND).

use std::collections::HashMap;

use pochta_proto_imap::encode;
use pochta_proto_imap::types::*;
use pochta_store::{Delivery, DeliveryTarget, FlagChange, MailboxTarget, Uid};

use crate::exec::{Executor, Fail, Handled, Output, to_store_flags, write_flags};
use crate::select::{to_ranges, write_flags_line, write_permanent_flags};

/// Messages larger than this are parsed on a blocking thread.
const PARSE_INLINE_MAX: usize = 256 * 1024;

impl Executor {
    #[allow(clippy::too_many_arguments)] // one argument per part of the STORE syntax
    pub(crate) async fn store_cmd(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: &[Flag],
        out: &mut Output<'_>,
    ) -> Handled {
        let account = self.account.id;
        if unchanged_since.is_some() {
            self.enabled.condstore = true;
        }
        let condstore = self.enabled.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return Err(Fail::Bad("No mailbox selected".into()));
        };
        if !uid && sel.msn_out_of_range(set) {
            return Err(Fail::Bad("Invalid message sequence number".into()));
        }
        if sel.read_only {
            return Err(Fail::No(
                Some("READ-ONLY".into()),
                "Mailbox is read-only".into(),
            ));
        }
        let uids = sel.resolve(set, uid);
        let summaries = self
            .store
            .messages_by_uid(account, sel.id, &to_ranges(&uids))
            .await?;
        let (sys, kw) = to_store_flags(flags);
        let change = match mode {
            StoreMode::Replace => FlagChange::Set(sys, kw),
            StoreMode::Add => FlagChange::Add(sys, kw),
            StoreMode::Remove => FlagChange::Remove(sys, kw),
        };
        let ids: Vec<u64> = summaries.iter().map(|m| m.id).collect();
        let update = self
            .store
            .store_flags(account, &ids, change, unchanged_since)
            .await?;
        if !update.changed.is_empty() {
            sel.own(update.state);
        }
        if sel.learn_keywords(update.changed.iter().flat_map(|c| &c.keywords)) {
            write_flags_line(&mut out.buf, &sel.keywords);
            write_permanent_flags(&mut out.buf, &sel.keywords, sel.read_only);
        }
        let changed: HashMap<u64, &pochta_store::FlagState> =
            update.changed.iter().map(|c| (c.id, c)).collect();
        for m in &summaries {
            if update.skipped.contains(&m.id) {
                continue;
            }
            let Some(msn) = sel.msn(m.uid) else { continue };
            let now = changed.get(&m.id);
            if silent {
                // RFC 7162 §3.1.3: with CONDSTORE, .SILENT still reports MODSEQ.
                if let (true, Some(c)) = (condstore, now) {
                    out.buf.extend_from_slice(
                        format!("* {msn} FETCH (UID {} MODSEQ ({}))\r\n", m.uid, c.modseq)
                            .as_bytes(),
                    );
                }
                continue;
            }
            out.buf
                .extend_from_slice(format!("* {msn} FETCH (UID {} FLAGS ", m.uid).as_bytes());
            match now {
                Some(c) => write_flags(&mut out.buf, c.flags, &c.keywords),
                None => write_flags(&mut out.buf, m.flags, &m.keywords),
            }
            if condstore {
                let modseq = now.map(|c| c.modseq).unwrap_or(m.modseq);
                out.buf
                    .extend_from_slice(format!(" MODSEQ ({modseq})").as_bytes());
            }
            out.buf.extend_from_slice(b")\r\n");
        }
        if !update.skipped.is_empty() {
            let by_id: HashMap<u64, Uid> = summaries.iter().map(|m| (m.id, m.uid)).collect();
            let mut nums: Vec<u32> = update
                .skipped
                .iter()
                .filter_map(|id| by_id.get(id))
                .filter_map(|&u| if uid { Some(u) } else { sel.msn(u) })
                .collect();
            nums.sort_unstable();
            let mut code = b"MODIFIED ".to_vec();
            encode::sequence_set(&mut code, &nums);
            return Ok((
                Some(String::from_utf8_lossy(&code).into_owned()),
                "Conditional STORE failed for some messages".into(),
            ));
        }
        Ok((None, "STORE completed".into()))
    }

    pub(crate) async fn copy_or_move(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        raw: &[u8],
        is_move: bool,
        out: &mut Output<'_>,
    ) -> Handled {
        let word = if is_move { "MOVE" } else { "COPY" };
        let name = self.mailbox_name(raw)?;
        let account = self.account.id;
        let vanished = self.enabled.qresync;
        let tree = self.tree().await?;
        let Some(dest) = tree.find(&name).cloned() else {
            return Err(Fail::No(
                Some("TRYCREATE".into()),
                format!("Mailbox doesn't exist: {name}"),
            ));
        };
        let Some(sel) = self.selected.as_mut() else {
            return Err(Fail::Bad("No mailbox selected".into()));
        };
        if !uid && sel.msn_out_of_range(set) {
            return Err(Fail::Bad("Invalid message sequence number".into()));
        }
        if is_move && sel.read_only {
            return Err(Fail::No(
                Some("READ-ONLY".into()),
                "Mailbox is read-only".into(),
            ));
        }
        let uids = sel.resolve(set, uid);
        let summaries = self
            .store
            .messages_by_uid(account, sel.id, &to_ranges(&uids))
            .await?;
        if summaries.is_empty() {
            return Ok((None, format!("{word} completed (nothing to do)")));
        }
        let ids: Vec<u64> = summaries.iter().map(|m| m.id).collect();
        let (src, dst): (Vec<Uid>, Vec<Uid>) = if is_move {
            if dest.id == sel.id {
                return Ok((None, "MOVE completed (same mailbox)".into()));
            }
            let moved = self.store.move_messages(account, &ids, dest.id).await?;
            if let Some(m) = moved.first() {
                sel.own(m.modseq);
            }
            moved.iter().map(|m| (m.old_uid, m.new_uid)).unzip()
        } else {
            let copies = self.store.copy_messages(account, &ids, dest.id).await?;
            let src: Vec<Uid> = summaries.iter().map(|m| m.uid).collect();
            (src, copies.iter().map(|c| c.uid).collect())
        };
        let mut code = format!("COPYUID {} ", dest.uid_validity).into_bytes();
        encode::sequence_set(&mut code, &src);
        code.push(b' ');
        encode::sequence_set(&mut code, &dst);
        let code = String::from_utf8_lossy(&code).into_owned();
        if !is_move {
            return Ok((Some(code), "COPY completed".into()));
        }
        // RFC 6851 §4.3: COPYUID in an untagged OK, then the expunges.
        out.buf
            .extend_from_slice(format!("* OK [{code}] Moved\r\n").as_bytes());
        let mut gone = src.clone();
        gone.sort_unstable();
        if vanished {
            out.buf.extend_from_slice(b"* VANISHED ");
            encode::sequence_set(&mut out.buf, &gone);
            out.buf.extend_from_slice(b"\r\n");
        } else {
            for &u in gone.iter().rev() {
                if let Some(msn) = sel.msn(u) {
                    out.buf
                        .extend_from_slice(format!("* {msn} EXPUNGE\r\n").as_bytes());
                }
            }
        }
        sel.remove_own(&gone);
        Ok((None, "MOVE completed".into()))
    }

    pub(crate) async fn append(&mut self, raw: &[u8], messages: Vec<AppendMessage>) -> Handled {
        let name = self.mailbox_name(raw)?;
        let tree = self.tree().await?;
        let Some(dest) = tree.find(&name).cloned() else {
            return Err(Fail::No(
                Some("TRYCREATE".into()),
                format!("Mailbox doesn't exist: {name}"),
            ));
        };
        let account = self.account.id;
        let mut appended: Vec<(u64, Uid)> = Vec::with_capacity(messages.len());
        for msg in messages {
            if msg.data.len() as u64 > self.settings.max_append {
                self.undo_append(&appended).await;
                return Err(Fail::No(
                    Some("TOOBIG".into()),
                    "Message is larger than the APPENDLIMIT".into(),
                ));
            }
            let data = canonical_crlf(msg.data);
            let meta = if data.len() > PARSE_INLINE_MAX {
                let copy = data.clone();
                tokio::task::spawn_blocking(move || pochta_message::parse(&copy))
                    .await
                    .map_err(|_| Fail::No(Some("SERVERBUG".into()), "Parser failed".into()))?
            } else {
                pochta_message::parse(&data)
            };
            let (flags, keywords) = to_store_flags(&msg.flags);
            let internal_date = msg.date.map(|d| d.unix()).unwrap_or_else(now);
            let result = self
                .store
                .deliver(Delivery {
                    raw: data,
                    meta,
                    internal_date,
                    targets: vec![DeliveryTarget {
                        account,
                        mailbox: MailboxTarget::Id(dest.id),
                        flags,
                        keywords,
                    }],
                    outbound: None,
                })
                .await;
            match result {
                Ok(d) => {
                    if let Some(first) = d.first() {
                        appended.push((first.id, first.uid));
                    }
                }
                Err(e) => {
                    // MULTIAPPEND is all or nothing (RFC 3502 §6.3.11).
                    self.undo_append(&appended).await;
                    return Err(e.into());
                }
            }
        }
        let uids: Vec<Uid> = appended.iter().map(|(_, u)| *u).collect();
        let mut code = format!("APPENDUID {} ", dest.uid_validity).into_bytes();
        encode::sequence_set(&mut code, &uids);
        Ok((
            Some(String::from_utf8_lossy(&code).into_owned()),
            "APPEND completed".into(),
        ))
    }

    async fn undo_append(&self, appended: &[(u64, Uid)]) {
        if appended.is_empty() {
            return;
        }
        let ids: Vec<u64> = appended.iter().map(|(id, _)| *id).collect();
        if let Err(e) = self.store.expunge(self.account.id, &ids).await {
            tracing::error!(error = %e, "cannot undo a partial MULTIAPPEND");
        }
    }
}

/// Bare LF becomes CRLF and a final line end is added, so every stored message
/// is canonical (RFC 5322 §2.3) and POP3/IMAP sizes match what they send.
pub(crate) fn canonical_crlf(data: Vec<u8>) -> Vec<u8> {
    let bare = data
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
    let mut out = if bare {
        let mut v = Vec::with_capacity(data.len() + data.len() / 32);
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
                v.push(b'\r');
            }
            v.push(b);
        }
        v
    } else {
        data
    };
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        if out.ends_with(b"\r") {
            out.push(b'\n');
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::canonical_crlf;

    #[test]
    fn appended_messages_become_canonical() {
        assert_eq!(canonical_crlf(b"a\nb\r\nc".to_vec()), b"a\r\nb\r\nc\r\n");
        assert_eq!(canonical_crlf(b"a\r\n".to_vec()), b"a\r\n");
        assert_eq!(canonical_crlf(b"\nx\r".to_vec()), b"\r\nx\r\n");
        assert_eq!(canonical_crlf(Vec::new()), b"");
    }
}
