//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and every durable commit costs an fsync.
//! All writes therefore go to one thread through a channel. The thread takes every
//! job that is waiting, runs each inside its own SAVEPOINT (so one failing job does
//! not undo the others), commits them all with one fsync, and only then answers
//! each caller. Under load many deliveries share each fsync; with a single client
//! every write still gets its own commit before it is acknowledged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::notify::ChangeNotifier;
use crate::{AccountId, ModSeq, Result, StoreError};

/// Most jobs committed together. Bounds the latency one commit adds.
const MAX_BATCH: usize = 512;
/// Jobs that may wait for the writer before callers are slowed down.
const QUEUE: usize = 4096;

/// What a job may touch: the connection inside the open transaction, and the
/// list of account states to publish once the transaction is committed.
pub struct WriteCtx<'c> {
    /// The writer connection, inside BEGIN IMMEDIATE and a per-job SAVEPOINT.
    pub conn: &'c Connection,
    published: Vec<(AccountId, ModSeq)>,
}

impl WriteCtx<'_> {
    /// Publishes `state` for `account` after the commit (not before: a subscriber
    /// woken early would read the old snapshot).
    pub fn publish(&mut self, account: AccountId, state: ModSeq) {
        self.published.push((account, state));
    }
}

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn WriteJob>;

/// A queued write: run it inside the transaction, or answer it without running.
trait WriteJob: Send {
    /// Runs the job; returns its outcome (the error, if any, for the jobs that
    /// share its transaction) and how to answer after COMMIT.
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> (Result<()>, Completion);
    /// Answers the caller with `err` without running (the transaction never began).
    fn abort(self: Box<Self>, err: StoreError);
}

struct FnJob<R, F> {
    f: F,
    done: oneshot::Sender<Result<R>>,
}

impl<R, F> WriteJob for FnJob<R, F>
where
    R: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
{
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> (Result<()>, Completion) {
        let FnJob { f, done } = *self;
        let result = f(ctx);
        let outcome = match &result {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        let completion: Completion = Box::new(move |commit| {
            let _ = done.send(commit.and(result));
        });
        (outcome, completion)
    }

    fn abort(self: Box<Self>, err: StoreError) {
        let _ = self.done.send(Err(err));
    }
}

/// Handle for submitting write jobs.
#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection, notifier: Arc<dyn ChangeNotifier>) -> Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("pochta-store-writer".into())
            .spawn(move || run(conn, rx, notifier))
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer thread: {e}")))?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next transaction and returns its result once committed.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<R>>();
        self.submit(Box::new(FnJob { f, done: done_tx })).await?;
        done_rx
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    async fn submit(&self, mut job: Job) -> Result<()> {
        // A full queue means the disk is the bottleneck: wait, don't fail.
        loop {
            match self.tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(j)) => {
                    job = j;
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(StoreError::Unavailable("store writer stopped".into()));
                }
            }
        }
    }
}

fn run(conn: Connection, rx: Receiver<Job>, notifier: Arc<dyn ChangeNotifier>) {
    let mut wal = WalRecovery::default();
    while let Ok(first) = rx.recv() {
        let mut batch = VecDeque::with_capacity(16);
        batch.push_back(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push_back(job),
                Err(_) => break,
            }
        }
        let outcome = commit_batch(&conn, batch, notifier.as_ref());
        wal.after_batch(&conn, outcome);
    }
}

/// Most often a checkpoint is tried while the disk stays full.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

/// Recovery of the WAL after the disk filled up.
///
/// The WAL holds every committed version of each page until an automatic
/// checkpoint (every 1000 pages, 16 MiB here) copies them into the database
/// and lets the log be written from its start again. A commit that fails for
/// lack of space leaves the log as long as it got, and no checkpoint follows:
/// every later commit must grow the log further and fails too. Checkpointing
/// explicitly (PASSIVE: it never waits for readers) turns the superseded page
/// versions into reusable log space as soon as the database file can take the
/// latest ones, so writes resume as soon as a little space is free.
#[derive(Default)]
struct WalRecovery {
    /// A commit failed for lack of space and no checkpoint has completed since.
    pending: bool,
    last_try: Option<Instant>,
}

impl WalRecovery {
    /// Notes a batch's outcome and checkpoints when one is due: right after a
    /// commit succeeds again (space was freed), otherwise at most once a second.
    fn after_batch(&mut self, conn: &Connection, outcome: BatchOutcome) {
        self.pending |= outcome.full;
        if !self.pending
            || (!outcome.committed
                && self
                    .last_try
                    .is_some_and(|t| t.elapsed() < CHECKPOINT_RETRY))
        {
            return;
        }
        self.last_try = Some(Instant::now());
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match r {
            Ok((log, done)) if done >= log => {
                tracing::info!(
                    frames = log,
                    "store: WAL checkpointed after the disk was full"
                );
                self.pending = false;
                self.last_try = None;
            }
            Ok((log, done)) => {
                tracing::warn!(
                    frames = log,
                    checkpointed = done,
                    "store: WAL checkpoint incomplete"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "store: WAL checkpoint failed");
            }
        }
    }
}

/// What happened to a batch, for [`WalRecovery`].
#[derive(Debug, Clone, Copy, Default)]
struct BatchOutcome {
    /// A write failed because the disk is full.
    full: bool,
    /// A transaction was committed.
    committed: bool,
}

/// Runs `batch`, normally in one transaction, and answers every job.
fn commit_batch(
    conn: &Connection,
    mut batch: VecDeque<Job>,
    notifier: &dyn ChangeNotifier,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    while !batch.is_empty() {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "store: cannot begin a write transaction");
            let err = StoreError::from(e);
            outcome.full |= matches!(err, StoreError::Full);
            for job in batch {
                job.abort(err.clone());
            }
            return outcome;
        }
        let mut ctx = WriteCtx {
            conn,
            published: Vec::new(),
        };
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let mut rolled_back = false;
        while let Some(job) = batch.pop_front() {
            let mark = ctx.published.len();
            if let Err(e) = run_cached(conn, "SAVEPOINT job") {
                tracing::error!(error = %e, "store: savepoint failed");
            }
            let (result, done) = job.run(&mut ctx);
            outcome.full |= matches!(result, Err(StoreError::Full));
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (SQLITE_FULL, IOERR
                // or NOMEM in a statement without a statement journal): the
                // jobs before this one are undone too. They fail with its
                // error; the jobs after it run in a new transaction.
                let err = match result {
                    Err(e) => e,
                    Ok(()) => StoreError::Backend("the write transaction ended early".into()),
                };
                tracing::warn!(error = %err, undone = completions.len(), "store: transaction rolled back by SQLite");
                for earlier in completions.drain(..) {
                    earlier(Err(err.clone()));
                }
                done(Ok(()));
                rolled_back = true;
                break;
            }
            if result.is_err() {
                ctx.published.truncate(mark);
                if let Err(e) = run_cached(conn, "ROLLBACK TO job") {
                    tracing::error!(error = %e, "store: savepoint rollback failed");
                }
            }
            if let Err(e) = run_cached(conn, "RELEASE job") {
                tracing::error!(error = %e, "store: savepoint release failed");
            }
            completions.push(done);
        }
        if rolled_back {
            continue;
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                outcome.committed = true;
                for (account, state) in ctx.published {
                    notifier.publish(account, state);
                }
                for done in completions {
                    done(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store: commit failed; the batch is rolled back");
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                let err = StoreError::from(e);
                outcome.full |= matches!(err, StoreError::Full);
                for done in completions {
                    done(Err(err.clone()));
                }
            }
        }
    }
    outcome
}

/// Runs a parameterless statement through the statement cache (the savepoint
/// statements run for every job; preparing them each time showed in profiles).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::LocalNotifier;

    fn open(dir: &std::path::Path) -> Connection {
        let conn = Connection::open(dir.join("w.sqlite3")).expect("open");
        conn.execute_batch(
            "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL;
             CREATE TABLE t(x); CREATE TABLE big(x);",
        )
        .expect("schema");
        conn
    }

    fn insert(ctx: &mut WriteCtx<'_>, x: i64) -> Result<()> {
        ctx.conn.execute("INSERT INTO t VALUES (?1)", [x])?;
        Ok(())
    }

    /// Regression: SQLITE_FULL inside a statement rolls back the whole batch's
    /// transaction, not just the job's savepoint. The jobs before it must be
    /// told they failed, and the jobs after it must neither run outside a
    /// transaction (each committed on its own) nor be told they failed when
    /// they were committed.
    #[tokio::test]
    async fn disk_full_inside_a_job_fails_the_undone_jobs_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer =
            Writer::start(open(dir.path()), Arc::new(LocalNotifier::new())).expect("start");
        // Job 0 holds the writer until jobs 1 to 3 wait: they form one batch.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let w = writer.clone();
        let first = tokio::spawn(async move {
            w.write(move |ctx| {
                let _ = wait.recv();
                insert(ctx, 0)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let w = writer.clone();
        let before = tokio::spawn(async move { w.write(|ctx| insert(ctx, 1)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let w = writer.clone();
        let failing = tokio::spawn(async move {
            w.write(|ctx| {
                // The database may not grow: this INSERT hits SQLITE_FULL.
                let pages: i64 = ctx.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                ctx.conn
                    .execute_batch(&format!("PRAGMA max_page_count = {pages}"))?;
                let r = ctx
                    .conn
                    .execute("INSERT INTO big VALUES (zeroblob(1000000))", []);
                ctx.conn
                    .execute_batch("PRAGMA max_page_count = 1073741823")?;
                r?;
                Ok(())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let w = writer.clone();
        let after = tokio::spawn(async move { w.write(|ctx| insert(ctx, 3)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).expect("release");

        first.await.expect("join").expect("job 0 committed alone");
        let before = before.await.expect("join");
        assert!(matches!(before, Err(StoreError::Full)), "job 1: {before:?}");
        let failing = failing.await.expect("join");
        assert!(
            matches!(failing, Err(StoreError::Full)),
            "job 2: {failing:?}"
        );
        after
            .await
            .expect("join")
            .expect("job 3 committed in a new transaction");

        // What the callers were told is what is stored, and the writer goes on.
        writer
            .write(|ctx| insert(ctx, 4))
            .await
            .expect("writer usable");
        let conn = Connection::open(dir.path().join("w.sqlite3")).expect("reopen");
        let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").expect("prepare");
        let rows: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(rows, vec![0, 3, 4]);
    }
}
