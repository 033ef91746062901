//! Handing a message to the transfer agent: SMTP submission (RFC 6409) over
//! STARTTLS (port 587) or implicit TLS (port 465, RFC 8314), AUTH PLAIN or
//! LOGIN (RFC 4954), PIPELINING (RFC 2920) when offered.
//!
//! The protocol is pochta's sans-I/O SMTP client
//! ([`pochta_proto_smtp::client`], the one the relay uses); this module is its
//! small tokio driver with the user agent's policy: TLS always (except `plain`
//! to loopback), credentials always, shorter timeouts than a relay's, and every
//! refusal turned into an error a person understands.

use std::sync::Arc;
use std::time::Duration;

use pochta_addr::Secret;
use pochta_proto_smtp::client::{
    Action, Client, ClientConfig, Credentials, ErrorKind, OutRcpt, Outgoing, SessionError, Status,
    Timeouts, TlsPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ClientError, Result};
use crate::tls::{Endpoint, Login, Security, Stream};

/// A person waits for `send`: no RFC 5321 five-minute waits.
const TIMEOUTS: Timeouts = Timeouts {
    greeting: Duration::from_secs(60),
    mail: Duration::from_secs(60),
    rcpt: Duration::from_secs(60),
    data_init: Duration::from_secs(60),
    data_block: Duration::from_secs(120),
    data_term: Duration::from_secs(300),
    command: Duration::from_secs(60),
};

/// Our name for EHLO: the machine's host name when it is a plausible domain,
/// else `localhost`.
fn helo_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// Sends `raw` from `from` to `rcpts` through the submission server at
/// `endpoint`, logging in as `login`. Succeeds only when the server accepted
/// every recipient and the message.
pub async fn send(
    endpoint: &Endpoint,
    login: &Login,
    from: &str,
    rcpts: &[String],
    raw: &[u8],
) -> Result<()> {
    if rcpts.is_empty() {
        return Err(ClientError::Usage("no recipients".into()));
    }
    let server = endpoint.display();
    let mut stream = Some(Stream::connect(endpoint).await?);
    let mut cfg = ClientConfig::new(helo_name());
    cfg.timeouts = TIMEOUTS;
    cfg.tls = match endpoint.security {
        Security::Tls | Security::Starttls => TlsPolicy::Required,
        Security::Plain => TlsPolicy::Disabled,
    };
    // Stream::connect refused `plain` to anything but loopback.
    cfg.auth_without_tls = endpoint.security == Security::Plain;
    cfg.auth = Some(Credentials {
        authzid: None,
        login: login.user.clone(),
        password: Secret::new(login.password.clone()),
    });
    let mut client = Client::new(cfg, server.clone(), endpoint.security == Security::Tls);
    let mut message = Some(Outgoing::new(
        Some(from.to_string()),
        rcpts.iter().map(OutRcpt::new).collect(),
        Arc::new(raw.to_vec()),
    ));
    let mut result = None;
    let mut tls_error = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match client.poll() {
            Action::NeedInput => {
                let Some(s) = stream.as_mut() else {
                    client.eof();
                    continue;
                };
                if !write_out(s, &mut client).await {
                    client.eof();
                    continue;
                }
                match tokio::time::timeout(client.current_timeout(), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => client.eof(),
                    Ok(Ok(n)) => client.feed(buf.get(..n).unwrap_or_default()),
                    Err(_) => client.timed_out(),
                }
            }
            Action::Flush => {
                let written = match stream.as_mut() {
                    Some(s) => write_out(s, &mut client).await,
                    None => false,
                };
                if !written {
                    client.eof();
                }
            }
            Action::StartTls => {
                let Some(mut s) = stream.take() else {
                    client.eof();
                    continue;
                };
                if !write_out(&mut s, &mut client).await {
                    client.eof();
                    continue;
                }
                match s.starttls(endpoint).await {
                    Ok(tls) => {
                        stream = Some(tls);
                        client.tls_established();
                    }
                    Err(e) => {
                        client.tls_failed(&e.to_string());
                        tls_error = Some(e);
                    }
                }
            }
            Action::NeedMessage => match message.take() {
                Some(m) => client.send(m),
                None => client.quit(),
            },
            Action::Finished(r) => result = Some(r),
            Action::Close(err) => {
                if let Some(mut s) = stream.take() {
                    let _ = write_out(&mut s, &mut client).await;
                    let _ = s.shutdown().await;
                }
                if let Some(e) = tls_error {
                    return Err(e);
                }
                if let Some(r) = result {
                    let refused: Vec<String> = r
                        .recipients
                        .iter()
                        .zip(rcpts)
                        .filter(|(o, _)| o.status != Status::Delivered)
                        .map(|(o, rcpt)| {
                            format!("{rcpt}: {}", reply_text(o.reply.code, &o.reply.text()))
                        })
                        .collect();
                    if refused.is_empty() {
                        return Ok(());
                    }
                    let delivered = r.count(Status::Delivered);
                    let mut message = format!("refused {}", refused.join("; "));
                    if delivered > 0 {
                        message.push_str(&format!(
                            " (the {delivered} other recipient(s) were accepted)"
                        ));
                    }
                    return Err(ClientError::protocol(server, message));
                }
                return Err(session_error(&server, &login.user, err));
            }
        }
    }
}

fn reply_text(code: u16, text: &str) -> String {
    format!("{code} {}", text.trim())
}

/// The session's failure in the user's terms.
fn session_error(server: &str, user: &str, err: Option<SessionError>) -> ClientError {
    let Some(err) = err else {
        return ClientError::protocol(server, "the session ended before the message was sent");
    };
    let text = reply_text(err.reply.code, &err.reply.text());
    match err.kind {
        ErrorKind::AuthFailed => ClientError::Auth {
            server: server.to_string(),
            user: user.to_string(),
            reply: text,
        },
        ErrorKind::ConnectFailed => ClientError::Unreachable {
            server: server.to_string(),
            reason: err.reply.text(),
        },
        ErrorKind::TlsUnavailable => ClientError::protocol(
            server,
            format!(
                "the server does not offer STARTTLS ({text}); if it expects TLS from the first byte, use --security-smtp tls"
            ),
        ),
        ErrorKind::AuthUnavailable => ClientError::protocol(
            server,
            format!("cannot log in: {text} (is this a submission port, 587 or 465?)"),
        ),
        ErrorKind::ConnectionLost | ErrorKind::TimedOut => ClientError::protocol(
            server,
            format!(
                "{text} (if the port expects TLS from the first byte, use --security-smtp tls)"
            ),
        ),
        _ => ClientError::protocol(server, text),
    }
}

async fn write_out(stream: &mut Stream, client: &mut Client) -> bool {
    if client.output.is_empty() {
        return true;
    }
    let ok = stream.write_all(&client.output).await.is_ok() && stream.flush().await.is_ok();
    client.output.clear();
    ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// A scripted submission server on loopback (plain): answers each line
    /// with the reply the script gives and records what it received.
    async fn fake_server(
        auth_reply: &'static str,
        rcpt_reply: &'static str,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            let mut seen = Vec::new();
            w.write_all(b"220 test ESMTP\r\n").await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                let line = line.trim_end().to_string();
                if in_data {
                    if line == "." {
                        in_data = false;
                        w.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                    }
                    seen.push(line);
                    continue;
                }
                let upper = line.to_ascii_uppercase();
                seen.push(line);
                let reply: &[u8] = if upper.starts_with("EHLO") {
                    b"250-test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n"
                } else if upper.starts_with("AUTH") {
                    auth_reply.as_bytes()
                } else if upper.starts_with("MAIL") {
                    b"250 2.1.0 ok\r\n"
                } else if upper.starts_with("RCPT") {
                    if upper.contains("NOBODY") {
                        rcpt_reply.as_bytes()
                    } else {
                        b"250 2.1.5 ok\r\n"
                    }
                } else if upper == "DATA" {
                    in_data = true;
                    b"354 go\r\n"
                } else if upper == "QUIT" {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                } else {
                    b"500 what\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
            seen
        });
        (port, task)
    }

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            security: Security::Plain,
            accept_invalid_certs: false,
        }
    }

    fn login() -> Login {
        Login {
            user: "alice@example.org".into(),
            password: "pw".into(),
        }
    }

    #[tokio::test]
    async fn sends_with_auth_plain_and_all_recipients() {
        let (port, task) = fake_server("235 2.7.0 ok\r\n", "550 no\r\n").await;
        let raw = b"Subject: hi\r\n\r\nbody\r\n.dot line\r\n";
        let rcpts = vec!["bob@example.com".to_string(), "carol@example.com".into()];
        tokio::time::timeout(
            Duration::from_secs(10),
            send(&endpoint(port), &login(), "alice@example.org", &rcpts, raw),
        )
        .await
        .unwrap()
        .unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        assert!(
            seen.iter().any(|l| l.starts_with("AUTH PLAIN ")),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"MAIL FROM:<alice@example.org>".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"RCPT TO:<carol@example.com>".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"..dot line".to_string()),
            "dot-stuffed: {seen:?}"
        );
    }

    #[tokio::test]
    async fn wrong_password_is_an_auth_error() {
        let (port, _task) = fake_server("535 5.7.8 bad credentials\r\n", "550 no\r\n").await;
        let rcpts = vec!["bob@example.com".to_string()];
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            send(
                &endpoint(port),
                &login(),
                "alice@example.org",
                &rcpts,
                b"x\r\n",
            ),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(matches!(err, ClientError::Auth { .. }), "{err}");
        assert!(err.to_string().contains("535"), "{err}");
        assert!(!err.is_usage());
    }

    #[tokio::test]
    async fn refused_recipient_is_reported_by_address() {
        let (port, _task) = fake_server("235 2.7.0 ok\r\n", "550 5.1.1 no such user\r\n").await;
        let rcpts = vec!["nobody@example.com".to_string(), "bob@example.com".into()];
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            send(
                &endpoint(port),
                &login(),
                "alice@example.org",
                &rcpts,
                b"x\r\n",
            ),
        )
        .await
        .unwrap()
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("nobody@example.com") && text.contains("550"),
            "{text}"
        );
        assert!(text.contains("1 other"), "{text}");
    }

    #[tokio::test]
    async fn unreachable_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let rcpts = vec!["bob@example.com".to_string()];
        let err = send(&endpoint(port), &login(), "a@b.c", &rcpts, b"x\r\n")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    }
}
