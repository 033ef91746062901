//! `pochta serve`: open the store, bind the listeners, run until a signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use pochta_addr::Address;
use pochta_auth::{Authenticator, ThrottleConfig};
use pochta_config::Config;
use pochta_delivery::LocalDelivery;
use pochta_http::{HttpServer, HttpSettings};
use pochta_imap::server::{ImapServer, ImapServerSettings};
use pochta_jmap::{Jmap, JmapSettings};
use pochta_net::tls::CertSource;
use pochta_net::{AcceptOptions, CancellationToken, ConnLimiter, TaskTracker, accept_loop};
use pochta_pop3::{Pop3Server, Pop3Settings};
use pochta_smtp_in::{Listener, SmtpServer, SmtpSettings};
use pochta_store::{SqliteStore, Store};
use tokio::net::TcpListener;

/// Runs the server until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let store = SqliteStore::open(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);

    let (tls, cert_source) = pochta_net::tls::server_config(
        config.tls.cert.as_deref(),
        config.tls.key.as_deref(),
        &config.tls_dir(),
        &config.hostname,
    )
    .context("TLS")?;
    let acceptor = pochta_net::acceptor(tls);

    let throttle = ThrottleConfig {
        delay_after: config.auth.delay_after,
        lockout_after: config.auth.lockout_after,
        lockout: config.auth.lockout,
        window: config.auth.window,
        ..ThrottleConfig::default()
    };
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        throttle,
        Some(config.primary_domain().clone()),
    )?);
    let delivery = Arc::new(
        LocalDelivery::new(
            store.clone(),
            config.hostname.clone(),
            config.domains.clone(),
        )
        .with_queue_expiry(config.queue.expire)
        // JMAP VacationResponse: auto-replies after each local delivery.
        .with_hook(pochta_jmap::vacation::VacationHook::new(store.clone())),
    );
    let relay = crate::relay::Relay::new(&config, store.clone())?;
    let postmaster = Address::new("postmaster", config.primary_domain().clone())
        .context("postmaster address")?;
    let smtp = SmtpServer::with_checker(
        SmtpSettings {
            hostname: config.hostname.clone(),
            max_message_size: usize::try_from(config.limits.message_size).unwrap_or(usize::MAX),
            max_recipients: config.limits.recipients,
            max_line_length: config.limits.line_length,
            max_errors: config.limits.errors,
            command_timeout: config.limits.command_timeout,
            data_timeout: config.limits.data_timeout,
            postmaster,
        },
        delivery.clone(),
        auth.clone(),
        Some(acceptor.clone()),
        relay.checker.clone(),
    );
    let pop3 = Pop3Server::new(
        Pop3Settings {
            idle_timeout: config.limits.command_timeout,
            max_errors: config.limits.errors,
        },
        store.clone(),
        auth.clone(),
        Some(acceptor.clone()),
    );
    // One set of search caches for IMAP and JMAP: a mailbox searched over
    // both is kept in memory once.
    let light = std::sync::Arc::new(pochta_store::LightRegistry::new());
    let imap = ImapServer::new(
        ImapServerSettings {
            light: light.clone(),
            hostname: config.hostname.clone(),
            max_message_size: config.limits.message_size,
            login_timeout: config.limits.command_timeout,
            max_errors: config.limits.errors,
        },
        store.clone(),
        auth.clone(),
        Some(acceptor.clone()),
    );
    let jmap = Jmap::new(
        store.clone(),
        delivery,
        JmapSettings {
            max_message_size: config.limits.message_size,
            max_recipients: config.limits.recipients,
            light_registry: light,
            ..JmapSettings::new(config.hostname.clone())
        },
    );
    let http = HttpServer::new(
        jmap,
        auth,
        acceptor,
        HttpSettings {
            hostname: config.hostname.clone(),
            plain: config.http.plain,
        },
    );

    // Bind everything first, so a taken port is one clear error before anything runs.
    let mut bound = Vec::new();
    for (key, addr, kind) in [
        ("smtp", config.listen.smtp, Service::Smtp(Listener::Mx)),
        (
            "submission",
            config.listen.submission,
            Service::Smtp(Listener::Submission),
        ),
        (
            "submissions",
            config.listen.submissions,
            Service::Smtp(Listener::Submissions),
        ),
        ("pop3", config.listen.pop3, Service::Pop3 { tls: false }),
        ("pop3s", config.listen.pop3s, Service::Pop3 { tls: true }),
        ("imap", config.listen.imap, Service::Imap { tls: false }),
        ("imaps", config.listen.imaps, Service::Imap { tls: true }),
        ("http", config.listen.http, Service::Http),
    ] {
        let Some(addr) = addr else { continue };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (listen.{key})"))?;
        let local = listener.local_addr()?;
        bound.push((listener, local, kind));
    }

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let queue_task = tokio::spawn(relay.queue.clone().run(shutdown.clone()));
    tokio::spawn(pochta_http::purge_uploads(store.clone(), shutdown.clone()));
    tokio::spawn(crate::upkeep::prune_hourly(
        store.clone(),
        config.store.change_log_retention,
        shutdown.clone(),
    ));
    let limiter = ConnLimiter::new(config.limits.connections, config.limits.connections_per_ip);
    let mut endpoints = Vec::new();
    for (listener, local, kind) in bound {
        endpoints.push((kind, local));
        let refusal: fn(pochta_net::LimitExceeded) -> Vec<u8> = match kind {
            // Implicit TLS: nothing can be said before the handshake.
            Service::Smtp(Listener::Submissions)
            | Service::Pop3 { tls: true }
            | Service::Imap { tls: true } => |_| Vec::new(),
            Service::Smtp(_) => pochta_smtp_in::refusal,
            Service::Pop3 { .. } => pochta_pop3::refusal,
            Service::Imap { .. } => pochta_imap::server::refusal,
            Service::Http => pochta_http::refusal,
        };
        let opts = AcceptOptions {
            name: kind.name(),
            limiter: limiter.clone(),
            refusal,
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        let stop = shutdown.clone();
        match kind {
            Service::Smtp(l) => {
                let smtp = smtp.clone();
                tokio::spawn(accept_loop(listener, opts, move |tcp, peer, slot| {
                    smtp.clone().handle(tcp, peer, l, stop.clone(), slot)
                }));
            }
            Service::Pop3 { tls } => {
                let pop3 = pop3.clone();
                tokio::spawn(accept_loop(listener, opts, move |tcp, peer, slot| {
                    pop3.clone().handle(tcp, peer, tls, stop.clone(), slot)
                }));
            }
            Service::Imap { tls } => {
                let imap = imap.clone();
                tokio::spawn(accept_loop(listener, opts, move |tcp, peer, slot| {
                    imap.clone().handle(tcp, peer, tls, stop.clone(), slot)
                }));
            }
            Service::Http => {
                let http = http.clone();
                let tracker = tracker.clone();
                tokio::spawn(accept_loop(listener, opts, move |tcp, peer, slot| {
                    http.clone()
                        .handle(tcp, peer, stop.clone(), tracker.clone(), slot)
                }));
            }
        }
    }

    let users = store.accounts().await.map(|a| a.len()).unwrap_or(0);
    print_banner(
        &config,
        config_path.as_deref(),
        &cert_source,
        &endpoints,
        users,
    );
    tracing::info!(hostname = %config.hostname, data_dir = %config.data_dir.display(), "pochta started");

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; waiting for messages in transfer");
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(config.limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?config.limits.shutdown_grace,
            "sessions still open after the grace period; exiting (nothing unacknowledged is lost)"
        );
    }
    // The queue runner stops at once; deliveries in flight are tried again at
    // the next start (their outcome was not recorded).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), queue_task).await;
    tracing::info!("stopped");
    Ok(())
}

/// A protocol listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Smtp(Listener),
    Pop3 { tls: bool },
    Imap { tls: bool },
    Http,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Smtp(l) => l.name(),
            Service::Pop3 { tls: false } => "pop3",
            Service::Pop3 { tls: true } => "pop3s",
            Service::Imap { tls: false } => "imap",
            Service::Imap { tls: true } => "imaps",
            Service::Http => "http",
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_banner(
    config: &Config,
    config_path: Option<&Path>,
    cert: &CertSource,
    endpoints: &[(Service, SocketAddr)],
    users: usize,
) {
    let domains: Vec<String> = config.domains.iter().map(ToString::to_string).collect();
    println!("pochta {} is running", env!("CARGO_PKG_VERSION"));
    println!("  host name    {}", config.hostname);
    println!("  domains      {}", domains.join(", "));
    println!("  data         {}", config.data_dir.display());
    match cert {
        CertSource::Configured(p) => println!("  TLS          {}", p.display()),
        CertSource::Generated(p) => println!(
            "  TLS          self-signed certificate, created now: {}",
            p.display()
        ),
        CertSource::Reused(p) => println!("  TLS          self-signed certificate {}", p.display()),
    }
    for (kind, addr) in endpoints {
        let what = match kind {
            Service::Smtp(Listener::Mx) => "SMTP (MX, for other servers; STARTTLS)",
            Service::Smtp(Listener::Submission) => "submission (STARTTLS, then AUTH PLAIN/LOGIN)",
            Service::Smtp(Listener::Submissions) => "submission (implicit TLS, AUTH PLAIN/LOGIN)",
            Service::Pop3 { tls: false } => "POP3 (STLS, then USER/PASS or AUTH)",
            Service::Pop3 { tls: true } => "POP3 (implicit TLS)",
            Service::Imap { tls: false } => "IMAP (STARTTLS, then LOGIN or AUTHENTICATE)",
            Service::Imap { tls: true } => "IMAP (implicit TLS)",
            Service::Http if config.http.plain => {
                "JMAP over HTTPS, and clear-text HTTP for a proxy (/.well-known/jmap)"
            }
            Service::Http => "JMAP over HTTPS (/.well-known/jmap)",
        };
        println!("  {:<12} {addr:<22} {what}", kind.name());
    }
    if users == 0 {
        let config_arg = config_path
            .map(|p| format!("--config {} ", p.display()))
            .unwrap_or_default();
        let example = format!("you@{}", config.primary_domain());
        println!();
        println!("No accounts yet. Add the first one (in another terminal):");
        println!(
            "  echo 'a-long-password' | cargo run --release -- {config_arg}user add {example} --password-stdin"
        );
        if let Ok(exe) = std::env::current_exe() {
            println!(
                "  (or with the binary: echo 'a-long-password' | {} {config_arg}user add {example} --password-stdin)",
                exe.display()
            );
        }
    }
    println!("Stop with Ctrl-C.");
}
