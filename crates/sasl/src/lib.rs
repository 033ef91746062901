//! SASL server mechanisms as sans-I/O state machines.
//!
//! SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE (RFC 9051
//! §6.2.2) all carry the same SASL exchanges in base64 lines; only the framing
//! differs (`334 …`, `+ …`). The protocols hand this crate decoded client
//! responses and get back either a challenge to send or the credentials to check.
//! Checking them is the auth crate's job, so the same code serves every protocol.

#![forbid(unsafe_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pochta_addr::Secret;

/// Longest decoded client response we accept, in octets; a PLAIN message holding
/// two addresses and a password fits comfortably.
pub const MAX_RESPONSE: usize = 4096;

/// The mechanisms pochta offers. Both send the password in clear, which is why
/// every protocol offers them only under TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// The widely deployed draft-murchison-sasl-login.
    Login,
}

impl Mechanism {
    /// All offered mechanisms, in the order they are advertised.
    pub const ALL: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

    /// Looks a mechanism up by its (case-insensitive) name.
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// What the client proved it knows: a login name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity to act as, when the client asked for one different from `login`.
    pub authzid: Option<String>,
    /// The login name (authentication identity).
    pub login: String,
    /// The password.
    pub password: Secret,
}

/// Why an exchange failed before credentials could be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4, RFC 9051 §6.2.2).
    #[error("authentication cancelled")]
    Cancelled,
    /// The response is not valid base64.
    #[error("invalid base64 in authentication response")]
    BadBase64,
    /// The decoded response does not have the mechanism's shape.
    #[error("malformed authentication response: {0}")]
    Malformed(&'static str),
}

/// The next thing to do in an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge (raw; the protocol base64-encodes it) and wait for a response.
    Challenge(Vec<u8>),
    /// The exchange is complete: check these credentials.
    Done(Credentials),
    /// The exchange failed; reply with the protocol's error.
    Failed(SaslError),
}

#[derive(Debug)]
enum State {
    Start,
    PlainWaiting,
    LoginUser,
    LoginPassword { login: String },
    Finished,
}

/// One SASL exchange on the server side.
#[derive(Debug)]
pub struct SaslServer {
    mechanism: Mechanism,
    state: State,
}

impl SaslServer {
    /// Begins an exchange with `mechanism`.
    pub fn new(mechanism: Mechanism) -> SaslServer {
        SaslServer {
            mechanism,
            state: State::Start,
        }
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Starts the exchange with the decoded initial response, if the client sent
    /// one (RFC 4954 SASL-IR; `=` on the wire is `Some(b"")`).
    pub fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match (self.mechanism, initial) {
            (Mechanism::Plain, Some(ir)) => self.finish(parse_plain(ir)),
            (Mechanism::Plain, None) => {
                self.state = State::PlainWaiting;
                Step::Challenge(Vec::new())
            }
            (Mechanism::Login, Some(ir)) if !ir.is_empty() => {
                self.state = State::LoginUser;
                self.step(ir)
            }
            (Mechanism::Login, _) => {
                self.state = State::LoginUser;
                Step::Challenge(b"Username:".to_vec())
            }
        }
    }

    /// Starts the exchange from the initial-response argument as it appears on the
    /// command line (base64, `=` for empty), or none.
    pub fn start_encoded(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            None => self.start(None),
            Some(arg) => match decode_initial(arg) {
                Ok(ir) => self.start(Some(&ir)),
                Err(e) => self.finish(Err(e)),
            },
        }
    }

    /// Feeds the next decoded client response.
    pub fn step(&mut self, response: &[u8]) -> Step {
        if response.len() > MAX_RESPONSE {
            return self.finish(Err(SaslError::Malformed("response too long")));
        }
        match std::mem::replace(&mut self.state, State::Finished) {
            State::PlainWaiting => self.finish(parse_plain(response)),
            State::LoginUser => match utf8(response, "user name is not UTF-8") {
                Ok(login) if !login.is_empty() => {
                    self.state = State::LoginPassword { login };
                    Step::Challenge(b"Password:".to_vec())
                }
                Ok(_) => self.finish(Err(SaslError::Malformed("empty user name"))),
                Err(e) => self.finish(Err(e)),
            },
            State::LoginPassword { login } => {
                let password = utf8(response, "password is not UTF-8");
                self.finish(password.map(|p| Credentials {
                    authzid: None,
                    login,
                    password: Secret::new(p),
                }))
            }
            State::Start | State::Finished => {
                self.finish(Err(SaslError::Malformed("unexpected response")))
            }
        }
    }

    /// Feeds a client response line as received (base64, or `*` to cancel).
    pub fn step_line(&mut self, line: &[u8]) -> Step {
        match decode_response(line) {
            Ok(bytes) => self.step(&bytes),
            Err(e) => self.finish(Err(e)),
        }
    }

    fn finish(&mut self, result: Result<Credentials, SaslError>) -> Step {
        self.state = State::Finished;
        match result {
            Ok(c) => Step::Done(c),
            Err(e) => Step::Failed(e),
        }
    }
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, SaslError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::Malformed(what))
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`.
fn parse_plain(msg: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = msg.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "PLAIN needs authzid NUL authcid NUL password",
        ));
    };
    let authzid = utf8(authzid, "authorization identity is not UTF-8")?;
    let login = utf8(authcid, "user name is not UTF-8")?;
    let password = utf8(passwd, "password is not UTF-8")?;
    if login.is_empty() {
        return Err(SaslError::Malformed("empty user name"));
    }
    Ok(Credentials {
        authzid: (!authzid.is_empty() && authzid != login).then_some(authzid),
        login,
        password: Secret::new(password),
    })
}

/// Decodes a client response line: trailing CR/LF and spaces are ignored, `*`
/// cancels, anything else must be base64.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let trimmed = trim(line);
    if trimmed == b"*" {
        return Err(SaslError::Cancelled);
    }
    if trimmed.len() > MAX_RESPONSE * 4 / 3 + 4 {
        return Err(SaslError::Malformed("response too long"));
    }
    STANDARD.decode(trimmed).map_err(|_| SaslError::BadBase64)
}

/// Decodes an initial response given on the command line (SASL-IR): `=` means
/// an empty response (RFC 4954 §4).
pub fn decode_initial(arg: &[u8]) -> Result<Vec<u8>, SaslError> {
    if trim(arg) == b"=" {
        return Ok(Vec::new());
    }
    decode_response(arg)
}

/// Base64 for a challenge line.
pub fn encode_challenge(challenge: &[u8]) -> String {
    STANDARD.encode(challenge)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n' | b' ' | b'\t'] = s {
        s = rest;
    }
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(step: Step) -> Credentials {
        match step {
            Step::Done(c) => c,
            other => panic!("expected credentials, got {other:?}"),
        }
    }

    #[test]
    fn plain_with_initial_response() {
        let mut s = SaslServer::new(Mechanism::Plain);
        let c = done(s.start(Some(b"\0alice@example.com\0secret")));
        assert_eq!(c.login, "alice@example.com");
        assert_eq!(c.password.expose(), "secret");
        assert_eq!(c.authzid, None);
    }

    #[test]
    fn plain_without_initial_response_sends_empty_challenge() {
        let mut s = SaslServer::new(Mechanism::Plain);
        assert_eq!(s.start(None), Step::Challenge(Vec::new()));
        let line = STANDARD.encode(b"alice\0alice\0pw");
        let c = done(s.step_line(line.as_bytes()));
        assert_eq!(
            c.authzid, None,
            "authzid equal to the login is not a proxy request"
        );
    }

    #[test]
    fn plain_with_foreign_authzid_is_reported() {
        let mut s = SaslServer::new(Mechanism::Plain);
        let c = done(s.start(Some(b"bob\0alice\0pw")));
        assert_eq!(c.authzid.as_deref(), Some("bob"));
    }

    #[test]
    fn plain_malformed() {
        for bad in [&b"no-nuls"[..], b"a\0b", b"a\0b\0c\0d", b"\0\0pw"] {
            let mut s = SaslServer::new(Mechanism::Plain);
            assert!(
                matches!(s.start(Some(bad)), Step::Failed(SaslError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn login_two_challenges() {
        let mut s = SaslServer::new(Mechanism::Login);
        assert_eq!(s.start(None), Step::Challenge(b"Username:".to_vec()));
        assert_eq!(s.step(b"alice"), Step::Challenge(b"Password:".to_vec()));
        let c = done(s.step(b"pw"));
        assert_eq!((c.login.as_str(), c.password.expose()), ("alice", "pw"));
    }

    #[test]
    fn login_with_initial_user() {
        let mut s = SaslServer::new(Mechanism::Login);
        assert_eq!(
            s.start(Some(b"alice")),
            Step::Challenge(b"Password:".to_vec())
        );
        assert_eq!(done(s.step(b"pw")).login, "alice");
    }

    #[test]
    fn cancel_and_bad_base64() {
        let mut s = SaslServer::new(Mechanism::Login);
        s.start(None);
        assert_eq!(s.step_line(b"*\r\n"), Step::Failed(SaslError::Cancelled));
        let mut s = SaslServer::new(Mechanism::Plain);
        s.start(None);
        assert_eq!(s.step_line(b"!!!\r\n"), Step::Failed(SaslError::BadBase64));
    }

    #[test]
    fn steps_after_the_end_fail() {
        let mut s = SaslServer::new(Mechanism::Plain);
        done(s.start(Some(b"\0a\0b")));
        assert!(matches!(s.step(b"x"), Step::Failed(_)));
    }

    #[test]
    fn initial_equals_is_empty() {
        assert_eq!(decode_initial(b"="), Ok(Vec::new()));
        assert_eq!(decode_initial(b"YQ=="), Ok(b"a".to_vec()));
        assert_eq!(decode_response(b"  YQ==  \r\n"), Ok(b"a".to_vec()));
    }

    #[test]
    fn mechanism_names() {
        assert_eq!(Mechanism::parse("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse("LOGIN"), Some(Mechanism::Login));
        assert_eq!(Mechanism::parse("CRAM-MD5"), None);
    }
}
