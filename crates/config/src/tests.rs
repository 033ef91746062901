use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/base"))
}

/// Parses `text`, expects an error about `key`, and returns its message.
#[track_caller]
fn fails(text: &str, key: &str) -> String {
    let err = parse(text).expect_err("config should be rejected");
    let shown = err.to_string();
    assert_eq!(err.key(), Some(key), "wrong key in: {shown}");
    assert!(shown.contains(key), "message does not name {key}: {shown}");
    shown
}

/// `Config::default()` with the host name of `other`, which is machine dependent.
fn same_as_default(other: &Config) -> Config {
    Config {
        hostname: other.hostname.clone(),
        ..Config::default()
    }
}

fn domain(s: &str) -> Domain {
    Domain::parse(s).expect("valid test domain")
}

#[test]
fn empty_file_is_the_defaults() {
    let config = Config::from_toml("", Path::new("/etc/pochta")).expect("empty file");
    assert_eq!(config, Config::default());
    assert_eq!(config.data_dir, PathBuf::from("./pochta-data"));
    assert_eq!(config.domains, vec![domain("localhost")]);
    assert_eq!(config.primary_domain().as_str(), "localhost");
    assert_eq!(config.tls_dir(), PathBuf::from("./pochta-data/tls"));
    assert_eq!(config.limits.message_size, 52_428_800);
    assert_eq!(config.limits.command_timeout, Duration::from_secs(300));
    assert_eq!(config.log.format, LogFormat::Text);
    // Comments and whitespace only are still "empty".
    assert_eq!(parse("# nothing\n\n").expect("comment"), Config::default());
}

#[test]
fn default_is_valid_and_hostname_is_a_domain() {
    let config = Config::default();
    config.validate().expect("defaults validate");
    let host = Domain::parse(&config.hostname).expect("host name parses");
    assert!(!host.is_literal());
    assert_eq!(host.as_str(), config.hostname);
    assert_eq!(config.hostname, config.hostname.to_ascii_lowercase());
}

#[test]
fn example_is_the_defaults() {
    let config = Config::from_toml(example_toml(), Path::new("")).expect("example parses");
    assert_eq!(config, same_as_default(&config));
    // Wherever the file is: the example leaves data_dir at its default.
    let config = Config::from_toml(example_toml(), Path::new("/etc/pochta")).expect("parses");
    assert_eq!(config, same_as_default(&config));
    // The commented-out example values are valid too (tls files aside).
    let uncommented: String = example_toml()
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.starts_with("hostname = ") || rest.starts_with("data_dir = ") => {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::from_toml(&uncommented, Path::new("/etc/pochta")).expect("parses");
    assert_eq!(config.hostname, "mail.example.com");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/pochta"));
}

#[test]
fn example_mentions_every_key() {
    let config = Config::default();
    let text = config.to_toml();
    for line in text.lines() {
        if let Some((key, _)) = line.split_once(" = ") {
            assert!(
                example_toml().contains(&format!("{key} = ")),
                "example lacks {key}"
            );
        }
    }
    for key in ["cert = ", "key = ", "hostname = ", "data_dir = "] {
        assert!(example_toml().contains(key), "example lacks {key}");
    }
}

#[test]
fn docs_contain_the_example() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md"))
            .expect("docs/CONFIG.md exists");
    assert!(
        docs.contains(example_toml()),
        "docs/CONFIG.md must contain src/example.toml verbatim"
    );
}

#[test]
fn every_key_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cert.pem"), "cert").expect("write");
    std::fs::write(dir.path().join("key.pem"), "key").expect("write");
    let text = r#"
hostname = "Mail.Example.COM."
data_dir = "/var/lib/pochta"
domains = ["example.com", "Example.ORG", "bücher.example"]

[listen]
smtp = "0.0.0.0:25"
submission = "0.0.0.0:587"
submissions = "[::]:465"
imap = ""
imaps = "192.0.2.1:993"
pop3 = ""
pop3s = "[2001:db8::1]:995"
http = "127.0.0.1:80"

[tls]
cert = "cert.pem"
key = "key.pem"

[limits]
message_size = "25MiB"
recipients = 50
connections_per_ip = 5
connections = 100
command_timeout = "1h30m"
data_timeout = 120
line_length = 2048
errors = 3
shutdown_grace = "0s"

[auth]
delay_after = 0
lockout_after = 5
lockout = "1h"
window = "2d"

[log]
level = "info,pochta_store=debug"
format = "json"
"#;
    let config = Config::from_toml(text, dir.path()).expect("valid config");
    let sock = |s: &str| Some(s.parse::<SocketAddr>().expect("test address"));
    let expected = Config {
        hostname: "mail.example.com".into(),
        data_dir: "/var/lib/pochta".into(),
        domains: vec![
            domain("example.com"),
            domain("example.org"),
            domain("xn--bcher-kva.example"),
        ],
        listen: Listen {
            smtp: sock("0.0.0.0:25"),
            submission: sock("0.0.0.0:587"),
            submissions: sock("[::]:465"),
            imap: None,
            imaps: sock("192.0.2.1:993"),
            pop3: None,
            pop3s: sock("[2001:db8::1]:995"),
            http: sock("127.0.0.1:80"),
        },
        tls: Tls {
            cert: Some(dir.path().join("cert.pem")),
            key: Some(dir.path().join("key.pem")),
        },
        limits: Limits {
            message_size: 25 << 20,
            recipients: 50,
            connections_per_ip: 5,
            connections: 100,
            command_timeout: Duration::from_secs(5400),
            data_timeout: Duration::from_secs(120),
            line_length: 2048,
            errors: 3,
            shutdown_grace: Duration::ZERO,
        },
        auth: AuthLimits {
            delay_after: 0,
            lockout_after: 5,
            lockout: Duration::from_secs(3600),
            window: Duration::from_secs(2 * 86400),
        },
        log: Log {
            level: "info,pochta_store=debug".into(),
            format: LogFormat::Json,
        },
    };
    assert_eq!(config, expected);
    assert!(config.is_local_domain(&domain("EXAMPLE.org")));
    assert!(!config.is_local_domain(&domain("example.net")));
    assert!(!config.is_local_domain(&domain("[192.0.2.1]")));
    assert_eq!(config.primary_domain().as_str(), "example.com");

    // The effective config written out reads back the same.
    let again = Config::from_toml(&config.to_toml(), dir.path()).expect("round trip");
    assert_eq!(again, config);
}

#[test]
fn to_toml_round_trips_defaults() {
    let config = Config::default();
    let text = config.to_toml();
    let again = Config::from_toml(&text, Path::new("")).expect("round trip");
    assert_eq!(again, config);
    assert!(text.contains("message_size = \"50M\""), "{text}");
    assert!(text.contains("command_timeout = \"5m\""), "{text}");
}

#[test]
fn empty_string_disables_a_listener() {
    let config = parse("[listen]\nsmtp = \"\"\nhttp = \"  \"\n").expect("valid");
    assert_eq!(config.listen.smtp, None);
    assert_eq!(config.listen.http, None);
    assert_eq!(config.listen.imap, Listen::default().imap);
    let all = config.listen.all();
    let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "smtp",
            "submission",
            "submissions",
            "imap",
            "imaps",
            "pop3",
            "pop3s",
            "http"
        ]
    );
    assert_eq!(all[0].1, None);
    assert_eq!(all[3].1, Listen::default().imap);
    assert!(Listen::disabled().all().iter().all(|(_, a)| a.is_none()));
}

#[test]
fn bad_listen_addresses() {
    let msg = fails("[listen]\nsmtp = \"127.0.0.1:99999\"\n", "listen.smtp");
    assert!(
        msg.starts_with("listen.smtp: invalid socket address \"127.0.0.1:99999\""),
        "{msg}"
    );
    fails("[listen]\nimap = \"localhost:143\"\n", "listen.imap");
    fails("[listen]\nimaps = \"993\"\n", "listen.imaps");
    fails("[listen]\npop3 = 110\n", "listen.pop3");
}

#[test]
fn two_listeners_on_one_address() {
    let msg = fails(
        "[listen]\nsmtp = \"127.0.0.1:2525\"\nimap = \"127.0.0.1:2525\"\n",
        "listen.imap",
    );
    assert!(msg.contains("listen.smtp"), "{msg}");
    // Wildcard and specific address on the same port clash too.
    let msg = fails(
        "[listen]\nsmtp = \"0.0.0.0:25\"\nhttp = \"127.0.0.1:25\"\n",
        "listen.http",
    );
    assert!(msg.contains("listen.smtp"), "{msg}");
    // Port 0 (tests: "any free port") never clashes; different IPs do not clash.
    let zero = "127.0.0.1:0";
    let text = format!(
        "[listen]\nsmtp = \"{zero}\"\nsubmission = \"{zero}\"\nimap = \"{zero}\"\n\
         submissions = \"127.0.0.2:2465\"\nhttp = \"[::1]:2465\"\n"
    );
    parse(&text).expect("port 0 and distinct IPs are fine");
    // Disabled listeners are ignored.
    parse("[listen]\nsmtp = \"\"\nimap = \"\"\n").expect("two disabled listeners");
}

#[test]
fn bad_sizes() {
    let msg = fails("[limits]\nmessage_size = \"50X\"\n", "limits.message_size");
    assert!(msg.contains("\"50X\""), "{msg}");
    fails("[limits]\nmessage_size = \"1.5G\"\n", "limits.message_size");
    fails("[limits]\nmessage_size = -1\n", "limits.message_size");
    fails("[limits]\nmessage_size = 1023\n", "limits.message_size");
    fails("[limits]\nmessage_size = \"1T\"\n", "limits.message_size");
    fails("[limits]\nmessage_size = 1.5\n", "limits.message_size");
    let config = parse("[limits]\nmessage_size = 1024\n").expect("minimum");
    assert_eq!(config.limits.message_size, 1024);
    let config = parse("[limits]\nmessage_size = \"512k\"\n").expect("suffix");
    assert_eq!(config.limits.message_size, 512 * 1024);
    let config = parse("[limits]\nmessage_size = \"1GB\"\n").expect("suffix");
    assert_eq!(config.limits.message_size, 1 << 30);
}

#[test]
fn bad_durations() {
    let msg = fails("[limits]\ncommand_timeout = -5\n", "limits.command_timeout");
    assert!(msg.contains("negative"), "{msg}");
    let msg = fails("[limits]\ncommand_timeout = 0\n", "limits.command_timeout");
    assert!(msg.contains("zero"), "{msg}");
    fails(
        "[limits]\ncommand_timeout = \"0s\"\n",
        "limits.command_timeout",
    );
    fails("[limits]\ndata_timeout = \"-5m\"\n", "limits.data_timeout");
    fails(
        "[limits]\ndata_timeout = \"5 minutes\"\n",
        "limits.data_timeout",
    );
    fails(
        "[limits]\nshutdown_grace = \"1.5s\"\n",
        "limits.shutdown_grace",
    );
    fails("[auth]\nlockout = \"0m\"\n", "auth.lockout");
    fails("[auth]\nwindow = 0\n", "auth.window");
    fails("[auth]\nwindow = \"9999d\"\n", "auth.window");
    let config = parse("[limits]\ncommand_timeout = 90\ndata_timeout = \"250ms\"\n").expect("ok");
    assert_eq!(config.limits.command_timeout, Duration::from_secs(90));
    assert_eq!(config.limits.data_timeout, Duration::from_millis(250));
}

#[test]
fn other_limits_out_of_range() {
    fails("[limits]\nrecipients = 0\n", "limits.recipients");
    fails("[limits]\nrecipients = -3\n", "limits.recipients");
    fails(
        "[limits]\nconnections_per_ip = 0\n",
        "limits.connections_per_ip",
    );
    fails("[limits]\nconnections = 0\n", "limits.connections");
    fails("[limits]\nconnections = 5000000000\n", "limits.connections");
    fails("[limits]\nline_length = 511\n", "limits.line_length");
    fails("[limits]\nerrors = 0\n", "limits.errors");
    fails("[auth]\nlockout_after = 0\n", "auth.lockout_after");
    parse("[limits]\nline_length = 512\n").expect("minimum line length");
}

#[test]
fn wrong_types() {
    let msg = fails("[limits]\nrecipients = \"many\"\n", "limits.recipients");
    assert!(msg.contains("invalid type"), "{msg}");
    fails("hostname = 5\n", "hostname");
    fails("data_dir = true\n", "data_dir");
    fails("domains = \"example.com\"\n", "domains");
    fails("listen = 5\n", "listen");
    fails("[limits]\nerrors = 2.5\n", "limits.errors");
    fails("[tls]\ncert = []\n", "tls.cert");
    fails("[log]\nformat = \"xml\"\n", "log.format");
    fails("[log]\nlevel = 3\n", "log.level");
    fails("[auth]\ndelay_after = true\n", "auth.delay_after");
}

#[test]
fn unknown_keys_name_the_full_path() {
    let msg = fails("[limits]\nmesage_size = 5\n", "limits.mesage_size");
    assert!(
        msg.starts_with(
            "unknown key \"limits.mesage_size\" (expected one of: message_size, recipients, "
        ),
        "{msg}"
    );
    assert!(msg.contains("did you mean \"message_size\""), "{msg}");

    let msg = fails("hostnme = \"x\"\n", "hostnme");
    assert!(
        msg.contains("expected one of: hostname, data_dir, domains, listen"),
        "{msg}"
    );
    assert!(msg.contains("did you mean \"hostname\""), "{msg}");

    for (section, valid) in [
        ("listen", "smtp"),
        ("tls", "cert"),
        ("limits", "recipients"),
        ("auth", "lockout"),
        ("log", "level"),
    ] {
        let msg = fails(
            &format!("[{section}]\nbogus = 1\n"),
            &format!("{section}.bogus"),
        );
        assert!(msg.contains(valid), "{msg}");
        assert!(!msg.contains("did you mean"), "{msg}");
    }
    // A sub-table where none is expected, and dotted keys.
    fails("[limits.extra]\nx = 1\n", "limits.extra");
    fails("limits.nope = 1\n", "limits.nope");
    // An unknown section.
    let msg = fails("[relay]\nhost = \"x\"\n", "relay");
    assert!(msg.contains("unknown key \"relay\""), "{msg}");
}

#[test]
fn bad_domains() {
    let msg = fails("domains = []\n", "domains");
    assert!(msg.contains("at least one"), "{msg}");
    let msg = fails(
        "domains = [\"example.com\", \"EXAMPLE.com.\"]\n",
        "domains[1]",
    );
    assert!(msg.contains("twice"), "{msg}");
    let msg = fails("domains = [\"example.com\", \"[1.2.3.4]\"]\n", "domains[1]");
    assert!(msg.contains("literal"), "{msg}");
    fails("domains = [\"exa mple.com\"]\n", "domains[0]");
    fails("domains = [\"-bad.com\"]\n", "domains[0]");
}

#[test]
fn bad_hostname() {
    fails("hostname = \"\"\n", "hostname");
    fails("hostname = \"not a host\"\n", "hostname");
    let msg = fails("hostname = \"[127.0.0.1]\"\n", "hostname");
    assert!(msg.contains("literal"), "{msg}");
    let config = parse("hostname = \"MX1.Example.com\"\n").expect("valid");
    assert_eq!(config.hostname, "mx1.example.com");
}

#[test]
fn tls_both_or_neither_and_readable() {
    let msg = fails("[tls]\ncert = \"/etc/cert.pem\"\n", "tls.key");
    assert!(msg.contains("not set"), "{msg}");
    fails("[tls]\nkey = \"/etc/key.pem\"\n", "tls.cert");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cert.pem"), "cert").expect("write");
    let msg = Config::from_toml(
        "[tls]\ncert = \"cert.pem\"\nkey = \"missing.pem\"\n",
        dir.path(),
    )
    .expect_err("missing key file")
    .to_string();
    assert!(msg.starts_with("tls.key: cannot read \""), "{msg}");
    assert!(
        msg.contains(&dir.path().join("missing.pem").display().to_string()),
        "{msg}"
    );
    let msg = Config::from_toml(
        "[tls]\ncert = \"nothere.pem\"\nkey = \"cert.pem\"\n",
        dir.path(),
    )
    .expect_err("missing cert file")
    .to_string();
    assert!(msg.starts_with("tls.cert: "), "{msg}");
    // A directory is not a certificate.
    let msg = Config::from_toml("[tls]\ncert = \".\"\nkey = \"cert.pem\"\n", dir.path())
        .expect_err("directory")
        .to_string();
    assert!(msg.starts_with("tls.cert: "), "{msg}");
}

#[test]
fn bad_log_level() {
    let msg = fails("[log]\nlevel = \"verbose\"\n", "log.level");
    assert!(msg.contains("\"verbose\""), "{msg}");
    fails("[log]\nlevel = \"\"\n", "log.level");
    for ok in [
        "error",
        "warn",
        "INFO",
        "debug",
        "trace",
        "off",
        "pochta=trace",
        "warn,hyper=off",
    ] {
        let config = parse(&format!("[log]\nlevel = \"{ok}\"\n")).expect("valid level");
        assert_eq!(config.log.level, ok);
    }
}

#[test]
fn relative_paths_resolve_against_the_base_dir() {
    let config = Config::from_toml("data_dir = \"data\"\n", Path::new("/etc/pochta")).expect("ok");
    assert_eq!(config.data_dir, PathBuf::from("/etc/pochta/data"));
    assert_eq!(config.tls_dir(), PathBuf::from("/etc/pochta/data/tls"));
    let config =
        Config::from_toml("data_dir = \"./x/../y\"\n", Path::new("/etc/pochta")).expect("ok");
    assert_eq!(config.data_dir, PathBuf::from("/etc/pochta/x/../y"));
    let config = Config::from_toml("data_dir = \"/srv/mail\"\n", Path::new("/etc")).expect("ok");
    assert_eq!(config.data_dir, PathBuf::from("/srv/mail"));
    let config = Config::from_toml("data_dir = \"data\"\n", Path::new("")).expect("ok");
    assert_eq!(config.data_dir, PathBuf::from("data"));
    fails("data_dir = \"\"\n", "data_dir");

    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("conf");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(sub.join("c.pem"), "c").expect("write");
    std::fs::write(sub.join("k.pem"), "k").expect("write");
    let file = sub.join("pochta.toml");
    std::fs::write(
        &file,
        "data_dir = \"state\"\n[tls]\ncert = \"c.pem\"\nkey = \"./k.pem\"\n",
    )
    .expect("write");
    let config = Config::load(&file).expect("load");
    assert_eq!(config.data_dir, sub.join("state"));
    assert_eq!(config.tls.cert, Some(sub.join("c.pem")));
    assert_eq!(config.tls.key, Some(sub.join("k.pem")));
}

#[test]
fn load_errors() {
    let err = Config::load(Path::new("/nonexistent/pochta.toml")).expect_err("no file");
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(
        err.to_string().contains("/nonexistent/pochta.toml"),
        "{err}"
    );
    assert_eq!(err.key(), None);
    assert_eq!(
        Config::load_or_default(None).expect("defaults"),
        Config::default()
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let err = parse("hostname = \"a\"\n[limits\n").expect_err("bad toml");
    assert!(matches!(err, ConfigError::Parse { .. }));
    let msg = err.to_string();
    assert!(msg.contains("line 2, column"), "{msg}");
    let err = parse("a = 1\na = 2\n").expect_err("duplicate key");
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn byte_order_mark_is_ignored() {
    parse("\u{feff}[limits]\nrecipients = 5\n").expect("BOM");
}

#[test]
fn unknown_field_message_parsing() {
    assert_eq!(
        parse_unknown_field("unknown field `x`, expected one of `a`, `b`, `c`"),
        Some(("x".into(), vec!["a".into(), "b".into(), "c".into()]))
    );
    assert_eq!(
        parse_unknown_field("unknown field `x`, expected `a` or `b`"),
        Some(("x".into(), vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        parse_unknown_field("unknown field `x`, there are no fields"),
        Some(("x".into(), vec![]))
    );
    assert_eq!(parse_unknown_field("invalid type"), None);
    assert_eq!(edit_distance("mesage_size", "message_size"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
}

#[test]
fn hand_built_configs_validate() {
    let mut config = Config {
        domains: vec![],
        ..Config::default()
    };
    assert_eq!(config.primary_domain().as_str(), "localhost");
    assert_eq!(config.validate().expect_err("empty").key(), Some("domains"));
    config.domains = vec![domain("example.com")];
    config.listen = Listen {
        pop3: Listen::default().smtp,
        ..Listen::default()
    };
    let err = config.validate().expect_err("clash");
    assert_eq!(err.key(), Some("listen.pop3"));
    assert!(err.to_string().contains("listen.smtp"), "{err}");
    config.listen = Listen::disabled();
    config.validate().expect("valid");
    config.hostname = "bad host".into();
    assert_eq!(config.validate().expect_err("bad").key(), Some("hostname"));
}

#[test]
fn type_errors_are_readable() {
    let msg = fails("[limits]\nrecipients = \"many\"\n", "limits.recipients");
    assert!(msg.ends_with("expected a whole number"), "{msg}");
    let msg = fails("[limits]\nconnections = 5000000000\n", "limits.connections");
    assert!(
        msg.ends_with("expected a whole number from 0 to 4294967295"),
        "{msg}"
    );
    let msg = fails("listen = 5\n", "listen");
    assert!(msg.ends_with("expected a table"), "{msg}");
}
