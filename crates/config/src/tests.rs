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
    assert!(!config.http.plain, "clear-text HTTP is off by default");
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
    // The commented-out example values are valid too (files that must exist aside:
    // tls.cert, tls.key, relay.smarthost_ca).
    const EXAMPLES: [&str; 6] = [
        "hostname = ",
        "data_dir = ",
        "smarthost = ",
        "smarthost_user = ",
        "smarthost_password = ",
        "\"example.net\" = ",
    ];
    let uncommented: String = example_toml()
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if EXAMPLES.iter().any(|e| rest.starts_with(e)) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::from_toml(&uncommented, Path::new("/etc/pochta")).expect("parses");
    assert_eq!(config.hostname, "mail.example.com");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/pochta"));
    let relay = &config.relay;
    assert_eq!(
        relay.smarthost.as_ref().map(HostPort::to_string).as_deref(),
        Some("smtp.example.net:587")
    );
    assert!(relay.smarthost_user.is_some() && relay.smarthost_password.is_some());
    assert_eq!(relay.routes.len(), 1);
    assert_eq!(
        relay.routes[&domain("example.net")].to_string(),
        "192.0.2.25:25"
    );
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
    for key in [
        "cert = ",
        "key = ",
        "hostname = ",
        "data_dir = ",
        "smarthost_ca = ",
        "[relay.routes]",
    ] {
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
    std::fs::write(dir.path().join("ca.pem"), "ca").expect("write");
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

[relay]
resolver = ["192.0.2.53:53", " [2001:db8::53]:5353 "]
dns_timeout = "2s"
mx_port = 2526
tls = "required"
mta_sts = false
connect_timeout = "1m"
smarthost = "Smtp.Example.NET.:465"
smarthost_tls = "implicit"
smarthost_user = "pochta@example.net"
smarthost_password = "s3cret pass"
smarthost_ca = "ca.pem"

[relay.routes]
"Example.NET." = "127.0.0.1:2526"
"bücher.test" = "[::1]:25"
"internal.example" = "Relay.Internal.Example:2525"

[queue]
retry = "1m"
max_retry = "1m"
expire = "2d"
delay_warning = "0s"
concurrency = 10
per_domain = 1

[store]
change_log_retention = "90d"

[checks]
enabled = false
reject_dmarc = true
skip = ["10.1.2.3/8", "192.0.2.1", "2001:DB8::/32", "::1"]

[http]
plain = true

[log]
level = "info,pochta_store=debug"
format = "json"
"#;
    let config = Config::from_toml(text, dir.path()).expect("valid config");
    let sock = |s: &str| Some(s.parse::<SocketAddr>().expect("test address"));
    let hop = |host: &str, port: u16| HostPort {
        host: host.into(),
        port,
    };
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
        relay: Relay {
            resolver: vec![
                "192.0.2.53:53".parse().expect("test address"),
                "[2001:db8::53]:5353".parse().expect("test address"),
            ],
            dns_timeout: Duration::from_secs(2),
            mx_port: 2526,
            tls: RelayTls::Required,
            mta_sts: false,
            connect_timeout: Duration::from_secs(60),
            smarthost: Some(hop("smtp.example.net", 465)),
            smarthost_tls: SmarthostTls::Implicit,
            smarthost_user: Some("pochta@example.net".into()),
            smarthost_password: Some(Secret::new("s3cret pass")),
            smarthost_ca: Some(dir.path().join("ca.pem")),
            routes: BTreeMap::from([
                (domain("example.net"), hop("127.0.0.1", 2526)),
                (domain("xn--bcher-kva.test"), hop("::1", 25)),
                (
                    domain("internal.example"),
                    hop("relay.internal.example", 2525),
                ),
            ]),
        },
        queue: Queue {
            retry: Duration::from_secs(60),
            max_retry: Duration::from_secs(60),
            expire: Duration::from_secs(2 * 86400),
            delay_warning: Duration::ZERO,
            concurrency: 10,
            per_domain: 1,
        },
        store: StoreSettings {
            change_log_retention: Duration::from_secs(90 * 86400),
        },
        checks: Checks {
            enabled: false,
            reject_dmarc: true,
            skip: vec![
                "10.0.0.0/8".into(),
                "192.0.2.1/32".into(),
                "2001:db8::/32".into(),
                "::1/128".into(),
            ],
        },
        http: Http { plain: true },
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

    // The password shows neither in Debug output nor in the effective config; read
    // back without it, that config fails loudly, naming the missing key.
    assert!(!format!("{config:?}").contains("s3cret"));
    let shown = config.to_toml();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("\n# smarthost_password = (set, not shown)\n"),
        "{shown}"
    );
    let err = Config::from_toml(&shown, dir.path()).expect_err("password not shown");
    assert_eq!(err.key(), Some("relay.smarthost_password"), "{err}");

    // Anything else written out reads back the same.
    let mut without_password = config.clone();
    without_password.relay.smarthost_user = None;
    without_password.relay.smarthost_password = None;
    let again = Config::from_toml(&without_password.to_toml(), dir.path()).expect("round trip");
    assert_eq!(again, without_password);
}

#[test]
fn to_toml_round_trips_defaults() {
    let config = Config::default();
    let text = config.to_toml();
    let again = Config::from_toml(&text, Path::new("")).expect("round trip");
    assert_eq!(again, config);
    assert!(text.contains("message_size = \"50M\""), "{text}");
    assert!(text.contains("command_timeout = \"5m\""), "{text}");
    assert!(text.contains("\n[relay]\nresolver = []\n"), "{text}");
    assert!(text.contains("\nsmarthost = \"\"\n"), "{text}");
    assert!(text.contains("\nsmarthost_password = \"\"\n"), "{text}");
    assert!(!text.contains("smarthost_ca"), "{text}");
    assert!(text.contains("\n[relay.routes]\n\n[queue]\n"), "{text}");
    assert!(text.contains("\nexpire = \"5d\"\n"), "{text}");
    assert!(
        text.contains("\nskip = [\"127.0.0.0/8\", \"::1/128\"]\n"),
        "{text}"
    );
    assert!(text.contains("\n[http]\nplain = false\n"), "{text}");
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
        ("relay", "smarthost_tls"),
        ("queue", "max_retry"),
        ("store", "change_log_retention"),
        ("checks", "reject_dmarc"),
        ("http", "plain"),
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
    let msg = fails("[imap]\nhost = \"x\"\n", "imap");
    assert!(msg.contains("unknown key \"imap\""), "{msg}");
    assert!(
        msg.contains("auth, relay, queue, store, checks, http, log"),
        "sections in file order: {msg}"
    );
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
    assert_eq!(
        parse_unknown("variant", "unknown variant `x`, expected `a` or `b`"),
        Some(("x".into(), vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        parse_unknown("variant", "unknown variant `x`, there are no variants"),
        Some(("x".into(), vec![]))
    );
    assert_eq!(
        parse_unknown("variant", "unknown field `x`, expected `a`"),
        None
    );
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

/// `[relay]` with `body` under it, where the local domain is `example.com`.
fn relay(body: &str) -> String {
    format!("domains = [\"example.com\"]\n[relay]\n{body}\n")
}

#[test]
fn relay_defaults() {
    let r = Config::default().relay;
    assert!(r.resolver.is_empty());
    assert_eq!(r.dns_timeout, Duration::from_secs(5));
    assert_eq!(r.mx_port, 25);
    assert_eq!(r.tls, RelayTls::Opportunistic);
    assert_eq!(r.connect_timeout, Duration::from_secs(30));
    assert_eq!(r.smarthost, None);
    assert_eq!(r.smarthost_tls, SmarthostTls::Starttls);
    assert_eq!((r.smarthost_user, r.smarthost_password), (None, None));
    assert_eq!(r.smarthost_ca, None);
    assert!(r.routes.is_empty());
    let q = Config::default().queue;
    assert_eq!(q.retry, Duration::from_secs(300));
    assert_eq!(q.max_retry, Duration::from_secs(4 * 3600));
    assert_eq!(q.expire, Duration::from_secs(5 * 86400));
    assert_eq!(q.delay_warning, Duration::from_secs(4 * 3600));
    assert_eq!((q.concurrency, q.per_domain), (50, 5));
    let c = Config::default().checks;
    assert!(c.enabled && !c.reject_dmarc);
    assert_eq!(c.skip, ["127.0.0.0/8", "::1/128"]);
}

#[test]
fn bad_resolver_addresses() {
    let msg = fails(
        &relay("resolver = [\"192.0.2.53:53\", \"8.8.8.8\"]"),
        "relay.resolver[1]",
    );
    assert!(
        msg.starts_with(
            "relay.resolver[1]: invalid DNS server address \"8.8.8.8\" (expected \"IP:port\""
        ),
        "{msg}"
    );
    fails(
        &relay("resolver = [\"dns.example:53\"]"),
        "relay.resolver[0]",
    );
    fails(&relay("resolver = [53]"), "relay.resolver[0]");
    let msg = fails(&relay("resolver = [\"192.0.2.53:0\"]"), "relay.resolver[0]");
    assert!(msg.contains("not a DNS server address"), "{msg}");
    fails(&relay("resolver = [\"0.0.0.0:53\"]"), "relay.resolver[0]");
    let msg = fails(&relay("resolver = \"192.0.2.53:53\""), "relay.resolver");
    assert!(msg.ends_with("expected an array"), "{msg}");
    let config = parse(&relay("resolver = []")).expect("empty: resolv.conf");
    assert!(config.relay.resolver.is_empty());
}

#[test]
fn bad_smarthosts() {
    for (bad, why) in [
        ("host", "missing port"),
        ("[::1]", "missing port"),
        ("host:0", "port 0"),
        ("exa mple:25", "neither a host name nor an IP address"),
        ("2001:db8::1:25", "brackets"),
        ("host:smtp", "not a port number"),
        ("192.0.2.256:25", "neither a host name nor an IP address"),
    ] {
        let msg = fails(&relay(&format!("smarthost = \"{bad}\"")), "relay.smarthost");
        assert!(
            msg.starts_with(&format!("relay.smarthost: invalid host:port \"{bad}\": ")),
            "{msg}"
        );
        assert!(msg.contains(why), "{bad}: {msg}");
    }
    fails(&relay("smarthost = 587"), "relay.smarthost");
    for none in ["\"\"", "\"  \""] {
        let config = parse(&relay(&format!("smarthost = {none}"))).expect("no smarthost");
        assert_eq!(config.relay.smarthost, None);
    }
    let config = parse(&relay("smarthost = \"[2001:DB8::25]:25\"")).expect("IPv6");
    let hop = config.relay.smarthost.expect("set");
    assert_eq!(hop.host, "2001:db8::25");
    assert_eq!(hop.to_string(), "[2001:db8::25]:25");
}

#[test]
fn smarthost_credentials() {
    let base = "smarthost = \"smtp.example.net:587\"\n";
    let msg = fails(
        &relay(&format!("{base}smarthost_user = \"me\"")),
        "relay.smarthost_password",
    );
    assert!(
        msg.contains("not set, but relay.smarthost_user is"),
        "{msg}"
    );
    let msg = fails(
        &relay(&format!("{base}smarthost_password = \"pw\"")),
        "relay.smarthost_user",
    );
    assert!(
        msg.contains("not set, but relay.smarthost_password is"),
        "{msg}"
    );
    // "" is "not set", on either side.
    fails(
        &relay(&format!(
            "{base}smarthost_user = \"me\"\nsmarthost_password = \"\""
        )),
        "relay.smarthost_password",
    );
    // Never a password in clear.
    let creds = "smarthost_user = \"me\"\nsmarthost_password = \"pw\"\n";
    let msg = fails(
        &relay(&format!("{base}{creds}smarthost_tls = \"none\"")),
        "relay.smarthost_tls",
    );
    assert!(msg.contains("in clear"), "{msg}");
    // Credentials without a smarthost are an error, not silently unused.
    let msg = fails(&relay(creds), "relay.smarthost_user");
    assert!(msg.contains("relay.smarthost is not"), "{msg}");
    fails(
        &relay(&format!(
            "{base}smarthost_user = \"a\\nb\"\nsmarthost_password = \"pw\""
        )),
        "relay.smarthost_user",
    );
    fails(
        &relay(&format!(
            "{base}smarthost_user = \"me\"\nsmarthost_password = \"p\\u0000w\""
        )),
        "relay.smarthost_password",
    );

    for tls in ["starttls", "implicit"] {
        let config = parse(&relay(&format!("{base}{creds}smarthost_tls = \"{tls}\"")))
            .expect("credentials over TLS");
        assert_eq!(config.relay.smarthost_user.as_deref(), Some("me"));
        let password = config.relay.smarthost_password.expect("set");
        assert_eq!(password.expose(), "pw");
    }
    // A smarthost without TLS and without credentials (a local relay) is fine, and
    // so is smarthost_tls alone: it has a default, and is used only with a smarthost.
    let config = parse(&relay(&format!("{base}smarthost_tls = \"none\""))).expect("plain");
    assert_eq!(config.relay.smarthost_tls, SmarthostTls::None);
    parse(&relay("smarthost_tls = \"implicit\"")).expect("no smarthost");
}

#[test]
fn smarthost_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), "ca").expect("write");
    let load = |body: &str| Config::from_toml(&relay(body), dir.path());
    let base = "smarthost = \"smtp.example.net:587\"\n";
    let config = load(&format!("{base}smarthost_ca = \"ca.pem\"")).expect("relative CA");
    assert_eq!(config.relay.smarthost_ca, Some(dir.path().join("ca.pem")));

    let msg = load(&format!("{base}smarthost_ca = \"missing.pem\""))
        .expect_err("missing file")
        .to_string();
    assert!(
        msg.starts_with("relay.smarthost_ca: cannot read \""),
        "{msg}"
    );
    assert!(
        msg.contains(&dir.path().join("missing.pem").display().to_string()),
        "{msg}"
    );
    let err = load(&format!("{base}smarthost_ca = \".\"")).expect_err("directory");
    assert_eq!(err.key(), Some("relay.smarthost_ca"));
    let err = load("smarthost_ca = \"ca.pem\"").expect_err("no smarthost");
    assert_eq!(err.key(), Some("relay.smarthost_ca"));
    assert!(err.to_string().contains("relay.smarthost is not"), "{err}");
    let err = load(&format!(
        "{base}smarthost_ca = \"ca.pem\"\nsmarthost_tls = \"none\""
    ))
    .expect_err("nothing to verify");
    assert_eq!(err.key(), Some("relay.smarthost_ca"));
}

#[test]
fn routes() {
    let text = "domains = [\"example.com\"]\n[relay.routes]\n\"Example.NET.\" = \"127.0.0.1:2526\"\n\"пример.рф\" = \"mx.example.org:25\"\n";
    let config = parse(text).expect("valid routes");
    let routes: Vec<(String, String)> = config
        .relay
        .routes
        .iter()
        .map(|(d, h)| (d.to_string(), h.to_string()))
        .collect();
    assert_eq!(
        routes,
        [
            ("example.net".to_owned(), "127.0.0.1:2526".to_owned()),
            (
                "xn--e1afmkfd.xn--p1ai".to_owned(),
                "mx.example.org:25".to_owned()
            ),
        ]
    );
    let route = |entry: &str| {
        format!("domains = [\"example.com\", \"example.org\"]\n[relay.routes]\n{entry}\n")
    };

    // A local domain, however it is spelt, is named in canonical form.
    let msg = fails(
        &route("\"EXAMPLE.org.\" = \"127.0.0.1:25\""),
        "relay.routes.example.org",
    );
    assert!(msg.contains("local domain (domains[1])"), "{msg}");
    let msg = fails(
        &route("\"[192.0.2.1]\" = \"192.0.2.1:25\""),
        "relay.routes.[192.0.2.1]",
    );
    assert!(msg.contains("address literal"), "{msg}");
    let msg = fails(
        &route("\"exa mple.net\" = \"127.0.0.1:25\""),
        "relay.routes.exa mple.net",
    );
    assert!(msg.contains("not a domain name"), "{msg}");

    let msg = fails(
        &route("\"example.net\" = \"relay.example\""),
        "relay.routes.example.net",
    );
    assert!(msg.contains("missing port"), "{msg}");
    fails(
        &route("\"example.net\" = \"relay.example:0\""),
        "relay.routes.example.net",
    );
    fails(&route("\"example.net\" = 25"), "relay.routes.example.net");
    // An unquoted domain is a dotted key, that is nested tables: say what to write.
    let msg = fails(
        &route("example.net = \"127.0.0.1:25\""),
        "relay.routes.example",
    );
    assert!(msg.contains("with the domain in quotes"), "{msg}");

    // Two spellings of one domain.
    let err = parse(&route(
        "\"example.net\" = \"127.0.0.1:25\"\n\"EXAMPLE.net\" = \"127.0.0.1:26\"",
    ))
    .expect_err("duplicate");
    let key = err.key().expect("has a key").to_owned();
    assert!(
        key == "relay.routes.example.net" || key == "relay.routes.EXAMPLE.net",
        "{err}"
    );
    assert!(err.to_string().contains("same domain"), "{err}");

    fails("[relay]\nroutes = 5\n", "relay.routes");
}

#[test]
fn relay_numbers_and_durations() {
    let msg = fails(&relay("dns_timeout = 0"), "relay.dns_timeout");
    assert!(msg.contains("longer than zero"), "{msg}");
    fails(&relay("connect_timeout = \"0s\""), "relay.connect_timeout");
    fails(
        &relay("connect_timeout = \"soon\""),
        "relay.connect_timeout",
    );
    let msg = fails(&relay("mx_port = 0"), "relay.mx_port");
    assert!(msg.contains("at least 1"), "{msg}");
    fails(&relay("mx_port = 65536"), "relay.mx_port");
    fails(&relay("mx_port = \"25\""), "relay.mx_port");
    let config = parse(&relay("mx_port = 2525\ndns_timeout = \"250ms\"")).expect("valid");
    assert_eq!(config.relay.mx_port, 2525);
    assert_eq!(config.relay.dns_timeout, Duration::from_millis(250));
}

#[test]
fn bad_enum_values_name_the_allowed_ones() {
    let msg = fails(&relay("tls = \"may\""), "relay.tls");
    assert_eq!(
        msg,
        "relay.tls: unknown value \"may\" (expected one of: \"opportunistic\", \"required\", \"none\")"
    );
    let msg = fails(&relay("smarthost_tls = \"ssl\""), "relay.smarthost_tls");
    assert_eq!(
        msg,
        "relay.smarthost_tls: unknown value \"ssl\" (expected one of: \"starttls\", \"implicit\", \"none\")"
    );
    let msg = fails("[log]\nformat = \"xml\"\n", "log.format");
    assert_eq!(
        msg,
        "log.format: unknown value \"xml\" (expected one of: \"text\", \"json\")"
    );
    fails(&relay("tls = \"Required\""), "relay.tls");
    fails(&relay("tls = true"), "relay.tls");
    for (text, tls) in [
        ("opportunistic", RelayTls::Opportunistic),
        ("required", RelayTls::Required),
        ("none", RelayTls::None),
    ] {
        let config = parse(&relay(&format!("tls = \"{text}\""))).expect("valid");
        assert_eq!(config.relay.tls, tls);
        assert_eq!(tls.to_string(), text);
    }
    for (text, tls) in [
        ("starttls", SmarthostTls::Starttls),
        ("implicit", SmarthostTls::Implicit),
        ("none", SmarthostTls::None),
    ] {
        let config = parse(&relay(&format!("smarthost_tls = \"{text}\""))).expect("valid");
        assert_eq!(config.relay.smarthost_tls, tls);
        assert_eq!(tls.to_string(), text);
    }
}

#[test]
fn queue_rules() {
    let msg = fails(
        "[queue]\nretry = \"10m\"\nmax_retry = \"5m\"\n",
        "queue.max_retry",
    );
    assert!(
        msg.contains("\"5m\" is shorter than queue.retry (\"10m\")"),
        "{msg}"
    );
    // The default max_retry (4h) is checked against a larger retry too.
    fails("[queue]\nretry = \"5h\"\n", "queue.max_retry");
    fails("[queue]\nretry = 0\n", "queue.retry");
    fails("[queue]\nexpire = \"0s\"\n", "queue.expire");
    fails("[queue]\ndelay_warning = -1\n", "queue.delay_warning");
    fails("[queue]\nconcurrency = 0\n", "queue.concurrency");
    fails("[queue]\nper_domain = 0\n", "queue.per_domain");
    fails("[queue]\nper_domain = 1.5\n", "queue.per_domain");
    // Equal retry and max_retry: a fixed interval. A delay warning of 0, or not
    // before expiry, never fires; both are allowed.
    let config =
        parse("[queue]\nretry = \"1h\"\nmax_retry = \"1h\"\ndelay_warning = 0\n").expect("valid");
    assert_eq!(config.queue.max_retry, config.queue.retry);
    assert_eq!(config.queue.delay_warning, Duration::ZERO);
    parse("[queue]\nexpire = \"1d\"\ndelay_warning = \"2d\"\n").expect("never warns");
}

#[test]
fn change_log_retention_is_a_day_or_more_or_forever() {
    fails(
        "[store]\nchange_log_retention = \"23h\"\n",
        "store.change_log_retention",
    );
    fails(
        "[store]\nchange_log_retention = -1\n",
        "store.change_log_retention",
    );
    fails("[store]\nretention = \"1d\"\n", "store.retention");
    let forever = parse("[store]\nchange_log_retention = 0\n").expect("valid");
    assert!(forever.store.change_log_retention.is_zero());
    let day = parse("[store]\nchange_log_retention = \"1d\"\n").expect("valid");
    assert_eq!(day.store.change_log_retention, Duration::from_secs(86400));
    assert_eq!(
        parse("").expect("valid").store.change_log_retention,
        Duration::from_secs(30 * 86400)
    );
}

#[test]
fn check_skip_networks() {
    for (bad, why) in [
        ("10.0.0.0/33", "at most 32"),
        ("nonsense", "not an IP address"),
        ("::1/129", "at most 128"),
        ("10.0.0.0/", "not a prefix length"),
        ("localhost", "not an IP address"),
    ] {
        let msg = fails(
            &format!("[checks]\nskip = [\"127.0.0.0/8\", \"{bad}\"]\n"),
            "checks.skip[1]",
        );
        assert!(
            msg.starts_with(&format!("checks.skip[1]: invalid network \"{bad}\": ")),
            "{msg}"
        );
        assert!(msg.contains(why), "{msg}");
    }
    fails("[checks]\nskip = [8]\n", "checks.skip[0]");
    fails("[checks]\nskip = \"127.0.0.1\"\n", "checks.skip");
    fails("[checks]\nenabled = \"yes\"\n", "checks.enabled");
    fails("[http]\nplain = \"yes\"\n", "http.plain");
    let config = parse("[checks]\nskip = [\"192.0.2.7\", \"10.9.8.7/16\", \"FE80::1/10\"]\n")
        .expect("valid");
    assert_eq!(
        config.checks.skip,
        ["192.0.2.7/32", "10.9.0.0/16", "fe80::/10"]
    );
    for net in &config.checks.skip {
        let (ip, len) = parse_network(net).expect("canonical text parses");
        assert_eq!(format!("{ip}/{len}"), *net);
    }
    let config = parse("[checks]\nskip = []\n").expect("check everyone");
    assert!(config.checks.skip.is_empty());
}

#[test]
fn host_port_text() {
    let hop: HostPort = "Mail.Example.NET.:587".parse().expect("valid");
    assert_eq!(
        hop,
        HostPort {
            host: "mail.example.net".into(),
            port: 587
        }
    );
    assert_eq!(hop.to_string(), "mail.example.net:587");
    assert_eq!(hop.ip(), None);
    let hop: HostPort = "[2001:db8::1]:25".parse().expect("valid");
    assert_eq!(hop.to_string(), "[2001:db8::1]:25");
    assert_eq!(hop.ip(), "2001:db8::1".parse().ok());
    let hop: HostPort = "192.0.2.25:25".parse().expect("valid");
    assert_eq!(hop.ip(), "192.0.2.25".parse().ok());
    assert_eq!(hop.to_string().parse::<HostPort>(), Ok(hop));
    assert!("host".parse::<HostPort>().is_err());
}

#[test]
fn hand_built_relay_sections_validate() {
    let base = Config {
        domains: vec![domain("example.com")],
        listen: Listen::disabled(),
        ..Config::default()
    };
    let hop = |host: &str, port: u16| HostPort {
        host: host.into(),
        port,
    };
    let check = |edit: &dyn Fn(&mut Config), key: &str| {
        let mut config = base.clone();
        edit(&mut config);
        let err = config.validate().expect_err("invalid");
        assert_eq!(err.key(), Some(key), "{err}");
    };
    check(
        &|c| c.relay.routes = BTreeMap::from([(domain("example.com"), hop("127.0.0.1", 25))]),
        "relay.routes.example.com",
    );
    check(
        &|c| c.relay.routes = BTreeMap::from([(domain("[127.0.0.1]"), hop("127.0.0.1", 25))]),
        "relay.routes.[127.0.0.1]",
    );
    check(
        &|c| c.relay.routes = BTreeMap::from([(domain("example.net"), hop("Relay.Example", 25))]),
        "relay.routes.example.net",
    );
    check(
        &|c| c.relay.smarthost = Some(hop("smtp.example.net", 0)),
        "relay.smarthost",
    );
    check(
        &|c| c.relay.smarthost = Some(hop("[::1]", 25)),
        "relay.smarthost",
    );
    check(
        &|c| c.relay.smarthost = Some(hop("bad host", 25)),
        "relay.smarthost",
    );
    check(
        &|c| c.relay.resolver = vec![SocketAddr::from(([192, 0, 2, 53], 0))],
        "relay.resolver[0]",
    );
    check(&|c| c.relay.mx_port = 0, "relay.mx_port");
    check(
        &|c| c.relay.dns_timeout = Duration::ZERO,
        "relay.dns_timeout",
    );
    check(
        &|c| c.queue.max_retry = Duration::from_secs(1),
        "queue.max_retry",
    );
    check(&|c| c.queue.concurrency = 0, "queue.concurrency");
    check(
        &|c| c.checks.skip = vec!["127.0.0.0/8".into(), "bogus".into()],
        "checks.skip[1]",
    );

    let mut config = base.clone();
    config.relay.smarthost = Some(hop("::1", 2525));
    config.relay.routes = BTreeMap::from([(domain("example.net"), hop("192.0.2.25", 25))]);
    // Not canonical, but a valid network: parse_network reads it all the same.
    config.checks.skip = vec!["127.0.0.1".into()];
    config.validate().expect("valid");
}
