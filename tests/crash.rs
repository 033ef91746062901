//! `kill -9` while messages are arriving: nothing acknowledged is lost,

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve
//! nothing is stored twice, nothing half-written is visible.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs the crash sender against the server, kills the server with SIGKILL after
/// `kill_after` acknowledgements, and returns (announced hashes, acknowledged ids).
fn round(
    server: &mut Server,
    tag: &str,
    kill_after: usize,
) -> (HashMap<String, String>, Vec<String>) {
    let port = server.ports.smtp.to_string();
    let mut child = Command::new("python3")
        .arg(repo().join("tests/py/smtp_tool.py"))
        .args([
            "crash-sender",
            "--port",
            &port,
            "--to",
            "bob@localhost",
            "--threads",
            "6",
            "--count",
            "100000",
            "--tag",
            tag,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().expect("stdout");
    let mut sent = HashMap::new();
    let mut acked = Vec::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read sender output");
        let mut parts = line.split(' ');
        match parts.next() {
            Some("SENT") => {
                let id = parts.next().unwrap_or_default().to_string();
                let sha = parts.next().unwrap_or_default().to_string();
                sent.insert(id, sha);
            }
            Some("ACK") => acked.push(parts.next().unwrap_or_default().to_string()),
            _ => {}
        }
        if !killed && acked.len() >= kill_after {
            server.kill9();
            killed = true;
        }
        assert!(Instant::now() < deadline, "crash round took too long");
    }
    let _ = child.wait();
    assert!(
        killed,
        "the sender stopped before the kill ({} acks)",
        acked.len()
    );
    (sent, acked)
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_minus_nine_loses_no_acknowledged_message() {
    let mut server = Server::start();
    server.add_user("bob@localhost");
    let mut all_sent = HashMap::new();
    let mut all_acked = Vec::new();
    for (i, kill_after) in [40usize, 150, 400].into_iter().enumerate() {
        let (sent, acked) = round(&mut server, &i.to_string(), kill_after);
        all_sent.extend(sent);
        all_acked.extend(acked);
        // The store must come back after SIGKILL.
        server.restart();
    }

    let store = server.store();
    let msgs = inbox(&store, "bob@localhost").await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut mismatched = Vec::new();
    let mut uids = Vec::new();
    for (rec, raw) in &msgs {
        uids.push(rec.summary.uid);
        let id = rec
            .meta
            .message_id
            .clone()
            .expect("every test message has a Message-ID");
        *seen.entry(id.clone()).or_default() += 1;
        // Everything after our trace headers is exactly what was sent.
        let start = find(raw, b"Message-ID: <").expect("original headers present");
        let expected = all_sent.get(&id).expect("stored message was announced");
        if &sha256_hex(&raw[start..]) != expected {
            mismatched.push(id);
        }
    }
    assert!(
        mismatched.is_empty(),
        "stored messages differ from what was sent: {mismatched:?}"
    );
    let lost: Vec<&String> = all_acked
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let dups: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "stored twice: {dups:?}");
    let mut sorted = uids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), uids.len(), "UIDs are unique");
    assert!(
        all_acked.len() >= 590,
        "enough traffic was acknowledged: {}",
        all_acked.len()
    );
    eprintln!(
        "crash test: {} acknowledged, {} stored, {} announced",
        all_acked.len(),
        msgs.len(),
        all_sent.len()
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
