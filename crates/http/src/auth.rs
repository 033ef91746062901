//! Who is asking: HTTP Basic with the account's address and password, or a
//! bearer token (RFC 6750) made with `pochta token create`.
//!
//! Basic goes through the shared [`pochta_auth::Authenticator`], so a password
//! guesser meets the same throttle here as on SMTP, POP3 and IMAP. A token is
//! 32 random bytes, base64url, after [`TOKEN_PREFIX`]; the store keeps only its
//! SHA-256 hash, so the store cannot give a token away.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use pochta_addr::Secret;
use pochta_auth::AuthError;
use pochta_store::{Account, TOKEN_TOUCH_INTERVAL};
use ring::rand::SecureRandom;

use crate::App;
use crate::conn::{ConnInfo, UserSlot};

/// What every token starts with, so that one is recognised when it leaks
/// (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "pochta_";

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// A new random token: [`TOKEN_PREFIX`] and 32 random bytes in base64url.
/// `None` only when the system has no randomness to give.
pub fn new_token() -> Option<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The hash the store keeps for a token: SHA-256 of its text.
pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// The authenticated account of a request: use it as a handler argument.
/// Rejections are complete responses (401, 429, 503).
pub struct User(pub Account);

impl FromRequestParts<App> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<User, Response> {
        let Some(conn) = parts.extensions.get::<ConnInfo>().cloned() else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        // conn.rs serves clear text only with `plain` set; this keeps the rule
        // in one more place: never a login over clear text otherwise.
        if !conn.tls && !app.inner.settings.plain {
            return Err(challenge("use https"));
        }
        let account = authenticate(app, &conn, &parts.headers).await?;
        if let Some(slot) = parts.extensions.get::<UserSlot>() {
            slot.set(account.address.key());
        }
        Ok(User(account))
    }
}

async fn authenticate(
    app: &App,
    conn: &ConnInfo,
    headers: &HeaderMap,
) -> Result<Account, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(challenge("authentication required"));
    };
    let Ok(value) = value.to_str() else {
        return Err(challenge("unreadable Authorization header"));
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        basic(app, conn, rest).await
    } else if scheme.eq_ignore_ascii_case("bearer") {
        bearer(app, rest).await
    } else {
        Err(challenge("unsupported authentication scheme"))
    }
}

/// RFC 7617: `base64(user ":" password)`, UTF-8.
async fn basic(app: &App, conn: &ConnInfo, encoded: &str) -> Result<Account, Response> {
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some((login, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(challenge("malformed Basic credentials"));
    };
    // `authenticate` rather than `login`: the same checks and throttle, but
    // no "authenticated" line for every request (the request line names the
    // user); failures are logged as `login` logs them.
    let result = app
        .inner
        .auth
        .authenticate(conn.peer.ip(), login, &Secret::new(password))
        .await;
    match result {
        Ok(account) => Ok(account),
        Err(AuthError::Failed) => {
            // `?` escapes line breaks in the client's text (no forged log lines).
            tracing::info!(login = ?login, "authentication failed");
            Err(challenge("invalid credentials"))
        }
        Err(AuthError::Throttled { retry_after }) => Err(retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            retry_after.as_secs().max(1),
            "too many failed logins; try again later",
        )),
        Err(AuthError::Temporary(_)) => Err(retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            5,
            "authentication temporarily unavailable",
        )),
    }
}

/// RFC 6750: a token from `pochta token create`.
async fn bearer(app: &App, token: &str) -> Result<Account, Response> {
    if token.is_empty() || token.len() > 512 {
        return Err(challenge("invalid token"));
    }
    let store = app.store();
    let info = match store.token_account(&token_hash(token)).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            tracing::info!("authentication failed: unknown or revoked token");
            return Err(challenge("invalid token"));
        }
        Err(e) => {
            tracing::warn!(error = %e, "token lookup failed");
            return Err(retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                5,
                "authentication temporarily unavailable",
            ));
        }
    };
    let account = match store.account_by_id(info.account_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(challenge("invalid token")),
        Err(e) => {
            tracing::warn!(error = %e, "account lookup failed");
            return Err(retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                5,
                "authentication temporarily unavailable",
            ));
        }
    };
    let now = crate::unix_now();
    if info
        .last_used
        .is_none_or(|t| now.saturating_sub(t) >= TOKEN_TOUCH_INTERVAL)
    {
        // Recorded on the side: the request need not wait for a write.
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(info.id, now).await {
                tracing::debug!(error = %e, "cannot record a token's use");
            }
        });
    }
    Ok(account)
}

/// `401` with the schemes we take (RFC 9110 §11.6.1).
fn challenge(why: &'static str) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response();
    let h = r.headers_mut();
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"pochta\", charset=\"UTF-8\""),
    );
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"pochta\""),
    );
    r
}

fn retry_later(status: StatusCode, secs: u64, why: &'static str) -> Response {
    let mut r = (status, format!("{why}\n")).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = new_token().expect("randomness");
        let b = new_token().expect("randomness");
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert!(
            a[TOKEN_PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(token_hash(&a).len(), 32);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
