//! `pochta token …`: bearer tokens for JMAP (`Authorization: Bearer …`).
//!
//! A token is shown once, when it is made; the store keeps only its SHA-256
//! hash. Like the account commands these work on the data directory directly,
//! so a token works, or stops working, at once on a running server.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use pochta_addr::Address;
use pochta_config::Config;
use pochta_store::{SqliteStore, Store, StoreError};
use time::OffsetDateTime;

/// Token commands.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token that logs in as ADDRESS, and print it (this one time).
    Create {
        /// The account the token logs in as.
        address: String,
        /// A label to recognise it by in `token list` (e.g. the device).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (of one account, or of all), without their secrets.
    List {
        /// Only this account's tokens.
        address: Option<String>,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: u64,
    },
}

fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = SqliteStore::open(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

fn address(input: &str) -> anyhow::Result<Address> {
    Address::parse(input).with_context(|| format!("{input:?} is not a valid address"))
}

/// Runs a `pochta token` command.
pub async fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = open(config)?;
    match cmd {
        TokenCommand::Create { address: a, name } => {
            let address = address(&a)?;
            let Some(account) = store.account(&address).await? else {
                bail!("no account {address}; create it with: pochta user add {address}");
            };
            let Some(token) = pochta_http::new_token() else {
                bail!("the system gave no random bytes for a token");
            };
            let info = store
                .create_token(account.id, pochta_http::token_hash(&token), name.trim())
                .await?;
            println!("{token}");
            eprintln!(
                "token {} for {address}: shown only now, keep it secret. Use it as the HTTP header",
                info.id
            );
            eprintln!("  Authorization: Bearer {token}");
            eprintln!("Revoke it with: pochta token revoke {}", info.id);
        }
        TokenCommand::List { address: a } => {
            let accounts: HashMap<u64, Address> = store
                .accounts()
                .await?
                .into_iter()
                .map(|u| (u.account.id, u.account.address))
                .collect();
            let only = match a {
                Some(a) => {
                    let address = address(&a)?;
                    let Some(account) = store.account(&address).await? else {
                        bail!("no account {address}");
                    };
                    Some(account.id)
                }
                None => None,
            };
            let tokens = store.tokens(only).await?;
            if tokens.is_empty() {
                println!("no tokens; make one with: pochta token create ADDRESS --name NAME");
                return Ok(());
            }
            println!(
                "{:>6} {:<32} {:<20} {:<17} LAST USED (UTC)",
                "ID", "ADDRESS", "NAME", "CREATED (UTC)"
            );
            for t in tokens {
                let owner = accounts
                    .get(&t.account_id)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| format!("(account {})", t.account_id));
                let name = if t.name.is_empty() { "-" } else { &t.name };
                println!(
                    "{:>6} {:<32} {:<20} {:<17} {}",
                    t.id,
                    owner,
                    name,
                    date(Some(t.created_at)),
                    date(t.last_used)
                );
            }
        }
        TokenCommand::Revoke { id } => match store.delete_token(id).await {
            Ok(()) => println!("token {id} revoked"),
            Err(StoreError::NotFound(_)) => bail!("no token {id} (see: pochta token list)"),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

/// `2025-01-31 14:05`, or `-`.
fn date(at: Option<i64>) -> String {
    let Some(t) = at.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()) else {
        return "-".into();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}
