//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and every durable commit costs an fsync.
//! All writes therefore go to one thread through a channel. The thread takes every
//! job that is waiting, runs each inside its own SAVEPOINT (so one failing job does
//! not undo the others), commits them all with one fsync, and only then answers
//! each caller. Under load many deliveries share each fsync; with a single client
//! every write still gets its own commit before it is acknowledged.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

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
    /// Runs the job; returns whether it succeeded and how to answer after COMMIT.
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> (bool, Completion);
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
    fn run(self: Box<Self>, ctx: &mut WriteCtx<'_>) -> (bool, Completion) {
        let FnJob { f, done } = *self;
        let result = f(ctx);
        let ok = result.is_ok();
        let completion: Completion = Box::new(move |commit| {
            let _ = done.send(commit.and(result));
        });
        (ok, completion)
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
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch, notifier.as_ref());
    }
}

fn commit_batch(conn: &Connection, batch: Vec<Job>, notifier: &dyn ChangeNotifier) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "store: cannot begin a write transaction");
        for job in batch {
            job.abort(to_store_error(&e));
        }
        return;
    }
    let mut ctx = WriteCtx {
        conn,
        published: Vec::new(),
    };
    let mut completions = Vec::with_capacity(batch.len());
    for job in batch {
        let mark = ctx.published.len();
        if let Err(e) = run_cached(conn, "SAVEPOINT job") {
            tracing::error!(error = %e, "store: savepoint failed");
        }
        let (ok, done) = job.run(&mut ctx);
        if !ok {
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
    let commit = conn.execute_batch("COMMIT");
    match commit {
        Ok(()) => {
            for (account, state) in ctx.published {
                notifier.publish(account, state);
            }
            for done in completions {
                done(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store: commit failed; the batch is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            for done in completions {
                done(Err(to_store_error(&e)));
            }
        }
    }
}

/// Runs a parameterless statement through the statement cache (the savepoint
/// statements run for every job; preparing them each time showed in profiles).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn to_store_error(e: &rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}
