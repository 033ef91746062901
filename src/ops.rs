//! `pochta dkim …` and `pochta queue …`: relay administration.
//!
//! Like the account commands these work on the data directory directly, so
//! they act on a running server: a key generated now signs the next message
//! (the server re-reads the key directory), and a queue change is picked up by
//! the server's queue runner within its poll interval (5 s).

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use pochta_config::Config;
use pochta_msgauth::{KeyAlgorithm, generate};
use pochta_store::{QueueState, QueuedMessage, SqliteStore, Store};
use time::OffsetDateTime;

/// DKIM commands.
#[derive(Subcommand)]
pub enum DkimCommand {
    /// Create signing keys for DOMAIN and print the DNS records to publish.
    /// Mail from DOMAIN relayed to other servers is signed with every key the
    /// domain has, from the next message on.
    Generate {
        /// The domain (one of the local domains).
        domain: String,
        /// Which keys: both (default; Ed25519 and RSA-2048), ed25519 or rsa.
        #[arg(long, value_enum, default_value = "both")]
        algorithm: Algorithm,
        /// The selector, when one key is made (default: ed<YYYYMM> or rsa<YYYYMM>).
        #[arg(long)]
        selector: Option<String>,
    },
    /// List the domains and selectors that have keys.
    List,
}

/// Key algorithms on the command line.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// Ed25519 and RSA-2048.
    Both,
    /// Ed25519 (RFC 8463).
    Ed25519,
    /// RSA-2048.
    Rsa,
}

/// Queue commands.
#[derive(Subcommand)]
pub enum QueueCommand {
    /// List queued messages: id, age, sender, and each recipient's state,
    /// attempts, next attempt and last error.
    List,
    /// Show one queued message with its header.
    Show {
        /// The queue id.
        id: u64,
    },
    /// Make a message (or all with --all) due now.
    Retry {
        /// The queue id.
        id: Option<u64>,
        /// Every queued message.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Remove a message from the queue without a report to its sender.
    Delete {
        /// The queue id.
        id: u64,
    },
    /// Attempt everything now (the same as `retry --all`).
    Flush,
}

fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = SqliteStore::open(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Runs a `pochta dkim` command.
pub fn dkim(config: &Config, cmd: DkimCommand) -> anyhow::Result<()> {
    let dir = crate::relay::dkim_dir(config);
    match cmd {
        DkimCommand::Generate {
            domain,
            algorithm,
            selector,
        } => {
            let d = pochta_addr::Domain::parse(&domain)
                .with_context(|| format!("{domain:?} is not a domain"))?;
            if !config.is_local_domain(&d) {
                bail!(
                    "{d} is not a local domain; keys sign mail from local domains only (add it to `domains`)"
                );
            }
            let stamp = OffsetDateTime::now_utc();
            let month = format!("{:04}{:02}", stamp.year(), u8::from(stamp.month()));
            let wanted: Vec<(KeyAlgorithm, String)> = match (algorithm, selector) {
                (Algorithm::Both, Some(_)) => {
                    bail!("--selector names one key: give --algorithm ed25519 or rsa with it")
                }
                (Algorithm::Both, None) => vec![
                    (KeyAlgorithm::Ed25519, format!("ed{month}")),
                    (KeyAlgorithm::Rsa2048, format!("rsa{month}")),
                ],
                (Algorithm::Ed25519, s) => {
                    vec![(KeyAlgorithm::Ed25519, s.unwrap_or(format!("ed{month}")))]
                }
                (Algorithm::Rsa, s) => {
                    vec![(KeyAlgorithm::Rsa2048, s.unwrap_or(format!("rsa{month}")))]
                }
            };
            println!("Publish these DNS records for {d}, then mail from it is signed:");
            for (alg, sel) in wanted {
                let key = generate(&dir, d.as_str(), &sel, alg)
                    .with_context(|| format!("cannot create the {} key", alg.dns_name()))?;
                println!();
                println!(
                    "; {} key, private part in {}",
                    alg.dns_name(),
                    key.path.display()
                );
                println!("{}. IN TXT {}", key.dns_name, zone_strings(&key.dns_txt));
            }
            println!();
            println!("Also publish SPF and DMARC if you have not, for example:");
            println!("{d}. IN TXT \"v=spf1 mx -all\"");
            println!("_dmarc.{d}. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{d}\"");
            Ok(())
        }
        DkimCommand::List => {
            let keys = pochta_msgauth::DkimKeys::open(&dir);
            let domains = keys.domains();
            if domains.is_empty() {
                println!("No DKIM keys. Create them with: pochta dkim generate DOMAIN");
            }
            for d in domains {
                println!("{d}: {}", keys.selectors(&d).join(", "));
            }
            Ok(())
        }
    }
}

/// A TXT value as zone-file strings of at most 255 octets each (RSA keys are
/// longer than one string may be).
fn zone_strings(text: &str) -> String {
    let parts: Vec<String> = text
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    if parts.len() == 1 {
        parts.concat()
    } else {
        format!("( {} )", parts.join(" "))
    }
}

/// Runs a `pochta queue` command.
pub async fn queue(config: &Config, cmd: QueueCommand) -> anyhow::Result<()> {
    let store = open(config)?;
    match cmd {
        QueueCommand::List => {
            let list = store.queue_list().await?;
            if list.is_empty() {
                println!("The queue is empty.");
                return Ok(());
            }
            let now = OffsetDateTime::now_utc().unix_timestamp();
            for m in &list {
                print_message(m, now);
            }
            let rcpts: usize = list.iter().map(|m| m.recipients.len()).sum();
            println!("{} message(s), {rcpts} recipient(s).", list.len());
            Ok(())
        }
        QueueCommand::Show { id } => {
            let Some(m) = store.queue_get(id).await? else {
                bail!("no queued message {id}");
            };
            let now = OffsetDateTime::now_utc().unix_timestamp();
            print_message(&m, now);
            println!(
                "  envid {}  ret {}  8bit {}  smtputf8 {}",
                m.envid.as_deref().unwrap_or("-"),
                if m.ret_full { "full" } else { "headers" },
                m.eightbit,
                m.smtputf8
            );
            println!("  expires {}", when(m.expires_at, now));
            let body = store.queue_blob(id).await?;
            let end = header_end(&body);
            println!();
            print!("{}", String::from_utf8_lossy(&body[..end]));
            Ok(())
        }
        QueueCommand::Retry { id, all } => {
            if id.is_none() && !all {
                bail!("give a queue id, or --all");
            }
            let n = store.queue_retry(id).await?;
            println!("{n} recipient(s) due now.");
            Ok(())
        }
        QueueCommand::Delete { id } => {
            store.queue_delete(id).await?;
            println!("Deleted queued message {id}.");
            Ok(())
        }
        QueueCommand::Flush => {
            let n = store.queue_retry(None).await?;
            println!("{n} recipient(s) due now.");
            Ok(())
        }
    }
}

fn print_message(m: &QueuedMessage, now: i64) {
    let from = m
        .mail_from
        .as_ref()
        .map(|a| a.to_smtp())
        .unwrap_or_default();
    println!(
        "{:<6} {:>9}  {:>8}  <{from}>",
        m.id,
        crate::admin::human_size(m.size),
        age(now - m.created_at),
    );
    for r in &m.recipients {
        let state = match r.state {
            QueueState::Queued => "queued",
            QueueState::Delivered => "sent",
            QueueState::Failed => "failed",
        };
        let next = if r.state == QueueState::Queued {
            format!("next {}", when(r.next_attempt, now))
        } else {
            String::new()
        };
        println!(
            "         {:<7} <{}>  attempts {}  {next}",
            state,
            r.address.to_smtp(),
            r.attempts
        );
        if let Some(e) = &r.last_error {
            println!("                 {}", e.replace(['\r', '\n'], " "));
        }
    }
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

fn when(at: i64, now: i64) -> String {
    if at <= now {
        "now".into()
    } else {
        format!("in {}", age(at - now))
    }
}

fn header_end(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        let end = raw[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(raw.len());
        if &raw[i..end] == b"\r\n" || &raw[i..end] == b"\n" {
            return end;
        }
        i = end;
    }
    raw.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_txt_values_are_split() {
        assert_eq!(zone_strings("v=DKIM1; p=abc"), "\"v=DKIM1; p=abc\"");
        let long = "x".repeat(300);
        let z = zone_strings(&long);
        assert!(z.starts_with("( \"") && z.ends_with("\" )"), "{z}");
        assert_eq!(z.matches('"').count(), 4);
    }

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(3 * 3600 + 120), "3h02m");
        assert_eq!(age(2 * 86400 + 3600), "2d01h");
        assert_eq!(when(10, 20), "now");
        assert_eq!(when(80, 20), "in 1m");
    }
}
