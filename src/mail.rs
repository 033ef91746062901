//! `pochta mail …`: the user agent's commands on top of the `pochta-client`
//! library. Accounts live in the client config (`client.toml`), never in the
//! server's configuration, so these commands work against any server.
//!
//! Exit codes: 0 ok, 2 usage errors (clap's, and [`ClientError::is_usage`]),
//! 1 server and network errors (see `main`).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use pochta_client::backend::{FlagChange, MailBackend, Query, Summary};
use pochta_client::compose::{self, Attachment, Draft, Mailbox};
use pochta_client::config::{self, Account, AccountOptions, ClientConfig, Protocol, ReadVia};
use pochta_client::imap::ImapBackend;
use pochta_client::jmap::JmapBackend;
use pochta_client::maildir::{Maildir, MaildirBackend};
use pochta_client::tls::{Login, Security};
use pochta_client::{ClientError, pop3, query, render, submit};
use time::UtcOffset;

/// Options every `pochta mail` command takes.
#[derive(Args)]
pub struct MailArgs {
    /// The account to use (default: the first one added).
    #[arg(long, global = true, value_name = "NAME")]
    account: Option<String>,

    /// Where to browse: on the server over IMAP or JMAP, or `local`, the
    /// Maildir that `fetch` fills (default: the account's --read-via).
    #[arg(long, global = true, value_enum)]
    via: Option<Via>,

    #[command(subcommand)]
    command: MailCommand,
}

/// Where browsing commands read mail.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    Imap,
    Jmap,
    Local,
}

#[derive(Subcommand)]
enum MailCommand {
    /// Add, list and remove accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Compose and send a message (body from --body, stdin, or $EDITOR).
    Send(SendArgs),
    /// Reply to a message, quoting it.
    Reply(ReplyArgs),
    /// Forward a message with its attachments.
    Forward(ForwardArgs),
    /// Download new mail over POP3 into the local Maildir (deleting it on the
    /// server unless --keep).
    Fetch {
        /// The account (same as --account).
        #[arg(value_name = "ACCOUNT")]
        name: Option<String>,
        /// Leave the messages on the server; the next fetch skips them.
        #[arg(long)]
        keep: bool,
    },
    /// List the folders with unread and total counts.
    Folders {
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List messages, newest first.
    List {
        /// The folder (default INBOX).
        #[arg(long, short)]
        folder: Option<String>,
        /// Only messages not read yet.
        #[arg(long)]
        unread: bool,
        /// Page size.
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
        /// Page number, from 1.
        #[arg(long, default_value_t = 1)]
        page: usize,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Search: from:, to:, subject:, since:YYYY-MM-DD, before:, is:unread,
    /// is:flagged, in:FOLDER, and free text.
    Search {
        /// The query (several words are joined).
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// The folder (default INBOX; `in:` in the query also works).
        #[arg(long, short)]
        folder: Option<String>,
        /// Page size.
        #[arg(long, short = 'n')]
        limit: Option<usize>,
        /// Page number, from 1.
        #[arg(long, default_value_t = 1)]
        page: usize,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show a message (and mark it read).
    Read {
        /// The message id from `list`.
        id: String,
        /// The message exactly as stored.
        #[arg(long, conflicts_with = "headers")]
        raw: bool,
        /// Every header field.
        #[arg(long)]
        headers: bool,
    },
    /// Move messages to a folder: `move ID… FOLDER`.
    Move {
        /// The ids, then the folder.
        #[arg(required = true, num_args = 2.., value_name = "ID… FOLDER")]
        args: Vec<String>,
    },
    /// Delete messages: move them to Trash, or remove them for good.
    Delete {
        /// The ids.
        #[arg(required = true, num_args = 1..)]
        ids: Vec<String>,
        /// Remove for good instead of moving to Trash.
        #[arg(long)]
        expunge: bool,
    },
    /// Set or clear flags: `flag ID… [+|-]seen|flagged|answered|draft|KEYWORD`.
    Flag {
        /// The ids, then one or more changes (`+flagged -seen`; a last word
        /// without a sign adds that flag).
        #[arg(required = true, num_args = 2.., allow_hyphen_values = true, value_name = "ID… CHANGE")]
        args: Vec<String>,
    },
    /// Save a message's attachments into a directory.
    Save {
        /// The message id.
        id: String,
        /// The directory (created if needed).
        #[arg(long, value_name = "DIR")]
        attachments: PathBuf,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Add an account (the first one is the default).
    Add(Box<AddArgs>),
    /// List the accounts.
    List,
    /// Remove an account (its fetched mail stays on disk).
    Del {
        /// The account's name.
        name: String,
    },
}

#[derive(Args)]
struct AddArgs {
    /// A short name for the account (`--account NAME`).
    name: String,
    /// Your address.
    #[arg(long)]
    email: String,
    /// Your name, shown in From.
    #[arg(long = "name", value_name = "DISPLAY NAME")]
    display_name: Option<String>,
    /// The login name, when it is not the address.
    #[arg(long)]
    user: Option<String>,
    /// One host for everything: fills in smtp 587, imap 993, pop3 995 and
    /// https://HOST/.well-known/jmap where not given.
    #[arg(long)]
    host: Option<String>,
    /// Submission server HOST[:PORT] (465: TLS, else STARTTLS).
    #[arg(long, value_name = "HOST:PORT")]
    smtp: Option<String>,
    /// IMAP server HOST[:PORT] (993: TLS, else STARTTLS).
    #[arg(long, value_name = "HOST:PORT")]
    imap: Option<String>,
    /// POP3 server HOST[:PORT] (995: TLS, else STLS).
    #[arg(long, value_name = "HOST:PORT")]
    pop3: Option<String>,
    /// JMAP session URL.
    #[arg(long, value_name = "URL")]
    jmap: Option<String>,
    /// Where `fetch` keeps mail (default $XDG_DATA_HOME/pochta/mail/NAME).
    #[arg(long, value_name = "DIR")]
    maildir: Option<PathBuf>,
    /// How browsing commands read mail by default.
    #[arg(long, value_enum)]
    read_via: Option<ReadViaArg>,
    /// Accept any TLS certificate (a self-signed test server).
    #[arg(long)]
    accept_invalid_certs: bool,
    /// Override the SMTP security.
    #[arg(long, value_enum, value_name = "tls|starttls|plain")]
    security_smtp: Option<SecurityArg>,
    /// Override the IMAP security.
    #[arg(long, value_enum, value_name = "tls|starttls|plain")]
    security_imap: Option<SecurityArg>,
    /// Override the POP3 security.
    #[arg(long, value_enum, value_name = "tls|starttls|plain")]
    security_pop3: Option<SecurityArg>,
    /// Read the password from standard input (stored only with --save-password).
    #[arg(long)]
    password_stdin: bool,
    /// A shell command that prints the password (e.g. `pass show mail`).
    #[arg(long, value_name = "CMD")]
    password_command: Option<String>,
    /// Store the password in the config file, in clear text.
    #[arg(long)]
    save_password: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReadViaArg {
    Imap,
    Jmap,
    Pop3,
}

#[derive(Clone, Copy, ValueEnum)]
enum SecurityArg {
    Tls,
    Starttls,
    Plain,
}

impl From<SecurityArg> for Security {
    fn from(s: SecurityArg) -> Security {
        match s {
            SecurityArg::Tls => Security::Tls,
            SecurityArg::Starttls => Security::Starttls,
            SecurityArg::Plain => Security::Plain,
        }
    }
}

/// What every composing command shares.
#[derive(Args)]
struct BodyArgs {
    /// The text body from this file (default: stdin, or $EDITOR on a terminal).
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// Attach a file (repeat for more).
    #[arg(long, value_name = "FILE")]
    attach: Vec<PathBuf>,
    /// Print the message instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct SendArgs {
    /// Recipients (repeat, or separate with commas).
    #[arg(long, required = true)]
    to: Vec<String>,
    /// Copy recipients.
    #[arg(long)]
    cc: Vec<String>,
    /// Blind copy recipients (not shown in the message).
    #[arg(long)]
    bcc: Vec<String>,
    /// The subject.
    #[arg(long, short)]
    subject: String,
    /// An HTML alternative from this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    body: BodyArgs,
}

#[derive(Args)]
struct ReplyArgs {
    /// The message id.
    id: String,
    /// Reply to every recipient too.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    body: BodyArgs,
}

#[derive(Args)]
struct ForwardArgs {
    /// The message id.
    id: String,
    /// Recipients.
    #[arg(long, required = true)]
    to: Vec<String>,
    /// Copy recipients.
    #[arg(long)]
    cc: Vec<String>,
    /// Blind copy recipients.
    #[arg(long)]
    bcc: Vec<String>,
    #[command(flatten)]
    body: BodyArgs,
}

/// Runs a `pochta mail` command. `config_path` is `--client-config`;
/// `offset` the local time zone, read before the runtime started threads.
pub async fn run(
    args: MailArgs,
    config_path: Option<PathBuf>,
    offset: UtcOffset,
) -> anyhow::Result<()> {
    let path = match config_path {
        Some(p) => p,
        None => config::default_path()?,
    };
    let mut cfg = ClientConfig::load(&path)?;
    let ctx = Ctx {
        via: args.via,
        offset,
    };
    match args.command {
        MailCommand::Account(cmd) => account(&mut cfg, &path, cmd),
        MailCommand::Fetch { name, keep } => {
            let acc = cfg.account(name.as_deref().or(args.account.as_deref()))?;
            fetch(acc, keep).await
        }
        cmd => {
            let acc = cfg.account(args.account.as_deref())?;
            let mut session = Session::new(acc, &ctx);
            let result = command(&mut session, cmd).await;
            session.close().await;
            result
        }
    }
}

struct Ctx {
    via: Option<Via>,
    offset: UtcOffset,
}

/// The account, its password once asked, and the browsing backend once open.
struct Session<'a> {
    account: &'a Account,
    ctx: &'a Ctx,
    login: Option<Login>,
    backend: Option<Opened>,
}

enum Opened {
    Imap(Box<ImapBackend>),
    Jmap(Box<JmapBackend>),
    Local(Box<MaildirBackend>),
}

impl Opened {
    fn backend(&mut self) -> &mut dyn MailBackend {
        match self {
            Opened::Imap(b) => b.as_mut(),
            Opened::Jmap(b) => b.as_mut(),
            Opened::Local(b) => b.as_mut(),
        }
    }
}

impl<'a> Session<'a> {
    fn new(account: &'a Account, ctx: &'a Ctx) -> Session<'a> {
        Session {
            account,
            ctx,
            login: None,
            backend: None,
        }
    }

    fn via(&self) -> Via {
        self.ctx.via.unwrap_or(match self.account.read_via {
            ReadVia::Imap => Via::Imap,
            ReadVia::Jmap => Via::Jmap,
            ReadVia::Pop3 => Via::Local,
        })
    }

    fn login(&mut self) -> Result<Login, ClientError> {
        if let Some(l) = &self.login {
            return Ok(l.clone());
        }
        let l = login(self.account)?;
        self.login = Some(l.clone());
        Ok(l)
    }

    async fn backend(&mut self) -> Result<&mut dyn MailBackend, ClientError> {
        if self.backend.is_none() {
            let opened = match self.via() {
                Via::Imap => {
                    let ep = self.account.endpoint(Protocol::Imap)?;
                    let login = self.login()?;
                    Opened::Imap(Box::new(ImapBackend::connect(&ep, &login).await?))
                }
                Via::Jmap => {
                    let url = self.account.jmap_url()?.to_string();
                    let login = self.login()?;
                    Opened::Jmap(Box::new(
                        JmapBackend::connect(&url, &login, self.account.accept_invalid_certs)
                            .await?,
                    ))
                }
                Via::Local => {
                    let dir = self.account.maildir_path()?;
                    Opened::Local(Box::new(MaildirBackend::open(&dir)?))
                }
            };
            self.backend = Some(opened);
        }
        match self.backend.as_mut() {
            Some(b) => Ok(b.backend()),
            None => Err(ClientError::Usage("no backend".into())),
        }
    }

    async fn close(&mut self) {
        if let Some(mut b) = self.backend.take() {
            let _ = b.backend().close().await;
        }
    }
}

/// The account's password from POCHTA_PASSWORD, the saved one, the
/// password_command, or a prompt on the terminal.
fn login(account: &Account) -> Result<Login, ClientError> {
    let env = std::env::var(config::PASSWORD_ENV).ok();
    account.login(env, &mut |prompt| {
        rpassword::prompt_password(prompt).map_err(|e| {
            ClientError::Usage(format!(
                "no password for account {:?}: cannot ask on a terminal ({e}); set {} or a password_command",
                account.name,
                config::PASSWORD_ENV
            ))
        })
    })
}

async fn command(s: &mut Session<'_>, cmd: MailCommand) -> anyhow::Result<()> {
    match cmd {
        MailCommand::Account(_) | MailCommand::Fetch { .. } => Ok(()),
        MailCommand::Send(a) => send(s, a).await,
        MailCommand::Reply(a) => reply(s, a).await,
        MailCommand::Forward(a) => forward(s, a).await,
        MailCommand::Folders { json } => folders(s, json).await,
        MailCommand::List {
            folder,
            unread,
            limit,
            page,
            json,
        } => {
            if limit == 0 || page == 0 {
                return Err(usage("--limit and --page start at 1"));
            }
            let q = Query {
                folder,
                unread,
                limit: Some(limit),
                page,
                ..Query::default()
            };
            list(s, &q, json).await
        }
        MailCommand::Search {
            query,
            folder,
            limit,
            page,
            json,
        } => {
            let mut q = query::parse(&query.join(" "))?;
            if folder.is_some() {
                q.folder = folder;
            }
            if limit == Some(0) || page == 0 {
                return Err(usage("--limit and --page start at 1"));
            }
            q.limit = limit;
            q.page = page;
            list(s, &q, json).await
        }
        MailCommand::Read { id, raw, headers } => read(s, &id, raw, headers).await,
        MailCommand::Move { mut args } => {
            let folder = args.pop().ok_or_else(|| usage("move ID… FOLDER"))?;
            let new = s.backend().await?.move_to(&args, &folder).await?;
            println!(
                "moved {} message(s) to {folder}; new id(s): {}",
                args.len(),
                new.join(" ")
            );
            Ok(())
        }
        MailCommand::Delete { ids, expunge } => {
            let b = s.backend().await?;
            if expunge {
                b.expunge(&ids).await?;
                println!("deleted {} message(s) for good", ids.len());
            } else {
                let trash = b.folder_with_role("trash").await?.ok_or_else(|| {
                    usage("the server has no Trash folder: use --expunge to delete for good")
                })?;
                b.move_to(&ids, &trash).await?;
                println!("moved {} message(s) to {trash}", ids.len());
            }
            Ok(())
        }
        MailCommand::Flag { args } => {
            let (ids, changes) = parse_flag_args(&args)?;
            s.backend().await?.flag(&ids, &changes).await?;
            let shown: Vec<String> = changes
                .iter()
                .map(|c| format!("{}{}", if c.add { "+" } else { "-" }, c.flag))
                .collect();
            println!("{} on {} message(s)", shown.join(" "), ids.len());
            Ok(())
        }
        MailCommand::Save { id, attachments } => {
            let raw = s.backend().await?.fetch_raw(&id).await?;
            let written = render::save_attachments(&raw, &attachments)?;
            if written.is_empty() {
                println!("the message has no attachments");
            }
            for p in written {
                println!("{}", p.display());
            }
            Ok(())
        }
    }
}

fn usage(msg: &str) -> anyhow::Error {
    ClientError::Usage(msg.to_string()).into()
}

/// `ID… CHANGE…`: words starting with + or - are changes; without any, the
/// last word is a flag to add.
fn parse_flag_args(args: &[String]) -> Result<(Vec<String>, Vec<FlagChange>), ClientError> {
    let mut ids = Vec::new();
    let mut changes = Vec::new();
    for a in args {
        if let Some(f) = a.strip_prefix('+') {
            changes.push(flag_change(true, f)?);
        } else if let Some(f) = a.strip_prefix('-') {
            changes.push(flag_change(false, f)?);
        } else {
            ids.push(a.clone());
        }
    }
    if changes.is_empty()
        && ids.len() >= 2
        && let Some(last) = ids.pop()
    {
        changes.push(flag_change(true, &last)?);
    }
    if ids.is_empty() || changes.is_empty() {
        return Err(ClientError::Usage(
            "flag ID… [+|-]seen|flagged|answered|draft|KEYWORD".into(),
        ));
    }
    Ok((ids, changes))
}

fn flag_change(add: bool, name: &str) -> Result<FlagChange, ClientError> {
    let flag = match name.to_ascii_lowercase().trim_start_matches('\\') {
        "seen" | "read" => "\\Seen".to_string(),
        "flagged" | "flag" | "starred" => "\\Flagged".to_string(),
        "answered" => "\\Answered".to_string(),
        "draft" => "\\Draft".to_string(),
        "deleted" => "\\Deleted".to_string(),
        _ if name.is_empty()
            || name.starts_with('\\')
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "(){%*\"\\]".contains(c)) =>
        {
            return Err(ClientError::Usage(format!(
                "{name:?} is not a flag: use seen, flagged, answered, draft or a keyword"
            )));
        }
        _ => name.to_string(),
    };
    Ok(FlagChange { add, flag })
}

fn account(cfg: &mut ClientConfig, path: &Path, cmd: AccountCommand) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Add(a) => {
            let a = *a;
            let mut saved = None;
            if a.password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                let pw = line.trim_end_matches(['\r', '\n']).to_string();
                if pw.is_empty() {
                    return Err(usage("--password-stdin: no password on standard input"));
                }
                saved = Some(pw);
            } else if a.save_password {
                saved = Some(
                    rpassword::prompt_password(format!("Password for {}: ", a.email))
                        .map_err(|e| usage(&format!("cannot ask for the password: {e}")))?,
                );
            }
            let keep = a.save_password;
            let opts = AccountOptions {
                name: a.name,
                email: a.email,
                display_name: a.display_name,
                user: a.user,
                host: a.host,
                smtp: a.smtp,
                imap: a.imap,
                pop3: a.pop3,
                jmap: a.jmap,
                maildir: a.maildir,
                read_via: a.read_via.map(|r| match r {
                    ReadViaArg::Imap => ReadVia::Imap,
                    ReadViaArg::Jmap => ReadVia::Jmap,
                    ReadViaArg::Pop3 => ReadVia::Pop3,
                }),
                accept_invalid_certs: a.accept_invalid_certs,
                security_smtp: a.security_smtp.map(Into::into),
                security_imap: a.security_imap.map(Into::into),
                security_pop3: a.security_pop3.map(Into::into),
                password_command: a.password_command,
                saved_password: if keep { saved.clone() } else { None },
            };
            let acc = Account::from_options(opts)?;
            let name = acc.name.clone();
            let summary = describe(&acc);
            cfg.add(acc)?;
            cfg.save(path)?;
            println!("added account {name}: {summary}");
            if cfg.default_name() == Some(name.as_str()) {
                println!("it is the default account");
            }
            match (keep, saved.is_some()) {
                (true, _) => eprintln!(
                    "warning: the password is stored in clear text in {} (readable only by you)",
                    path.display()
                ),
                (false, true) => eprintln!(
                    "note: the password was not saved (add --save-password to store it); it will come from {}, a password_command or a prompt",
                    config::PASSWORD_ENV
                ),
                (false, false) => {}
            }
            println!("config: {}", path.display());
            Ok(())
        }
        AccountCommand::List => {
            if cfg.accounts.is_empty() {
                println!(
                    "no accounts yet: add one with `pochta mail account add NAME --email ADDR --host HOST`"
                );
            }
            let default = cfg.default_name().map(str::to_string);
            for a in &cfg.accounts {
                let mark = if default.as_deref() == Some(a.name.as_str()) {
                    "*"
                } else {
                    " "
                };
                println!("{mark} {:<12} {}", a.name, describe(a));
            }
            Ok(())
        }
        AccountCommand::Del { name } => {
            let removed = cfg.remove(&name)?;
            cfg.save(path)?;
            println!("removed account {}", removed.name);
            Ok(())
        }
    }
}

fn describe(a: &Account) -> String {
    let server = |s: &Option<config::Server>| {
        s.as_ref().map(|s| {
            let sec = match s.security {
                Security::Tls => "tls",
                Security::Starttls => "starttls",
                Security::Plain => "plain",
            };
            format!("{}:{} {sec}", s.host, s.port)
        })
    };
    let mut parts = vec![a.email.clone()];
    if let Some(s) = server(&a.smtp) {
        parts.push(format!("smtp {s}"));
    }
    if let Some(s) = server(&a.imap) {
        parts.push(format!("imap {s}"));
    }
    if let Some(s) = server(&a.pop3) {
        parts.push(format!("pop3 {s}"));
    }
    if let Some(u) = &a.jmap {
        parts.push(format!("jmap {u}"));
    }
    parts.push(format!(
        "reads via {}",
        match a.read_via {
            ReadVia::Imap => "imap",
            ReadVia::Jmap => "jmap",
            ReadVia::Pop3 => "pop3",
        }
    ));
    parts.join(", ")
}

/// The body: `--body FILE`, else standard input, else (on a terminal) the
/// editor on `template`.
fn body_text(args: &BodyArgs, template: &str) -> anyhow::Result<String> {
    if let Some(p) = &args.body {
        return std::fs::read_to_string(p).map_err(|e| ClientError::io(p, e).into());
    }
    if std::io::stdin().is_terminal() {
        return edit(template);
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the message body from standard input")?;
    Ok(s)
}

/// Runs `$VISUAL`/`$EDITOR` (else vi) on a private temporary file.
fn edit(template: &str) -> anyhow::Result<String> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "vi".into());
    let path = std::env::temp_dir().join(format!(
        "pochta-{}-{:x}.txt",
        std::process::id(),
        rand_suffix()
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path).map_err(|e| ClientError::io(&path, e))?;
        f.write_all(template.as_bytes())
            .map_err(|e| ClientError::io(&path, e))?;
    }
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status();
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return Err(usage(&format!(
                "the editor ({editor}) exited with {s}: not sent"
            )));
        }
        Err(e) => return Err(usage(&format!("cannot run the editor {editor:?}: {e}"))),
    }
    let text = text.map_err(|e| ClientError::io(&path, e))?;
    if text.trim().is_empty() || text.trim() == template.trim() {
        return Err(usage("the message is empty or unchanged: not sent"));
    }
    Ok(text)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn mailbox_list(values: &[String]) -> Result<Vec<Mailbox>, ClientError> {
    let mut out = Vec::new();
    for v in values {
        out.extend(compose::parse_address_list(v)?);
    }
    Ok(out)
}

fn me(a: &Account) -> Mailbox {
    Mailbox {
        name: a.display_name.clone(),
        address: a.email.clone(),
    }
}

fn attachments(paths: &[PathBuf]) -> Result<Vec<Attachment>, ClientError> {
    paths.iter().map(|p| Attachment::from_path(p)).collect()
}

async fn send(s: &mut Session<'_>, a: SendArgs) -> anyhow::Result<()> {
    let html = match &a.html {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ClientError::io(p, e))?),
        None => None,
    };
    let draft = Draft {
        from: Some(me(s.account)),
        to: mailbox_list(&a.to)?,
        cc: mailbox_list(&a.cc)?,
        bcc: mailbox_list(&a.bcc)?,
        subject: a.subject,
        html,
        attachments: attachments(&a.body.attach)?,
        ..Draft::default()
    };
    // Validate before asking for a body in the editor.
    if draft.to.is_empty() && draft.cc.is_empty() && draft.bcc.is_empty() {
        return Err(usage("no recipients: give --to"));
    }
    let text = body_text(&a.body, "")?;
    let draft = Draft { text, ..draft };
    deliver(s, draft, a.body.dry_run).await.map(|_| ())
}

async fn reply(s: &mut Session<'_>, a: ReplyArgs) -> anyhow::Result<()> {
    let original = s.backend().await?.fetch_raw(&a.id).await?;
    let mut draft = compose::reply(&original, &me(s.account), a.all)?;
    let quoted = std::mem::take(&mut draft.text);
    let text = body_text(&a.body, &format!("\n\n{quoted}"))?;
    // From the editor the quote is already in; from a file or stdin it goes below.
    draft.text = if a.body.body.is_none() && std::io::stdin().is_terminal() {
        text
    } else {
        format!("{}\n\n{quoted}", text.trim_end())
    };
    draft.attachments = attachments(&a.body.attach)?;
    if deliver(s, draft, a.body.dry_run).await? {
        let change = FlagChange {
            add: true,
            flag: "\\Answered".into(),
        };
        if let Err(e) = s.backend().await?.flag(&[a.id], &[change]).await {
            eprintln!("warning: sent, but the original could not be marked answered: {e}");
        }
    }
    Ok(())
}

async fn forward(s: &mut Session<'_>, a: ForwardArgs) -> anyhow::Result<()> {
    let original = s.backend().await?.fetch_raw(&a.id).await?;
    let mut draft = compose::forward(&original, &me(s.account))?;
    draft.to = mailbox_list(&a.to)?;
    draft.cc = mailbox_list(&a.cc)?;
    draft.bcc = mailbox_list(&a.bcc)?;
    let fwd = std::mem::take(&mut draft.text);
    let text = body_text(&a.body, &format!("\n\n{fwd}"))?;
    draft.text = if a.body.body.is_none() && std::io::stdin().is_terminal() {
        text
    } else {
        format!("{}\n\n{fwd}", text.trim_end())
    };
    draft.attachments.extend(attachments(&a.body.attach)?);
    if deliver(s, draft, a.body.dry_run).await? {
        let change = FlagChange {
            add: true,
            flag: "$Forwarded".into(),
        };
        let _ = s.backend().await?.flag(&[a.id], &[change]).await;
    }
    Ok(())
}

/// Builds and sends the draft (or prints it with `dry_run`); keeps a copy in
/// Sent. Returns whether it was sent.
async fn deliver(s: &mut Session<'_>, draft: Draft, dry_run: bool) -> anyhow::Result<bool> {
    let composed = draft.build()?;
    if dry_run {
        std::io::stdout()
            .write_all(&composed.raw)
            .context("writing the message")?;
        return Ok(false);
    }
    if s.via() == Via::Jmap {
        // JMAP EmailSubmission: the server keeps the copy in Sent.
        s.backend().await?;
        let Some(Opened::Jmap(j)) = s.backend.as_mut() else {
            return Err(usage("JMAP submission needs the JMAP backend"));
        };
        j.submit(&composed.envelope_from, &composed.recipients, &composed.raw)
            .await?;
    } else {
        let ep = s.account.endpoint(Protocol::Smtp)?;
        let login = s.login()?;
        submit::send(
            &ep,
            &login,
            &composed.envelope_from,
            &composed.recipients,
            &composed.raw,
        )
        .await?;
        if let Err(e) = save_sent(s, &composed.raw).await {
            eprintln!("warning: sent, but no copy was saved in Sent: {e}");
        }
    }
    println!(
        "sent to {} (Message-ID <{}>)",
        composed.recipients.join(", "),
        composed.message_id
    );
    Ok(true)
}

async fn save_sent(s: &mut Session<'_>, raw: &[u8]) -> Result<(), ClientError> {
    let b = s.backend().await?;
    let folder = match b.folder_with_role("sent").await? {
        Some(f) => f,
        None => "Sent".to_string(),
    };
    b.append(&folder, raw, &["\\Seen".to_string()]).await
}

async fn fetch(acc: &Account, keep: bool) -> anyhow::Result<()> {
    let ep = acc.endpoint(Protocol::Pop3)?;
    let login = login(acc)?;
    let dir = acc.maildir_path()?;
    let maildir = Maildir::open(&dir)?;
    let opts = pop3::FetchOptions {
        keep,
        progress: std::io::stderr().is_terminal(),
    };
    let sum = pop3::fetch(&ep, &login, &maildir, &opts).await?;
    let mut line = format!(
        "fetched {} new message(s) ({})",
        sum.fetched,
        render::human_size(sum.bytes)
    );
    if sum.skipped > 0 {
        line.push_str(&format!(", skipped {} already fetched", sum.skipped));
    }
    if sum.deleted > 0 {
        line.push_str(&format!(", deleted {} on the server", sum.deleted));
    }
    println!("{line} into {}", dir.display());
    for w in &sum.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

async fn folders(s: &mut Session<'_>, json: bool) -> anyhow::Result<()> {
    let folders = s.backend().await?.folders().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&folders)?);
        return Ok(());
    }
    let w = folders
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:<w$}  {:>7}  {:>7}  ROLE", "FOLDER", "UNREAD", "TOTAL");
    for f in folders {
        println!(
            "{:<w$}  {:>7}  {:>7}  {}",
            render::clean(&f.name),
            f.unread,
            f.total,
            f.role.unwrap_or_default()
        );
    }
    Ok(())
}

async fn list(s: &mut Session<'_>, q: &Query, json: bool) -> anyhow::Result<()> {
    let mut items = s.backend().await?.list(q).await?;
    // Newest first (backends do; this keeps it true whatever they return).
    items.sort_by_key(|b| std::cmp::Reverse(b.date));
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if items.is_empty() {
        println!("no messages");
        return Ok(());
    }
    print!("{}", table(&items, terminal_width(), s.ctx.offset));
    Ok(())
}

/// The terminal's width: `COLUMNS`, the terminal's size, else 100 (piped).
fn terminal_width() -> usize {
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c >= 20)
    {
        return c;
    }
    terminal_size::terminal_size()
        .map(|(w, _)| w.0 as usize)
        .filter(|w| *w >= 20)
        .unwrap_or(100)
}

/// `s` cut to `w` characters, with an ellipsis when cut, padded to `w`.
fn fit(s: &str, w: usize) -> String {
    let s = render::clean(s).replace(['\n', '\t'], " ");
    let n = s.chars().count();
    if n <= w {
        format!("{s}{}", " ".repeat(w - n))
    } else if w == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(w - 1).collect();
        out.push('…');
        out
    }
}

fn flag_letters(flags: &[String]) -> String {
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let mut s = String::new();
    s.push(if has("\\Seen") { ' ' } else { 'N' });
    s.push(if has("\\Flagged") { 'F' } else { ' ' });
    s.push(if has("\\Answered") { 'A' } else { ' ' });
    s
}

/// The listing: id, date, from, subject, flags (N new, F flagged, A
/// answered), size; from and subject share what the terminal leaves.
fn table(items: &[Summary], width: usize, offset: UtcOffset) -> String {
    let date_fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    let id_w = items
        .iter()
        .map(|i| i.id.chars().count())
        .max()
        .unwrap_or(2)
        // Never cut: the id is what the user copies into the next command.
        .max(2);
    let size_w = 8;
    let date_w = 16;
    let flags_w = 3;
    let fixed = id_w + date_w + flags_w + size_w + 5 * 2;
    let rest = width.saturating_sub(fixed).max(20);
    let from_w = (rest * 2 / 5).clamp(8, 30);
    let subj_w = rest.saturating_sub(from_w).max(10);
    let mut out = format!(
        "{}  {}  {}  {}  {}  {:>size_w$}\n",
        fit("ID", id_w),
        fit("DATE", date_w),
        fit("FROM", from_w),
        fit("SUBJECT", subj_w),
        fit("FLG", flags_w),
        "SIZE"
    );
    for i in items {
        let date = i
            .date
            .and_then(|d| d.to_offset(offset).format(date_fmt).ok())
            .unwrap_or_default();
        let line = format!(
            "{}  {}  {}  {}  {}  {:>size_w$}",
            fit(&i.id, id_w),
            fit(&date, date_w),
            fit(&i.from, from_w),
            fit(&i.subject, subj_w),
            flag_letters(&i.flags),
            render::human_size(i.size)
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

async fn read(s: &mut Session<'_>, id: &str, raw: bool, headers: bool) -> anyhow::Result<()> {
    let b = s.backend().await?;
    let bytes = b.fetch_raw(id).await?;
    let mut out = std::io::stdout().lock();
    if raw {
        out.write_all(&bytes).context("writing the message")?;
    } else {
        let opts = render::Options {
            width: terminal_width().min(120),
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            offset: s.ctx.offset,
            all_headers: headers,
        };
        out.write_all(render::render(&bytes, &opts).as_bytes())
            .context("writing the message")?;
    }
    out.flush().ok();
    drop(out);
    let seen = FlagChange {
        add: true,
        flag: "\\Seen".into(),
    };
    s.backend().await?.flag(&[id.to_string()], &[seen]).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flag_arguments() {
        let args: Vec<String> = ["1", "2", "+flagged", "-seen"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (ids, ch) = parse_flag_args(&args).unwrap();
        assert_eq!(ids, vec!["1", "2"]);
        assert_eq!(
            ch[0],
            FlagChange {
                add: true,
                flag: "\\Flagged".into()
            }
        );
        assert_eq!(
            ch[1],
            FlagChange {
                add: false,
                flag: "\\Seen".into()
            }
        );
        let args: Vec<String> = ["7", "work"].iter().map(|s| s.to_string()).collect();
        let (ids, ch) = parse_flag_args(&args).unwrap();
        assert_eq!(
            (ids, ch[0].flag.as_str(), ch[0].add),
            (vec!["7".to_string()], "work", true)
        );
        let args: Vec<String> = ["+seen"].iter().map(|s| s.to_string()).collect();
        assert!(parse_flag_args(&args).is_err());
        let args: Vec<String> = ["1", "+bad flag"].iter().map(|s| s.to_string()).collect();
        assert!(parse_flag_args(&args).is_err());
    }

    #[test]
    fn table_fits_the_width() {
        let item = Summary {
            id: "INBOX:12345".into(),
            folder: "INBOX".into(),
            date: Some(time::macros::datetime!(2026-03-03 13:05 UTC)),
            from: "Очень Длинное Имя Отправителя <very.long.sender@example.org>".into(),
            subject: "A subject that is much longer than any terminal would like to show".into(),
            flags: vec!["\\Flagged".into()],
            size: 123456,
        };
        let t = table(&[item], 80, UtcOffset::UTC);
        for line in t.lines() {
            assert!(
                line.chars().count() <= 80,
                "{line:?} ({})",
                line.chars().count()
            );
        }
        assert!(t.contains("2026-03-03 13:05"), "{t}");
        assert!(t.contains("NF "), "{t}");
        assert!(t.contains('…'), "{t}");
    }
}
