//! The whole JMAP mail service (`pochta_jmap::Jmap::handle`) on a real
//! embedded store in a temporary directory: an arbitrary request body runs
//! as alice, whose account holds a few delivered messages, through request
//! parsing, processing and every mail method (Mailbox, Thread, Email,
//! SearchSnippet, Identity, EmailSubmission, VacationResponse).
//!
//! The store lives across inputs (one per process, in
//! `$TMPDIR/pochta-fuzz-jmap-<pid>-<n>`; a process removes those of processes
//! that are gone, since a fuzzer exits without dropping statics), so earlier
//! inputs may have changed it; that is fine for finding crashes, and a crash
//! input is replayed on a fresh store by running the target on it alone. It
//! is started afresh once alice holds more than [`MAX_MESSAGES`]: inputs that
//! create emails would otherwise grow it without end, every input would get
//! slower (a `text` filter reads every message) and a slow disk could turn
//! one into a false timeout.
//!
//! Invariants: no panic; a refused request is a 4xx problem; a processed
//! request's response serialises to JSON whose every response names one of
//! the request's call ids.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use pochta_addr::{Address, Domain};
use pochta_delivery::{Incoming, LocalDelivery, Trace};
use pochta_jmap::{Jmap, JmapSettings};
use pochta_store::{Account, NewAccount, SqliteStore, Store};
use serde_json::Value;

struct World {
    rt: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
    jmap: Arc<Jmap>,
    alice: Account,
}

const MESSAGES: [&[u8]; 4] = [
    b"From: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: first\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <m1@example.org>\r\n\r\nHello one\r\n",
    b"From: Carol <carol@example.org>\r\nTo: alice@example.com\r\nSubject: Re: first\r\nMessage-ID: <m2@example.org>\r\nIn-Reply-To: <m1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>two</b></p>\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n",
    b"From: Dan <dan@example.org>\r\nTo: alice@example.com\r\nSubject: third\r\n\r\nHello three\r\n",
    // Group syntax, list and resent fields, several charsets and a decoding
    // problem: what the header forms and body values of Email/get convert.
    b"From: =?iso-8859-1?q?J=F6rg?= <joerg@example.org>\r\nSender: list-bounces@example.org\r\nReply-To: \"List\" <list@example.org>\r\nTo: Team: alice@example.com, \"Bob B.\" <bob@example.com>;, dan@example.org\r\nCc: undisclosed-recipients:;\r\nBcc: carol@example.org\r\nSubject: =?utf-8?b?w4RwZmVs?= und Birnen\r\nDate: Tue, 29 Feb 2024 23:59:60 +1400\r\nMessage-ID: <m4@example.org>\r\nIn-Reply-To: <m1@example.org> (first)\r\nReferences: <m1@example.org>\r\n <m2@example.org>\r\nList-Post: <mailto:list@example.org> (post), <https://example.org/post?a=(b)>\r\nList-Unsubscribe: <https://example.org/u>, <mailto:u@example.org?subject=x>\r\nComments: one\r\nComments: two\r\nKeywords: fruit, =?utf-8?q?=C3=A4?=\r\nResent-From: r@example.org\r\nResent-Date: Wed, 1 Jan 2025 00:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Language: de\r\n\r\n=C4pfel =80 5 f=FCr alle, eine lange Zeile =E4=F6=FC =E4=F6=FC =E4=F6=FC\r\n--a\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>\xc4pfel</p>\r\n--a--\r\n--o\r\nContent-Type: text/plain; charset=x-unknown-charset\r\nContent-Disposition: inline\r\n\r\nbytes \xff\xfe here\r\n--o\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"n.txt\"\r\n\r\n/w==\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\nSubject: inner\r\n\r\ninner body\r\n--o--\r\n",
];

/// A fresh directory for this process's store (`<pid>-<generation>`), after
/// removing the stores of earlier fuzzer processes that no longer run and
/// this process's earlier generations. A new generation never reuses a path:
/// the dropped store's threads may still hold its files open, and SQLite
/// answers "disk I/O error" when a new database appears under them.
fn store_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    const PREFIX: &str = "pochta-fuzz-jmap-";
    static GENERATION: AtomicU32 = AtomicU32::new(0);
    let me = std::process::id().to_string();
    let base = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|rest| rest.split('-').next())
            else {
                continue;
            };
            if pid == me || !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    base.join(format!("{PREFIX}{me}-{generation}"))
}

/// Messages alice may hold before the store is started afresh.
const MAX_MESSAGES: u64 = 300;

/// Inputs between two looks at the store's size.
const CHECK_EVERY: u32 = 256;

impl World {
    /// Messages in alice's mailboxes.
    fn messages(&self) -> u64 {
        self.rt
            .block_on(self.store.mailboxes(self.alice.id))
            .map(|boxes| boxes.iter().map(|b| u64::from(b.total)).sum())
            .unwrap_or(0)
    }
}

/// A store holding alice's and bob's accounts and the [`MESSAGES`].
fn world() -> World {
    {
        let dir = store_dir();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (store, jmap, alice) = rt.block_on(async {
            let store = Arc::new(SqliteStore::open(&dir).expect("the store opens"));
            let mut alice = None;
            for a in ["alice@example.com", "bob@example.com"] {
                let acc = store
                    .create_account(NewAccount {
                        address: Address::parse(a).expect("an address"),
                        password_hash: "$argon2id$dummy".into(),
                        quota: None,
                    })
                    .await
                    .expect("an account");
                alice.get_or_insert(acc);
            }
            let delivery = Arc::new(LocalDelivery::new(
                store.clone(),
                "mx.example.com".into(),
                vec![Domain::parse("example.com").expect("a domain")],
            ));
            for m in MESSAGES {
                let msg = Incoming::new(
                    Address::parse("sender@remote.example").ok(),
                    vec![Address::parse("alice@example.com").expect("an address")],
                    m.to_vec(),
                    Trace::default(),
                );
                delivery.deliver(msg).await.expect("delivered");
            }
            let jmap = Jmap::new(store.clone(), delivery, JmapSettings::new("mx.example.com"));
            (store, jmap, alice.expect("alice"))
        });
        World {
            rt,
            store,
            jmap,
            alice,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static WORLD: Mutex<Option<(World, u32)>> = Mutex::new(None);
    let mut guard = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((w, inputs)) = guard.as_mut() {
        *inputs += 1;
        if *inputs % CHECK_EVERY == 0 && w.messages() > MAX_MESSAGES {
            // Dropped (store closed) before `world` removes its directory.
            *guard = None;
        }
    }
    let (w, _) = guard.get_or_insert_with(|| (world(), 0));
    let call_ids: Vec<String> = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| {
            v.get("methodCalls")?.as_array().map(|calls| {
                calls
                    .iter()
                    .filter_map(|c| c.get(2)?.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default();
    match w.rt.block_on(w.jmap.handle(&w.alice, data)) {
        Err(e) => {
            assert!((400..500).contains(&e.status()), "status {}", e.status());
            let _ = e.to_json();
        }
        Ok(response) => {
            let bytes = response.to_bytes();
            let v: Value = serde_json::from_slice(&bytes).expect("the response is JSON");
            let responses = v["methodResponses"].as_array().expect("methodResponses");
            for r in responses {
                let id = r[2].as_str().expect("a call id");
                assert!(
                    call_ids.iter().any(|c| c == id),
                    "response with an unknown call id {id:?}"
                );
            }
        }
    }
});
