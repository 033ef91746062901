//! Upkeep of the store: pruning the change log, hourly in the server and on
//! demand with `pochta prune-changes`.
//!
//! The command works on the data directory directly, like the account commands,
//! so it can run beside the server: sessions that find their state pruned
//! resynchronise by themselves.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pochta_config::Config;
use pochta_net::CancellationToken;
use pochta_store::{SqliteStore, Store};

/// How often the server prunes, and marks how far the log has come (pruning
/// by age is as fine as this).
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// `pochta prune-changes`.
#[derive(Args)]
pub struct PruneArgs {
    /// Remove the entries older than this ("30d", "12h", "0" for all of them).
    /// Default: `store.change_log_retention` (when that is 0, nothing).
    #[arg(long, value_parser = pochta_config::parse_duration)]
    older_than: Option<Duration>,
}

/// Runs `pochta prune-changes`.
pub async fn prune(config: &Config, args: PruneArgs) -> anyhow::Result<()> {
    let age = match args.older_than {
        Some(age) => age,
        // Zero in the configuration means "keep forever", not "remove all".
        None if config.store.change_log_retention.is_zero() => {
            println!(
                "store.change_log_retention is 0 (keep the log forever): nothing removed; give --older-than to prune anyway."
            );
            return Ok(());
        }
        None => config.store.change_log_retention,
    };
    let store = SqliteStore::open(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let now = unix_now();
    let removed = store
        .prune_change_log(now.saturating_sub(secs(age)), now)
        .await?;
    println!("{removed} change-log entries removed.");
    if removed == 0 && !age.is_zero() {
        // Ages are known from marks the server writes hourly (and this run).
        println!(
            "(Entries count as old once the server has run for that long since they were written.)"
        );
    }
    Ok(())
}

/// Prunes the change log now and every [`PRUNE_INTERVAL`] until `shutdown`,
/// unless the retention is zero (keep forever).
pub async fn prune_hourly(store: Arc<dyn Store>, retention: Duration, shutdown: CancellationToken) {
    if retention.is_zero() {
        return;
    }
    let mut every = tokio::time::interval(PRUNE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let now = unix_now();
        match store
            .prune_change_log(now.saturating_sub(secs(retention)), now)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "old change-log entries pruned"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the change log"),
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
