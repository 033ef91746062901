//! `pochta check`: verifies the store (see `pochta_store::SqliteStore::check`)
//! and prints what it looked at and every problem found.

use anyhow::{Context, bail};
use clap::Args;
use pochta_config::Config;
use pochta_store::{CheckOptions, CheckReport, SqliteStore};

/// Options of `pochta check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Parse every stored message (not a sample of 1000) and run SQLite's full
    /// integrity_check however big the store is.
    #[arg(long)]
    full: bool,
}

/// Runs the check; an error (exit status 1) when a problem was found.
pub fn run(config: &Config, args: CheckArgs) -> anyhow::Result<()> {
    let options = CheckOptions {
        full: args.full,
        ..CheckOptions::default()
    };
    let started = std::time::Instant::now();
    let report = SqliteStore::check(&config.data_dir, &options)
        .with_context(|| format!("cannot check the store in {}", config.data_dir.display()))?;
    print!(
        "{}",
        render(&report, &config.data_dir.display().to_string())
    );
    println!("took {:.1} s", started.elapsed().as_secs_f64());
    if !report.is_ok() {
        bail!("{} problem(s) found in the store", report.problem_count());
    }
    Ok(())
}

/// The report as people read it: a summary, then one line per problem.
fn render(report: &CheckReport, dir: &str) -> String {
    let s = &report.stats;
    let mut out = format!(
        "store {dir}\n\
         sqlite {}: {}\n\
         {} accounts, {} mailboxes, {} messages, {} blobs ({} octets), {} changes, {} thread keys\n\
         queue: {} messages, {} recipients; {} uploads\n\
         parsed {} messages: {} failed\n",
        s.sqlite_check,
        if report
            .problems
            .iter()
            .any(|p| p.kind == pochta_store::ProblemKind::Sqlite)
        {
            "FAILED"
        } else {
            "ok"
        },
        s.accounts,
        s.mailboxes,
        s.messages,
        s.blobs,
        s.blob_bytes,
        s.changes,
        s.thread_keys,
        s.queued,
        s.queue_recipients,
        s.uploads,
        s.parsed,
        s.parse_failures,
    );
    if report.is_ok() {
        out.push_str("no problems found\n");
    } else {
        out.push_str(&format!("{} problem(s):\n", report.problem_count()));
        for p in &report.problems {
            out.push_str(&format!("  {p}\n"));
        }
        if report.more > 0 {
            out.push_str(&format!("  … and {} more\n", report.more));
        }
    }
    out
}
