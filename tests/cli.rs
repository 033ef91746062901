//! The administration commands, against the same data a running server uses.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use common::*;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn rcpt_code(server: &Server, rcpt: &str) -> i64 {
    let port = server.ports.smtp.to_string();
    let line = format!("RCPT TO:<{rcpt}>");
    let r = json(&server.py(&[
        "script",
        "--port",
        &port,
        "--line",
        "EHLO c",
        "--line",
        "MAIL FROM:<a@remote.example>",
        "--line",
        &line,
    ]));
    r["replies"][2][0].as_i64().unwrap()
}

fn login_code(server: &Server, user: &str, password: &str) -> i64 {
    let file = write_file(server.dir.path(), "login.eml", b"Subject: x\r\n\r\nx\r\n");
    let r = server.submit((user, password), user, &[user], &file);
    if r["ok"] == true {
        250
    } else {
        r["code"].as_i64().unwrap_or(0)
    }
}

#[test]
fn accounts_changed_by_the_cli_take_effect_in_the_running_server() {
    let server = Server::start();
    assert_eq!(rcpt_code(&server, "carol@localhost"), 550);
    server.add_user("carol@localhost");
    assert_eq!(
        rcpt_code(&server, "carol@localhost"),
        250,
        "a new user is deliverable at once"
    );

    let list = server.cli(&["user", "list"], None);
    assert!(list.status.success());
    assert!(
        stdout(&list).contains("carol@localhost"),
        "{}",
        stdout(&list)
    );

    let dup = server.cli(
        &["user", "add", "Carol@LOCALHOST", "--password-stdin"],
        Some("pw\n"),
    );
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("exists"), "{}", stderr(&dup));

    assert_eq!(login_code(&server, "carol@localhost", PASSWORD), 250);
    let pw = server.cli(
        &["user", "passwd", "carol@localhost", "--password-stdin"],
        Some("new secret\n"),
    );
    assert!(pw.status.success(), "{}", stderr(&pw));
    assert_eq!(
        login_code(&server, "carol@localhost", PASSWORD),
        535,
        "old password refused"
    );
    assert_eq!(login_code(&server, "carol@localhost", "new secret"), 250);

    let alias = server.cli(
        &["alias", "add", "sales@example.test", "carol@localhost"],
        None,
    );
    assert!(alias.status.success(), "{}", stderr(&alias));
    assert_eq!(rcpt_code(&server, "sales@example.test"), 250);
    let aliases = server.cli(&["alias", "list"], None);
    assert!(
        stdout(&aliases).contains("sales@example.test -> carol@localhost"),
        "{}",
        stdout(&aliases)
    );
    let del = server.cli(&["alias", "del", "sales@example.test"], None);
    assert!(del.status.success());
    assert_eq!(rcpt_code(&server, "sales@example.test"), 550);

    let del = server.cli(&["user", "del", "carol@localhost"], None);
    assert!(del.status.success(), "{}", stderr(&del));
    assert_eq!(
        rcpt_code(&server, "carol@localhost"),
        550,
        "a deleted user is gone at once"
    );
}

#[test]
fn addresses_must_be_in_a_configured_domain() {
    let server = Server::start();
    let out = server.cli(
        &["user", "add", "eve@elsewhere.example", "--password-stdin"],
        Some("pw\n"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not in a local domain"),
        "{}",
        stderr(&out)
    );
    server.add_user("bob@localhost");
    let out = server.cli(
        &["alias", "add", "fwd@localhost", "bob@elsewhere.example"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not in a local domain"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(
        &["user", "add", "not-an-address", "--password-stdin"],
        Some("pw\n"),
    );
    assert!(!out.status.success());
    let out = server.cli(
        &["user", "add", "empty@localhost", "--password-stdin"],
        Some("\n"),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
}

#[test]
fn bad_configuration_is_a_clear_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[limits]\nmesage_size = 10\n", "limits.mesage_size"),
        ("[listen]\nsmtp = \"127.0.0.1:99999\"\n", "listen.smtp"),
        ("domains = []\n", "domains"),
        ("[limits]\nmessage_size = \"lots\"\n", "limits.message_size"),
    ] {
        let cfg = write_file(dir.path(), "bad.toml", text.as_bytes());
        let out = cli(Some(&cfg), &["serve"], None);
        assert!(!out.status.success(), "{text} was accepted");
        assert!(
            stderr(&out).contains(key),
            "error for {text:?} does not name {key}: {}",
            stderr(&out)
        );
    }
    let out = cli(Some(&dir.path().join("missing.toml")), &["serve"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn a_taken_port_is_reported_with_its_key() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = \"d\"\n[listen]\nsmtp = \"127.0.0.1:{}\"\nsubmission = \"\"\nsubmissions = \"\"\nimap = \"\"\nimaps = \"\"\npop3 = \"\"\npop3s = \"\"\nhttp = \"\"\n",
        server.ports.smtp
    );
    let cfg = write_file(dir.path(), "c.toml", text.as_bytes());
    let out = cli(Some(&cfg), &["serve"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("listen.smtp"), "{}", stderr(&out));
}

#[test]
fn serve_prints_endpoints_and_the_first_user_command() {
    let server = Server::start();
    let banner = std::fs::read_to_string(server.dir.path().join("stdout-1.txt")).unwrap();
    assert!(
        banner.contains(&format!("127.0.0.1:{}", server.ports.smtp)),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("127.0.0.1:{}", server.ports.submissions)),
        "{banner}"
    );
    assert!(
        banner.contains("user add you@localhost --password-stdin"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("--config {}", server.config.display())),
        "{banner}"
    );
}

#[test]
fn quotas_are_set_by_the_cli_and_respected_by_smtp_and_imap() {
    let server = Server::start();
    let out = server.cli(
        &[
            "user",
            "add",
            "bob@localhost",
            "--password-stdin",
            "--quota",
            "4k",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body = format!(
        "Subject: sized\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(98)).repeat(25)
    );
    let file = write_file(server.dir.path(), "q.eml", body.as_bytes());
    let port = server.ports.smtp.to_string();
    let send = || {
        json(&server.py(&[
            "send",
            "--port",
            &port,
            "--from",
            "a@remote.example",
            "--to",
            "bob@localhost",
            "--file",
            file.to_str().unwrap(),
        ]))
    };
    assert_eq!(send()["ok"], true, "the first message fits");
    let r = send();
    assert_eq!(r["code"], 452, "the second does not: {r}");
    assert!(r["message"].as_str().unwrap().starts_with("4.2.2"), "{r}");
    // Now the mailbox is over its quota: refused at RCPT already.
    let r = json(&server.py(&[
        "script",
        "--port",
        &port,
        "--line",
        "EHLO c",
        "--line",
        "MAIL FROM:<a@remote.example>",
        "--line",
        "RCPT TO:<bob@localhost>",
    ]));
    assert_eq!(
        r["replies"][2][0], 250,
        "2.5k of 4k used: still accepted at RCPT: {r}"
    );
    let list = server.cli(&["user", "list"], None);
    assert!(stdout(&list).contains("4.0 KiB"), "{}", stdout(&list));
    let imap = server.ports.imaps.to_string();
    let r = json(&server.imap(&[
        "raw",
        "--port",
        &imap,
        "--security",
        "tls",
        "--user",
        "bob@localhost",
        "--password",
        PASSWORD,
        "--line",
        "GETQUOTAROOT INBOX",
    ]));
    assert_eq!(r["responses"][1][1], "* QUOTA \"\" (STORAGE 3 4)", "{r}");
    let out = server.cli(&["user", "quota", "bob@localhost", "none"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(send()["ok"], true, "no quota, no limit");
}
