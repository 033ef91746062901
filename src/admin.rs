//! `pochta user …` and `pochta alias …`: account administration.
//!
//! These open the same store as the running server (SQLite allows a second
//! process), so changes take effect at once without a restart.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use pochta_addr::{Address, Secret};
use pochta_config::Config;
use pochta_store::{Alias, NewAccount, SqliteStore, Store, StoreError};

/// Account commands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account (with INBOX, Drafts, Sent, Archive, Junk, Trash).
    Add {
        /// The account's address, which is also its login name.
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Storage quota, e.g. 2G or 500M (none by default).
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
    },
    /// Set an account's storage quota (`none` removes it). Delivery, IMAP APPEND
    /// and COPY respect it; IMAP clients see it with GETQUOTA.
    Quota {
        /// The account's address.
        address: String,
        /// The limit, e.g. 2G, 500M, or none.
        size: String,
    },
    /// List accounts with their message counts and sizes.
    List,
    /// Delete an account and all its mail.
    Del {
        /// The account's address.
        address: String,
    },
    /// Change an account's password.
    Passwd {
        /// The account's address.
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Alias commands.
#[derive(Subcommand)]
pub enum AliasCommand {
    /// Make ALIAS deliver to the TARGET addresses (adds to an existing alias).
    Add {
        /// The alias address.
        alias: String,
        /// Accounts or aliases it delivers to.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// List aliases.
    List,
    /// Remove an alias.
    Del {
        /// The alias address.
        alias: String,
    },
}

fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = SqliteStore::open(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Parses an address and checks it is in one of the configured domains.
fn local_address(config: &Config, input: &str) -> anyhow::Result<Address> {
    let address =
        Address::parse(input).with_context(|| format!("{input:?} is not a valid address"))?;
    if !config.is_local_domain(address.domain()) {
        let domains: Vec<String> = config.domains.iter().map(ToString::to_string).collect();
        bail!(
            "{} is not in a local domain (configured domains: {}); add the domain to `domains` in the config file",
            address,
            domains.join(", ")
        );
    }
    Ok(address)
}

fn read_password(from_stdin: bool) -> anyhow::Result<Secret> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        bail!("standard input is not a terminal: pass the password with --password-stdin");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(Secret::new(password))
}

fn describe(e: StoreError) -> anyhow::Error {
    anyhow::Error::new(e)
}

/// Runs a `pochta user` command.
pub async fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            address,
            password_stdin,
            quota,
        } => {
            let address = local_address(config, &address)?;
            let quota = quota.as_deref().map(parse_quota).transpose()?.flatten();
            let password = read_password(password_stdin)?;
            let hash = pochta_auth::hash_password(&password)?;
            let store = open(config)?;
            store
                .create_account(NewAccount {
                    address: address.clone(),
                    password_hash: hash,
                    quota,
                })
                .await
                .map_err(describe)?;
            println!("created {address} (mailboxes: INBOX, Drafts, Sent, Archive, Junk, Trash)");
        }
        UserCommand::List => {
            let store = open(config)?;
            let accounts = store.accounts().await.map_err(describe)?;
            if accounts.is_empty() {
                println!(
                    "no accounts; add one with: pochta user add you@{} --password-stdin",
                    config.primary_domain()
                );
                return Ok(());
            }
            println!(
                "{:<40} {:>9} {:>12} {:>12}",
                "ADDRESS", "MESSAGES", "SIZE", "QUOTA"
            );
            for a in accounts {
                let quota = a
                    .account
                    .quota
                    .map(human_size)
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<40} {:>9} {:>12} {:>12}",
                    a.account.address.to_string(),
                    a.messages,
                    human_size(a.size),
                    quota
                );
            }
        }
        UserCommand::Quota { address, size } => {
            let address = Address::parse(&address)
                .with_context(|| format!("{address:?} is not a valid address"))?;
            let limit = parse_quota(&size)?;
            open(config)?
                .set_quota(&address, limit)
                .await
                .map_err(describe)?;
            match limit {
                Some(l) => println!("quota of {address}: {}", human_size(l)),
                None => println!("quota of {address} removed"),
            }
        }
        UserCommand::Del { address } => {
            let address = Address::parse(&address)
                .with_context(|| format!("{address:?} is not a valid address"))?;
            open(config)?
                .delete_account(&address)
                .await
                .map_err(describe)?;
            println!("deleted {address} and all its mail");
        }
        UserCommand::Passwd {
            address,
            password_stdin,
        } => {
            let address = Address::parse(&address)
                .with_context(|| format!("{address:?} is not a valid address"))?;
            let password = read_password(password_stdin)?;
            let hash = pochta_auth::hash_password(&password)?;
            open(config)?
                .set_password(&address, hash)
                .await
                .map_err(describe)?;
            println!("password of {address} changed");
        }
    }
    Ok(())
}

/// Runs a `pochta alias` command.
pub async fn alias(config: &Config, cmd: AliasCommand) -> anyhow::Result<()> {
    match cmd {
        AliasCommand::Add { alias, targets } => {
            let alias = local_address(config, &alias)?;
            let mut parsed = Vec::new();
            for t in &targets {
                let target =
                    Address::parse(t).with_context(|| format!("{t:?} is not a valid address"))?;
                if !config.is_local_domain(target.domain()) {
                    bail!(
                        "{target} is not in a local domain: aliases can only point at local addresses until relaying to other servers is supported"
                    );
                }
                parsed.push(target);
            }
            let store = open(config)?;
            store
                .add_alias(Alias {
                    address: alias.clone(),
                    targets: parsed.clone(),
                })
                .await
                .map_err(describe)?;
            let list: Vec<String> = parsed.iter().map(ToString::to_string).collect();
            println!("{alias} -> {}", list.join(", "));
        }
        AliasCommand::List => {
            let aliases = open(config)?.aliases().await.map_err(describe)?;
            if aliases.is_empty() {
                println!("no aliases");
            }
            for a in aliases {
                let list: Vec<String> = a.targets.iter().map(ToString::to_string).collect();
                println!("{} -> {}", a.address, list.join(", "));
            }
        }
        AliasCommand::Del { alias } => {
            let alias = Address::parse(&alias)
                .with_context(|| format!("{alias:?} is not a valid address"))?;
            open(config)?.delete_alias(&alias).await.map_err(describe)?;
            println!("deleted alias {alias}");
        }
    }
    Ok(())
}

/// `none` or a size.
fn parse_quota(text: &str) -> anyhow::Result<Option<u64>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    pochta_config::parse_size(text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("quota {text:?}: {e}"))
}

/// Sizes as people read them (binary units).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
