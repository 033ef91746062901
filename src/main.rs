//! `pochta`: the whole mail system in one binary.
//!
//! `pochta serve` runs the servers; `pochta user …`, `pochta alias …` and
//! `pochta token …` manage accounts in the same data directory, also while the
//! server runs.

#![forbid(unsafe_code)]

mod admin;
mod check;
mod mail;
mod ops;
mod relay;
mod serve;
mod tokens;
mod upkeep;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// The blocking pool runs store reads (SQLite) and message parsing. Under tokio's
/// default bound of 512 threads it grows whenever reads queue: a soak with 250
/// JMAP clients on 2 CPUs grew it from 32 to 76 threads within seconds and RSS
/// from 380 to 830 MiB, which stayed (each thread keeps the allocator pages it
/// used, and a pool thread only ends after 10 s without work). More threads than
/// a few per CPU do not read faster; they only hold memory. Eight per CPU still
/// leave room for reads that wait on the disk.
fn blocking_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (8 * cpus).max(16)
}

/// mimalloc instead of glibc's malloc: under a long load glibc's per-thread
/// arenas kept what the sessions had freed (a 1 000-session soak ended with
/// 139 MiB that only `malloc_trim` gave back), and allocation is a fifth of
/// the CPU of an IMAP FETCH of envelopes. mimalloc returns freed pages to the
/// system on its own and allocates faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use pochta_config::{Config, LogFormat};

/// A complete e-mail system: SMTP, POP3, IMAP and JMAP in one binary.
#[derive(Parser)]
#[command(name = "pochta", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (TOML). Without it, embedded defaults are used:
    /// data in ./pochta-data, domain localhost, loopback listeners.
    #[arg(long, global = true, env = "POCHTA_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    /// The user agent's accounts file (`pochta mail`), default
    /// $XDG_CONFIG_HOME/pochta/client.toml.
    #[arg(long, global = true, env = "POCHTA_CLIENT_CONFIG", value_name = "PATH")]
    client_config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server (SMTP, POP3, IMAP, JMAP, the relay queue) until Ctrl-C or SIGTERM.
    Serve,
    /// Manage mail accounts.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage alias addresses.
    #[command(subcommand)]
    Alias(admin::AliasCommand),
    /// Bearer tokens for JMAP clients (instead of the password).
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// DKIM signing keys for mail relayed to other servers.
    #[command(subcommand)]
    Dkim(ops::DkimCommand),
    /// Inspect and steer the outbound queue (also while the server runs).
    #[command(subcommand)]
    Queue(ops::QueueCommand),
    /// The user agent: send, fetch, browse and read mail on any server.
    Mail(mail::MailArgs),
    /// Verify the store: SQLite integrity, blobs, counters, UIDs, MODSEQs, the
    /// change log, the queue, and that messages parse. Safe while the server
    /// runs; exits non-zero when a problem is found.
    Check(check::CheckArgs),
    /// Remove old entries of the change log that clients resynchronise from
    /// (the server does it hourly, after `store.change_log_retention`). Safe
    /// while the server runs; clients that last synchronised before then fetch
    /// everything again. No mail is removed.
    PruneChanges(upkeep::PruneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Usage errors exit 2 like clap's own; server and network errors 1.
            let usage = e
                .downcast_ref::<pochta_client::ClientError>()
                .is_some_and(|c| c.is_usage());
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Mail(args) = cli.command {
        // The user agent never reads the server's configuration (POCHTA_CONFIG
        // may point anywhere). The local offset is read here, while the
        // process has one thread: later it cannot be read soundly.
        let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
        init_logging(&Config::default(), false)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        return runtime.block_on(mail::run(args, cli.client_config, offset));
    }
    let config = match &cli.config {
        Some(path) => Config::load(path).with_context(|| format!("in {}", path.display()))?,
        None => Config::default(),
    };
    let serving = matches!(cli.command, Command::Serve);
    init_logging(&config, serving)?;
    if let Command::Check(args) = cli.command {
        // Synchronous: one read-only connection, no runtime needed.
        return check::run(&config, args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads())
        .thread_name("pochta")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::serve(config, cli.config).await,
            Command::User(cmd) => admin::user(&config, cmd).await,
            Command::Alias(cmd) => admin::alias(&config, cmd).await,
            Command::Token(cmd) => tokens::token(&config, cmd).await,
            Command::Dkim(cmd) => ops::dkim(&config, cmd),
            Command::Queue(cmd) => ops::queue(&config, cmd).await,
            Command::PruneChanges(args) => upkeep::prune(&config, args).await,
            Command::Mail(_) | Command::Check(_) => Ok(()),
        }
    })
}

/// Logs go to stderr: everything at the configured level for `serve`, warnings
/// only for the administration commands (their output is the result).
fn init_logging(config: &Config, serving: bool) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let directive = if serving {
        config.log.level.as_str()
    } else {
        "warn"
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(directive),
    }
    .with_context(|| format!("log.level: invalid filter {directive:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
