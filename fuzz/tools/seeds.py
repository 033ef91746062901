#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/corpus/ from the project's transcript
tests, test fixtures and the shared .eml corpus.

Session targets take `[flags, seed, stream...]` (see fuzz/src/lib.rs); each
transcript becomes a few seeds with different flags and read-split seeds.
Run from anywhere: python3 fuzz/tools/seeds.py [SHARED_CORPORA_DIR]
"""

import hashlib
import json
import os
import re
import shutil
import sys

FUZZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(FUZZ)
SHARED = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/corpora"


def out(target, data):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def unescape(s):
    return s.replace("\\r", "\r").replace("\\n", "\n").replace("\\\\", "\\")


def test_bodies(path):
    """(name, body) of each test function in a Rust test file."""
    text = open(path, encoding="utf-8").read()
    parts = re.split(r"#\[(?:tokio::)?test\]\s*(?:async\s+)?fn\s+(\w+)", text)
    return list(zip(parts[1::2], parts[2::2]))


def scripted(body, send, recv):
    """The stream one side sends in a `C: `/`S: ` transcript."""
    stream = b""
    for line in body.splitlines():
        line = line.strip()
        if line.startswith(send + ": ") or line == send + ":":
            stream += line[len(send) + 2:].encode() + b"\r\n"
        elif line.startswith(send + "~ "):
            stream += unescape(line[len(send) + 2:]).encode()
    return stream


def smtp():
    path = os.path.join(ROOT, "crates/proto-smtp/tests/transcripts.rs")
    for name, body in test_bodies(path):
        stream = scripted(body, "C", "S")
        if not stream:
            continue
        if "sub_tls(" in body or "Mode::Submission, Some" in body:
            flags = [0x03, 0x83]
        elif "Mode::Submission" in body:
            flags = [0x05, 0x85]
        else:
            flags = [0x04, 0x94, 0x00]
        for f in flags:
            out("smtp_session", bytes([f, 0]) + stream)
        out("smtp_session", bytes([flags[0], 3]) + stream)
    path = os.path.join(ROOT, "crates/proto-smtp/tests/client.rs")
    for name, body in test_bodies(path):
        stream = scripted(body, "S", "C")
        if not stream:
            continue
        for f in (0x31, 0x35, 0x3d, 0x01, 0x72):
            out("smtp_client_replies", bytes([f, 0]) + stream)
        out("smtp_client_replies", bytes([0x31, 5]) + stream)


def pop3():
    path = os.path.join(ROOT, "crates/proto-pop3/tests/transcripts.rs")
    for name, body in test_bodies(path):
        stream = scripted(body, "C", "S")
        if not stream:
            continue
        for f in (0x01, 0x02, 0x00):
            out("pop3_session", bytes([f, 0]) + stream)
        out("pop3_session", bytes([0x01, 4]) + stream)


RUST_STR = re.compile(r'\.send\(\s*"((?:[^"\\]|\\.)*)"', re.S)


def rust_unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def imap():
    path = os.path.join(ROOT, "crates/imap/tests/transcripts.rs")
    for name, body in test_bodies(path):
        cmds = []
        if "c.login()" in body or ".login()" in body:
            cmds.append("l1 LOGIN alice@example.com secret")
        for m in RUST_STR.finditer(body):
            s = m.group(1)
            # Line continuations of Rust strings.
            s = re.sub(r"\\\n\s*", "", s)
            cmds.append(rust_unescape(s))
        if not cmds:
            continue
        stream = b""
        for c in cmds:
            b = c.replace("\r\n", "\n").replace("\n", "\r\n").encode()
            if not b.endswith(b"\r\n"):
                b += b"\r\n"
            stream += b
        tls = 0x00 if "client_plain" in body else 0x01
        for f in (tls, tls | 0x08, tls | 0x04):
            out("imap_session", bytes([f, 0]) + stream)
        out("imap_session", bytes([tls, 6]) + stream)
        out("imap_command", bytes([0, 0]) + stream)
        out("imap_command", bytes([1, 3]) + stream)
    for stream in IMAP_EXTRA:
        out("imap_session", bytes([1, 3]) + stream)
        out("imap_command", bytes([1, 3]) + stream)


# Commands no transcript test sends in a form the targets reach, found with
# fuzz/coverage.py: QRESYNC's known-UID and sequence-match sets, EMAILID and
# THREADID search keys, BINARY fetches and HEADER.FIELDS sections, saved
# search results, SORT/THREAD variants, APPEND with literal8.
LOGIN = b"l1 LOGIN alice@example.com secret\r\n"
IMAP_EXTRA = [
    LOGIN + b"a1 ENABLE QRESYNC\r\n"
    b"a2 SELECT INBOX (QRESYNC (67890007 20050715194045000 1,3:5 (1,3:4 1,5:7)))\r\n"
    b"a3 EXAMINE INBOX (QRESYNC (1 2 (1 1)))\r\n"
    b"a4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
    LOGIN + b"a1 SELECT INBOX\r\na2 SEARCH EMAILID M1 THREADID T1\r\n"
    b"a3 UID SEARCH OR EMAILID M2 NOT THREADID T3\r\na4 FETCH 1:3 (EMAILID THREADID SAVEDATE)\r\n",
    LOGIN + b"a1 SELECT INBOX\r\n"
    b"a2 FETCH 1:3 (BINARY[1] BINARY.PEEK[2]<0.10> BINARY.SIZE[1] BINARY[])\r\n"
    b"a3 FETCH 2 (BODY.PEEK[HEADER.FIELDS (From Subject Message-ID)] BODY[HEADER.FIELDS.NOT (To Date)]"
    b" BODY[1.MIME] BODY[2.HEADER])\r\n"
    b"a4 UID FETCH 1:* (BINARY.PEEK[1]<5.3> BODY[TEXT]<0.4>)\r\n",
    LOGIN + b"a1 SELECT INBOX\r\na2 SEARCH RETURN (SAVE) FROM bob\r\na3 FETCH $ (FLAGS)\r\n"
    b"a4 UID SEARCH RETURN (MIN MAX COUNT ALL) UID $\r\n"
    b"a5 SORT (REVERSE ARRIVAL SUBJECT DISPLAYFROM DISPLAYTO SIZE) UTF-8 ALL\r\n"
    b"a6 SORT RETURN (ALL COUNT) (CC DATE FROM TO) US-ASCII NOT DELETED\r\n"
    b"a7 THREAD REFERENCES UTF-8 ALL\r\na8 THREAD ORDEREDSUBJECT US-ASCII ALL\r\n",
    LOGIN + b"a1 SELECT INBOX\r\na2 APPEND INBOX (\\Seen) {12+}\r\nSubject: x\r\n\r\n"
    b"a3 APPEND INBOX ~{12+}\r\nSubject: y\r\n\r\n"
    b"a4 FETCH 1 (BODY[] BODYSTRUCTURE ENVELOPE RFC822.SIZE INTERNALDATE)\r\n"
    b"a5 LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UIDNEXT SIZE))\r\n"
    b"a6 STATUS INBOX (MESSAGES UNSEEN HIGHESTMODSEQ APPENDLIMIT MAILBOXID)\r\n",
    # The eighth session's `--unreached` clusters: parameters given twice,
    # RFC 5258/6154/7162/5032/8970 arguments and their refusals.
    LOGIN + b"a1 SELECT INBOX (CONDSTORE CONDSTORE)\r\na2 SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))\r\n"
    b"a3 SELECT INBOX (CONDSTORE)\r\na4 STATUS INBOX (UIDVALIDITY RECENT DELETED SIZE)\r\n"
    b"a5 LIST (RECURSIVEMATCH) \"\" \"*\"\r\na6 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" \"%\")\r\n"
    b"a7 LIST (REMOTE RECURSIVEMATCH) \"\" \"*\"\r\n"
    b"a8 CREATE Drafts2 (USE (\\Drafts))\r\na9 CREATE X (USE (\\Sent) USE (\\Trash))\r\n"
    b"b1 SEARCH OLDER 3600 YOUNGER 60\r\nb2 SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n"
    b"b3 SEARCH MODSEQ \"/flags/$x\" priv 1\r\nb4 SEARCH MODSEQ \"/x\" all 1\r\n"
    b"b5 STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen)\r\n"
    b"b6 UID STORE 1 (UNCHANGEDSINCE 5 UNCHANGEDSINCE 6) FLAGS (x)\r\n"
    b"b7 FETCH 1 (PREVIEW (LAZY) FLAGS) (CHANGEDSINCE 1)\r\nb8 FETCH 1 (BINARY[1 FLAGS)\r\n"
    b"b9 FETCH 1 (BODY[HEADER.FIELDS (A)\r\nc1 COPY 1 ~{3}\r\nabc\r\n",
]


JMAP_USING = [
    "urn:ietf:params:jmap:core",
    "urn:ietf:params:jmap:mail",
    "urn:ietf:params:jmap:submission",
    "urn:ietf:params:jmap:vacationresponse",
]

JMAP_CALLS = [
    # Result references whose JSON Pointer is empty, not rooted, badly
    # escaped or indexes past what any array holds (RFC 6901 §4).
    [["Email/query", {"accountId": "A1"}, "c0"]]
    + [["Email/get", {"accountId": "A1", "#ids": {"resultOf": "c0", "name": "Email/query", "path": p}},
        f"g{i}"]
       for i, p in enumerate(["", "ids", "/ids/~2", "/ids/01", "/ids/-",
                              "/ids/99999999999999999999999", "/ids/7", "/ids/0/x"])],
    [["Core/echo", {"hello": True}, "c0"]],
    [["Mailbox/get", {"accountId": "A1"}, "c0"]],
    [["Mailbox/get", {"accountId": "A1", "ids": None, "properties": ["name", "role", "totalEmails"]}, "c0"],
     ["Mailbox/changes", {"accountId": "A1", "sinceState": "0"}, "c1"]],
    [["Mailbox/set", {"accountId": "A1", "create": {"k1": {"name": "Work", "parentId": None}},
                      "update": {"#k1": {"name": "Job"}}, "destroy": ["M9"]}, "c0"]],
    [["Email/query", {"accountId": "A1", "filter": {"operator": "AND", "conditions": [
        {"inMailbox": "M1"}, {"text": "hello"}, {"from": "bob"}, {"hasKeyword": "$seen"},
        {"before": "2030-01-01T00:00:00Z"}, {"minSize": 10}]},
        "sort": [{"property": "receivedAt", "isAscending": False}], "position": -2, "limit": 10,
        "calculateTotal": True, "collapseThreads": True}, "c0"],
     ["Email/get", {"accountId": "A1", "#ids": {"resultOf": "c0", "name": "Email/query", "path": "/ids"},
                    "properties": ["subject", "from", "to", "preview", "bodyStructure", "bodyValues",
                                   "textBody", "htmlBody", "attachments", "keywords", "header:Subject:asText",
                                   "header:From:asAddresses:all", "messageId", "threadId"],
                    "fetchTextBodyValues": True, "fetchHTMLBodyValues": True, "maxBodyValueBytes": 20}, "c1"],
     ["Thread/get", {"accountId": "A1", "#ids": {"resultOf": "c1", "name": "Email/get", "path": "/list/*/threadId"}}, "c2"]],
    [["Email/set", {"accountId": "A1", "create": {"d1": {
        "mailboxIds": {"M1": True}, "keywords": {"$draft": True}, "subject": "Hi",
        "from": [{"name": "Alice", "email": "alice@example.com"}], "to": [{"email": "bob@example.com"}],
        "bodyValues": {"b1": {"value": "Hello"}}, "textBody": [{"partId": "b1", "type": "text/plain"}]}},
        "update": {"E1": {"keywords/$seen": True, "mailboxIds/M2": True, "mailboxIds/M1": None}},
        "destroy": ["E3"]}, "c0"]],
    [["Email/changes", {"accountId": "A1", "sinceState": "1", "maxChanges": 5}, "c0"],
     ["Email/queryChanges", {"accountId": "A1", "sinceQueryState": "1", "filter": {"inMailbox": "M1"}}, "c1"]],
    [["SearchSnippet/get", {"accountId": "A1", "filter": {"text": "hello"}, "emailIds": ["E1", "E2"]}, "c0"]],
    [["Identity/get", {"accountId": "A1"}, "c0"],
     ["Identity/set", {"accountId": "A1", "create": {"i": {"email": "alice@example.com", "name": "A"}}}, "c1"]],
    [["EmailSubmission/set", {"accountId": "A1", "create": {"s1": {"identityId": "I1", "emailId": "#d1",
        "envelope": {"mailFrom": {"email": "alice@example.com"}, "rcptTo": [{"email": "bob@example.com"}]}}},
        "onSuccessUpdateEmail": {"#s1": {"keywords/$draft": None}}}, "c0"]],
    [["VacationResponse/get", {"accountId": "A1"}, "c0"],
     ["VacationResponse/set", {"accountId": "A1", "update": {"singleton": {"isEnabled": True, "subject": "Away",
        "textBody": "later", "fromDate": "2024-01-01T00:00:00Z"}}}, "c1"]],
    [["Email/copy", {"fromAccountId": "A2", "accountId": "A1", "create": {"x": {"id": "E1", "mailboxIds": {"M1": True}}}}, "c0"]],
    [["Email/import", {"accountId": "A1", "emails": {"k": {"blobId": "B1", "mailboxIds": {"M1": True}}}}, "c0"]],
    [["Email/parse", {"accountId": "A1", "blobIds": ["B1"]}, "c0"]],
]


# The jmap_request target's fake handler supports these capabilities only; a
# request naming another (vacationresponse) is refused before any method runs,
# which left its seeds exercising nothing but the refusal.
JMAP_REQUEST_USING = JMAP_USING[:3]

# Method calls written against the fuzz world of the jmap_service target
# (alice is A1, INBOX F1, the delivered messages M1..M3 in threads T1 and T3):
# every method of the service, with the arguments that reach its less common
# paths (Thread/changes, Mailbox/query filters and sorts, Identity updates,
# EmailSubmission queries, header forms in Email/get and Email/set, ...).
# Added after fuzz/coverage.py showed no seed reached them.
JMAP_SERVICE_CALLS = os.path.join(FUZZ, "tools", "jmap_service_requests.json")


def misfits(calls):
    """The calls again, each time with one argument (or one value one level
    inside an argument) replaced by a value of the wrong type, a creation
    reference to nothing, or an unknown argument added: the error branches of
    every argument parser, which the fuzzer otherwise reaches one at a time
    only after many millions of inputs (added after fuzz/coverage.py showed
    its last stretch still finding them)."""

    def wrong(v):
        if isinstance(v, bool):
            return ["yes", None]
        if isinstance(v, int):
            return [-1, 1.5, "3", 2**64]
        if isinstance(v, str):
            return [7, "#nothing", ""]
        if isinstance(v, list):
            return [{"x": 1}, ["#nothing"], [7]]
        if isinstance(v, dict):
            return [[], {"#nothing": {}}, {"x": 7}]
        return [True]

    for i, (name, args, cid) in enumerate(calls):
        def variant(new_args):
            c = [list(x) for x in calls]
            c[i] = [name, new_args, cid]
            return c
        yield variant({**args, "unknownArgument": 1})
        for k, v in args.items():
            for w in wrong(v):
                yield variant({**args, k: w})
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    for w in wrong(v2)[:2]:
                        yield variant({**args, k: {**v, k2: w}})


def jmap():
    for calls in JMAP_CALLS:
        req = {"using": JMAP_REQUEST_USING, "methodCalls": calls}
        data = json.dumps(req).encode()
        out("jmap_request", data)
        req["using"] = JMAP_USING
        data = json.dumps(req).encode()
        # pochta's ids for the service target: alice is account A1, mailboxes
        # are F<n> (INBOX is F1), messages M<hex> (the three seeded M1..M3).
        service = re.sub(rb"\bM(\d)\b", rb"F\1", data)
        service = re.sub(rb"\bE(\d)\b", rb"M\1", service)
        out("jmap_service", service)
    with open(JMAP_SERVICE_CALLS, encoding="utf-8") as f:
        service_calls = json.load(f)
    for calls in service_calls:
        out("jmap_service", json.dumps({"using": JMAP_USING, "methodCalls": calls}).encode())
        out("jmap_request", json.dumps({"using": JMAP_REQUEST_USING, "methodCalls": calls}).encode())
    for calls in JMAP_CALLS + service_calls:
        for bad in misfits(calls):
            out("jmap_request", json.dumps({"using": JMAP_REQUEST_USING, "methodCalls": bad}).encode())
    for calls in service_calls:
        for bad in misfits(calls):
            out("jmap_service", json.dumps({"using": JMAP_USING, "methodCalls": bad}).encode())
    out("jmap_request", b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[],"createdIds":{"a":"b"}}')
    out("jmap_request", b'{"@type":"Request","id":"r1","using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{},"0"]]}')
    out("jmap_request", b'{"@type":"WebSocketPushEnable","dataTypes":null,"pushState":"s1"}')
    out("jmap_request", b"types=Email,Mailbox&closeafter=state&ping=30")


def copy_tree(src, target, limit=None):
    if not os.path.isdir(src):
        return 0
    n = 0
    for dirpath, _, files in sorted(os.walk(src)):
        for f in sorted(files):
            if limit is not None and n >= limit:
                return n
            p = os.path.join(dirpath, f)
            data = open(p, "rb").read()
            if len(data) > 64 * 1024:
                continue
            out(target, data)
            n += 1
    return n


def mime():
    for sub in ("rfc", "malformed", "thirdparty", "legacy"):
        copy_tree(os.path.join(SHARED, "eml", sub), "mime_delivery")
    copy_tree(os.path.join(ROOT, "crates/message/tests/fixtures"), "mime_delivery")
    copy_tree(os.path.join(ROOT, "crates/proto-imap/tests/fixtures"), "mime_delivery")


def thread_mailbox(messages, flags=0x07, criteria=b"\x05\x13\x02"):
    """An imap_thread_sort input: flags, three criteria octets, the messages
    separated by NUL."""
    return bytes([flags]) + criteria + b"\0".join(m.replace(b"\0", b"") for m in messages)


def msg(mid=None, subject=None, refs=None, reply_to=None, date=None, extra=b""):
    h = b""
    if mid is not None:
        h += b"Message-ID: <" + mid + b">\r\n"
    if refs is not None:
        h += b"References: " + b" ".join(b"<" + r + b">" for r in refs) + b"\r\n"
    if reply_to is not None:
        h += b"In-Reply-To: <" + reply_to + b">\r\n"
    if subject is not None:
        h += b"Subject: " + subject + b"\r\n"
    if date is not None:
        h += b"Date: " + date + b"\r\n"
    return h + extra + b"\r\nbody\r\n"


def thread_sort():
    """Mailboxes for the THREAD/SORT target: the cases of RFC 5256's
    REFERENCES (missing roots that become dummies, duplicate Message-IDs,
    loops, In-Reply-To without References, roots merged by subject), subject
    forms for the base subject, and groups of the shared .eml corpus."""
    days = [b"Mon, 7 Feb 1994 21:52:25 -0800", b"7 Feb 1994 21:52:25 +0000",
            b"Tue, 8 Feb 1994 01:00:00 +0100", b"1 Jan 2030 00:00:00 +0000", b"garbage"]
    cases = [
        # A chain, a reply by In-Reply-To only, a duplicate id, a loop.
        [msg(b"a@x", b"hello", date=days[0]), msg(b"b@x", b"Re: hello", reply_to=b"a@x"),
         msg(b"c@x", b"Re: Re: hello", refs=[b"a@x", b"b@x"]), msg(b"a@x", b"dup id"),
         msg(b"d@x", b"loop", refs=[b"e@x", b"d@x"]), msg(b"e@x", b"[fwd: loop]", refs=[b"d@x"]),
         msg(None, b"hello")],
        # Replies to a root that is not in the mailbox: a dummy at the top.
        [msg(b"r1@x", b"Re: gone", refs=[b"gone@x"], date=days[1]),
         msg(b"r2@x", b"Re: gone", refs=[b"gone@x"], date=days[0]),
         msg(b"r3@x", b"Re: gone", refs=[b"gone@x", b"r1@x"], date=days[2])],
        # Roots with the same base subject merged in step 5.
        [msg(b"s1@x", b"topic"), msg(b"s2@x", b"Re: topic"), msg(b"s3@x", b"Fwd: topic"),
         msg(b"s4@x", b"RE: [list] topic (fwd)"), msg(b"s5@x", b"TOPIC"),
         msg(b"s6@x", b"Re: other", refs=[b"none@x"]), msg(b"s7@x", b"other")],
        # Conflicting parents, empty ids, self-reference.
        [msg(b"p@x", b"x", refs=[b"q@x"]), msg(b"q@x", b"x", refs=[b"p@x"]),
         msg(b"", b"empty"), msg(b"t@x", b"self", refs=[b"t@x"]),
         msg(b"u@x", b"u", refs=[b"", b"q@x", b"", b"t@x"])],
        # Sort keys: addresses, groups, display names, encoded words, sizes.
        [msg(b"f1@x", b"=?utf-8?q?=C3=84pfel?=", extra=b"From: \"Zed\" <a@b>\r\nTo: team: x@y, z@w;\r\nCc: c@d\r\n"),
         msg(b"f2@x", b"Apfel", extra=b"From: bob@b\r\nTo: =?utf-8?b?w4Q=?= <q@r>\r\n"),
         msg(b"f3@x", b"Birne", date=days[3], extra=b"From: <>\r\nTo: undisclosed-recipients:;\r\n" + b"X: " + b"y" * 500 + b"\r\n"),
         msg(None, None), msg(b"f4@x", b"", date=days[4])],
    ]
    # A long chain of replies (depth as the mailbox) and a wide one.
    chain = [msg(b"c0@x", b"deep")]
    for i in range(1, 250):
        chain.append(msg(b"c%d@x" % i, b"Re: deep", refs=[b"c%d@x" % j for j in range(max(0, i - 5), i)]))
    cases.append(chain)
    cases.append([msg(b"w%d@x" % i, b"Re: wide" if i else b"wide", refs=[b"w0@x"] if i else None,
                      date=days[i % 4]) for i in range(120)])
    cases.append([msg(b"n%d@x" % i, b"n%d" % (i % 7), date=days[i % 3]) for i in range(60)])
    criteria = [b"\x05\x13\x02", b"\x00\x01\x03", b"\x04\x16\x17", b"\x07\x08\x12"]
    for n, case in enumerate(cases):
        out("imap_thread_sort", thread_mailbox(case))
        out("imap_thread_sort", thread_mailbox(case, 0x06 | (n % 8) << 3, criteria[n % 4]))
        out("imap_thread_sort", thread_mailbox(case, 0x03, criteria[(n + 1) % 4]))
    emls = []
    for sub in ("rfc", "malformed", "thirdparty", "legacy"):
        for dirpath, _, files in sorted(os.walk(os.path.join(SHARED, "eml", sub))):
            for f in sorted(files):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    emls.append(fh.read()[:4096])
    for i in range(0, len(emls), 8):
        out("imap_thread_sort", thread_mailbox(emls[i:i + 8], 0x07, criteria[(i // 8) % 4]))


def config():
    out("config", open(os.path.join(ROOT, "crates/config/src/example.toml"), "rb").read())
    text = open(os.path.join(ROOT, "crates/config/src/tests.rs"), encoding="utf-8").read()
    for m in re.finditer(r'r#?"(.*?)"#?', text, re.S):
        s = m.group(1)
        if "=" in s and len(s) > 8:
            out("config", s.encode())
    docs = open(os.path.join(ROOT, "docs/CONFIG.md"), encoding="utf-8").read()
    for m in re.finditer(r"```toml\n(.*?)```", docs, re.S):
        out("config", m.group(1).encode())
        # The same with every commented-out setting switched on.
        out("config", re.sub(r"^# ([a-z_]+ = .*)$", r"\1", m.group(1), flags=re.M).encode())


def dicts():
    d = os.path.join(FUZZ, "dict")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "imap.dict"), "wb") as f:
        for name in ("imap.dict", "terminals.dict"):
            f.write(b"# " + name.encode() + b" from imap-codec (MIT, see LICENSE-imap-codec)\n")
            f.write(open(os.path.join(SHARED, "imap-dict", name), "rb").read())
            f.write(b"\n")
    shutil.copy(os.path.join(SHARED, "imap-dict", "LICENSE-MIT"), os.path.join(d, "LICENSE-imap-codec"))


if __name__ == "__main__":
    smtp()
    pop3()
    imap()
    jmap()
    mime()
    thread_sort()
    config()
    dicts()
    for t in sorted(os.listdir(os.path.join(FUZZ, "corpus"))):
        print(t, len(os.listdir(os.path.join(FUZZ, "corpus", t))))
