//! Push: EventSource (RFC 8620 §7.3) and JMAP over WebSocket (RFC 8887).
//!
//! Both wait on the store's notifier for the account (the one IMAP IDLE uses),
//! which fires after every committed change. Each wake-up reads the state of
//! every push type ([`PUSH_TYPES`]) and reports the types whose state moved,
//! as a `StateChange`. The full set of states, encoded, is the EventSource
//! event `id` and the WebSocket `pushState`, so a client that reconnects with
//! it (`Last-Event-ID`, `WebSocketPushEnable.pushState`) is told at once what
//! changed while it was away.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use pochta_jmap::{Jmap, PUSH_TYPES, ids};
use pochta_jmap_proto::{
    EventSourceParams, Limit, RequestError, StateChange, WsClientMessage, WsServerMessage,
    event_source_ping, event_source_state,
};
use pochta_store::Account;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::App;
use crate::auth::User;
use crate::conn::ConnInfo;

/// Ping intervals accepted for EventSource, in seconds (RFC 8620 §7.3: a
/// server minimum of at most 30, a maximum of at least 300).
pub const PING_MIN: u32 = 5;
/// See [`PING_MIN`].
pub const PING_MAX: u32 = 300;
/// Without pings the client asked for, an SSE comment is still sent this
/// often, so that a vanished client is noticed.
const KEEPALIVE: Duration = Duration::from_secs(300);
/// WebSocket pings, for the same reason.
const WS_PING: Duration = Duration::from_secs(120);

/// The states of every push type of one account, in [`PUSH_TYPES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(Vec<String>);

impl Snapshot {
    /// Reads the current states. A type whose state cannot be read now keeps
    /// its state from `before` (or an empty one), so a passing store error is
    /// not reported as a change.
    pub async fn take(jmap: &Jmap, account: &Account, before: Option<&Snapshot>) -> Snapshot {
        let mut states = Vec::with_capacity(PUSH_TYPES.len());
        for (i, t) in PUSH_TYPES.iter().enumerate() {
            let state = match jmap.type_state(account, t).await {
                Some(s) => s,
                None => before.and_then(|b| b.0.get(i).cloned()).unwrap_or_default(),
            };
            states.push(state);
        }
        Snapshot(states)
    }

    /// The text form: the states joined by `.` (states are decimal numbers).
    pub fn encode(&self) -> String {
        self.0.join(".")
    }

    /// Reads [`Snapshot::encode`]'s form; `None` for anything else.
    pub fn decode(text: &str) -> Option<Snapshot> {
        let states: Vec<String> = text.split('.').map(str::to_owned).collect();
        let ok = states.len() == PUSH_TYPES.len()
            && states
                .iter()
                .all(|s| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(Snapshot(states))
    }

    /// The types whose state differs from `before` (all of them without one),
    /// as a StateChange for `account`, limited to `types` (`None`: all).
    pub fn changes_since(
        &self,
        before: Option<&Snapshot>,
        account: &Account,
        types: Option<&[String]>,
    ) -> StateChange {
        let mut change = StateChange::new();
        for (i, t) in PUSH_TYPES.iter().enumerate() {
            let Some(now) = self.0.get(i) else { continue };
            let moved = before.is_none_or(|b| b.0.get(i) != Some(now));
            if moved {
                change.add(ids::account(account.id), *t, now.clone());
            }
        }
        change.only_types(types)
    }
}

// ---------------------------------------------------------------- EventSource

/// `GET {eventSourceUrl}`: a `text/event-stream` of `state` events (and
/// `ping`s when asked for) until the client leaves, `closeafter=state` ends it
/// after the first event, or the server shuts down.
pub(crate) async fn event_source(
    State(app): State<App>,
    Extension(conn): Extension<ConnInfo>,
    User(account): User,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let params = match EventSourceParams::parse(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let jmap = app.inner.jmap.clone();
    // Subscribe before reading the states: a change in between wakes us.
    let notifier = app.store().subscribe(account.id);
    let now = Snapshot::take(&jmap, &account, None).await;
    // A reconnecting client says what it saw last (the event id).
    let seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Snapshot::decode);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = EventStream {
        jmap,
        account,
        params,
        tx,
        notifier,
        last: now,
        shutdown: conn.shutdown.clone(),
    };
    tokio::spawn(stream.run(seen).in_current_span());
    let mut response = Response::new(Body::new(ChannelBody(rx)));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx: do not buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

struct EventStream {
    jmap: std::sync::Arc<Jmap>,
    account: Account,
    params: EventSourceParams,
    tx: mpsc::Sender<Bytes>,
    notifier: watch::Receiver<u64>,
    last: Snapshot,
    shutdown: pochta_net::CancellationToken,
}

impl EventStream {
    async fn run(mut self, seen: Option<Snapshot>) {
        if let Some(seen) = seen {
            let change = self
                .last
                .changes_since(Some(&seen), &self.account, self.types());
            if !change.is_empty() && !self.send_state(&change).await {
                return;
            }
        }
        let ping = self.params.ping_interval(PING_MIN, PING_MAX);
        let period = ping.map_or(KEEPALIVE, |s| Duration::from_secs(u64::from(s)));
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = self.tx.closed() => return,
                _ = self.shutdown.cancelled() => return,
                r = self.notifier.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let now = Snapshot::take(&self.jmap, &self.account, Some(&self.last)).await;
                    let change = now.changes_since(Some(&self.last), &self.account, self.types());
                    self.last = now;
                    if !change.is_empty() && !self.send_state(&change).await {
                        return;
                    }
                }
                _ = timer.tick() => {
                    let frame = match ping {
                        Some(s) => event_source_ping(s),
                        None => ":\n\n".to_owned(),
                    };
                    if self.tx.send(Bytes::from(frame)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn types(&self) -> Option<&[String]> {
        self.params.types.as_deref()
    }

    /// Sends a `state` event; false when the stream is over (client gone, or
    /// `closeafter=state`).
    async fn send_state(&mut self, change: &StateChange) -> bool {
        let frame = event_source_state(change, Some(&self.last.encode()));
        if self.tx.send(Bytes::from(frame)).await.is_err() {
            return false;
        }
        !self.params.close_after_state
    }
}

/// A response body fed through a channel; it ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

// ---------------------------------------------------------------- WebSocket

/// `GET /jmap/ws`: the upgrade to JMAP over WebSocket (RFC 8887 §4.2), which
/// needs the `jmap` subprotocol.
pub(crate) async fn websocket(
    State(app): State<App>,
    Extension(conn): Extension<ConnInfo>,
    User(account): User,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ws = ws.protocols(["jmap"]);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            "the \"jmap\" WebSocket subprotocol is required (RFC 8887 section 4.2)\n",
        )
            .into_response();
    }
    // Bigger messages than this are cut off by the WebSocket layer; those up
    // to it get a proper `limit` RequestError.
    let max = usize::try_from(app.inner.jmap.settings.core.max_size_request)
        .unwrap_or(usize::MAX / 2)
        .saturating_mul(2);
    let span = tracing::Span::current();
    let session_state = crate::router::session_for(&app, &account, &headers).state;
    ws.max_message_size(max).on_upgrade(move |socket| {
        WsSession {
            app,
            account,
            conn,
            session_state,
            push: None,
        }
        .run(socket)
        .instrument(span)
    })
}

struct WsSession {
    app: App,
    account: Account,
    conn: ConnInfo,
    /// The `state` of the session this client sees (for `sessionState`).
    session_state: String,
    /// Push state once the client enabled push (RFC 8887 §4.3.5.2).
    push: Option<Push>,
}

struct Push {
    types: Option<Vec<String>>,
    notifier: watch::Receiver<u64>,
    last: Snapshot,
}

impl WsSession {
    async fn run(mut self, mut socket: WebSocket) {
        tracing::info!(user = %self.account.address.key(), "WebSocket opened");
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + WS_PING, WS_PING);
        let shutdown = self.conn.shutdown.clone();
        let why = loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = socket.send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: "server shutting down".into(),
                    }))).await;
                    break "shutdown";
                }
                msg = socket.recv() => {
                    let reply = match msg {
                        None => break "client closed",
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "WebSocket read failed");
                            break "read failed";
                        }
                        Some(Ok(Message::Text(text))) => self.message(text.as_bytes()).await,
                        Some(Ok(Message::Binary(data))) => self.message(&data).await,
                        Some(Ok(Message::Close(_))) => break "client closed",
                        Some(Ok(_)) => Vec::new(),
                    };
                    if !send_all(&mut socket, reply).await {
                        break "write failed";
                    }
                }
                change = next_change(&mut self.push, &self.app, &self.account) => {
                    if let Some(change) = change
                        && !send_all(&mut socket, vec![WsServerMessage::StateChange(change)]).await
                    {
                        break "write failed";
                    }
                }
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                        break "write failed";
                    }
                }
            }
        };
        tracing::info!(end = why, "WebSocket closed");
    }

    /// Handles one client message; returns what to send back.
    async fn message(&mut self, text: &[u8]) -> Vec<WsServerMessage> {
        let jmap = self.app.inner.jmap.clone();
        match WsClientMessage::parse(text, &jmap.settings.core) {
            Err(e) => vec![e.into()],
            Ok(WsClientMessage::Request { id, request }) => {
                let Some(_permit) = self.app.inner.api_limit.try_acquire(self.account.id) else {
                    return vec![WsServerMessage::RequestError {
                        request_id: id,
                        error: RequestError::limit(
                            Limit::MaxConcurrentRequests,
                            "Too many requests at once for this account.",
                        ),
                    }];
                };
                match jmap.run(&self.account, request).await {
                    Ok(response) => vec![WsServerMessage::Response {
                        request_id: id,
                        response: response.with_session_state(self.session_state.clone()),
                    }],
                    Err(error) => vec![WsServerMessage::RequestError {
                        request_id: id,
                        error,
                    }],
                }
            }
            Ok(WsClientMessage::PushEnable {
                data_types,
                push_state,
            }) => {
                let notifier = self.app.store().subscribe(self.account.id);
                let now = Snapshot::take(&jmap, &self.account, None).await;
                // Catch the client up from the state it saw last, if it says.
                let missed = push_state
                    .as_deref()
                    .and_then(Snapshot::decode)
                    .map(|seen| {
                        now.changes_since(Some(&seen), &self.account, data_types.as_deref())
                    });
                let mut reply = Vec::new();
                if let Some(mut change) = missed.filter(|c| !c.is_empty()) {
                    change.push_state = Some(now.encode());
                    reply.push(WsServerMessage::StateChange(change));
                }
                self.push = Some(Push {
                    types: data_types,
                    notifier,
                    last: now,
                });
                reply
            }
            Ok(WsClientMessage::PushDisable) => {
                self.push = None;
                Vec::new()
            }
        }
    }
}

/// Waits for the next change worth pushing (forever while push is off).
/// `None` after a wake-up that changed none of the client's types.
async fn next_change(push: &mut Option<Push>, app: &App, account: &Account) -> Option<StateChange> {
    let Some(p) = push.as_mut() else {
        return std::future::pending().await;
    };
    if p.notifier.changed().await.is_err() {
        // The notifier is gone (store closing): nothing more will come.
        *push = None;
        return None;
    }
    let now = Snapshot::take(&app.inner.jmap, account, Some(&p.last)).await;
    let mut change = now.changes_since(Some(&p.last), account, p.types.as_deref());
    p.last = now;
    if change.is_empty() {
        return None;
    }
    change.push_state = Some(p.last.encode());
    Some(change)
}

async fn send_all(socket: &mut WebSocket, messages: Vec<WsServerMessage>) -> bool {
    for m in messages {
        if socket.send(Message::text(m.to_text())).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            id: 10,
            address: pochta_addr::Address::parse("a@example.com").expect("address"),
            password_hash: String::new(),
            created_at: 0,
            quota: None,
        }
    }

    fn snap(states: [&str; 7]) -> Snapshot {
        Snapshot(states.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn encode_decode() {
        let s = snap(["1", "2", "2", "2", "0", "0", "5"]);
        assert_eq!(s.encode(), "1.2.2.2.0.0.5");
        assert_eq!(Snapshot::decode(&s.encode()), Some(s));
        assert_eq!(Snapshot::decode("1.2.3"), None);
        assert_eq!(Snapshot::decode("1.2.2.2.0.0.x"), None);
        assert_eq!(Snapshot::decode(""), None);
    }

    #[test]
    fn changes_are_the_moved_types_filtered() {
        let a = account();
        let before = snap(["1", "1", "1", "1", "0", "0", "0"]);
        let after = snap(["2", "2", "2", "2", "0", "0", "0"]);
        let all = after.changes_since(Some(&before), &a, None);
        let types: Vec<&String> = all.changed[&ids::account(10)].keys().collect();
        assert_eq!(types, ["Email", "EmailDelivery", "Mailbox", "Thread"]);
        let some = after.changes_since(Some(&before), &a, Some(&["Mailbox".to_string()]));
        assert_eq!(some.changed[&ids::account(10)].len(), 1);
        assert_eq!(some.changed[&ids::account(10)]["Mailbox"], "2");
        let none = after.changes_since(Some(&before), &a, Some(&["Identity".to_string()]));
        assert!(none.is_empty());
        assert!(after.changes_since(Some(&after), &a, None).is_empty());
        let first = after.changes_since(None, &a, None);
        assert_eq!(first.changed[&ids::account(10)].len(), PUSH_TYPES.len());
    }
}
