//! The queue runner against a real store and a scripted transport: scheduling,
//! retries, expiry, limits and reports.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pochta_addr::{Address, Domain};
use pochta_queue::{Failure, Job, JobResults, Queue, QueueSettings, RcptResult, Transport};
use pochta_store::*;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// What the fake remote does for a recipient, by local part: `ok`, `temp`,
/// `perm`, `silent` (no report), `tempthenok` (fails once), `okdsn` (delivered,
/// DSN passed on).
struct Script {
    calls: Mutex<Vec<(String, usize)>>,
    attempts: Mutex<HashMap<String, u32>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight: Mutex<HashMap<String, usize>>,
    delay: Duration,
}

impl Script {
    fn new(delay: Duration) -> Arc<Script> {
        Arc::new(Script {
            calls: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            max_in_flight: Mutex::new(HashMap::new()),
            delay,
        })
    }
}

#[async_trait::async_trait]
impl Transport for Script {
    async fn deliver(&self, domain: &str, jobs: Vec<Job>, done: UnboundedSender<JobResults>) {
        {
            let mut f = self.in_flight.lock().unwrap();
            let n = f.entry(domain.to_string()).or_default();
            *n += 1;
            let mut m = self.max_in_flight.lock().unwrap();
            let max = m.entry(domain.to_string()).or_default();
            *max = (*max).max(*n);
        }
        self.calls
            .lock()
            .unwrap()
            .push((domain.to_string(), jobs.len()));
        for job in jobs {
            tokio::time::sleep(self.delay).await;
            assert!(!job.body.is_empty(), "the runner loads the body");
            let mut results = Vec::new();
            let mut silent = false;
            for r in &job.message.recipients {
                let local = r.address.local().to_string();
                let n = {
                    let mut a = self.attempts.lock().unwrap();
                    let n = a.entry(r.address.key()).or_default();
                    *n += 1;
                    *n
                };
                let fail = |status: &str, code: &str| Failure {
                    status: status.into(),
                    reply: Some(format!("{code} {status} <{}>: scripted", r.address)),
                    remote: Some(format!("mx.{domain} [192.0.2.1]")),
                    text: format!("mx.{domain} said {code}"),
                };
                let res = match local.as_str() {
                    "temp" => RcptResult::Temporary(fail("4.2.0", "450")),
                    "perm" => RcptResult::Permanent(fail("5.1.1", "550")),
                    "tempthenok" if n == 1 => RcptResult::Temporary(fail("4.2.0", "451")),
                    "silent" => {
                        silent = true;
                        continue;
                    }
                    other => RcptResult::Delivered {
                        remote: format!("mx.{domain} [192.0.2.1]"),
                        reply: "250 2.0.0 ok".into(),
                        dsn_passed_on: other == "okdsn",
                    },
                };
                results.push((r.id, res));
            }
            if !silent {
                done.send((job, results)).unwrap();
            }
        }
        *self.in_flight.lock().unwrap().get_mut(domain).unwrap() -= 1;
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    alice: Account,
    script: Arc<Script>,
    stop: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn settings() -> QueueSettings {
    let mut s = QueueSettings::new(
        "mx.example.com",
        vec![Domain::parse("example.com").unwrap()],
    );
    s.retry = Duration::from_secs(1);
    s.max_retry = Duration::from_secs(2);
    s.poll = Duration::from_millis(100);
    s.delay_warning = Duration::ZERO;
    s
}

async fn world(settings: QueueSettings, delay: Duration) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let alice = store
        .create_account(NewAccount {
            address: addr("alice@example.com"),
            password_hash: "$argon2id$dummy".into(),
            quota: None,
        })
        .await
        .unwrap();
    let script = Script::new(delay);
    let queue = Queue::new(store.clone(), script.clone(), settings);
    let stop = CancellationToken::new();
    tokio::spawn(queue.run(stop.clone()));
    World {
        _dir: dir,
        store,
        alice,
        script,
        stop,
    }
}

impl World {
    async fn send(&self, from: Option<&str>, rcpts: &[(&str, u8)], expires_in: i64) -> u64 {
        let raw = format!(
            "From: alice@example.com\r\nSubject: s{}\r\nMessage-ID: <{}@example.com>\r\n\r\nhello\r\n",
            rand_id(),
            rand_id()
        )
        .into_bytes();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        self.store
            .deliver(Delivery {
                meta: pochta_message::parse(&raw),
                raw,
                internal_date: now,
                targets: vec![],
                outbound: Some(Outbound {
                    mail_from: from.map(addr),
                    recipients: rcpts
                        .iter()
                        .map(|(r, notify)| OutboundRecipient {
                            address: addr(r),
                            orcpt: Some(format!("rfc822;{r}")),
                            notify: *notify,
                        })
                        .collect(),
                    envid: Some("ENV-7".into()),
                    ret_full: true,
                    account: Some(self.alice.id),
                    expires_at: now + expires_in,
                    smtputf8: false,
                    eightbit: false,
                }),
            })
            .await
            .unwrap();
        self.store
            .queue_list()
            .await
            .unwrap()
            .last()
            .map(|m| m.id)
            .unwrap_or(0)
    }

    /// Waits (bounded) until the queue is empty.
    async fn drained(&self) {
        for _ in 0..200 {
            if self.store.queue_list().await.unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "queue not empty: {:?}",
            self.store.queue_list().await.unwrap()
        );
    }

    async fn reports(&self) -> Vec<String> {
        let ib = self
            .store
            .mailboxes(self.alice.id)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.role == Some(Role::Inbox))
            .unwrap();
        let mut out = Vec::new();
        for m in self.store.messages(self.alice.id, ib.id).await.unwrap() {
            let blob = self
                .store
                .read_blob(self.alice.id, m.blob_id)
                .await
                .unwrap();
            out.push(String::from_utf8_lossy(&blob).into_owned());
        }
        out
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn each_domain_gets_one_job_and_delivered_mail_leaves() {
    let w = world(settings(), Duration::ZERO).await;
    w.send(
        Some("alice@example.com"),
        &[
            ("a@one.example", 0),
            ("b@one.example", 0),
            ("c@two.example", 0),
        ],
        3600,
    )
    .await;
    w.drained().await;
    let mut calls = w.script.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        [("one.example".into(), 1), ("two.example".into(), 1)]
    );
    assert!(w.reports().await.is_empty(), "no report for plain success");
}

#[tokio::test]
async fn temporary_failures_are_retried_with_growing_waits() {
    let w = world(settings(), Duration::ZERO).await;
    let id = w
        .send(
            Some("alice@example.com"),
            &[("tempthenok@one.example", 0)],
            3600,
        )
        .await;
    // The first attempt fails: the recipient waits about a second. Up to 20 s
    // for that first attempt: on a loaded machine (CI beside other work) two
    // seconds were once not enough for the send and the deferral to commit.
    let mut deferred = None;
    for _ in 0..1000 {
        let q = w.store.queue_get(id).await.unwrap();
        if let Some(m) = q
            && m.recipients[0].attempts == 1
        {
            deferred = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = deferred.expect("first attempt recorded");
    let r = &m.recipients[0];
    assert_eq!(r.state, QueueState::Queued);
    assert_eq!(r.last_error.as_deref(), Some("mx.one.example said 451"));
    assert_eq!(r.remote.as_deref(), Some("mx.one.example [192.0.2.1]"));
    w.drained().await;
    assert_eq!(
        w.script.attempts.lock().unwrap()["tempthenok@one.example"],
        2
    );
    assert!(w.reports().await.is_empty());
}

#[tokio::test]
async fn a_permanent_failure_bounces_to_the_sender_with_the_reply() {
    let w = world(settings(), Duration::ZERO).await;
    w.send(
        Some("alice@example.com"),
        &[("perm@one.example", 0), ("fine@one.example", 0)],
        3600,
    )
    .await;
    w.drained().await;
    let reports = w.reports().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert!(
        r.contains("Subject: Undelivered mail returned to sender"),
        "{r}"
    );
    assert!(
        r.contains("Final-Recipient: rfc822; perm@one.example"),
        "{r}"
    );
    assert!(
        r.contains("Original-Recipient: rfc822;perm@one.example"),
        "{r}"
    );
    assert!(r.contains("Original-Envelope-Id: ENV-7"), "{r}");
    assert!(r.contains("Action: failed\r\nStatus: 5.1.1"), "{r}");
    assert!(
        r.contains("Diagnostic-Code: smtp; 550 5.1.1 <perm@one.example>: scripted"),
        "{r}"
    );
    assert!(r.contains("Remote-MTA: dns; mx.one.example"), "{r}");
    assert!(!r.contains("fine@one.example"), "only the failed one: {r}");
    assert!(r.contains("Content-Type: message/rfc822"), "{r}");
}

#[tokio::test]
async fn no_report_for_the_null_sender_or_notify_never() {
    let w = world(settings(), Duration::ZERO).await;
    w.send(None, &[("perm@one.example", 0)], 3600).await;
    w.send(
        Some("alice@example.com"),
        &[("perm@two.example", dsn_notify::NEVER)],
        3600,
    )
    .await;
    w.drained().await;
    // Give a report a moment to appear, if one were (wrongly) sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(w.reports().await.is_empty());
}

#[tokio::test]
async fn expiry_turns_a_temporary_failure_into_a_bounce() {
    let w = world(settings(), Duration::ZERO).await;
    w.send(Some("alice@example.com"), &[("temp@one.example", 0)], 0)
        .await;
    w.drained().await;
    let reports = w.reports().await;
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].contains("Action: failed\r\nStatus: 4.2.0"),
        "{}",
        reports[0]
    );
    assert!(reports[0].contains("given up after"), "{}", reports[0]);
}

#[tokio::test]
async fn success_reports_only_when_asked_and_not_passed_on() {
    let w = world(settings(), Duration::ZERO).await;
    w.send(
        Some("alice@example.com"),
        &[
            ("plain@one.example", dsn_notify::SUCCESS),
            ("okdsn@one.example", dsn_notify::SUCCESS),
            ("quiet@one.example", dsn_notify::FAILURE),
        ],
        3600,
    )
    .await;
    w.drained().await;
    let reports = w.reports().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert!(r.contains("Action: relayed"), "{r}");
    assert!(r.contains("plain@one.example"), "{r}");
    assert!(
        !r.contains("Final-Recipient: rfc822; okdsn@"),
        "passed on: {r}"
    );
    assert!(!r.contains("quiet@"), "{r}");
    assert!(
        !r.contains("Content-Type: message/rfc822"),
        "headers only: {r}"
    );
}

#[tokio::test]
async fn a_delay_warning_is_sent_once() {
    let mut s = settings();
    s.delay_warning = Duration::from_secs(1);
    s.retry = Duration::from_secs(1);
    s.max_retry = Duration::from_secs(1);
    let w = world(s, Duration::ZERO).await;
    let id = w
        .send(Some("alice@example.com"), &[("temp@one.example", 0)], 3600)
        .await;
    // Attempts happen about every second; after the third the warning is out.
    for _ in 0..100 {
        let m = w.store.queue_get(id).await.unwrap().unwrap();
        if m.recipients[0].attempts >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reports = w.reports().await;
    assert_eq!(reports.len(), 1, "exactly one warning: {reports:?}");
    assert!(reports[0].contains("Action: delayed"), "{}", reports[0]);
    assert!(reports[0].contains("Will-Retry-Until:"), "{}", reports[0]);
    assert!(w.store.queue_get(id).await.unwrap().unwrap().warned);
}

#[tokio::test]
async fn a_transport_that_forgets_a_job_defers_it() {
    let w = world(settings(), Duration::ZERO).await;
    let id = w
        .send(
            Some("alice@example.com"),
            &[("silent@one.example", 0)],
            3600,
        )
        .await;
    for _ in 0..100 {
        let m = w.store.queue_get(id).await.unwrap().unwrap();
        if m.recipients[0].attempts >= 1 {
            assert_eq!(m.recipients[0].state, QueueState::Queued);
            assert!(
                m.recipients[0]
                    .last_error
                    .as_deref()
                    .unwrap()
                    .contains("without a result"),
                "{m:?}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no attempt recorded");
}

#[tokio::test]
async fn connections_per_domain_are_limited() {
    let mut s = settings();
    s.per_domain = 2;
    s.concurrency = 10;
    s.messages_per_connection = 3;
    let w = world(s, Duration::from_millis(20)).await;
    for i in 0..20 {
        w.send(
            Some("alice@example.com"),
            &[
                (&format!("r{i}@busy.example"), 0),
                (&format!("r{i}@calm.example"), 0),
            ],
            3600,
        )
        .await;
    }
    w.drained().await;
    let max = w.script.max_in_flight.lock().unwrap().clone();
    assert!(max["busy.example"] <= 2, "{max:?}");
    assert!(max["calm.example"] <= 2, "{max:?}");
    let calls = w.script.calls.lock().unwrap().clone();
    assert!(calls.iter().all(|(_, n)| *n <= 3), "{calls:?}");
    let total: usize = calls.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 40, "every job delivered exactly once: {calls:?}");
}
