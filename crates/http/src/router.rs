//! The routes: exactly the paths of the session's URL templates
//! ([`SessionUrls::under`]), the session itself, and the WebSocket endpoint.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/.well-known/jmap`, `/jmap/session` | the session (RFC 8620 §2, §2.2) |
//! | POST | `/jmap/api/` | API requests (RFC 8620 §3) |
//! | POST | `/jmap/upload/{accountId}/` | uploads (RFC 8620 §6.1) |
//! | GET | `/jmap/download/{accountId}/{blobId}/{name}?type=` | downloads (RFC 8620 §6.2) |
//! | GET | `/jmap/eventsource/?types=&closeafter=&ping=` | push (RFC 8620 §7.3) |
//! | GET | `/jmap/ws` | JMAP over WebSocket (RFC 8887) |
//!
//! Every route needs authentication ([`User`]). Other paths are `404`, other
//! methods `405`.

use std::collections::HashMap;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pochta_jmap::ids;
use pochta_jmap_proto::{Limit, RequestError, Session};
use pochta_store::{Account, StoreError};
use serde_json::json;

use crate::App;
use crate::auth::User;
use crate::conn::UserSlot;
use crate::push;

/// Where the WebSocket endpoint is (advertised in the session).
pub(crate) const WEBSOCKET_PATH: &str = "/jmap/ws";

/// Downloads never change (a blob id names fixed bytes): a year.
const DOWNLOAD_MAX_AGE: u32 = 365 * 24 * 3600;

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/.well-known/jmap", get(session))
        .route("/jmap/session", get(session))
        .route("/jmap/api/", post(api))
        .route("/jmap/upload/{account}/", post(upload))
        .route("/jmap/download/{account}/{blob}/{name}", get(download))
        .route("/jmap/eventsource/", get(push::event_source))
        .route(WEBSOCKET_PATH, get(push::websocket))
        .fallback(not_found)
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// One log line per request: method, path, status, user, duration (the
/// connection's span adds the session id and peer).
async fn log_request(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let user = UserSlot::default();
    req.extensions_mut().insert(user.clone());
    let response = next.run(req).await;
    tracing::info!(
        %method,
        path = %path,
        status = response.status().as_u16(),
        user = %user.get(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The host the client asked for (`Host`), when it is a plausible host name
/// or address with an optional port: the session's URLs are built from it.
pub(crate) fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    ok.then(|| host.to_ascii_lowercase())
}

/// `https://host[:port]` of this request, for the session's URLs. Behind a
/// proxy (`plain`) the scheme the client used is still https.
fn base_url(app: &App, headers: &HeaderMap) -> String {
    let host = request_host(headers).unwrap_or_else(|| app.inner.settings.hostname.clone());
    format!("https://{host}")
}

/// The session resource for `account` as this request's client sees it.
pub(crate) fn session_for(app: &App, account: &Account, headers: &HeaderMap) -> Session {
    let base = base_url(app, headers);
    let ws = format!("{}{WEBSOCKET_PATH}", base.replacen("https://", "wss://", 1));
    app.inner.jmap.session(account, &base, Some(&ws))
}

/// The session resource (RFC 8620 §2), served at the well-known URL itself
/// rather than through a redirect (§2.2 allows both).
async fn session(State(app): State<App>, User(account): User, headers: HeaderMap) -> Response {
    let session = session_for(&app, &account, &headers);
    let mut response = json_response(StatusCode::OK, serde_json::to_vec(&session));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    response
}

/// An API request (RFC 8620 §3.1): a JSON body of at most `maxSizeRequest`
/// octets, at most `maxConcurrentRequests` at once per account.
async fn api(
    State(app): State<App>,
    User(account): User,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_json(&headers) {
        return problem(&RequestError::not_request(
            "The request's Content-Type must be application/json.",
        ));
    }
    let core = &app.inner.jmap.settings.core;
    let Some(_permit) = app.inner.api_limit.try_acquire(account.id) else {
        return problem(&RequestError::limit(
            Limit::MaxConcurrentRequests,
            format!(
                "At most {} requests at once per account.",
                core.max_concurrent_requests
            ),
        ));
    };
    let max = core.max_size_request;
    let too_large = || {
        problem(&RequestError::limit(
            Limit::MaxSizeRequest,
            format!("The request is larger than {max} octets."),
        ))
    };
    if content_length(&headers).is_some_and(|n| n > max) {
        return too_large();
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::try_from(max).unwrap_or(usize::MAX)).await
    else {
        return too_large();
    };
    match app.inner.jmap.handle(&account, &bytes).await {
        Ok(response) => {
            // `sessionState` must be the `state` of the session this client
            // was served (RFC 8620 §3.4), whose URLs depend on the request.
            let state = session_for(&app, &account, &headers).state;
            let response = response.with_session_state(state);
            json_response(StatusCode::OK, Ok(response.to_bytes()))
        }
        Err(e) => problem(&e),
    }
}

/// An upload (RFC 8620 §6.1): stored as a blob the account may use for a day.
async fn upload(
    State(app): State<App>,
    User(account): User,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if account_id != ids::account(account.id).as_str() {
        return (StatusCode::NOT_FOUND, "no such account\n").into_response();
    }
    let core = &app.inner.jmap.settings.core;
    let Some(_permit) = app.inner.upload_limit.try_acquire(account.id) else {
        return limit_problem(
            StatusCode::TOO_MANY_REQUESTS,
            "maxConcurrentUpload",
            format!(
                "At most {} uploads at once per account.",
                core.max_concurrent_upload
            ),
        );
    };
    let max = core.max_size_upload;
    let too_large = || {
        limit_problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "maxSizeUpload",
            format!("The upload is larger than {max} octets."),
        )
    };
    if content_length(&headers).is_some_and(|n| n > max) {
        return too_large();
    }
    let Ok(data) = axum::body::to_bytes(body, usize::try_from(max).unwrap_or(usize::MAX)).await
    else {
        return too_large();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| media_type_ok(t))
        .unwrap_or("application/octet-stream")
        .to_owned();
    match app
        .store()
        .upload(account.id, data.to_vec(), &content_type)
        .await
    {
        Ok(blob) => json_response(
            StatusCode::CREATED,
            serde_json::to_vec(&json!({
                "accountId": account_id,
                "blobId": ids::blob(blob.blob_id),
                "type": blob.content_type,
                "size": blob.size,
            })),
        ),
        Err(e) => store_failure(e),
    }
}

/// A download (RFC 8620 §6.2): the blob's bytes (a part's decoded), with the
/// type and file name the client put in the URL.
async fn download(
    State(app): State<App>,
    User(account): User,
    Path((account_id, blob_id, name)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such blob\n").into_response();
    if account_id != ids::account(account.id).as_str() {
        return not_found();
    }
    let Some(blob) = ids::parse_blob(&blob_id) else {
        return not_found();
    };
    let data = match crate::blob::read(app.store().as_ref(), account.id, &blob).await {
        Ok(Some(data)) => data,
        Ok(None) => return not_found(),
        Err(e) => return store_failure(e),
    };
    let content_type = query
        .get("type")
        .map(|t| t.trim())
        .filter(|t| media_type_ok(t))
        .unwrap_or("application/octet-stream");
    let mut response = Response::new(Body::from(data));
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("private, immutable, max-age={DOWNLOAD_MAX_AGE}"))
    {
        h.insert(header::CACHE_CONTROL, v);
    }
    // The type is the client's word: never let a browser render or sniff it
    // as part of our origin.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    response
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266,
/// RFC 8187), so every client gets a usable name.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        // RFC 8187 attr-char.
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A media type we can put in a header: `type/subtype` and parameters, in
/// printable ASCII.
fn media_type_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 255
        && t.contains('/')
        && t.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// `application/json`, with or without parameters; a missing Content-Type is
/// taken as JSON too.
fn is_json(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        }),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn json_response(status: StatusCode, body: Result<Vec<u8>, serde_json::Error>) -> Response {
    match body {
        Ok(bytes) => {
            let mut r = Response::new(Body::from(Bytes::from(bytes)));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A request-level error as RFC 7807 problem details (RFC 8620 §3.6.1).
pub(crate) fn problem(e: &RequestError) -> Response {
    problem_response(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
        e.to_json(),
    )
}

/// A `limit` problem for the upload limits, which RFC 8620's `Limit` list
/// does not name (they are not API request limits).
fn limit_problem(status: StatusCode, limit: &str, detail: String) -> Response {
    problem_response(
        status,
        json!({
            "type": "urn:ietf:params:jmap:error:limit",
            "status": status.as_u16(),
            "limit": limit,
            "detail": detail,
        }),
    )
}

fn problem_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
}

/// A store failure: `503` with Retry-After when it may pass, else `500`. The
/// details go to the log only.
pub(crate) fn store_failure(e: StoreError) -> Response {
    tracing::warn!(error = %e, "store error");
    if e.is_temporary() {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_has_both_forms() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("отчёт \"1\".txt"),
            "attachment; filename=\"_____ _1_.txt\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%20%221%22.txt"
        );
    }

    #[test]
    fn media_types() {
        assert!(media_type_ok("text/plain; charset=utf-8"));
        assert!(!media_type_ok("text"));
        assert!(!media_type_ok("text/plain\r\nX-Evil: 1"));
        assert!(!media_type_ok(""));
    }

    #[test]
    fn hosts() {
        let mut h = HeaderMap::new();
        assert_eq!(request_host(&h), None);
        h.insert(
            header::HOST,
            HeaderValue::from_static("Mail.Example.com:8443"),
        );
        assert_eq!(request_host(&h).as_deref(), Some("mail.example.com:8443"));
        h.insert(header::HOST, HeaderValue::from_static("[::1]:8080"));
        assert_eq!(request_host(&h).as_deref(), Some("[::1]:8080"));
        h.insert(header::HOST, HeaderValue::from_static("evil/\"x"));
        assert_eq!(request_host(&h), None);
    }
}
