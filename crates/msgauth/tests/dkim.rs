//! Signatures made with generated keys verify, whatever the key and name lengths.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

use std::sync::Arc;
use std::time::Duration;

use pochta_msgauth::{CheckSettings, Checker, DkimKeys, Dns, KeyAlgorithm, Nameservers, generate};
use pochta_testdns::TestDns;

/// The domain and selector lengths with which mail-auth used to put the final
/// `;` of an RSA-2048 signature alone on a folded line (dkimpy then failed it).
#[tokio::test]
async fn generated_keys_sign_verifiably_and_without_a_lonely_semicolon() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start().unwrap();
    for (domain, selector, alg) in [
        ("interop.test", "rsa202611", KeyAlgorithm::Rsa2048),
        ("interop.test", "ed202611", KeyAlgorithm::Ed25519),
        ("a.test", "s", KeyAlgorithm::Rsa2048),
    ] {
        let key = generate(dir.path(), domain, selector, alg).unwrap();
        dns.add_txt(&key.dns_name, &key.dns_txt);
    }
    let keys = DkimKeys::open(dir.path());
    let resolver = Arc::new(
        Dns::new(
            &Nameservers::Given(vec![dns.addr()]),
            Duration::from_secs(3),
        )
        .unwrap(),
    );
    let checker = Checker::new(
        resolver,
        CheckSettings {
            authserv_id: "mx.test".into(),
            reject_dmarc: false,
            skip: vec![],
        },
    );
    for domain in ["interop.test", "a.test"] {
        let body = format!(
            "From: Ray <ray@{domain}>\r\nTo: someone@pf.test\r\nSubject: dkim\r\nMessage-ID: <x@{domain}>\r\n\r\n.leading dot\r\ntrailing space \r\n{}\r\n",
            "x".repeat(900)
        );
        let sigs = keys.sign(domain, body.as_bytes()).unwrap();
        assert!(!sigs.contains("\r\n\t;"), "{sigs}");
        assert!(!sigs.contains("\r\n ;"), "{sigs}");
        let mut signed = sigs.into_bytes();
        signed.extend_from_slice(body.as_bytes());
        let v = checker
            .check("192.0.2.1".parse().unwrap(), "client.test", None, &signed)
            .await;
        let passes = v.header.matches("dkim=pass").count();
        let expected = if domain == "interop.test" { 2 } else { 1 };
        assert_eq!(passes, expected, "{}", v.header);
    }
}
