//! The server as hickory-resolver sees it, over UDP and TCP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use pochta_testdns::TestDns;

#[derive(Clone, Copy)]
enum Transport {
    UdpAndTcp,
    UdpOnly,
    TcpOnly,
}

/// A resolver asking only `addr`, as the product builds its own (crates/msgauth/src/dns.rs).
fn resolver(addr: SocketAddr, transport: Transport) -> TokioResolver {
    let mut ns = match transport {
        Transport::UdpAndTcp => NameServerConfig::udp_and_tcp(addr.ip()),
        Transport::UdpOnly => NameServerConfig::udp(addr.ip()),
        Transport::TcpOnly => NameServerConfig::tcp(addr.ip()),
    };
    for c in &mut ns.connections {
        c.port = addr.port();
    }
    let config = ResolverConfig::from_name_servers(vec![ns]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    builder.build().expect("a resolver for the test server")
}

/// The response code of a "no records" error, or the error itself.
fn no_records_code(e: &NetError) -> Result<ResponseCode, String> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => Ok(no.response_code),
        other => Err(other.to_string()),
    }
}

fn txt_strings(lookup: &hickory_resolver::lookup::Lookup) -> Vec<String> {
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

fn mx_list(lookup: &hickory_resolver::lookup::Lookup) -> Vec<(u16, String)> {
    let mut list: Vec<(u16, String)> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_string())),
            _ => None,
        })
        .collect();
    list.sort();
    list
}

#[tokio::test]
async fn mx_records_with_preferences() {
    let dns = TestDns::start().unwrap();
    dns.add_mx("example.com", 20, "backup.example.com");
    dns.add_mx("example.com", 10, "mx.example.com.");
    dns.add_mx("nullmx.example", 0, ".");
    let r = resolver(dns.addr(), Transport::UdpAndTcp);

    let mx = r.mx_lookup("example.com.").await.unwrap();
    assert_eq!(
        mx_list(&mx),
        [
            (10, "mx.example.com.".to_string()),
            (20, "backup.example.com.".to_string())
        ]
    );

    // RFC 7505 null MX: one record, preference 0, exchange the root.
    let null = r.mx_lookup("nullmx.example.").await.unwrap();
    assert_eq!(mx_list(&null), [(0, ".".to_string())]);
}

#[tokio::test]
async fn a_and_aaaa_records() {
    let dns = TestDns::start().unwrap();
    dns.add_a("mx.example.com", Ipv4Addr::new(127, 0, 0, 1));
    dns.add_a("mx.example.com", Ipv4Addr::new(192, 0, 2, 7));
    dns.add_aaaa("mx.example.com", Ipv6Addr::LOCALHOST);
    let r = resolver(dns.addr(), Transport::UdpAndTcp);

    let mut v4: Vec<Ipv4Addr> = r
        .ipv4_lookup("mx.example.com.")
        .await
        .unwrap()
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    v4.sort();
    assert_eq!(
        v4,
        [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 7)]
    );

    let v6: Vec<Ipv6Addr> = r
        .ipv6_lookup("mx.example.com.")
        .await
        .unwrap()
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(v6, [Ipv6Addr::LOCALHOST]);

    // The lookup_ip path (both families at once) works too.
    let all: Vec<_> = r
        .lookup_ip("mx.example.com.")
        .await
        .unwrap()
        .iter()
        .collect();
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let dns = TestDns::start().unwrap();
    dns.add_a("Mixed.Example.COM.", Ipv4Addr::new(192, 0, 2, 1));
    let r = resolver(dns.addr(), Transport::UdpAndTcp);
    for name in [
        "mixed.example.com.",
        "MIXED.EXAMPLE.COM",
        "mixed.example.com",
    ] {
        let lookup = r.ipv4_lookup(name).await.unwrap();
        assert_eq!(lookup.answers().len(), 1, "{name}");
    }
}

#[tokio::test]
async fn long_txt_comes_back_whole_over_udp_and_tcp() {
    // A DKIM record with a 2048-bit RSA key is about 400 characters.
    let key: String = (0..420).map(|i| (b'A' + (i % 26) as u8) as char).collect();
    let text = format!("v=DKIM1; k=rsa; p={key}");
    assert!(text.len() > 255);

    let dns = TestDns::start().unwrap();
    dns.add_txt("sel._domainkey.example.com", &text);
    dns.add_txt("example.com", "v=spf1 -all");
    dns.add_txt("example.com", "some-verification=abc");

    // UDP only: the answer (about 500 bytes) fits in one datagram because the server
    // answers the resolver's EDNS with EDNS (RFC 6891), rather than truncating at 512.
    for transport in [Transport::UdpAndTcp, Transport::UdpOnly, Transport::TcpOnly] {
        let r = resolver(dns.addr(), transport);
        let lookup = r.txt_lookup("sel._domainkey.example.com.").await.unwrap();
        assert_eq!(lookup.answers().len(), 1, "one record");
        match &lookup.answers()[0].data {
            RData::TXT(txt) => assert!(txt.txt_data.len() >= 2, "split into strings"),
            other => panic!("not a TXT: {other:?}"),
        }
        assert_eq!(txt_strings(&lookup), std::slice::from_ref(&text));

        let mut two = txt_strings(&r.txt_lookup("example.com.").await.unwrap());
        two.sort();
        assert_eq!(two, ["some-verification=abc", "v=spf1 -all"]);
    }
}

#[tokio::test]
async fn nxdomain_and_nodata_are_told_apart() {
    let dns = TestDns::start().unwrap();
    dns.add_a("mx.example.com", Ipv4Addr::new(192, 0, 2, 1));
    dns.add_txt("_dmarc.other.example", "v=DMARC1; p=none");
    let r = resolver(dns.addr(), Transport::UdpAndTcp);

    // The name exists, not with this type: NODATA.
    let e = r.mx_lookup("mx.example.com.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NoError), "{e}");
    // The SOA is there for negative caching (RFC 2308).
    match &e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => {
            assert!(no.soa.is_some(), "SOA in the authority section");
            assert_eq!(no.negative_ttl, Some(pochta_testdns::TTL));
        }
        other => panic!("{other}"),
    }

    // No records at the name, but below it: NODATA too (an empty non-terminal).
    let e = r.txt_lookup("other.example.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NoError), "{e}");
    let e = r.mx_lookup("example.com.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NoError), "{e}");

    // Nothing at or below: NXDOMAIN, with the SOA.
    let e = r.mx_lookup("nowhere.example.com.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NXDomain), "{e}");
    match &e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => assert!(no.soa.is_some()),
        other => panic!("{other}"),
    }
    let e = r.txt_lookup("_dmarc.nowhere.example.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NXDomain), "{e}");
}

#[tokio::test]
async fn fail_gives_servfail_not_no_records() {
    let dns = TestDns::start().unwrap();
    dns.add_txt("example.com", "v=spf1 -all");
    dns.fail("example.com");
    dns.fail("broken.example");
    let r = resolver(dns.addr(), Transport::UdpAndTcp);

    for (name, lookup) in [
        ("example.com.", r.txt_lookup("example.com.").await),
        ("example.com.", r.mx_lookup("example.com.").await),
        ("broken.example.", r.ipv4_lookup("broken.example.").await),
    ] {
        let e = lookup.unwrap_err();
        assert!(
            no_records_code(&e).is_err(),
            "{name}: SERVFAIL must not read as no records: {e}"
        );
        assert!(
            matches!(
                e,
                NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))
            ),
            "{name}: {e:?}"
        );
    }

    // remove() clears the mark (and the records).
    dns.remove("example.com");
    let e = r.txt_lookup("example.com.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NXDomain), "{e}");
}

#[tokio::test]
async fn changes_while_running_are_seen_at_once() {
    let dns = TestDns::start().unwrap();
    let r = resolver(dns.addr(), Transport::UdpAndTcp);

    let e = r.ipv4_lookup("late.example.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NXDomain), "{e}");

    // Added after start, asked through the same (caching) resolver: TTL 0 means the
    // negative answer above was not kept.
    dns.add_a("late.example", Ipv4Addr::new(192, 0, 2, 9));
    let lookup = r.ipv4_lookup("late.example.").await.unwrap();
    assert_eq!(lookup.answers().len(), 1);

    dns.add_a("late.example", Ipv4Addr::new(192, 0, 2, 10));
    let lookup = r.ipv4_lookup("late.example.").await.unwrap();
    assert_eq!(lookup.answers().len(), 2);

    dns.remove("late.example.");
    let e = r.ipv4_lookup("late.example.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NXDomain), "{e}");
}

#[tokio::test]
async fn tcp_only_resolver() {
    let dns = TestDns::start().unwrap();
    dns.add_mx("example.com", 5, "mx.example.com");
    dns.add_a("mx.example.com", Ipv4Addr::LOCALHOST);
    let r = resolver(dns.addr(), Transport::TcpOnly);

    assert_eq!(
        mx_list(&r.mx_lookup("example.com.").await.unwrap()),
        [(5, "mx.example.com.".to_string())]
    );
    assert_eq!(
        r.ipv4_lookup("mx.example.com.")
            .await
            .unwrap()
            .answers()
            .len(),
        1
    );
    let e = r.ipv4_lookup("gone.example.com.").await.unwrap_err();
    assert_eq!(no_records_code(&e), Ok(ResponseCode::NXDomain), "{e}");
}

#[tokio::test]
async fn queries_are_counted() {
    let dns = TestDns::start().unwrap();
    dns.add_a("counted.example", Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(dns.queries(), 0);
    let r = resolver(dns.addr(), Transport::UdpAndTcp);
    r.ipv4_lookup("counted.example.").await.unwrap();
    assert_eq!(dns.queries(), 1);
    let _ = r.mx_lookup("counted.example.").await;
    assert_eq!(dns.queries(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_a_multi_thread_runtime() {
    let dns = TestDns::start().unwrap();
    dns.add_a("mt.example", Ipv4Addr::new(192, 0, 2, 2));
    let r = resolver(dns.addr(), Transport::UdpAndTcp);
    assert_eq!(
        r.ipv4_lookup("mt.example.").await.unwrap().answers().len(),
        1
    );
}

#[test]
fn works_from_a_plain_test() {
    let dns = TestDns::start().unwrap();
    dns.add_a("sync.example", Ipv4Addr::new(192, 0, 2, 3));
    // The code under test brings its own runtime; the server does not need one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = rt.block_on(async {
        let r = resolver(dns.addr(), Transport::UdpAndTcp);
        r.ipv4_lookup("sync.example.")
            .await
            .unwrap()
            .answers()
            .len()
    });
    assert_eq!(n, 1);
}

#[test]
fn drop_stops_the_server_quickly() {
    let dns = TestDns::start().unwrap();
    let addr = dns.addr();
    let t = Instant::now();
    drop(dns);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Both sockets are closed: the port can be bound again.
    let _udp = std::net::UdpSocket::bind(addr).unwrap();
    let _tcp = std::net::TcpListener::bind(addr).unwrap();
}

#[tokio::test]
async fn drop_inside_an_async_test_does_not_panic() {
    let dns = TestDns::start().unwrap();
    dns.add_a("x.example", Ipv4Addr::new(192, 0, 2, 4));
    let r = resolver(dns.addr(), Transport::UdpAndTcp);
    r.ipv4_lookup("x.example.").await.unwrap();
    drop(dns);
    // A second server after the first is gone.
    let dns = TestDns::start().unwrap();
    dns.add_a("x.example", Ipv4Addr::new(192, 0, 2, 5));
    let r = resolver(dns.addr(), Transport::UdpAndTcp);
    r.ipv4_lookup("x.example.").await.unwrap();
}

#[tokio::test]
async fn drop_with_a_client_connected_over_tcp_is_quick() {
    let dns = TestDns::start().unwrap();
    dns.add_a("held.example", Ipv4Addr::new(192, 0, 2, 6));
    // The resolver keeps its TCP connection open, and outlives the server.
    let r = resolver(dns.addr(), Transport::TcpOnly);
    r.ipv4_lookup("held.example.").await.unwrap();
    let t = Instant::now();
    drop(dns);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The resolver now fails, rather than hangs.
    assert!(r.ipv4_lookup("held.example.").await.is_err());
}
