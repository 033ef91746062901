//! A small authoritative DNS server on loopback, for tests.
//!
//! [`TestDns::start`] binds UDP and TCP on the same random port of `127.0.0.1` and
//! serves from a table the test fills and changes while the server runs
//! ([`TestDns::add_mx`], [`TestDns::add_txt`], [`TestDns::fail`], ...). The server
//! lives in its own thread with its own tokio runtime, so it works the same from
//! `#[tokio::test]` (current-thread runtime), multi-thread runtimes and plain
//! `#[test]`, and for code under test running in another process. Dropping the
//! [`TestDns`] stops the server and joins its thread.
//!
//! It is authoritative for the whole name space (a synthetic root zone), and answers
//! the way a real authoritative server does where mail code cares (RFC 1035 §4.3.2,
//! RFC 2308 for the negative answers):
//!
//! | the name asked for                                        | answer                                   |
//! |-----------------------------------------------------------|------------------------------------------|
//! | marked by [`TestDns::fail`]                               | SERVFAIL, any type                       |
//! | has records of the type asked (or the type is `ANY`)      | NOERROR, the records, AA set             |
//! | has records, none of that type                            | NOERROR, no answers (NODATA), SOA        |
//! | has no records, but a name below it has                   | NOERROR, no answers (NODATA), SOA        |
//! | has no records and nothing below it                       | NXDOMAIN, SOA                            |
//!
//! The SOA goes in the authority section, so resolvers cache negative answers
//! (RFC 2308 §5) by its TTL, like everything else here: **0 seconds**. A record
//! added, changed or removed mid-test is therefore seen by the next lookup, even
//! through a resolver that caches (hickory-resolver does).
//!
//! Names are case-insensitive and may be written with or without the trailing dot.
//! Note that hickory-resolver answers some special-use names itself without asking
//! any server (RFC 6761: `localhost`, `*.invalid`, and `*.local`/`*.onion` handling):
//! use `example.com`, `*.test` or the like in tests.
//!
//! ```no_run
//! use pochta_testdns::TestDns;
//!
//! let dns = TestDns::start().expect("start the test DNS server");
//! dns.add_mx("example.com", 10, "mx.example.com");
//! dns.add_a("mx.example.com", "127.0.0.1".parse().expect("an IPv4 address"));
//! dns.add_txt("example.com", "v=spf1 ip4:127.0.0.1 -all");
//! // Point the resolver under test at dns.addr() (UDP and/or TCP).
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode};
use hickory_server::proto::op::{LowerQuery, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, MX, SOA, TXT};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::sync::oneshot;

/// The TTL of every record served, including the SOA of negative answers: 0, so
/// that no resolver keeps an answer a test has since changed.
pub const TTL: u32 = 0;

/// The most bytes in one TXT character-string (RFC 1035 §3.3: a length octet).
const MAX_CHARACTER_STRING: usize = 255;

/// How long a TCP connection may stay idle before the server closes it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Queued responses per TCP connection (what hickory's own server uses).
const TCP_RESPONSE_BUFFER: usize = 32;

/// How long a stop may wait for the server's tasks, then for the runtime.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How many random ports to try until one is free for both UDP and TCP.
const BIND_ATTEMPTS: usize = 64;

/// A running test DNS server. Dropping it stops the server.
pub struct TestDns {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for TestDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDns")
            .field("addr", &self.addr)
            .field("queries", &self.queries())
            .finish_non_exhaustive()
    }
}

impl TestDns {
    /// Starts a server on `127.0.0.1` with a random free port, serving UDP and TCP
    /// on that same port, in a thread of its own with its own tokio runtime.
    ///
    /// It does not block (the sockets are bound before it returns, so the server
    /// can be queried at once) and needs no runtime: call it from async tests and
    /// sync tests alike.
    pub fn start() -> io::Result<TestDns> {
        let (udp, tcp) = bind_pair()?;
        let addr = udp.local_addr()?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Register the sockets with the server's runtime here, so that a failure is
        // returned to the caller rather than lost in the server's thread.
        let registered = {
            let _context = rt.enter();
            tokio::net::UdpSocket::from_std(udp)
                .and_then(|udp| Ok((udp, tokio::net::TcpListener::from_std(tcp)?)))
        };
        let runtime = OwnedRuntime(Some(rt));
        let (udp, tcp) = registered?;

        let shared = Arc::new(Shared::default());
        let handler = Handler {
            shared: Arc::clone(&shared),
            soa: soa_record(),
        };
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("pochta-testdns-{}", addr.port()))
            .spawn(move || serve(runtime, handler, udp, tcp, stopped))?;

        Ok(TestDns {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address of the server: `127.0.0.1` and the port, for UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds an MX record to `domain`. An `exchange` of `"."` makes a null MX
    /// (RFC 7505: the domain accepts no mail).
    ///
    /// # Panics
    ///
    /// If `domain` or `exchange` is not a valid domain name (a bug in the test).
    pub fn add_mx(&self, domain: &str, preference: u16, exchange: &str) {
        let exchange = parse_name(exchange).into();
        self.add(domain, RData::MX(MX::new(preference, exchange)));
    }

    /// Adds an A record to `name`.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name (a bug in the test).
    pub fn add_a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    /// Adds an AAAA record to `name`.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name (a bug in the test).
    pub fn add_aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    /// Adds one TXT record to `name`. A `text` longer than 255 bytes becomes several
    /// character-strings of that one record (RFC 1035 §3.3.14), as DKIM keys are
    /// published (RFC 6376 §3.6.2.2); a reader joins them. Each call adds a separate
    /// record.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name (a bug in the test).
    pub fn add_txt(&self, name: &str, text: &str) {
        self.add(name, RData::TXT(txt(text)));
    }

    /// Makes the server answer SERVFAIL for `name`, whatever the type asked, until
    /// [`TestDns::remove`] is called for it. Records of `name` are kept.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name (a bug in the test).
    pub fn fail(&self, name: &str) {
        let name = parse_name(name);
        self.shared.zone().failing.insert(name);
    }

    /// Forgets `name`: drops all its records and any [`TestDns::fail`] mark. Names
    /// below it are not touched.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name (a bug in the test).
    pub fn remove(&self, name: &str) {
        let name = parse_name(name);
        let mut zone = self.shared.zone();
        zone.records.remove(&name);
        zone.failing.remove(&name);
    }

    /// How many requests the server has answered so far (over UDP and TCP; a
    /// resolver may ask more than once for one lookup, e.g. after a SERVFAIL).
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::Relaxed)
    }

    fn add(&self, name: &str, data: RData) {
        let name = parse_name(name);
        self.shared
            .zone()
            .records
            .entry(name)
            .or_default()
            .push(data);
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the server thread is gone already.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Bounded: the thread gives its tasks and its runtime SHUTDOWN_GRACE each.
            // A panic in it has been reported on stderr already.
            let _ = thread.join();
        }
    }
}

/// Binds a UDP socket on a random port of 127.0.0.1 and a TCP listener on the same
/// port, trying other ports while the TCP one is taken.
fn bind_pair() -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        match std::net::TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// The server thread: runs until told to stop (or until its `TestDns` is gone),
/// then shuts down within bounded time.
fn serve(
    mut runtime: OwnedRuntime,
    handler: Handler,
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
    stopped: oneshot::Receiver<()>,
) {
    let Some(rt) = runtime.0.take() else {
        return;
    };
    rt.block_on(async move {
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        tokio::select! {
            // A message or a dropped sender: either way, stop.
            _ = stopped => {}
            // Only ends if the sockets fail; then there is nothing left to serve.
            _ = server.block_until_done() => {}
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, server.shutdown_gracefully()).await;
    });
    rt.shutdown_timeout(SHUTDOWN_GRACE);
}

/// A tokio runtime that, if dropped without being taken, shuts down without
/// blocking: dropping a runtime normally blocks, which panics inside an async
/// context (as when `TestDns::start` fails half-way in a `#[tokio::test]`).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// What the test has set up, shared with the server.
#[derive(Default)]
struct Shared {
    zone: Mutex<Zone>,
    queries: AtomicUsize,
}

impl Shared {
    fn zone(&self) -> MutexGuard<'_, Zone> {
        // The zone is only ever left consistent (single inserts and removes), so a
        // panic elsewhere while it was locked does not make it unusable.
        self.zone.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The records, by owner name (lowercase, fully qualified).
#[derive(Default)]
struct Zone {
    records: HashMap<LowerName, Vec<RData>>,
    failing: HashSet<LowerName>,
}

/// What the zone says about one question.
#[derive(Debug, PartialEq)]
enum Answer {
    /// NOERROR with these records.
    Records(Vec<RData>),
    /// NOERROR without records: the name exists, not with that type.
    NoData,
    /// NXDOMAIN.
    NxDomain,
    /// SERVFAIL.
    ServFail,
}

impl Zone {
    fn answer(&self, name: &LowerName, rtype: RecordType) -> Answer {
        if self.failing.contains(name) {
            return Answer::ServFail;
        }
        if let Some(records) = self.records.get(name) {
            let matching: Vec<RData> = records
                .iter()
                .filter(|r| rtype == RecordType::ANY || r.record_type() == rtype)
                .cloned()
                .collect();
            if !matching.is_empty() {
                return Answer::Records(matching);
            }
        }
        // RFC 8020: a name exists if it or any name below it has records (an empty
        // non-terminal such as `example.com` when only `_dmarc.example.com` is set).
        if self.records.keys().any(|owner| name.zone_of(owner)) {
            Answer::NoData
        } else {
            Answer::NxDomain
        }
    }
}

/// Answers requests from the shared zone.
struct Handler {
    shared: Arc<Shared>,
    soa: Record,
}

impl Handler {
    /// The response code, answer records and whether to add the SOA, for one query.
    fn lookup(&self, query: &LowerQuery) -> (ResponseCode, Vec<Record>, bool) {
        if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
            return (ResponseCode::Refused, Vec::new(), false);
        }
        let answer = self.shared.zone().answer(query.name(), query.query_type());
        let owner = query.original().name();
        match answer {
            Answer::Records(data) => {
                let records = data
                    .into_iter()
                    .map(|d| Record::from_rdata(owner.clone(), TTL, d))
                    .collect();
                (ResponseCode::NoError, records, false)
            }
            // The apex of our synthetic zone has its SOA.
            Answer::NoData if query.name().is_root() && query.query_type() == RecordType::SOA => {
                (ResponseCode::NoError, vec![self.soa.clone()], false)
            }
            Answer::NoData => (ResponseCode::NoError, Vec::new(), true),
            Answer::NxDomain => (ResponseCode::NXDomain, Vec::new(), true),
            Answer::ServFail => (ResponseCode::ServFail, Vec::new(), false),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.shared.queries.fetch_add(1, Ordering::Relaxed);

        // RFC 6891 §6.1.1: answer EDNS with EDNS; this also lets a UDP answer grow past
        // 512 bytes (a DKIM key) up to what the client said it can take.
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns.set_version(0);
            edns
        });

        let (code, answers, with_soa) = if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            (ResponseCode::NotImp, Vec::new(), false)
        } else {
            match request.request_info() {
                Ok(info) => self.lookup(info.query),
                // Not exactly one question.
                Err(_) => (ResponseCode::FormErr, Vec::new(), false),
            }
        };

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = matches!(code, ResponseCode::NoError | ResponseCode::NXDomain);
        metadata.response_code = code;
        let soa = with_soa.then_some(&self.soa);
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            soa,
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                // The client is gone; report a failure to the server's logging.
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// The SOA of the synthetic root zone the server is authoritative for, with
/// [`TTL`] as both its TTL and its negative-caching TTL (RFC 2308 §4).
fn soa_record() -> Record {
    let soa = SOA::new(
        parse_name("ns.pochta-testdns.test").into(),
        parse_name("hostmaster.pochta-testdns.test").into(),
        1,
        3600,
        600,
        86400,
        TTL,
    );
    Record::from_rdata(Name::root(), TTL, RData::SOA(soa))
}

/// One TXT record holding `text`, cut into character-strings of at most 255 bytes.
fn txt(text: &str) -> TXT {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return TXT::from_bytes(vec![bytes]);
    }
    TXT::from_bytes(bytes.chunks(MAX_CHARACTER_STRING).collect())
}

/// `name` as a fully qualified, lowercase domain name; a trailing dot is optional.
fn parse_name(name: &str) -> LowerName {
    let mut parsed = Name::from_ascii(name)
        .unwrap_or_else(|e| panic!("pochta-testdns: {name:?} is not a valid domain name: {e}"));
    parsed.set_fqdn(true);
    LowerName::new(&parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        let mut zone = Zone::default();
        zone.records.insert(
            parse_name("_dmarc.example.com"),
            vec![RData::TXT(txt("v=DMARC1; p=reject"))],
        );
        zone.records.insert(
            parse_name("mx.example.com"),
            vec![RData::A(A(Ipv4Addr::LOCALHOST))],
        );
        zone
    }

    #[test]
    fn names_are_case_insensitive_with_or_without_the_dot() {
        let zone = zone();
        for name in ["MX.Example.COM", "mx.example.com.", "mx.example.com"] {
            assert!(matches!(
                zone.answer(&parse_name(name), RecordType::A),
                Answer::Records(r) if r.len() == 1
            ));
        }
    }

    #[test]
    fn nodata_for_other_types_and_for_empty_non_terminals() {
        let zone = zone();
        assert_eq!(
            zone.answer(&parse_name("mx.example.com"), RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(
            zone.answer(&parse_name("example.com"), RecordType::MX),
            Answer::NoData
        );
        assert_eq!(
            zone.answer(&parse_name("com"), RecordType::A),
            Answer::NoData
        );
    }

    #[test]
    fn nxdomain_when_nothing_at_or_below() {
        let zone = zone();
        assert_eq!(
            zone.answer(&parse_name("nope.example.com"), RecordType::A),
            Answer::NxDomain
        );
        // A sibling whose name ends like an existing one is not below it.
        assert_eq!(
            zone.answer(&parse_name("x-mx.example.com"), RecordType::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn failing_names_servfail_whatever_the_type() {
        let mut zone = zone();
        zone.failing.insert(parse_name("mx.example.com"));
        assert_eq!(
            zone.answer(&parse_name("mx.example.com"), RecordType::A),
            Answer::ServFail
        );
        assert_eq!(
            zone.answer(&parse_name("mx.example.com"), RecordType::TXT),
            Answer::ServFail
        );
    }

    #[test]
    fn any_returns_everything() {
        let mut zone = zone();
        zone.records
            .get_mut(&parse_name("mx.example.com"))
            .unwrap()
            .push(RData::TXT(txt("hello")));
        assert!(matches!(
            zone.answer(&parse_name("mx.example.com"), RecordType::ANY),
            Answer::Records(r) if r.len() == 2
        ));
    }

    #[test]
    fn long_txt_is_split_into_character_strings() {
        let text = "k".repeat(600);
        let record = txt(&text);
        let lengths: Vec<usize> = record.txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(lengths, [255, 255, 90]);
        assert_eq!(record.txt_data.concat(), text.as_bytes());
        assert_eq!(txt("").txt_data.len(), 1);
    }

    #[test]
    fn null_mx_exchange_is_the_root() {
        assert!(parse_name(".").is_root());
    }
}
