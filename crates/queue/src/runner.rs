//! The loop that leases due recipients and runs deliveries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pochta_addr::Address;
use pochta_store::{
    AttemptOutcome, Delivery, DeliveryTarget, Outbound, OutboundRecipient, QueuedMessage,
    Resolution, Store, dsn_notify,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dsn::{self, DsnAction, DsnInput, DsnRecipient};
use crate::{Failure, Job, JobResults, QueueSettings, RcptResult, Transport, is_local, wants};

/// How long a report (bounce) addressed to another server may wait in the queue.
const REPORT_EXPIRY: i64 = 5 * 86400;

/// The queue runner. One per server process.
pub struct Queue {
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    settings: QueueSettings,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Where the runner stands: jobs waiting per domain, deliveries running.
#[derive(Default)]
struct Board {
    pending: HashMap<String, VecDeque<Job>>,
    active: HashMap<String, usize>,
    running: usize,
    /// Jobs leased and not yet recorded.
    held: usize,
}

impl Queue {
    /// A runner delivering the queue of `store` through `transport`.
    pub fn new(
        store: Arc<dyn Store>,
        transport: Arc<dyn Transport>,
        settings: QueueSettings,
    ) -> Arc<Queue> {
        Arc::new(Queue {
            store,
            transport,
            settings,
        })
    }

    /// Runs until `shutdown`. Deliveries still running then are abandoned: their
    /// leases are released at the next start, and they are attempted again.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // Leases left by a previous process are void: nothing is running now.
        match self.store.queue_release_leases().await {
            Ok(n) if n > 0 => {
                tracing::info!(released = n, "queue: leases of the last run released")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "queue: cannot release old leases"),
        }
        let mut wake = self.store.subscribe_queue();
        wake.borrow_and_update();
        let (fin_tx, mut fin_rx) = mpsc::unbounded_channel::<(String, usize)>();
        let mut board = Board::default();
        let max_held =
            (self.settings.concurrency * self.settings.messages_per_connection).clamp(1, 20_000);
        let mut failures = 0u32;
        loop {
            if board.held < max_held {
                match self
                    .store
                    .queue_due(
                        now(),
                        max_held - board.held,
                        self.settings.lease.as_secs() as i64,
                    )
                    .await
                {
                    Ok(messages) => {
                        failures = 0;
                        for m in messages {
                            for job in split_by_domain(m) {
                                let domain = domain_of(&job);
                                board.pending.entry(domain).or_default().push_back(job);
                                board.held += 1;
                            }
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "queue: cannot read due messages");
                    }
                }
            }
            self.start_workers(&mut board, &fin_tx);
            let sleep_for = if failures > 0 {
                Duration::from_secs(u64::from(failures.min(30)))
            } else {
                self.until_next_due(board.held >= max_held).await
            };
            tokio::select! {
                Some((domain, n)) = fin_rx.recv() => {
                    finish(&mut board, &domain, n);
                    // Collect everything that finished meanwhile before looking again.
                    while let Ok((domain, n)) = fin_rx.try_recv() {
                        finish(&mut board, &domain, n);
                    }
                }
                r = wake.changed() => {
                    if r.is_err() {
                        // The store is gone: nothing more to do.
                        return;
                    }
                }
                _ = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.cancelled() => {
                    tracing::info!(running = board.running, "queue: stopping");
                    return;
                }
            }
        }
    }

    /// How long to sleep when nothing happens: until the next recipient is due,
    /// at most the poll interval (changes by other processes), and not at all
    /// while the board is full (a finishing delivery wakes us anyway).
    async fn until_next_due(&self, full: bool) -> Duration {
        if full {
            return self.settings.poll;
        }
        match self.store.queue_next_due().await {
            Ok(Some(at)) => {
                let wait = (at - now()).max(0) as u64;
                // Due now but leased elsewhere (or just failed): look again soon.
                Duration::from_secs(wait.max(1)).min(self.settings.poll)
            }
            _ => self.settings.poll,
        }
    }

    fn start_workers(
        self: &Arc<Self>,
        board: &mut Board,
        fin: &mpsc::UnboundedSender<(String, usize)>,
    ) {
        let domains: Vec<String> = board
            .pending
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(d, _)| d.clone())
            .collect();
        for domain in domains {
            loop {
                if board.running >= self.settings.concurrency {
                    return;
                }
                let active = board.active.get(&domain).copied().unwrap_or(0);
                let Some(queue) = board.pending.get_mut(&domain) else {
                    break;
                };
                if queue.is_empty() || active >= self.settings.per_domain {
                    break;
                }
                // Spread the domain's jobs over the connections it may have.
                let slots = self.settings.per_domain - active;
                let take = queue
                    .len()
                    .div_ceil(slots)
                    .clamp(1, self.settings.messages_per_connection.max(1));
                let jobs: Vec<Job> = queue.drain(..take.min(queue.len())).collect();
                if queue.is_empty() {
                    board.pending.remove(&domain);
                }
                *board.active.entry(domain.clone()).or_default() += 1;
                board.running += 1;
                let me = Arc::clone(self);
                let fin = fin.clone();
                let d = domain.clone();
                let span = tracing::info_span!("relay", domain = %d);
                tokio::spawn(
                    async move {
                        let n = jobs.len();
                        me.work(&d, jobs).await;
                        let _ = fin.send((d, n));
                    }
                    .instrument(span),
                );
            }
        }
    }

    /// One delivery: loads the bodies, runs the transport, records each result as
    /// it arrives.
    async fn work(&self, domain: &str, mut jobs: Vec<Job>) {
        let mut ready = Vec::with_capacity(jobs.len());
        for mut job in jobs.drain(..) {
            match self.store.queue_blob(job.message.id).await {
                Ok(body) => {
                    job.body = Arc::new(body);
                    ready.push(job);
                }
                Err(e) => {
                    tracing::error!(queue_id = job.message.id, error = %e, "queue: cannot read the message");
                    let results = temporary_for_all(
                        &job,
                        "4.3.0",
                        &format!("cannot read the queued message: {e}"),
                    );
                    self.record(job, results).await;
                }
            }
        }
        if ready.is_empty() {
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<JobResults>();
        let copies = ready.clone();
        let deliver = self.transport.deliver(domain, ready, tx);
        let record = async {
            let mut seen = HashSet::new();
            while let Some((job, results)) = rx.recv().await {
                seen.insert(job.message.id);
                self.record(job, results).await;
            }
            seen
        };
        let ((), seen) = tokio::join!(deliver, record);
        for job in copies {
            if !seen.contains(&job.message.id) {
                tracing::warn!(
                    queue_id = job.message.id,
                    "queue: delivery ended without a result"
                );
                let results =
                    temporary_for_all(&job, "4.4.0", "delivery attempt ended without a result");
                self.record(job, results).await;
            }
        }
    }

    /// Turns one job's results into queue state and reports, in one transaction.
    async fn record(&self, job: Job, results: Vec<(u64, RcptResult)>) {
        let now = now();
        let m = &job.message;
        let mut outcomes = Vec::with_capacity(m.recipients.len());
        let mut report: Vec<DsnRecipient> = Vec::new();
        let mut delayed: Vec<DsnRecipient> = Vec::new();
        let warn_due = !self.settings.delay_warning.is_zero()
            && !m.warned
            && now >= m.created_at + self.settings.delay_warning.as_secs() as i64;
        for r in &m.recipients {
            let result = results
                .iter()
                .find(|(id, _)| *id == r.id)
                .map(|(_, res)| res.clone())
                .unwrap_or_else(|| {
                    RcptResult::Temporary(Failure {
                        status: "4.4.0".into(),
                        reply: None,
                        remote: None,
                        text: "no result for this recipient".into(),
                    })
                });
            match result {
                RcptResult::Delivered {
                    remote,
                    reply,
                    dsn_passed_on,
                } => {
                    tracing::info!(queue_id = m.id, to = %r.address, remote = %remote, reply = %reply, "relayed");
                    if wants(r.notify, dsn_notify::SUCCESS) && !dsn_passed_on {
                        report.push(DsnRecipient {
                            address: r.address.clone(),
                            orcpt: r.orcpt.clone(),
                            action: DsnAction::Relayed,
                            status: "2.0.0".into(),
                            diagnostic: Some(reply.clone()),
                            remote: Some(host_only(&remote)),
                            explanation: format!("handed to {remote}"),
                        });
                    }
                    outcomes.push((
                        r.id,
                        AttemptOutcome::Delivered {
                            remote: Some(remote),
                            reply,
                        },
                    ));
                }
                RcptResult::Temporary(f) if now < m.expires_at => {
                    let wait = self.settings.backoff(r.attempts + 1);
                    let retry_at = now + wait.as_secs() as i64;
                    tracing::info!(queue_id = m.id, to = %r.address, status = %f.status, retry_in = wait.as_secs(), error = %f.text, "deferred");
                    if warn_due && wants(r.notify, dsn_notify::DELAY) {
                        delayed.push(dsn_recipient(r, &f, DsnAction::Delayed));
                    }
                    outcomes.push((
                        r.id,
                        AttemptOutcome::Deferred {
                            retry_at,
                            error: f.text,
                            remote: f.remote,
                        },
                    ));
                }
                RcptResult::Temporary(f) => {
                    let days = (m.expires_at - m.created_at) as f64 / 86400.0;
                    let text = format!("gave up after {days:.1} days; last error: {}", f.text);
                    tracing::info!(queue_id = m.id, to = %r.address, status = %f.status, error = %text, "expired");
                    if wants(r.notify, dsn_notify::FAILURE) {
                        let mut d = dsn_recipient(r, &f, DsnAction::Failed);
                        d.explanation =
                            format!("delivery was given up after {days:.1} days; {}", f.text);
                        report.push(d);
                    }
                    outcomes.push((
                        r.id,
                        AttemptOutcome::Failed {
                            error: text,
                            remote: f.remote,
                        },
                    ));
                }
                RcptResult::Permanent(f) => {
                    tracing::info!(queue_id = m.id, to = %r.address, status = %f.status, error = %f.text, "failed");
                    if wants(r.notify, dsn_notify::FAILURE) {
                        report.push(dsn_recipient(r, &f, DsnAction::Failed));
                    }
                    outcomes.push((
                        r.id,
                        AttemptOutcome::Failed {
                            error: f.text,
                            remote: f.remote,
                        },
                    ));
                }
            }
        }
        // Failures and relays in one report; a delay warning is its own report
        // and is only sent when there is nothing final to say.
        let warned = report.is_empty() && !delayed.is_empty();
        if warned {
            report = delayed;
        }
        // Failed first: the report's subject and text follow its first recipient.
        report.sort_by_key(|r| match r.action {
            DsnAction::Failed => 0,
            DsnAction::Delayed => 1,
            DsnAction::Relayed | DsnAction::Delivered => 2,
        });
        let dsn = match (&m.mail_from, report.is_empty()) {
            (Some(sender), false) => self.report(&job, sender, &report, now).await,
            _ => None,
        };
        let mut attempt = 0;
        loop {
            match self.store.queue_record(outcomes.clone(), dsn.clone()).await {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(queue_id = m.id, error = %e, "queue: cannot record the outcome; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    // The lease keeps the recipients reserved; they are tried again
                    // after it ends or at the next start.
                    tracing::error!(queue_id = m.id, error = %e, "queue: cannot record the outcome");
                    return;
                }
            }
        }
        if warned && let Err(e) = self.store.queue_mark_warned(m.id).await {
            tracing::warn!(queue_id = m.id, error = %e, "queue: cannot mark the delay warning");
        }
    }

    /// The report as a delivery: into the sender's mailbox when the sender is
    /// local, otherwise queued with the null sender (never answered by a report).
    async fn report(
        &self,
        job: &Job,
        sender: &Address,
        recipients: &[DsnRecipient],
        now: i64,
    ) -> Option<Delivery> {
        let m = &job.message;
        let raw = dsn::build(&DsnInput {
            hostname: &self.settings.hostname,
            to: sender,
            envid: m.envid.as_deref(),
            arrival: m.created_at,
            retry_until: Some(m.expires_at),
            now,
            recipients,
            original: &job.body,
            ret_full: m.ret_full,
        });
        let meta = pochta_message::parse(&raw);
        let mut delivery = Delivery {
            raw,
            meta,
            internal_date: now,
            targets: Vec::new(),
            outbound: None,
        };
        if is_local(&self.settings, sender) {
            match self.store.resolve(sender).await {
                Ok(Resolution::Accounts(ids)) => {
                    delivery.targets = ids.into_iter().map(DeliveryTarget::inbox).collect();
                }
                Ok(Resolution::Unknown) => {
                    tracing::warn!(queue_id = m.id, sender = %sender, "queue: the sender no longer exists; report dropped");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(queue_id = m.id, error = %e, "queue: cannot look up the sender; report dropped");
                    return None;
                }
            }
        } else {
            delivery.outbound = Some(Outbound {
                mail_from: None,
                recipients: vec![OutboundRecipient {
                    address: sender.clone(),
                    orcpt: None,
                    notify: 0,
                }],
                envid: None,
                ret_full: false,
                account: None,
                expires_at: now + REPORT_EXPIRY,
                smtputf8: !sender.is_ascii(),
                eightbit: delivery.raw.iter().any(|b| *b >= 0x80),
            });
        }
        Some(delivery)
    }
}

fn finish(board: &mut Board, domain: &str, n: usize) {
    board.running = board.running.saturating_sub(1);
    board.held = board.held.saturating_sub(n);
    if let Some(a) = board.active.get_mut(domain) {
        *a = a.saturating_sub(1);
        if *a == 0 {
            board.active.remove(domain);
        }
    }
}

fn dsn_recipient(
    r: &pochta_store::QueuedRecipient,
    f: &Failure,
    action: DsnAction,
) -> DsnRecipient {
    DsnRecipient {
        address: r.address.clone(),
        orcpt: r.orcpt.clone(),
        action,
        status: f.status.clone(),
        diagnostic: f.reply.clone(),
        remote: f.remote.as_deref().map(host_only),
        explanation: f.text.clone(),
    }
}

/// `mx.example.net` from `mx.example.net [192.0.2.1]`.
fn host_only(remote: &str) -> String {
    let first = remote.split_whitespace().next().unwrap_or(remote);
    first
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

fn temporary_for_all(job: &Job, status: &str, text: &str) -> Vec<(u64, RcptResult)> {
    job.message
        .recipients
        .iter()
        .map(|r| {
            (
                r.id,
                RcptResult::Temporary(Failure {
                    status: status.into(),
                    reply: None,
                    remote: None,
                    text: text.into(),
                }),
            )
        })
        .collect()
}

fn domain_of(job: &Job) -> String {
    job.message
        .recipients
        .first()
        .map(|r| r.address.domain().as_str().to_string())
        .unwrap_or_default()
}

/// One job per destination domain of a leased message.
fn split_by_domain(m: QueuedMessage) -> Vec<Job> {
    let mut by_domain: Vec<(String, Vec<pochta_store::QueuedRecipient>)> = Vec::new();
    let mut template = m;
    for r in std::mem::take(&mut template.recipients) {
        let d = r.address.domain().as_str().to_string();
        match by_domain.iter_mut().find(|(x, _)| *x == d) {
            Some((_, v)) => v.push(r),
            None => by_domain.push((d, vec![r])),
        }
    }
    by_domain
        .into_iter()
        .map(|(_, recipients)| {
            let mut message = template.clone();
            message.recipients = recipients;
            Job {
                message,
                body: Arc::new(Vec::new()),
            }
        })
        .collect()
}
