//! `pochta check` against the real binary: a store in use passes, also while the
//! server runs and right after `kill -9`; a damaged one is reported with a
//! non-zero exit status.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use std::process::{Command, Output};

use common::*;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: a@remote.example\r\nTo: bob@localhost\r\nMessage-ID: <check-{n}@remote.example>\r\n\
         Subject: check {n}\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

/// Changes the store behind the server's back with Python's sqlite3.
fn sql(server: &Server, statement: &str) {
    let db = server.data_dir().join("store.sqlite3");
    let status = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()")
        .arg(&db)
        .arg(statement)
        .status()
        .expect("python3");
    assert!(status.success(), "{statement}");
}

#[test]
fn check_passes_live_and_after_kill_and_reports_damage() {
    let mut server = Server::start();
    server.add_user("bob@localhost");
    for n in 0..5 {
        server.deliver("bob@localhost", &message(n));
    }

    // While the server runs: a read-only look at a live store.
    let live = server.cli(&["check"], None);
    let out = text(&live);
    assert!(live.status.success(), "{out}");
    assert!(out.contains("no problems found"), "{out}");
    assert!(out.contains("5 messages"), "{out}");
    assert!(out.contains("parsed 5 messages: 0 failed"), "{out}");

    // Right after kill -9: the WAL is not checkpointed, the check reads it.
    server.kill9();
    let stopped = server.cli(&["check", "--full"], None);
    assert!(stopped.status.success(), "{}", text(&stopped));

    // A kept counter that no longer matches the messages.
    sql(
        &server,
        "UPDATE mailboxes SET total = total + 1 WHERE name = 'INBOX'",
    );
    let damaged = server.cli(&["check"], None);
    let out = text(&damaged);
    assert_eq!(damaged.status.code(), Some(1), "{out}");
    assert!(out.contains("[counter] mailbox"), "{out}");
    assert!(out.contains("1 problem(s)"), "{out}");
}

#[test]
fn check_without_a_store_fails() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pochta.toml");
    let data = dir.path().join("nothing-here");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let out = cli(Some(&config), &["check"], None);
    assert!(!out.status.success());
    assert!(text(&out).contains("no store"), "{}", text(&out));
}
