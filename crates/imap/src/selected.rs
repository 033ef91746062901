//! The selected mailbox as one session sees it: message sequence numbers, and
//! the other sessions' changes it has not announced yet.
//!
//! Changes come from the store's change log, read from the last position this
//! session reached (`known`). New messages become `* N EXISTS`; flag changes
//! become `* n FETCH (FLAGS ...)`; messages that were expunged or moved away
//! become `* n EXPUNGE` (or `* VANISHED` with QRESYNC) — but only when RFC 9051
//! §7.5.1 allows: never during FETCH, STORE or SEARCH by sequence number, because
//! the client's numbers would shift under it. Until then such messages keep
//! their sequence numbers. The session's own changes are reported by the command
//! that made them; their MODSEQs are remembered so the log does not report them
//! twice.

use std::collections::{BTreeSet, HashSet};

use pochta_proto_imap::encode;
use pochta_proto_imap::types::{SeqNum, SequenceSet};
use pochta_store::{AccountId, ChangeOp, MailboxId, ModSeq, ObjectKind, Store, StoreError, Uid};

/// Change-log entries read per round trip.
const LOG_PAGE: usize = 5000;

/// Why a sequence set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// `$` without a saved search result (RFC 5182 says: an empty set; we use that).
    NoSavedResult,
}

/// The selected mailbox of a session.
#[derive(Debug)]
pub struct Selected {
    /// Store id.
    pub id: MailboxId,
    /// Its UIDVALIDITY (never changes while it exists).
    pub uid_validity: u32,
    /// EXAMINE: no changes allowed (and no \Seen from FETCH).
    pub read_only: bool,
    /// The client's view: UIDs by sequence number (index = MSN - 1).
    uids: Vec<Uid>,
    /// Arrived since the last EXISTS.
    new: BTreeSet<Uid>,
    /// Gone from the store, still numbered for the client.
    gone: BTreeSet<Uid>,
    /// Flags changed by others, not yet reported.
    flagged: BTreeSet<Uid>,
    /// MODSEQs of this session's own changes (already reported by their commands).
    own: HashSet<ModSeq>,
    /// The change log has been applied up to here.
    pub known: ModSeq,
    /// The largest MODSEQ seen for this mailbox (HIGHESTMODSEQ).
    pub highest_modseq: ModSeq,
    /// The mailbox was deleted by another session.
    pub deleted: bool,
    /// SEARCHRES: the last `SAVE`d result, as UIDs.
    pub saved: Option<Vec<Uid>>,
    /// Keywords the client was told about in FLAGS, beyond the common ones.
    pub keywords: Vec<String>,
    /// What SEARCH, SORT and THREAD read, shared with every session that has
    /// this mailbox selected (see [`pochta_store::SharedLight`]); taken by the
    /// first of them. Selecting the same mailbox again keeps it (mailbox ids
    /// are never reused).
    pub light: Option<std::sync::Arc<pochta_store::SharedLight>>,
}

/// What [`Selected::announce`] wants the caller to finish: FETCH FLAGS for these.
#[derive(Debug, Default)]
pub struct Announced {
    /// UIDs whose flags the caller must send (with their sequence numbers).
    pub flags: Vec<Uid>,
}

impl Selected {
    /// A view of `uids` (in UID order) as of change-log position `known`.
    pub fn new(
        id: MailboxId,
        uid_validity: u32,
        read_only: bool,
        uids: Vec<Uid>,
        known: ModSeq,
        highest_modseq: ModSeq,
    ) -> Selected {
        Selected {
            id,
            uid_validity,
            read_only,
            uids,
            new: BTreeSet::new(),
            gone: BTreeSet::new(),
            flagged: BTreeSet::new(),
            own: HashSet::new(),
            known,
            highest_modseq,
            deleted: false,
            saved: None,
            keywords: Vec::new(),
            light: None,
        }
    }

    /// Adds keywords the client has not seen in FLAGS yet; true if there were
    /// any, and a new FLAGS response is due (RFC 9051 §7.3.5).
    pub fn learn_keywords<'a>(&mut self, keywords: impl IntoIterator<Item = &'a String>) -> bool {
        let mut grew = false;
        for k in keywords {
            let known = self.keywords.iter().any(|o| o.eq_ignore_ascii_case(k))
                || crate::select::COMMON_KEYWORDS
                    .iter()
                    .any(|o| o.eq_ignore_ascii_case(k));
            if !known {
                self.keywords.push(k.clone());
                grew = true;
            }
        }
        grew
    }

    /// Number of messages as the client knows them (for EXISTS).
    pub fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    /// The client's UIDs in sequence order.
    pub fn uids(&self) -> &[Uid] {
        &self.uids
    }

    /// The sequence number of a UID, if the client knows it.
    pub fn msn(&self, uid: Uid) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// The UID of a sequence number.
    pub fn uid(&self, msn: u32) -> Option<Uid> {
        self.uids.get((msn as usize).checked_sub(1)?).copied()
    }

    /// The largest UID the client knows (for `*` in UID sets).
    pub fn max_uid(&self) -> Uid {
        self.uids.last().copied().unwrap_or(0)
    }

    /// True when the client knows this UID but it is gone from the store.
    pub fn is_gone(&self, uid: Uid) -> bool {
        self.gone.contains(&uid)
    }

    /// Remembers a MODSEQ this session produced (its report is the command's).
    pub fn own(&mut self, modseq: ModSeq) {
        self.own.insert(modseq);
        self.highest_modseq = self.highest_modseq.max(modseq);
    }

    /// Resolves a set to UIDs the client knows, in UID order. `uid`: the set
    /// holds UIDs (UID commands) rather than sequence numbers.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<Uid> {
        let ranges = match set {
            SequenceSet::Saved => {
                let mut v: Vec<Uid> = self
                    .saved
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .copied()
                    .filter(|u| self.uids.binary_search(u).is_ok())
                    .collect();
                v.sort_unstable();
                v.dedup();
                return v;
            }
            SequenceSet::Ranges(r) => r,
        };
        let mut out = Vec::new();
        if uid {
            let max = self.max_uid();
            for &(a, b) in ranges {
                let (a, b) = (value(a, max), value(b, max));
                let (lo, hi) = (a.min(b), a.max(b));
                let start = self.uids.partition_point(|&u| u < lo);
                let end = self.uids.partition_point(|&u| u <= hi);
                out.extend_from_slice(&self.uids[start..end]);
            }
        } else {
            let max = self.exists();
            for &(a, b) in ranges {
                let (a, b) = (value(a, max), value(b, max));
                let (lo, hi) = (a.min(b).max(1), a.max(b).min(max));
                if lo > hi {
                    continue;
                }
                out.extend_from_slice(&self.uids[(lo - 1) as usize..hi as usize]);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Catches up without the change log, which no longer reaches back to
    /// `known` (pruned while this session looked away): the store's UIDs against
    /// the client's, and the messages whose MODSEQ is past `known` as flag
    /// changes. What the log would have said, less the order of events.
    async fn resync(&mut self, store: &dyn Store, account: AccountId) -> Result<(), StoreError> {
        // The state first: whatever commits after it is read from the log next time.
        let state = store.state(account).await?;
        let Some(mailbox) = store
            .mailboxes(account)
            .await?
            .into_iter()
            .find(|m| m.id == self.id)
        else {
            self.deleted = true;
            self.known = state;
            return Ok(());
        };
        let now: Vec<Uid> = {
            let mut v: Vec<Uid> = store
                .uid_map(account, self.id)
                .await?
                .into_iter()
                .map(|(u, _)| u)
                .collect();
            v.sort_unstable();
            v
        };
        let present = |u: &Uid| now.binary_search(u).is_ok();
        for &u in &self.uids {
            if !present(&u) && self.gone.insert(u) {
                self.flagged.remove(&u);
            }
        }
        self.new.retain(present);
        let max = self.max_uid();
        self.new.extend(now.iter().copied().filter(|&u| u > max));
        for m in store.changed_since(account, self.id, self.known).await? {
            if !self.own.contains(&m.modseq) && self.uids.binary_search(&m.uid).is_ok() {
                self.flagged.insert(m.uid);
            }
        }
        self.highest_modseq = self.highest_modseq.max(mailbox.highest_modseq);
        self.known = self.known.max(state);
        Ok(())
    }

    /// True when a sequence-number set names a message the client does not have
    /// (RFC 9051: that is a BAD for FETCH/STORE/COPY by sequence number).
    pub fn msn_out_of_range(&self, set: &SequenceSet) -> bool {
        match set {
            SequenceSet::Saved => false,
            SequenceSet::Ranges(r) => {
                let max = self.exists();
                r.iter().any(|&(a, b)| {
                    let over = |n: SeqNum| matches!(n, SeqNum::Value(v) if v > max);
                    over(a) || over(b) || (max == 0 && !r.is_empty())
                })
            }
        }
    }

    /// Reads the change log past `known` and files what concerns this mailbox.
    pub async fn pull(&mut self, store: &dyn Store, account: AccountId) -> Result<(), StoreError> {
        loop {
            let log = match store.change_log(account, self.known, LOG_PAGE).await {
                Ok(log) => log,
                Err(StoreError::Pruned { .. }) => return self.resync(store, account).await,
                Err(e) => return Err(e),
            };
            let more = log.len() == LOG_PAGE;
            for c in &log {
                self.known = self.known.max(c.modseq);
                if c.kind == ObjectKind::Mailbox {
                    if c.id == self.id && c.op == ChangeOp::Destroyed {
                        self.deleted = true;
                    }
                    continue;
                }
                if c.mailbox_id != Some(self.id) {
                    continue;
                }
                let Some(uid) = c.uid else { continue };
                self.highest_modseq = self.highest_modseq.max(c.modseq);
                if self.own.contains(&c.modseq) {
                    continue;
                }
                let known = self.uids.binary_search(&uid).is_ok();
                match c.op {
                    ChangeOp::Created | ChangeOp::Updated if !known && !self.new.contains(&uid) => {
                        if uid > self.max_uid() {
                            self.new.insert(uid);
                        }
                    }
                    ChangeOp::Created | ChangeOp::Updated => {
                        self.flagged.insert(uid);
                    }
                    ChangeOp::Destroyed | ChangeOp::LeftMailbox => {
                        if self.new.remove(&uid) {
                            // Came and went between two looks: never announced.
                        } else if known {
                            self.gone.insert(uid);
                            self.flagged.remove(&uid);
                        }
                    }
                }
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Writes the pending untagged updates: expunges (only when `allow_expunge`),
    /// then EXISTS, and returns the UIDs whose FETCH FLAGS the caller must write.
    pub fn announce(
        &mut self,
        out: &mut Vec<u8>,
        allow_expunge: bool,
        vanished: bool,
    ) -> Announced {
        if allow_expunge && !self.gone.is_empty() {
            let gone: Vec<Uid> = std::mem::take(&mut self.gone).into_iter().collect();
            if vanished {
                out.extend_from_slice(b"* VANISHED ");
                encode::sequence_set(out, &gone);
                out.extend_from_slice(b"\r\n");
            } else {
                // Highest numbers first, so each number is right when it is read.
                for &u in gone.iter().rev() {
                    if let Some(msn) = self.msn(u) {
                        out.extend_from_slice(format!("* {msn} EXPUNGE\r\n").as_bytes());
                    }
                }
            }
            self.uids.retain(|u| gone.binary_search(u).is_err());
        }
        if !self.new.is_empty() {
            self.uids.extend(std::mem::take(&mut self.new));
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.uids.len()).as_bytes());
        }
        let flags: Vec<Uid> = std::mem::take(&mut self.flagged)
            .into_iter()
            .filter(|u| !self.gone.contains(u) && self.uids.binary_search(u).is_ok())
            .collect();
        Announced { flags }
    }

    /// Removes UIDs this session expunged itself (already announced by it).
    pub fn remove_own(&mut self, uids: &[Uid]) {
        self.uids.retain(|u| uids.binary_search(u).is_err());
        for u in uids {
            self.gone.remove(u);
            self.flagged.remove(u);
        }
    }
}

impl Selected {
    /// The UIDs of `set` (all when `None`; `*` is `last`) up to `last` that
    /// this view does not hold, as sorted ranges: what VANISHED (EARLIER) must
    /// cover when the change log no longer says which went when. RFC 7162
    /// §3.2.10 lets it name UIDs the client never had; clients ignore those.
    pub fn absent(&self, set: Option<&SequenceSet>, last: Uid) -> Vec<(Uid, Uid)> {
        let mut want: Vec<(Uid, Uid)> = match set {
            None => vec![(1, last)],
            Some(SequenceSet::Saved) => Vec::new(),
            Some(SequenceSet::Ranges(r)) => r
                .iter()
                .map(|&(a, b)| {
                    let (a, b) = (value(a, last), value(b, last));
                    (a.min(b).max(1), a.max(b).min(last))
                })
                .collect(),
        };
        want.retain(|(lo, hi)| lo <= hi);
        want.sort_unstable();
        let mut out: Vec<(Uid, Uid)> = Vec::new();
        let mut push = |lo: Uid, hi: Uid| match out.last_mut() {
            Some(prev) if u64::from(prev.1) + 1 >= u64::from(lo) => prev.1 = prev.1.max(hi),
            _ => out.push((lo, hi)),
        };
        for (lo, hi) in want {
            // Gaps between the held UIDs inside lo..=hi.
            let mut next = u64::from(lo);
            let from = self.uids.partition_point(|&u| u < lo);
            for &u in self.uids[from..].iter().take_while(|&&u| u <= hi) {
                if u64::from(u) > next {
                    push(next as Uid, u - 1);
                }
                next = u64::from(u) + 1;
            }
            if next <= u64::from(hi) {
                push(next as Uid, hi);
            }
        }
        out
    }
}

fn value(n: SeqNum, max: u32) -> u32 {
    match n {
        SeqNum::Value(v) => v,
        SeqNum::Star => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(r: &[(SeqNum, SeqNum)]) -> SequenceSet {
        SequenceSet::Ranges(r.to_vec())
    }

    #[test]
    fn absent_uids_are_the_gaps_of_the_view() {
        let s = Selected::new(1, 1, false, vec![3, 5, 9, 10], 0, 0);
        let v = SeqNum::Value;
        assert_eq!(s.absent(None, 12), vec![(1, 2), (4, 4), (6, 8), (11, 12)]);
        assert_eq!(s.absent(None, 0), vec![]);
        assert_eq!(s.absent(Some(&SequenceSet::Saved), 12), vec![]);
        let ranges = set(&[
            (v(9), v(4)),
            (v(12), SeqNum::Star),
            (v(1), v(1)),
            (v(2), v(2)),
        ]);
        assert_eq!(s.absent(Some(&ranges), 10), vec![(1, 2), (4, 4), (6, 8)]);
        let all = set(&[(v(0), v(u32::MAX))]);
        assert_eq!(
            s.absent(Some(&all), u32::MAX),
            vec![(1, 2), (4, 4), (6, 8), (11, u32::MAX)]
        );
    }

    #[test]
    fn resolves_sequence_numbers_and_uids() {
        let s = Selected::new(1, 1, false, vec![3, 5, 9, 10], 0, 0);
        use SeqNum::*;
        assert_eq!(s.resolve(&set(&[(Value(2), Value(3))]), false), vec![5, 9]);
        assert_eq!(s.resolve(&set(&[(Value(3), Star)]), false), vec![9, 10]);
        assert_eq!(
            s.resolve(&set(&[(Star, Value(3))]), false),
            vec![9, 10],
            "a:b with a > b"
        );
        assert_eq!(s.resolve(&set(&[(Value(4), Value(9))]), true), vec![5, 9]);
        assert_eq!(
            s.resolve(&set(&[(Value(11), Star)]), true),
            vec![10],
            "n:* includes the largest UID"
        );
        assert_eq!(
            s.resolve(&set(&[(Value(20), Value(30))]), true),
            Vec::<u32>::new()
        );
        assert_eq!(
            s.resolve(&set(&[(Value(1), Value(1)), (Value(1), Value(2))]), false),
            vec![3, 5]
        );
        assert!(s.msn_out_of_range(&set(&[(Value(5), Value(5))])));
        assert!(!s.msn_out_of_range(&set(&[(Value(4), Star)])));
        assert_eq!(
            (s.msn(9), s.uid(1), s.uid(0), s.uid(5)),
            (Some(3), Some(3), None, None)
        );
    }

    #[test]
    fn announcements_keep_numbers_until_expunges_are_allowed() {
        let mut s = Selected::new(1, 1, false, vec![1, 2, 3, 4], 0, 0);
        s.gone.insert(2);
        s.gone.insert(4);
        s.new.insert(7);
        s.flagged.insert(3);
        let mut out = Vec::new();
        let a = s.announce(&mut out, false, false);
        assert_eq!(String::from_utf8(out).unwrap(), "* 5 EXISTS\r\n");
        assert_eq!(a.flags, vec![3]);
        assert_eq!(s.msn(4), Some(4), "still numbered");
        let mut out = Vec::new();
        s.announce(&mut out, true, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n"
        );
        assert_eq!(s.uids(), &[1, 3, 7]);
        s.gone.insert(1);
        s.gone.insert(3);
        let mut out = Vec::new();
        s.announce(&mut out, true, true);
        assert_eq!(String::from_utf8(out).unwrap(), "* VANISHED 1,3\r\n");
    }
}
