//! Read connections: many readers beside the one writer, each on its own
//! connection so that WAL snapshots let them run while the writer commits.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use crate::Result;

/// Idle read connections kept for reuse; more are opened under load and dropped after.
const MAX_IDLE: usize = 16;

/// A pool of read-only connections to one database file.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// A pool for the database at `path` (which the writer has created already).
    pub fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Takes an idle connection or opens a new one.
    pub fn take(&self) -> Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // The bundled SQLite is built with STAT4, under which a statement whose
        // parameters meet an indexed column is compiled again whenever they are
        // bound to new values (perf showed FETCH's range query re-prepared on
        // every call). The plans do not depend on the values here: keep them.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        // A small page cache each: the OS already caches the file for all of them.
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -2048;")?;
        Ok(conn)
    }

    /// Returns a connection for reuse.
    pub fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}
