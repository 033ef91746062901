//! IMAP behaviour, command by command, through the real session and executor on
//! a temporary store (no sockets). Several clients on one store test concurrency.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use common::*;

const MSG1: &str = "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: first\nDate: Mon, 7 Feb 1994 21:52:25 -0800\nMessage-ID: <m1@example.org>\n\nHello one\n";
const MSG2: &str = "From: Carol <carol@example.org>\nTo: alice@example.com\nSubject: Re: first\nMessage-ID: <m2@example.org>\nIn-Reply-To: <m1@example.org>\n\nHello two\n";
const MSG3: &str = "From: Dan <dan@example.org>\nTo: alice@example.com\nSubject: third\nMessage-ID: <m3@example.org>\n\nHello three, a longer body\n";

async fn world3() -> World {
    let w = World::new().await;
    for m in [MSG1, MSG2, MSG3] {
        w.deliver(m).await;
    }
    w
}

#[tokio::test]
async fn no_login_before_tls_then_starttls() {
    let w = World::new().await;
    let mut c = w.client_plain();
    let greeting = c.drive().await;
    assert!(
        greeting[0].starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 "),
        "{greeting:?}"
    );
    assert!(
        greeting[0].contains("STARTTLS LOGINDISABLED"),
        "{greeting:?}"
    );
    assert!(!greeting[0].contains("AUTH="), "{greeting:?}");
    expect(
        &c.send("a LOGIN alice@example.com secret").await,
        &["a NO [PRIVACYREQUIRED] LOGIN is disabled without TLS; use STARTTLS"],
    );
    expect(
        &c.send("b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
            .await,
        &["b NO [PRIVACYREQUIRED] Authentication is disabled without TLS; use STARTTLS"],
    );
    expect(
        &c.send("c STARTTLS").await,
        &["c OK Begin TLS negotiation now"],
    );
    let caps = c.send("d CAPABILITY").await;
    assert!(
        caps[0].contains("AUTH=PLAIN AUTH=LOGIN") && !caps[0].contains("LOGINDISABLED"),
        "{caps:?}"
    );
    expect(
        &c.send("e LOGIN alice@example.com secret").await,
        &["e OK [CAPABILITY IMAP4rev1 *"],
    );
}

#[tokio::test]
async fn authenticate_plain_login_and_failures() {
    let w = World::new().await;
    let mut c = w.client();
    c.drive().await;
    expect(&c.send("a AUTHENTICATE PLAIN").await, &["+ "]);
    expect(&c.send("*").await, &["a BAD Authentication cancelled"]);
    expect(&c.send("b AUTHENTICATE LOGIN").await, &["+ VXNlcm5hbWU6"]);
    expect(
        &c.send("YWxpY2VAZXhhbXBsZS5jb20=").await,
        &["+ UGFzc3dvcmQ6"],
    );
    expect(
        &c.send("d3Jvbmc=").await,
        &["b NO [AUTHENTICATIONFAILED] Authentication failed"],
    );
    expect(
        &c.send("c AUTHENTICATE CRAM-MD5").await,
        &["c NO [CANNOT] Unsupported authentication mechanism"],
    );
    expect(
        &c.send("d AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
            .await,
        &["d OK [CAPABILITY IMAP4rev1 IMAP4rev2 *] Logged in"],
    );
    expect(
        &c.send("e LOGIN alice@example.com secret").await,
        &["e BAD Already logged in"],
    );
}

#[tokio::test]
async fn three_failed_logins_end_the_connection() {
    let w = World::new().await;
    let mut c = w.client();
    c.drive().await;
    c.send("a LOGIN alice@example.com no").await;
    c.send("b LOGIN alice@example.com no").await;
    expect(
        &c.send("c LOGIN alice@example.com no").await,
        &[
            "c NO [AUTHENTICATIONFAILED] Authentication failed",
            "* BYE Too many failed logins",
        ],
    );
    assert!(c.closed);
}

#[tokio::test]
async fn select_responses_rev1_and_rev2() {
    let w = world3().await;
    let mut c = w.client();
    c.login().await;
    expect(
        &c.send("a SELECT INBOX").await,
        &[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing)",
            "* 3 EXISTS",
            "* 0 RECENT",
            "* OK [UNSEEN 1] First unseen",
            "* OK [UIDVALIDITY *",
            "* OK [UIDNEXT 4] Predicted next UID",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing \\*)] Flags permitted",
            "* OK [MAILBOXID (F*",
            "a OK [READ-WRITE] SELECT completed",
        ],
    );
    expect(
        &c.send("b ENABLE IMAP4rev2 CONDSTORE X-UNKNOWN").await,
        &["* ENABLED IMAP4REV2 CONDSTORE", "b OK ENABLE completed"],
    );
    expect(
        &c.send("c EXAMINE inbox").await,
        &[
            "* OK [CLOSED] Previous mailbox closed",
            "* FLAGS *",
            "* 3 EXISTS",
            "* OK [UIDVALIDITY *",
            "* OK [UIDNEXT 4] Predicted next UID",
            "* OK [PERMANENTFLAGS ()] Read-only mailbox",
            "* OK [HIGHESTMODSEQ *",
            "* OK [MAILBOXID (F*",
            "* LIST () \"/\" INBOX",
            "c OK [READ-ONLY] EXAMINE completed",
        ],
    );
    expect(
        &c.send("d STORE 1 +FLAGS (\\Seen)").await,
        &["d NO [READ-ONLY] Mailbox is read-only"],
    );
    expect(
        &c.send("e SELECT Nope").await,
        &[
            "* OK [CLOSED] Previous mailbox closed",
            "e NO [NONEXISTENT] Mailbox doesn't exist: Nope",
        ],
    );
    expect(
        &c.send("f FETCH 1 FLAGS").await,
        &["f BAD No mailbox selected"],
    );
}

#[tokio::test]
async fn list_variants() {
    let w = World::new().await;
    let mut c = w.client();
    c.login().await;
    c.send("a CREATE Work/Projects/2026").await;
    c.send("b UNSUBSCRIBE Work").await;
    c.send("b2 UNSUBSCRIBE Work/Projects").await;
    expect(
        &c.send("c LIST \"\" \"\"").await,
        &["* LIST (\\Noselect) \"/\" \"\"", "c OK LIST completed"],
    );
    expect(
        &c.send("d LIST \"\" %").await,
        &[
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* LIST (\\HasNoChildren \\Archive) \"/\" Archive",
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren \\Junk) \"/\" Junk",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
            "* LIST (\\HasChildren) \"/\" Work",
            "d OK LIST completed",
        ],
    );
    expect(
        &c.send("e LIST \"Work/\" *").await,
        &[
            "* LIST (\\HasChildren) \"/\" Work/Projects",
            "* LIST (\\HasNoChildren) \"/\" Work/Projects/2026",
            "e OK LIST completed",
        ],
    );
    expect(
        &c.send("f LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES UNSEEN))")
            .await,
        &[
            "* LIST (\\HasNoChildren \\Archive) \"/\" Archive",
            "* STATUS Archive (MESSAGES 0 UNSEEN 0)",
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* STATUS Drafts (MESSAGES 0 UNSEEN 0)",
            "* LIST (\\HasNoChildren \\Junk) \"/\" Junk",
            "* STATUS Junk (MESSAGES 0 UNSEEN 0)",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* STATUS Sent (MESSAGES 0 UNSEEN 0)",
            "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
            "* STATUS Trash (MESSAGES 0 UNSEEN 0)",
            "f OK LIST completed",
        ],
    );
    expect(
        &c.send("g LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Work*")
            .await,
        &[
            "* LIST (\\HasChildren) \"/\" Work (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "* LIST (\\HasChildren) \"/\" Work/Projects (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" Work/Projects/2026",
            "g OK LIST completed",
        ],
    );
    expect(
        &c.send("h LSUB \"\" Work*").await,
        &["* LSUB () \"/\" Work/Projects/2026", "h OK LSUB completed"],
    );
    expect(
        &c.send("i LIST \"\" (Dr* Ju*)").await,
        &[
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren \\Junk) \"/\" Junk",
            "i OK LIST completed",
        ],
    );
    expect(
        &c.send("j NAMESPACE").await,
        &[
            "* NAMESPACE ((\"\" \"/\")) NIL NIL",
            "j OK NAMESPACE completed",
        ],
    );
}

#[tokio::test]
async fn create_rename_delete() {
    let w = world3().await;
    let mut c = w.client();
    c.login().await;
    expect(
        &c.send("a CREATE Lists/rust/").await,
        &["a OK CREATE completed"],
    );
    expect(
        &c.send("b CREATE Lists/rust").await,
        &["b NO [ALREADYEXISTS] Mailbox already exists: Lists/rust"],
    );
    expect(
        &c.send("c CREATE INBOX").await,
        &["c NO [ALREADYEXISTS] Mailbox already exists: INBOX"],
    );
    expect(
        &c.send("d CREATE a//b").await,
        &["d NO [CANNOT] Mailbox name has an empty level"],
    );
    expect(
        &c.send("e CREATE MyArchive (USE (\\Archive))").await,
        &["e NO [USEATTR] Another mailbox is already \\Archive"],
    );
    expect(
        &c.send("f RENAME Lists Groups").await,
        &["f OK RENAME completed"],
    );
    expect(
        &c.send("g LIST \"\" Groups*").await,
        &[
            "* LIST (\\HasChildren) \"/\" Groups",
            "* LIST (\\HasNoChildren) \"/\" Groups/rust",
            "g OK LIST completed",
        ],
    );
    expect(
        &c.send("h DELETE Groups").await,
        &["h NO [HASCHILDREN] Mailbox has children, delete them first"],
    );
    expect(
        &c.send("i DELETE INBOX").await,
        &["i NO [CANNOT] INBOX cannot be deleted"],
    );
    expect(
        &c.send("j RENAME Groups/rust Groups").await,
        &["j NO [ALREADYEXISTS] Mailbox already exists: Groups"],
    );
    expect(
        &c.send("k RENAME INBOX Old/Inbox").await,
        &["k OK RENAME completed"],
    );
    expect(
        &c.send("l STATUS INBOX (MESSAGES)").await,
        &["* STATUS INBOX (MESSAGES 0)", "l OK STATUS completed"],
    );
    expect(
        &c.send("m STATUS Old/Inbox (MESSAGES UIDNEXT)").await,
        &[
            "* STATUS Old/Inbox (MESSAGES 3 UIDNEXT 4)",
            "m OK STATUS completed",
        ],
    );
    expect(
        &c.send("n DELETE Nope").await,
        &["n NO [NONEXISTENT] Mailbox doesn't exist: Nope"],
    );
    expect(
        &c.send("o DELETE Groups/rust").await,
        &["o OK DELETE completed"],
    );
}

#[tokio::test]
async fn append_and_multiappend() {
    let w = World::new().await;
    let mut c = w.client();
    c.login().await;
    let r = c.send("a APPEND Sent (\\Seen $Forwarded) \"14-Jul-2026 02:44:25 -0700\" {24+}\r\nSubject: sent\r\n\r\nhello\r\n\r\n").await;
    expect(&r, &["a OK [APPENDUID * 1] APPEND completed"]);
    let r = c
        .send("b APPEND Sent {9+}\r\nA: 1\r\n\r\nx (\\Draft) {9+}\r\nB: 2\r\n\r\ny")
        .await;
    expect(&r, &["b OK [APPENDUID * 2:3] APPEND completed"]);
    expect(
        &c.send("c APPEND Nope {4+}\r\nx\r\n\r\n").await,
        &["c NO [TRYCREATE] Mailbox doesn't exist: Nope"],
    );
    expect(
        &c.send("d APPEND Sent {99999999}").await,
        &["d NO [TOOBIG] *"],
    );
    c.send("e SELECT Sent").await;
    expect(
        &c.send("f FETCH 1:3 (FLAGS INTERNALDATE RFC822.SIZE)").await,
        &[
            "* 1 FETCH (FLAGS (\\Seen $Forwarded) INTERNALDATE \"14-Jul-2026 09:44:25 +0000\" RFC822.SIZE 24)",
            "* 2 FETCH (FLAGS () INTERNALDATE * RFC822.SIZE 11)",
            "* 3 FETCH (FLAGS (\\Draft) INTERNALDATE * RFC822.SIZE 11)",
            "f OK FETCH completed",
        ],
    );
    expect(
        &c.send("g FETCH 3 BODY[]").await,
        &[
            "* 3 FETCH (BODY[] {11}\r\nB: 2\r\n\r\ny\r\n FLAGS (\\Seen \\Draft))",
            "g OK FETCH completed",
        ],
    );
}

#[tokio::test]
async fn fetch_sets_seen_unless_peek() {
    let w = world3().await;
    let mut c = w.client();
    c.login().await;
    c.send("a SELECT INBOX").await;
    expect(
        &c.send("b FETCH 1 (BODY.PEEK[TEXT])").await,
        &[
            "* 1 FETCH (BODY[TEXT] {11}\r\nHello one\r\n)",
            "b OK FETCH completed",
        ],
    );
    expect(
        &c.send("c FETCH 1 FLAGS").await,
        &["* 1 FETCH (FLAGS ())", "c OK FETCH completed"],
    );
    expect(
        &c.send("d FETCH 1 (BODY[TEXT]<6.3>)").await,
        &[
            "* 1 FETCH (BODY[TEXT]<6> {3}\r\none FLAGS (\\Seen))",
            "d OK FETCH completed",
        ],
    );
    expect(
        &c.send("e UID FETCH 1:* (FLAGS)").await,
        &[
            "* 1 FETCH (UID 1 FLAGS (\\Seen))",
            "* 2 FETCH (UID 2 FLAGS ())",
            "* 3 FETCH (UID 3 FLAGS ())",
            "e OK FETCH completed",
        ],
    );
    expect(
        &c.send("f FETCH 4 FLAGS").await,
        &["f BAD Invalid message sequence number"],
    );
    expect(
        &c.send("g UID FETCH 10:20 FLAGS").await,
        &["g OK FETCH completed"],
    );
}

#[tokio::test]
async fn store_and_conditional_store() {
    let w = world3().await;
    let mut c = w.client();
    c.login().await;
    c.send("a SELECT INBOX").await;
    expect(
        &c.send("b STORE 1:2 +FLAGS (\\Flagged Important)").await,
        &[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing Important)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing Important \\*)] Flags permitted",
            "* 1 FETCH (UID 1 FLAGS (\\Flagged Important))",
            "* 2 FETCH (UID 2 FLAGS (\\Flagged Important))",
            "b OK STORE completed",
        ],
    );
    expect(
        &c.send("c STORE 2 -FLAGS.SILENT (important)").await,
        &["c OK STORE completed"],
    );
    expect(
        &c.send("d FETCH 2 FLAGS").await,
        &["* 2 FETCH (FLAGS (\\Flagged))", "d OK FETCH completed"],
    );
    expect(
        &c.send("e UID STORE 3 FLAGS ($Junk)").await,
        &["* 3 FETCH (UID 3 FLAGS ($Junk))", "e OK STORE completed"],
    );
    // CONDSTORE: messages changed after the given MODSEQ are not touched.
    let r = c.send("f FETCH 1:3 (MODSEQ)").await;
    let modseq_of = |line: &str| -> u64 {
        line.rsplit("MODSEQ (")
            .next()
            .unwrap()
            .trim_end_matches("))")
            .parse()
            .unwrap()
    };
    // The client's view: no message changed after m1.
    let m1 = r[..3].iter().map(|l| modseq_of(l)).max().unwrap();
    c.send("g STORE 1 +FLAGS.SILENT (\\Answered)").await;
    let r = c
        .send(&format!(
            "h STORE 1,3 (UNCHANGEDSINCE {m1}) +FLAGS.SILENT (\\Seen)"
        ))
        .await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("* 3 FETCH (UID 3 MODSEQ ("), "{r:?}");
    expect(
        &r[1..],
        &["h OK [MODIFIED 1] Conditional STORE failed for some messages"],
    );
}

#[tokio::test]
async fn keywords_in_use_are_announced_in_flags() {
    let w = world3().await;
    let mut a = w.client();
    a.login().await;
    let mut b = w.client();
    b.login().await;
    a.send("a SELECT INBOX").await;
    b.send("a SELECT INBOX").await;
    // A keyword set by another session comes with a new FLAGS before its FETCH.
    b.send("b STORE 1 +FLAGS.SILENT (Old $label1)").await;
    expect(
        &a.send("b NOOP").await,
        &[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing Old $label1)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing Old $label1 \\*)] Flags permitted",
            "* 1 FETCH (UID 1 FLAGS (Old $label1))",
            "b OK NOOP completed",
        ],
    );
    // Known keywords (any case) do not repeat FLAGS.
    expect(
        &b.send("c STORE 2 +FLAGS (old $JUNK)").await,
        &[
            "* 2 FETCH (UID 2 FLAGS (old $JUNK))",
            "c OK STORE completed",
        ],
    );
    // The list stays after the keyword is removed, and a copy carries it along.
    b.send("d COPY 2 Archive").await;
    b.send("e STORE 1:2 -FLAGS.SILENT (Old $label1)").await;
    let r = b.send("f SELECT INBOX").await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* FLAGS (") && l.contains(" Old $label1)")),
        "{r:?}"
    );
    let r = b.send("g EXAMINE Archive").await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* FLAGS (") && l.ends_with("$Phishing old)")),
        "the copy's keywords, less the common $Junk: {r:?}"
    );
}

#[tokio::test]
async fn search_esearch_and_saved_results() {
    let w = world3().await;
    let mut c = w.client();
    c.login().await;
    c.send("a SELECT INBOX").await;
    c.send("b STORE 2 +FLAGS (\\Flagged)").await;
    expect(
        &c.send("c SEARCH FROM carol").await,
        &["* SEARCH 2", "c OK SEARCH completed"],
    );
    expect(
        &c.send("d SEARCH OR SUBJECT third FLAGGED").await,
        &["* SEARCH 2 3", "d OK SEARCH completed"],
    );
    expect(
        &c.send("e UID SEARCH NOT FLAGGED BODY \"Hello\"").await,
        &["* SEARCH 1 3", "e OK SEARCH completed"],
    );
    expect(
        &c.send("f SEARCH CHARSET UTF-8 SUBJECT \"RE: FIRST\"").await,
        &["* SEARCH 2", "f OK SEARCH completed"],
    );
    expect(
        &c.send("g SEARCH CHARSET KOI8-R ALL").await,
        &["g NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"],
    );
    expect(
        &c.send("h SEARCH RETURN (MIN MAX COUNT ALL) ALL").await,
        &[
            "* ESEARCH (TAG \"h\") MIN 1 MAX 3 COUNT 3 ALL 1:3",
            "h OK SEARCH completed",
        ],
    );
    expect(
        &c.send("i UID SEARCH RETURN () UNFLAGGED").await,
        &["* ESEARCH (TAG \"i\") UID ALL 1,3", "i OK SEARCH completed"],
    );
    expect(
        &c.send("j SEARCH RETURN (SAVE) SUBJECT first").await,
        &["j OK SEARCH completed"],
    );
    expect(
        &c.send("k FETCH $ (UID)").await,
        &[
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "k OK FETCH completed",
        ],
    );
    expect(
        &c.send("l SEARCH RETURN (COUNT) DRAFT").await,
        &["* ESEARCH (TAG \"l\") COUNT 0", "l OK SEARCH completed"],
    );
    expect(
        &c.send("m SEARCH LARGER 1 SMALLER 100000 2:*").await,
        &["* SEARCH 2 3", "m OK SEARCH completed"],
    );
    // Like Dovecot, a message without a Date header counts as sent in 1970.
    expect(
        &c.send("n SEARCH SENTBEFORE 1-Jan-2000").await,
        &["* SEARCH 1 2 3", "n OK SEARCH completed"],
    );
    expect(
        &c.send("n2 SEARCH SENTON 7-Feb-1994").await,
        &["* SEARCH 1", "n2 OK SEARCH completed"],
    );
    expect(&c.send("o SEARCH FOO").await, &["o BAD *"]);
}

#[tokio::test]
async fn sort_and_thread() {
    let w = world3().await;
    let mut c = w.client();
    c.login().await;
    c.send("a SELECT INBOX").await;
    expect(
        &c.send("b SORT (SUBJECT) UTF-8 ALL").await,
        &["* SORT 1 2 3", "b OK SORT completed"],
    );
    expect(
        &c.send("c UID SORT (REVERSE FROM) UTF-8 ALL").await,
        &["* SORT 3 2 1", "c OK SORT completed"],
    );
    expect(
        &c.send("d THREAD REFERENCES UTF-8 ALL").await,
        &["* THREAD (1 2)(3)", "d OK THREAD completed"],
    );
    // Sizes are 149, 150 and 128 octets.
    expect(
        &c.send("e SORT RETURN (ALL COUNT) (REVERSE SIZE) UTF-8 ALL")
            .await,
        &[
            "* ESEARCH (TAG \"e\") COUNT 3 ALL 2,1,3",
            "e OK SORT completed",
        ],
    );
}

/// Three delivered messages, and two logged-in sessions with INBOX selected
/// (tags a1 and b1 used).
async fn two_sessions_in_inbox() -> (World, Client, Client) {
    let w = world3().await;
    let mut a = w.client();
    let mut b = w.client();
    a.login().await;
    b.login().await;
    a.send("a1 SELECT INBOX").await;
    b.send("b1 SELECT INBOX").await;
    (w, a, b)
}

#[tokio::test]
async fn searches_see_every_change_since_the_last_search() {
    // The session keeps what SEARCH and SORT read between commands (and across a
    // new SELECT of the same mailbox): each change by anyone must still show.
    let (w, mut a, mut b) = two_sessions_in_inbox().await;
    expect(
        &a.send("a2 UID SEARCH FLAGGED").await,
        &["* SEARCH", "a2 OK SEARCH completed"],
    );
    // Flags set by another session, and by this one.
    b.send("b2 UID STORE 2 +FLAGS (\\Flagged)").await;
    expect(
        &a.send("a3 UID SEARCH FLAGGED").await,
        &[
            "* SEARCH 2",
            "* 2 FETCH (UID 2 FLAGS (\\Flagged))",
            "a3 OK SEARCH completed",
        ],
    );
    a.send("a4 UID STORE 3 +FLAGS.SILENT (\\Flagged)").await;
    expect(
        &a.send("a5 UID SEARCH FLAGGED").await,
        &["* SEARCH 2 3", "a5 OK SEARCH completed"],
    );
    // New mail, an expunge and a move by the other session, then SELECT again.
    w.deliver(MSG3).await;
    b.send("b3 UID STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.send("b4 EXPUNGE").await;
    b.send("b5 UID MOVE 2 Archive").await;
    a.send("a6 SELECT INBOX").await;
    expect(
        &a.send("a7 UID SEARCH SUBJECT third").await,
        &["* SEARCH 3 4", "a7 OK SEARCH completed"],
    );
    expect(
        &a.send("a8 UID SORT (ARRIVAL) UTF-8 ALL").await,
        &["* SORT 3 4", "a8 OK SORT completed"],
    );
    expect(
        &a.send("a9 UID SEARCH HEADER SUBJECT \"third\" FLAGGED")
            .await,
        &["* SEARCH 3", "a9 OK SEARCH completed"],
    );
}

#[tokio::test]
async fn expunge_copy_move() {
    let w = world3().await;
    let mut c = w.client();
    c.login().await;
    c.send("a SELECT INBOX").await;
    expect(
        &c.send("b COPY 1:2 Archive").await,
        &["b OK [COPYUID * 1:2 1:2] COPY completed"],
    );
    expect(
        &c.send("c COPY 1 Nope").await,
        &["c NO [TRYCREATE] Mailbox doesn't exist: Nope"],
    );
    expect(
        &c.send("d MOVE 2 Trash").await,
        &[
            "* OK [COPYUID * 2 1] Moved",
            "* 2 EXPUNGE",
            "d OK MOVE completed",
        ],
    );
    c.send("e STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    expect(
        &c.send("f EXPUNGE").await,
        &["* 1 EXPUNGE", "f OK EXPUNGE completed"],
    );
    expect(
        &c.send("g FETCH 1 (UID)").await,
        &["* 1 FETCH (UID 3)", "g OK FETCH completed"],
    );
    expect(
        &c.send("h STATUS Archive (MESSAGES)").await,
        &["* STATUS Archive (MESSAGES 2)", "h OK STATUS completed"],
    );
    c.send("i UID STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    expect(
        &c.send("j UID EXPUNGE 1:2").await,
        &["j OK EXPUNGE completed"],
    );
    expect(
        &c.send("k UID EXPUNGE 3").await,
        &["* 1 EXPUNGE", "k OK EXPUNGE completed"],
    );
    expect(&c.send("l CLOSE").await, &["l OK CLOSE completed"]);
    expect(&c.send("m EXPUNGE").await, &["m BAD No mailbox selected"]);
}

#[tokio::test]
async fn other_sessions_changes_arrive_at_allowed_moments() {
    let (w, mut a, mut b) = two_sessions_in_inbox().await;
    // A flags a message: B hears of it at its next command.
    a.send("a2 STORE 2 +FLAGS (\\Flagged)").await;
    expect(
        &b.send("b2 NOOP").await,
        &[
            "* 2 FETCH (UID 2 FLAGS (\\Flagged))",
            "b2 OK NOOP completed",
        ],
    );
    // A expunges message 1: B must not hear during FETCH by number...
    a.send("a3 STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    a.send("a4 EXPUNGE").await;
    // (Its \Deleted flag is not reported: the message is gone.)
    expect(
        &b.send("b3 FETCH 1:3 (UID)").await,
        &[
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 3)",
            "b3 OK [EXPUNGEISSUED] Some messages were expunged meanwhile",
        ],
    );
    // ...and hears at NOOP, with the numbers it still uses.
    expect(
        &b.send("b4 NOOP").await,
        &["* 1 EXPUNGE", "b4 OK NOOP completed"],
    );
    // New mail: EXISTS, also after a FETCH by number.
    w.deliver(MSG1).await;
    expect(
        &b.send("b5 FETCH 1 (UID)").await,
        &["* 1 FETCH (UID 2)", "* 3 EXISTS", "b5 OK FETCH completed"],
    );
    // IDLE wakes with it.
    expect(&b.send("b6 IDLE").await, &["+ idling"]);
    w.deliver(MSG2).await;
    expect(&b.idle_wakeup().await, &["* 4 EXISTS"]);
    expect(&b.send("DONE").await, &["b6 OK IDLE terminated"]);
    // A message moved away by A is an expunge for B; with QRESYNC, VANISHED.
    b.send("b7 ENABLE QRESYNC").await;
    a.send("a5 UID MOVE 3 Archive").await;
    expect(
        &b.send("b8 NOOP").await,
        &["* VANISHED 3", "b8 OK NOOP completed"],
    );
}

#[tokio::test]
async fn qresync_select_reports_what_changed() {
    let w = world3().await;
    let mut a = w.client();
    a.login().await;
    a.send("a1 ENABLE QRESYNC").await;
    let sel = a.send("a2 SELECT INBOX").await;
    let validity = number_after(&sel, "UIDVALIDITY");
    let hms = number_after(&sel, "HIGHESTMODSEQ");
    a.send("a3 STORE 2 +FLAGS (\\Seen)").await;
    a.send("a4 STORE 3 +FLAGS (\\Deleted)").await;
    a.send("a5 EXPUNGE").await;
    a.send("a6 UNSELECT").await;
    let r = a
        .send(&format!("a7 SELECT INBOX (QRESYNC ({validity} {hms} 1:3))"))
        .await;
    assert!(r.iter().any(|l| l == "* VANISHED (EARLIER) 3"), "{r:?}");
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (")),
        "{r:?}"
    );
    assert!(
        !r.iter().any(|l| l.starts_with("* 1 FETCH")),
        "unchanged messages are not reported: {r:?}"
    );
}

/// Prunes every change logged so far (as `pochta prune-changes --older-than 0`).
async fn prune_all(w: &World) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(w.store.prune_change_log(now, now).await.unwrap() > 0);
}

fn number_after(lines: &[String], key: &str) -> u64 {
    let line = lines.iter().find(|l| l.contains(key)).unwrap();
    let at = line.find(key).unwrap() + key.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_session_behind_a_pruned_log_compares_uids() {
    let w = world3().await;
    let mut a = w.client();
    let mut b = w.client();
    a.login().await;
    b.login().await;
    a.send("a1 SELECT INBOX").await;
    b.send("b1 SELECT INBOX").await;
    a.send("a2 STORE 2 +FLAGS (\\Seen)").await;
    a.send("a3 STORE 3 +FLAGS (\\Deleted)").await;
    a.send("a4 EXPUNGE").await;
    w.deliver(MSG1).await;
    // B has not looked since it selected; what it would read is gone.
    prune_all(&w).await;
    expect(
        &b.send("b2 NOOP").await,
        &[
            "* 3 EXPUNGE",
            "* 3 EXISTS",
            "* 2 FETCH (UID 2 FLAGS (\\Seen))",
            "b2 OK NOOP completed",
        ],
    );
    expect(
        &b.send("b3 UID FETCH 1:* (FLAGS)").await,
        &[
            "* 1 FETCH (UID 1 FLAGS ())",
            "* 2 FETCH (UID 2 FLAGS (\\Seen))",
            "* 3 FETCH (UID 4 FLAGS ())",
            "b3 OK FETCH completed",
        ],
    );
    // And it goes on from the log afterwards.
    a.send("a5 STORE 1 +FLAGS (\\Flagged)").await;
    expect(
        &b.send("b4 NOOP").await,
        &[
            "* 1 FETCH (UID 1 FLAGS (\\Flagged))",
            "b4 OK NOOP completed",
        ],
    );
}

#[tokio::test]
async fn qresync_from_before_a_pruned_log_reports_every_absent_uid() {
    let w = world3().await;
    let mut a = w.client();
    a.login().await;
    a.send("a1 ENABLE QRESYNC").await;
    let sel = a.send("a2 SELECT INBOX").await;
    let validity = number_after(&sel, "UIDVALIDITY");
    let hms = number_after(&sel, "HIGHESTMODSEQ");
    a.send("a3 STORE 2 +FLAGS (\\Seen)").await;
    a.send("a4 STORE 1 +FLAGS (\\Deleted)").await;
    a.send("a5 EXPUNGE").await;
    w.deliver(MSG1).await;
    w.deliver(MSG2).await;
    a.send("a6 NOOP").await;
    a.send("a6 UID STORE 5 +FLAGS (\\Deleted)").await;
    a.send("a7 UID EXPUNGE 5").await;
    a.send("a8 UNSELECT").await;
    prune_all(&w).await;
    // With the client's known UIDs: those of them no longer here.
    let r = a
        .send(&format!("a9 SELECT INBOX (QRESYNC ({validity} {hms} 1:3))"))
        .await;
    assert!(r.iter().any(|l| l == "* VANISHED (EARLIER) 1"), "{r:?}");
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (")),
        "{r:?}"
    );
    assert!(
        r.iter().any(|l| l.starts_with("* 3 FETCH (UID 4 ")),
        "{r:?}"
    );
    assert!(!r.iter().any(|l| l.starts_with("* 2 FETCH")), "{r:?}");
    // Without them: every UID assigned so far that is not here.
    a.send("b1 UNSELECT").await;
    let r = a
        .send(&format!("b2 SELECT INBOX (QRESYNC ({validity} {hms}))"))
        .await;
    assert!(r.iter().any(|l| l == "* VANISHED (EARLIER) 1,5"), "{r:?}");
    // UID FETCH ... VANISHED: the set's absent UIDs, up to the last assigned.
    let r = a
        .send(&format!(
            "b3 UID FETCH 2:* (FLAGS) (CHANGEDSINCE {hms} VANISHED)"
        ))
        .await;
    assert_eq!(r[0], "* VANISHED (EARLIER) 5", "{r:?}");
    assert!(r.last().unwrap().starts_with("b3 OK"), "{r:?}");
}

#[tokio::test]
async fn bad_input_is_answered_with_bad() {
    let w = World::new().await;
    let mut c = w.client();
    c.login().await;
    expect(&c.send("a FROBNICATE").await, &["a BAD *"]);
    expect(
        &c.send("b FETCH 1 FLAGS").await,
        &["b BAD No mailbox selected"],
    );
    expect(&c.send("c SELECT").await, &["c BAD *"]);
    let long = format!("d NOOP {}", "x".repeat(70_000));
    expect(&c.send(&long).await, &["d BAD Command line too long*"]);
    expect(&c.send("e NOOP").await, &["e OK NOOP completed"]);
}

#[tokio::test]
async fn utf8_and_modified_utf7_names() {
    let w = World::new().await;
    let mut c = w.client();
    c.login().await;
    expect(
        &c.send("a CREATE Entw&APw-rfe").await,
        &["a OK CREATE completed"],
    );
    expect(
        &c.send("b LIST \"\" Entw*").await,
        &[
            "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe",
            "b OK LIST completed",
        ],
    );
    c.send("c ENABLE UTF8=ACCEPT").await;
    // Atoms are 7-bit (RFC 9051 §9): a UTF-8 name is a quoted string.
    expect(
        &c.send("d LIST \"\" Entw*").await,
        &[
            "* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"",
            "d OK LIST completed",
        ],
    );
    expect(
        &c.send("e STATUS \"Entwürfe\" (MESSAGES)").await,
        &[
            "* STATUS \"Entwürfe\" (MESSAGES 0)",
            "e OK STATUS completed",
        ],
    );
}

#[tokio::test]
async fn status_quota_id_compress() {
    let w = world3().await;
    w.store
        .set_quota(
            &pochta_addr::Address::parse("alice@example.com").unwrap(),
            Some(1024 * 1024),
        )
        .await
        .unwrap();
    let mut c = w.client();
    c.login().await;
    expect(
        &c.send("a STATUS INBOX (MESSAGES UNSEEN DELETED SIZE RECENT APPENDLIMIT)")
            .await,
        &[
            "* STATUS INBOX (MESSAGES 3 UNSEEN 3 DELETED 0 SIZE * RECENT 0 APPENDLIMIT 1000000)",
            "a OK STATUS completed",
        ],
    );
    expect(
        &c.send("b GETQUOTAROOT INBOX").await,
        &[
            "* QUOTAROOT INBOX \"\"",
            "* QUOTA \"\" (STORAGE 1 1024)",
            "b OK GETQUOTAROOT completed",
        ],
    );
    expect(
        &c.send("c SETQUOTA \"\" (STORAGE 10)").await,
        &["c NO [NOPERM] *"],
    );
    expect(
        &c.send("d ID (\"name\" \"test\")").await,
        &["* ID (\"name\" \"pochta\" *", "d OK ID completed"],
    );
    expect(
        &c.send("e COMPRESS DEFLATE").await,
        &["e OK DEFLATE active"],
    );
    assert!(c.compressed);
    expect(
        &c.send("f COMPRESS DEFLATE").await,
        &["f NO [COMPRESSIONACTIVE] Compression is already active"],
    );
    let caps = c.send("g CAPABILITY").await;
    assert!(!caps[0].contains("COMPRESS=DEFLATE"), "{caps:?}");
}

#[tokio::test]
async fn logout() {
    let w = World::new().await;
    let mut c = w.client();
    c.login().await;
    expect(
        &c.send("z LOGOUT").await,
        &["* BYE Logging out", "z OK LOGOUT completed"],
    );
    assert!(c.closed);
}

#[tokio::test]
async fn sessions_on_one_mailbox_share_one_search_cache() {
    // What SEARCH reads is kept once per mailbox, not once per session, and
    // is let go when the last session that used it is gone.
    let (w, mut a, mut b) = two_sessions_in_inbox().await;
    assert_eq!(w.settings.light.live(), 0, "nothing loaded before a search");
    a.send("a2 UID SEARCH FLAGGED").await;
    b.send("b2 UID SEARCH FLAGGED").await;
    assert_eq!(w.settings.light.live(), 1, "one cache for INBOX");
    // A change by one session shows in the other's search of the shared cache.
    b.send("b3 UID STORE 3 +FLAGS.SILENT (\\Flagged)").await;
    expect(
        &a.send("a3 UID SEARCH FLAGGED").await,
        &[
            "* SEARCH 3",
            "* 3 FETCH (UID 3 FLAGS (\\Flagged))",
            "a3 OK SEARCH completed",
        ],
    );
    expect(
        &b.send("b4 UID SEARCH FLAGGED").await,
        &["* SEARCH 3", "b4 OK SEARCH completed"],
    );
    b.send("b5 SELECT Archive").await;
    b.send("b6 SEARCH ALL").await;
    assert_eq!(w.settings.light.live(), 2, "INBOX and Archive");
    drop(a);
    assert_eq!(
        w.settings.light.live(),
        1,
        "INBOX let go with its last session"
    );
    drop(b);
    assert_eq!(w.settings.light.live(), 0);
}
