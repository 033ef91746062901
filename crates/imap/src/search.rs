//! SEARCH, SORT and THREAD (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 5182
//! SEARCHRES, RFC 5256 SORT/THREAD, RFC 5267 ESORT, RFC 7162 MODSEQ).

use pochta_message::MessageMeta;
use pochta_proto_imap::encode;
use pochta_proto_imap::search::{self as matcher, Matcher, SearchContext};
use pochta_proto_imap::types::*;
use pochta_proto_imap::view::MessageView;
use std::sync::Arc;

use pochta_store::{MessageRecord, Uid};

use crate::exec::{Executor, Fail, Handled, Output};
use crate::fetch::view;

/// Messages whose bytes are loaded at once for BODY/TEXT searches.
const RAW_BATCH: usize = 50;

/// A message that matched: sequence number, UID, MODSEQ, index into the records.
#[derive(Debug, Clone, Copy)]
struct Hit {
    msn: u32,
    uid: Uid,
    modseq: u64,
    index: usize,
}

fn check_charset(charset: Option<&str>) -> Result<(), Fail> {
    match charset.map(str::to_ascii_uppercase).as_deref() {
        None | Some("UTF-8") | Some("US-ASCII") => Ok(()),
        Some(_) => Err(Fail::No(
            Some("BADCHARSET (UTF-8 US-ASCII)".into()),
            "Unsupported charset".into(),
        )),
    }
}

fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(v) => v.iter().any(uses_modseq),
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        _ => false,
    }
}

impl Executor {
    /// The selected mailbox's light records (what SEARCH, SORT and THREAD
    /// read), from the [`pochta_store::SharedLight`] every session with this mailbox
    /// selected shares, loaded by the first of them and brought up to date
    /// from the change log when a change was published.
    async fn refresh_light(&mut self) -> Result<Arc<Vec<MessageRecord>>, Fail> {
        let account = self.account.id;
        let notified = *self.notified.borrow();
        let registry = self.settings.light.clone();
        let Some(sel) = self.selected.as_mut() else {
            return Err(Fail::Bad("No mailbox selected".into()));
        };
        let mailbox = sel.id;
        let shared = match sel
            .light
            .as_ref()
            .filter(|c| c.scope() == (account, Some(mailbox)))
        {
            Some(shared) => shared.clone(),
            None => {
                let shared = registry.get(account, Some(mailbox));
                sel.light = Some(shared.clone());
                shared
            }
        };
        Ok(shared.records(self.store.as_ref(), Some(notified)).await?)
    }

    /// Runs the criteria over the selected mailbox; hits in UID order. Their
    /// `index` points into the records returned with them.
    async fn matching(
        &mut self,
        key: &SearchKey,
    ) -> Result<(Vec<Hit>, Arc<Vec<MessageRecord>>), Fail> {
        let account = self.account.id;
        if uses_modseq(key) {
            self.enabled.condstore = true;
        }
        let snapshot = self.refresh_light().await?;
        let Some(sel) = self.selected.as_ref() else {
            return Err(Fail::Bad("No mailbox selected".into()));
        };
        let records: &[MessageRecord] = &snapshot;
        let compiled = Matcher::new(key);
        let ctx = SearchContext {
            max_msn: sel.exists(),
            max_uid: sel.max_uid(),
            saved: sel.saved.as_deref(),
            now: now(),
        };
        let mut hits = Vec::new();
        if matcher::needs_raw(key) {
            // BODY/TEXT/HEADER: the bytes and the full structure are needed.
            for (base, chunk) in records
                .chunks(RAW_BATCH)
                .enumerate()
                .map(|(i, c)| (i * RAW_BATCH, c))
            {
                let ids: Vec<u64> = chunk.iter().map(|r| r.summary.id).collect();
                let full = self.store.records(account, &ids).await?;
                for (offset, r) in chunk.iter().enumerate() {
                    let Some(msn) = sel.msn(r.summary.uid) else {
                        continue;
                    };
                    let meta: &MessageMeta = full
                        .iter()
                        .find(|f| f.summary.id == r.summary.id)
                        .map(|f| &f.meta)
                        .unwrap_or(&r.meta);
                    let raw = self.store.read_blob(account, r.summary.blob_id).await.ok();
                    let v = view(&r.summary, msn, meta, raw.as_deref());
                    if compiled.matches(&v, &ctx) {
                        hits.push(Hit {
                            msn,
                            uid: r.summary.uid,
                            modseq: r.summary.modseq,
                            index: base + offset,
                        });
                    }
                }
            }
        } else {
            for (index, r) in records.iter().enumerate() {
                let Some(msn) = sel.msn(r.summary.uid) else {
                    continue;
                };
                let v = view(&r.summary, msn, &r.meta, None);
                if compiled.matches(&v, &ctx) {
                    hits.push(Hit {
                        msn,
                        uid: r.summary.uid,
                        modseq: r.summary.modseq,
                        index,
                    });
                }
            }
        }
        Ok((hits, snapshot))
    }

    pub(crate) async fn search(
        &mut self,
        tag: &str,
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
        charset: Option<&str>,
        key: &SearchKey,
        out: &mut Output<'_>,
    ) -> Handled {
        check_charset(charset)?;
        let (hits, _) = self.matching(key).await?;
        let modseq = uses_modseq(key);
        let numbers: Vec<u32> = hits
            .iter()
            .map(|h| if uid { h.uid } else { h.msn })
            .collect();
        let max_modseq = hits.iter().map(|h| h.modseq).max();
        match returns {
            None => {
                out.buf.extend_from_slice(b"* SEARCH");
                for n in &numbers {
                    out.buf.extend_from_slice(format!(" {n}").as_bytes());
                }
                if let (true, Some(m)) = (modseq, max_modseq) {
                    out.buf
                        .extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
                }
                out.buf.extend_from_slice(b"\r\n");
            }
            Some(opts) => {
                let opts = if opts.is_empty() {
                    vec![SearchReturn::All]
                } else {
                    opts
                };
                if opts.contains(&SearchReturn::Save) {
                    // RFC 5182 §2.4: with MIN or MAX only those are saved.
                    let mut saved: Vec<Uid> = Vec::new();
                    let min_max =
                        opts.contains(&SearchReturn::Min) || opts.contains(&SearchReturn::Max);
                    if min_max
                        && !opts.contains(&SearchReturn::All)
                        && !opts.contains(&SearchReturn::Count)
                    {
                        if opts.contains(&SearchReturn::Min) {
                            saved.extend(hits.first().map(|h| h.uid));
                        }
                        if opts.contains(&SearchReturn::Max) {
                            saved.extend(hits.last().map(|h| h.uid));
                        }
                    } else {
                        saved = hits.iter().map(|h| h.uid).collect();
                    }
                    saved.sort_unstable();
                    saved.dedup();
                    if let Some(sel) = self.selected.as_mut() {
                        sel.saved = Some(saved);
                    }
                }
                if opts.iter().any(|o| *o != SearchReturn::Save) {
                    write_esearch(
                        &mut out.buf,
                        tag,
                        uid,
                        &opts,
                        &numbers,
                        modseq.then_some(max_modseq).flatten(),
                        false,
                    );
                }
            }
        }
        Ok((None, "SEARCH completed".into()))
    }

    #[allow(clippy::too_many_arguments)] // one argument per part of the SORT syntax
    pub(crate) async fn sort(
        &mut self,
        tag: &str,
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
        criteria: &[SortCriterion],
        charset: &str,
        key: &SearchKey,
        out: &mut Output<'_>,
    ) -> Handled {
        check_charset(Some(charset))?;
        let (hits, records) = self.matching(key).await?;
        let views = hit_views(&records, &hits);
        let order = pochta_proto_imap::sort::sort(&views, criteria);
        let numbers: Vec<u32> = order
            .iter()
            .filter_map(|&i| views.get(i))
            .map(|v| if uid { v.uid } else { v.msn })
            .collect();
        match returns {
            None => {
                out.buf.extend_from_slice(b"* SORT");
                for n in &numbers {
                    out.buf.extend_from_slice(format!(" {n}").as_bytes());
                }
                out.buf.extend_from_slice(b"\r\n");
            }
            Some(opts) => {
                let opts = if opts.is_empty() {
                    vec![SearchReturn::All]
                } else {
                    opts
                };
                write_esearch(&mut out.buf, tag, uid, &opts, &numbers, None, true);
            }
        }
        Ok((None, "SORT completed".into()))
    }

    pub(crate) async fn thread(
        &mut self,
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: &str,
        key: &SearchKey,
        out: &mut Output<'_>,
    ) -> Handled {
        check_charset(Some(charset))?;
        let (hits, records) = self.matching(key).await?;
        let views = hit_views(&records, &hits);
        let threads = pochta_proto_imap::thread::thread(&views, algorithm);
        out.buf.extend_from_slice(b"* THREAD ");
        pochta_proto_imap::thread::write_threads(&mut out.buf, &threads, uid);
        out.buf.extend_from_slice(b"\r\n");
        Ok((None, "THREAD completed".into()))
    }
}

/// `* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set [MODSEQ n]` (RFC 4731).
/// For ESORT, ALL keeps the sorted order (RFC 5267 §3.1) and MIN/MAX are the
/// first and last in that order.
fn write_esearch(
    out: &mut Vec<u8>,
    tag: &str,
    uid: bool,
    opts: &[SearchReturn],
    numbers: &[u32],
    modseq: Option<u64>,
    sorted: bool,
) {
    out.extend_from_slice(b"* ESEARCH (TAG ");
    encode::quoted(out, tag.as_bytes());
    out.push(b')');
    if uid {
        out.extend_from_slice(b" UID");
    }
    if !numbers.is_empty() {
        let (min, max) = if sorted {
            (numbers.first().copied(), numbers.last().copied())
        } else {
            (numbers.iter().min().copied(), numbers.iter().max().copied())
        };
        if let (true, Some(m)) = (opts.contains(&SearchReturn::Min), min) {
            out.extend_from_slice(format!(" MIN {m}").as_bytes());
        }
        if let (true, Some(m)) = (opts.contains(&SearchReturn::Max), max) {
            out.extend_from_slice(format!(" MAX {m}").as_bytes());
        }
    }
    if opts.contains(&SearchReturn::Count) {
        out.extend_from_slice(format!(" COUNT {}", numbers.len()).as_bytes());
    }
    if opts.contains(&SearchReturn::All) && !numbers.is_empty() {
        out.extend_from_slice(b" ALL ");
        if sorted {
            let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
            out.extend_from_slice(list.join(",").as_bytes());
        } else {
            let mut s = numbers.to_vec();
            s.sort_unstable();
            encode::sequence_set(out, &s);
        }
    }
    if let Some(m) = modseq {
        out.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The IMAP views of the hits, from the records [`Executor::matching`] returned.
fn hit_views<'a>(records: &'a [MessageRecord], hits: &[Hit]) -> Vec<MessageView<'a>> {
    hits.iter()
        .filter_map(|h| {
            records
                .get(h.index)
                .map(|r| view(&r.summary, h.msn, &r.meta, None))
        })
        .collect()
}
