//! Micro-benchmarks of pochta's embedded store, through the `Store` trait only.
//!
//! `cargo run --release -p pochta-store-bench -- [--messages 100000]` prints:
//!
//! * the cost of parsing a 4 KiB message (done before the store is involved);
//! * deliveries/s into a fresh `SqliteStore`: sequential (each delivery waits for its
//!   own commit) and with 20 and 100 concurrent delivering tasks (group commit);
//! * the latency of the read and write operations IMAP and JMAP lean on, against a
//!   mailbox of `--messages` messages, and pruning the change log they made;
//! * read latency while a 50 MiB message is being delivered, against idle.
//!
//! These are absolute numbers for one machine, for spotting regressions between
//! commits, not claims: compare them only with numbers from the same machine.
//! See `bench/README.md`.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark binary: failing loudly on a broken setup is what we want"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pochta_addr::Address;
use pochta_store::{
    AccountId, Delivery, DeliveryTarget, FlagChange, Flags, MailboxId, MessageSummary, NewAccount,
    ObjectKind, Role, SqliteStore, Store,
};

/// Command-line options.
struct Opts {
    /// Messages in the big mailbox.
    messages: usize,
    /// Deliveries in each concurrent throughput run.
    deliveries: usize,
    /// Deliveries in the sequential run.
    sequential: usize,
    /// Size of the big message in MiB.
    big_mib: usize,
    /// Where the temporary stores are created (must be a real disk for fsync to count).
    dir: Option<PathBuf>,
}

const USAGE: &str = "usage: pochta-store-bench [--messages N] [--deliveries N] [--sequential N] [--big-mib N] [--dir PATH] [--quick]
  --messages N    messages in the big mailbox (default 100000)
  --deliveries N  deliveries in each concurrent throughput run (default 20000)
  --sequential N  deliveries in the sequential run (default 1000)
  --big-mib N     size of the big message for the reader-latency test (default 50)
  --dir PATH      directory for the temporary stores (default: the system temp dir;
                  it must be on a real disk, not tmpfs, or fsync costs nothing)
  --quick         small sizes, for a smoke test (10000 / 2000 / 200 / 10)";

fn parse_args() -> Opts {
    let mut o = Opts {
        messages: 100_000,
        deliveries: 20_000,
        sequential: 1_000,
        big_mib: 50,
        dir: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            let v = args
                .next()
                .unwrap_or_else(|| die(&format!("{name} needs a value")));
            v.parse()
                .unwrap_or_else(|_| die(&format!("{name}: {v:?} is not a number")))
        };
        match a.as_str() {
            "--messages" => o.messages = num("--messages").max(100),
            "--deliveries" => o.deliveries = num("--deliveries").max(100),
            "--sequential" => o.sequential = num("--sequential").max(10),
            "--big-mib" => o.big_mib = num("--big-mib").max(1),
            "--dir" => {
                o.dir = Some(PathBuf::from(
                    args.next().unwrap_or_else(|| die("--dir needs a value")),
                ))
            }
            "--quick" => {
                o.messages = 10_000;
                o.deliveries = 2_000;
                o.sequential = 200;
                o.big_mib = 10;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other:?}")),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}\n{USAGE}");
    std::process::exit(2)
}

// ------------------------------------------------------------------ test data

const DATE: &str = "Sat, 09 May 2026 10:00:00 +0000";

/// A plain-text message of exactly `size` octets (for `size` above ~400), with a
/// distinct Message-ID so threading does its real lookups.
fn small_message(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {i} <sender{i}@remote.example>\r\n\
         To: User <user@example.test>\r\n\
         Subject: benchmark message number {i}\r\n\
         Date: {DATE}\r\n\
         Message-ID: <bench.{i}.store@remote.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n"
    );
    const LINE: &str =
        "The quick brown fox jumps over the lazy dog, and packs my box with five dozen jugs.\r\n";
    while m.len() + LINE.len() <= size {
        m.push_str(LINE);
    }
    let rest = size.saturating_sub(m.len());
    if rest >= 2 {
        m.push_str(&"x".repeat(rest - 2));
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// A multipart message of about `mib` MiB: a short text part and a base64 attachment.
fn big_message(mib: usize) -> Vec<u8> {
    let target = mib << 20;
    let mut m = format!(
        "From: Big Sender <big@remote.example>\r\n\
         To: User <user@example.test>\r\n\
         Subject: a {mib} MiB attachment\r\n\
         Date: {DATE}\r\n\
         Message-ID: <big.{mib}@remote.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\
         \r\n\
         --b0undary\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         See the attachment.\r\n\
         --b0undary\r\n\
         Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
         Content-Disposition: attachment; filename=\"data.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n"
    )
    .into_bytes();
    m.reserve(target + 128);
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut n: usize = 0;
    while m.len() + 78 + 16 < target {
        for _ in 0..76 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            m.push(B64[(n >> 58) & 63]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--b0undary--\r\n");
    m
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn delivery(raw: Vec<u8>, account: AccountId) -> Delivery {
    let meta = pochta_message::parse(&raw);
    Delivery {
        raw,
        meta,
        internal_date: now_secs(),
        targets: vec![DeliveryTarget::inbox(account)],
        outbound: None,
    }
}

// ------------------------------------------------------------------ helpers

/// A fresh store in its own temporary directory, with `users` accounts.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    accounts: Vec<AccountId>,
}

async fn fixture(opts: &Opts, users: usize) -> Fixture {
    let dir = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d).expect("create --dir");
            tempfile::Builder::new()
                .prefix("store-bench-")
                .tempdir_in(d)
        }
        None => tempfile::Builder::new().prefix("store-bench-").tempdir(),
    }
    .expect("temporary directory");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("open the store"));
    let mut accounts = Vec::new();
    for i in 1..=users {
        let a = store
            .create_account(NewAccount {
                address: Address::parse(&format!("user{i}@example.test")).expect("address"),
                password_hash: "not-a-real-hash".into(),
                quota: None,
            })
            .await
            .expect("create account");
        accounts.push(a.id);
    }
    Fixture {
        _dir: dir,
        store,
        accounts,
    }
}

async fn inbox(store: &Arc<dyn Store>, account: AccountId) -> MailboxId {
    store
        .mailboxes(account)
        .await
        .expect("mailboxes")
        .iter()
        .find(|m| m.role == Some(Role::Inbox))
        .expect("INBOX")
        .id
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sorted copy, then the value at quantile `q` (0.0..=1.0).
fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut v = samples.to_vec();
    v.sort();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn median(samples: &[Duration]) -> Duration {
    quantile(samples, 0.5)
}

fn max(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or(Duration::ZERO)
}

fn row(what: &str, value: String) {
    println!("  {what:<58} {value}");
}

/// Delivers `deliveries` from `tasks` concurrent tasks (round-robin split); returns
/// the wall time and every delivery's latency.
async fn deliver_concurrently(
    store: &Arc<dyn Store>,
    deliveries: Vec<Delivery>,
    tasks: usize,
) -> (Duration, Vec<Duration>) {
    let mut chunks: Vec<Vec<Delivery>> = (0..tasks).map(|_| Vec::new()).collect();
    for (i, d) in deliveries.into_iter().enumerate() {
        chunks[i % tasks].push(d);
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for chunk in chunks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(chunk.len());
            for d in chunk {
                let t = Instant::now();
                store.deliver(d).await.expect("deliver");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("delivery task"));
    }
    (start.elapsed(), all)
}

// ------------------------------------------------------------------ the benchmarks

async fn bench_parse(opts: &Opts) {
    println!("\nparsing (pochta_message::parse, before the store is involved)");
    let n = 5_000;
    let raws: Vec<Vec<u8>> = (0..n).map(|i| small_message(i, 4096)).collect();
    let start = Instant::now();
    let mut parts = 0usize;
    for r in &raws {
        parts += pochta_message::parse(r).body.children().len() + 1;
    }
    let t = start.elapsed();
    std::hint::black_box(parts);
    row(
        "parse a 4 KiB text/plain message",
        format!(
            "{:8.1} µs/msg   ({:.0} msg/s on one core)",
            t.as_secs_f64() * 1e6 / n as f64,
            n as f64 / t.as_secs_f64()
        ),
    );
    let big = big_message(opts.big_mib);
    let start = Instant::now();
    let meta = pochta_message::parse(&big);
    let t = start.elapsed();
    std::hint::black_box(meta);
    row(
        &format!("parse a {} MiB multipart message", opts.big_mib),
        format!(
            "{:8.1} ms       ({:.0} MiB/s)",
            ms(t),
            big.len() as f64 / (1 << 20) as f64 / t.as_secs_f64()
        ),
    );
}

async fn bench_throughput(opts: &Opts) {
    println!(
        "\ndeliveries of 4 KiB messages into a fresh store (parsed beforehand; 20 accounts round-robin)"
    );
    // Sequential: each delivery waits for its own commit (and fsync).
    {
        let f = fixture(opts, 20).await;
        let ds: Vec<Delivery> = (0..opts.sequential)
            .map(|i| delivery(small_message(i, 4096), f.accounts[i % f.accounts.len()]))
            .collect();
        let (t, lat) = deliver_concurrently(&f.store, ds, 1).await;
        row(
            &format!("sequential, 1 task ({} deliveries)", opts.sequential),
            format!(
                "{:8.0} deliveries/s   latency p50 {:.2} ms, p99 {:.2} ms",
                opts.sequential as f64 / t.as_secs_f64(),
                ms(median(&lat)),
                ms(quantile(&lat, 0.99))
            ),
        );
    }
    for tasks in [20usize, 100] {
        let f = fixture(opts, 20).await;
        let ds: Vec<Delivery> = (0..opts.deliveries)
            .map(|i| delivery(small_message(i, 4096), f.accounts[i % f.accounts.len()]))
            .collect();
        let (t, lat) = deliver_concurrently(&f.store, ds, tasks).await;
        row(
            &format!("{tasks} concurrent tasks ({} deliveries)", opts.deliveries),
            format!(
                "{:8.0} deliveries/s   latency p50 {:.2} ms, p99 {:.2} ms",
                opts.deliveries as f64 / t.as_secs_f64(),
                ms(median(&lat)),
                ms(quantile(&lat, 0.99))
            ),
        );
    }
}

/// Fills user1's INBOX with `n` messages from 100 concurrent tasks that generate and
/// parse as they go.
async fn fill(store: &Arc<dyn Store>, account: AccountId, n: usize, offset: usize) -> Duration {
    let tasks = 100usize.min(n);
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut i = t;
            while i < n {
                let d = delivery(small_message(offset + i, 4096), account);
                store.deliver(d).await.expect("deliver");
                i += tasks;
            }
        }));
    }
    for h in handles {
        h.await.expect("fill task");
    }
    start.elapsed()
}

async fn bench_operations(opts: &Opts, f: &Fixture) {
    let store = &f.store;
    let user = f.accounts[0];
    let n = opts.messages;
    println!("\noperations on a mailbox of {n} messages of 4 KiB (median of several runs)");
    let t = fill(store, user, n, 0).await;
    row(
        "fill (100 concurrent tasks, parsing included)",
        format!(
            "{:8.1} s        ({:.0} deliveries/s)",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64()
        ),
    );
    let mailbox = inbox(store, user).await;

    let mut samples = Vec::new();
    let mut list: Vec<MessageSummary> = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        list = store.messages(user, mailbox).await.expect("messages");
        samples.push(t.elapsed());
    }
    assert_eq!(list.len(), n, "the mailbox holds every delivered message");
    row(
        &format!("messages(): list all {n} (UID FETCH 1:* FLAGS)"),
        format!(
            "{:8.2} ms       ({:.2} µs/message)",
            ms(median(&samples)),
            median(&samples).as_secs_f64() * 1e6 / n as f64
        ),
    );

    let step = (n / 50).max(1);
    let picks: Vec<&MessageSummary> = list.iter().step_by(step).take(50).collect();

    let mut samples = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for m in &picks {
            let rec = store.message(user, m.id).await.expect("message");
            std::hint::black_box(rec.expect("message exists"));
        }
        samples.push(t.elapsed());
    }
    row(
        "message() x 50 (ENVELOPE/BODYSTRUCTURE metadata)",
        format!(
            "{:8.2} ms       ({:.1} µs/message)",
            ms(median(&samples)),
            median(&samples).as_secs_f64() * 1e6 / picks.len() as f64
        ),
    );

    let mut samples = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for m in &picks {
            let raw = store.read_blob(user, m.blob_id).await.expect("read_blob");
            std::hint::black_box(raw);
        }
        samples.push(t.elapsed());
    }
    row(
        "read_blob() x 50 (4 KiB bodies)",
        format!(
            "{:8.2} ms       ({:.1} µs/message)",
            ms(median(&samples)),
            median(&samples).as_secs_f64() * 1e6 / picks.len() as f64
        ),
    );

    let mut samples = Vec::new();
    let target = list[n / 2].id;
    for i in 0..21 {
        let change = if i % 2 == 0 {
            FlagChange::Add(Flags::SEEN, vec![])
        } else {
            FlagChange::Remove(Flags::SEEN, vec![])
        };
        let t = Instant::now();
        store
            .update_flags(user, &[target], change)
            .await
            .expect("update_flags");
        samples.push(t.elapsed());
    }
    row(
        "update_flags() on one message (+ commit)",
        format!("{:8.2} ms", ms(median(&samples))),
    );

    let mut samples = Vec::new();
    for m in list.iter().skip(1).step_by(step).take(21) {
        let t = Instant::now();
        store.expunge(user, &[m.id]).await.expect("expunge");
        samples.push(t.elapsed());
    }
    row(
        "expunge() of one message (+ commit)",
        format!("{:8.2} ms", ms(median(&samples))),
    );

    let mut samples = Vec::new();
    for _ in 0..101 {
        let t = Instant::now();
        std::hint::black_box(store.state(user).await.expect("state"));
        samples.push(t.elapsed());
    }
    row("state()", format!("{:8.3} ms", ms(median(&samples))));

    let mut samples = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        std::hint::black_box(store.mailboxes(user).await.expect("mailboxes"));
        samples.push(t.elapsed());
    }
    row("mailboxes()", format!("{:8.3} ms", ms(median(&samples))));

    let state = store.state(user).await.expect("state");
    let mut samples = Vec::new();
    let mut seen = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let c = store
            .changes(user, ObjectKind::Email, state.saturating_sub(100), 500)
            .await
            .expect("changes");
        samples.push(t.elapsed());
        seen = c.created.len() + c.updated.len() + c.destroyed.len();
    }
    row(
        "changes(Email) since state-100 (a client slightly behind)",
        format!("{:8.3} ms       ({seen} objects)", ms(median(&samples))),
    );

    let mut samples = Vec::new();
    let mut seen = 0;
    let mut more = false;
    for _ in 0..7 {
        let t = Instant::now();
        let c = store
            .changes(user, ObjectKind::Email, 1, 500)
            .await
            .expect("changes");
        samples.push(t.elapsed());
        seen = c.created.len() + c.updated.len() + c.destroyed.len();
        more = c.has_more;
    }
    row(
        "changes(Email) since the start, max 500 (far behind)",
        format!(
            "{:8.3} ms       ({seen} objects, has_more {more})",
            ms(median(&samples))
        ),
    );

    let mut samples = Vec::new();
    let mut got = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let c = store
            .change_log(user, state.saturating_sub(100), 1000)
            .await
            .expect("change_log");
        samples.push(t.elapsed());
        got = c.len();
    }
    row(
        "change_log() since state-100 (IMAP QRESYNC)",
        format!("{:8.3} ms       ({got} entries)", ms(median(&samples))),
    );

    // Last: it empties the log the reads above use. The first call marks where
    // the log ends; the second removes everything up to that mark.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    store.prune_change_log(-1, now).await.expect("mark");
    let t = Instant::now();
    let removed = store
        .prune_change_log(now, now)
        .await
        .expect("prune_change_log");
    let took = t.elapsed();
    row(
        "prune_change_log(): the whole log, batches of 10 000",
        format!(
            "{:8.1} ms       ({removed} entries, {:.2} µs/entry)",
            ms(took),
            took.as_secs_f64() * 1e6 / removed.max(1) as f64
        ),
    );
}

/// Times reads of a second account (mailboxes() then messages() of its INBOX) in a
/// loop until `until` resolves, or for `idle_for` when there is nothing to wait for.
async fn read_loop(
    store: &Arc<dyn Store>,
    account: AccountId,
    mailbox: MailboxId,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        std::hint::black_box(store.mailboxes(account).await.expect("mailboxes"));
        lat.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(store.messages(account, mailbox).await.expect("messages"));
        lat.push(t.elapsed());
        // Leave the runtime a moment, as a real client's round trip would.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    lat
}

async fn bench_big_write(opts: &Opts, f: &Fixture) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let store = &f.store;
    let reader = f.accounts[1];
    let writer = f.accounts[2];
    let small = 1000;
    fill(store, reader, small, 10_000_000).await;
    let mailbox = inbox(store, reader).await;
    println!(
        "\nreads while a {} MiB message is delivered (reader: mailboxes() + messages() of a {small}-message INBOX, in a loop)",
        opts.big_mib
    );

    let big = big_message(opts.big_mib);
    let big_delivery = delivery(big, writer);

    // Idle: the same loop with no write going on, for about as long as a big write takes.
    let stop = Arc::new(AtomicBool::new(false));
    let h = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move { read_loop(&store, reader, mailbox, stop).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let idle = h.await.expect("reader");

    // During: start the reader, then the big delivery; stop the reader when it commits.
    let stop = Arc::new(AtomicBool::new(false));
    let h = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move { read_loop(&store, reader, mailbox, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    store
        .deliver(big_delivery.clone())
        .await
        .expect("big delivery");
    let write_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = h.await.expect("reader");

    row(
        "reads idle",
        format!(
            "median {:7.2} ms   max {:7.2} ms   ({} reads)",
            ms(median(&idle)),
            ms(max(&idle)),
            idle.len()
        ),
    );
    row(
        &format!("reads during the {} MiB delivery", opts.big_mib),
        format!(
            "median {:7.2} ms   max {:7.2} ms   ({} reads)",
            ms(median(&during)),
            ms(max(&during)),
            during.len()
        ),
    );
    row(
        &format!("the {} MiB delivery itself (until committed)", opts.big_mib),
        format!("{:8.1} ms", ms(write_time)),
    );

    // Writers are a different story: there is one writer thread, so a small delivery
    // queued behind the big one waits for it. Measure how long.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let d = delivery(small_message(20_000_000 + i, 4096), reader);
                let t = Instant::now();
                store.deliver(d).await.expect("deliver");
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = big_delivery;
    second.meta.message_id = Some("big.second@remote.example".into());
    store.deliver(second).await.expect("big delivery");
    stop.store(true, Ordering::Relaxed);
    let lat = probe.await.expect("probe");
    row(
        "a 4 KiB delivery queued behind it (single writer)",
        format!(
            "median {:7.2} ms   max {:7.2} ms   ({} deliveries)",
            ms(median(&lat)),
            ms(max(&lat)),
            lat.len()
        ),
    );
}

#[tokio::main]
async fn main() {
    let opts = parse_args();
    println!(
        "store micro-benchmarks (absolute, this machine) — for spotting regressions, not claims"
    );
    println!(
        "  backend SqliteStore (WAL, synchronous=FULL), {} CPUs, temp dir {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        opts.dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .display()
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("  load average at start: {}", load.trim());
    }
    bench_parse(&opts).await;
    bench_throughput(&opts).await;
    let f = fixture(&opts, 3).await;
    bench_operations(&opts, &f).await;
    bench_big_write(&opts, &f).await;
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("\n  load average at end: {}", load.trim());
    }
}
