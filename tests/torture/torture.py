#!/usr/bin/env python3
"""Crash-and-restart torture for pochta (issue 8, item 2).

Two real `pochta serve` instances on loopback: A (domain a.test) takes mixed
load, B (domain b.test) receives what A relays (a static route). While the load
runs, A is killed with SIGKILL at a random moment, `pochta check` runs on the
stopped store, A is restarted, and the invariants are checked against what the
clients were told (a client-side ledger), over IMAP, and in the store itself:

* every message acknowledged with 250 is present exactly once (in a mailbox of
  its account, or for relayed mail in A's queue or B's INBOX), unless a client
  deleted it and the server confirmed the deletion; a deletion the server
  confirmed is never undone; a message refused (4xx/5xx) is not stored; one
  whose answer was lost in the kill is there at most once;
* UIDs are never reused and only grow per mailbox, UIDNEXT never goes back and
  stays above every UID a client was ever shown, UIDVALIDITY never changes;
* IMAP STATUS (MESSAGES, UNSEEN) equals the messages listed and the store's rows
  and counters;
* every stored message parses (Python's email parser) and its body is exactly
  what was sent;
* `pochta check` exits 0 on the stopped store after each kill, on the live one
  after each restart, and with --full on both stores at the end.

Load (threads, each with its own connections, all through the real protocols):
SMTP deliveries to A's MX (several connections, several messages per session),
submissions (STARTTLS, AUTH) relayed to B, IMAP sessions flagging, moving and
expunging (UID MOVE, UID EXPUNGE), POP3 sessions deleting (DELE, QUIT), JMAP
Email/set keyword changes, moves and destroys. Each account is worked on by one
client only, so the ledger knows what each deletion removed.

Python standard library only. Usage:

    cargo build --release
    python3 tests/torture/torture.py                 # 20 cycles (the full form)
    python3 tests/torture/torture.py --short         # 5 short cycles (CI)
    python3 tests/torture/torture.py --cycles 50 --seed 7 --keep

Exit status 0 when no invariant was violated, 1 otherwise.
"""

import argparse
import base64
import email
import email.policy
import email.utils
import hashlib
import http.client
import imaplib
import json
import os
import poplib
import random
import re
import shutil
import signal
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PASSWORD = "torture horse battery staple"
LISTENERS = ["smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http"]
IO_TIMEOUT = 10  # seconds, every socket
ERRORS = (OSError, EOFError, smtplib.SMTPException, imaplib.IMAP4.error, imaplib.IMAP4.abort,
          poplib.error_proto, http.client.HTTPException, ValueError, KeyError, json.JSONDecodeError)

IMAP_USERS = ["u1@a.test", "u2@a.test"]
POP_USER = "u3@a.test"
JMAP_USER = "u4@a.test"
SUBMIT_USER = "u5@a.test"
LOCAL_RCPTS = IMAP_USERS + [POP_USER, JMAP_USER]
REMOTE_RCPT = "r@b.test"
ALL_A_USERS = LOCAL_RCPTS + [SUBMIT_USER]

MSGID_RE = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.I | re.M)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the instances' certificates are self-signed
    return ctx


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def body_hash(raw):
    """SHA-256 of the body (after the first blank line): the server only adds
    trace headers on top, so this is what was sent."""
    i = raw.find(b"\r\n\r\n")
    return hashlib.sha256(raw[i + 4:] if i >= 0 else b"").hexdigest()


# ---------------------------------------------------------------- instances


class PortBusy(RuntimeError):
    """A restarted server found one of its fixed ports taken."""


class Instance:
    """A `pochta serve` with its own data directory and fixed ports."""

    def __init__(self, root, name, binary, head, extra=""):
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True)
        self.name = name
        self.binary = binary
        self.head = head
        self.extra = extra
        self.config = self.dir / "pochta.toml"
        self.ports = {k: 0 for k in LISTENERS}
        self.proc = None
        self.runs = 0
        self.write_config()

    def write_config(self):
        listen = "\n".join(f'{k} = "127.0.0.1:{p}"' for k, p in self.ports.items())
        self.config.write_text(
            f'{self.head}\ndata_dir = "{self.dir / "data"}"\n\n[listen]\n{listen}\n\n'
            f'[limits]\nconnections_per_ip = 200\n\n{self.extra}\n'
        )

    @property
    def data(self):
        return self.dir / "data"

    def start(self):
        """Starts the server; on a restart, a listening port that a client socket
        of this run happens to hold (the kernel may give the port of a killed
        listener to an outgoing connection) is waited out for up to 15 s."""
        deadline = time.time() + 15
        while True:
            try:
                return self.start_once()
            except PortBusy:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def start_once(self):
        assert self.proc is None
        self.runs += 1
        out = self.dir / f"stdout-{self.runs}.txt"
        err = open(self.dir / f"server-{self.runs}.log", "wb")
        with open(out, "wb") as o:
            self.proc = subprocess.Popen(
                [self.binary, "--config", str(self.config), "serve"],
                stdout=o, stderr=err, env={**os.environ, "RUST_LOG": "info"},
            )
        err.close()
        deadline = time.time() + 30
        while True:
            text = out.read_text(errors="replace")
            if "Stop with Ctrl-C." in text:
                break
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                log = (self.dir / f"server-{self.runs}.log").read_text(errors="replace")
                if "Address already in use" in log and all(self.ports.values()):
                    raise PortBusy(log)
                raise RuntimeError(f"{self.name} exited with {code}:\n{log}")
            if time.time() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.02)
        if not all(self.ports.values()):
            # First run: the listeners bound port 0; keep the ports they got.
            for line in text.splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] in self.ports and ":" in words[1]:
                    self.ports[words[0]] = int(words[1].rsplit(":", 1)[1])
            missing = [k for k, p in self.ports.items() if not p]
            if missing:
                raise RuntimeError(f"{self.name}: no port for {missing} in the banner:\n{text}")
            self.write_config()

    def kill9(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def terminate(self):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def cli(self, *args, stdin=None):
        return subprocess.run([self.binary, "--config", str(self.config), *args],
                              input=stdin, capture_output=True, text=True, timeout=300)

    def add_user(self, address):
        r = self.cli("user", "add", address, "--password-stdin", stdin=PASSWORD + "\n")
        if r.returncode != 0:
            raise RuntimeError(f"user add {address}: {r.stderr}")

    def db(self):
        """A read-only connection to the store (also while the server runs)."""
        return sqlite3.connect(f"file:{self.data / 'store.sqlite3'}?mode=ro", uri=True, timeout=20)


# ---------------------------------------------------------------- the ledger


class Ledger:
    """What the clients were told. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        # Message-ID -> {"to": account or "relay", "hash": body hash, "state": ...}
        # state: "pending" (answer not seen), "acked" (250), "refused" (4xx/5xx)
        self.sent = {}
        # Message-ID -> "maybe" (deletion asked, answer lost) or "confirmed"
        self.deleted = {}
        # (account, mailbox) -> highest UID any client was shown
        self.shown_uid = {}
        self.counts = {"smtp_sessions": 0, "imap_sessions": 0, "pop3_sessions": 0,
                       "jmap_requests": 0, "client_errors": 0, "moved": 0, "flagged": 0}

    def pending(self, mid, to, h):
        with self.lock:
            self.sent[mid] = {"to": to, "hash": h, "state": "pending"}

    def answer(self, mid, state):
        with self.lock:
            self.sent[mid]["state"] = state

    def deleting(self, mids):
        with self.lock:
            for m in mids:
                if self.deleted.get(m) != "confirmed":
                    self.deleted[m] = "maybe"

    def confirm_deleted(self, mids):
        with self.lock:
            for m in mids:
                self.deleted[m] = "confirmed"

    def shown(self, account, mailbox, uid):
        with self.lock:
            key = (account, mailbox)
            if uid > self.shown_uid.get(key, 0):
                self.shown_uid[key] = uid

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] += n

    def snapshot(self):
        with self.lock:
            return dict(self.sent), dict(self.deleted), dict(self.shown_uid), dict(self.counts)


# ---------------------------------------------------------------- messages


def make_message(rng, mid, sender, rcpt):
    """A message with a random body: plain, multipart with an attachment, or big."""
    lines = [f"line {i} {rng.getrandbits(64):016x} " + "x" * rng.randint(0, 60)
             for i in range(rng.randint(3, 40))]
    kind = rng.random()
    headers = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: torture {mid}\r\n"
               f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{mid}>\r\nMIME-Version: 1.0\r\n")
    if kind < 0.2:
        boundary = f"b{rng.getrandbits(48):012x}"
        att = base64.encodebytes(rng.randbytes(rng.randint(100, 3000))).decode().replace("\n", "\r\n")
        body = (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + "\r\n".join(lines)
                + f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\n"
                + att + f"\r\n--{boundary}--\r\n")
        headers += f"Content-Type: multipart/mixed; boundary={boundary}\r\n"
    else:
        if kind > 0.97:
            lines *= 200  # a few hundred KiB
        body = "\r\n".join(lines) + "\r\n"
        headers += "Content-Type: text/plain; charset=utf-8\r\n"
    raw = (headers + "\r\n" + body).encode()
    return raw, body_hash(raw)


# ---------------------------------------------------------------- workers


class Worker(threading.Thread):
    """Runs sessions while `running` is set; idles (and says so) otherwise."""

    def __init__(self, name, t, seed):
        super().__init__(name=name, daemon=True)
        self.t = t
        self.rng = random.Random(seed)
        self.idle = threading.Event()
        self.n = 0

    def run(self):
        t = self.t
        while not t.stop.is_set():
            if not t.running.is_set():
                self.idle.set()
                t.running.wait(0.5)
                continue
            self.idle.clear()
            if not t.running.is_set():
                continue
            try:
                self.session()
            except ERRORS:
                # The server was killed under us (or is restarting): expected.
                t.ledger.count("client_errors")
                time.sleep(0.05)
            except Exception as e:  # a bug in the torture itself: report, go on
                t.violation(f"{self.name}: unexpected client exception {type(e).__name__}: {e}")
                time.sleep(0.5)

    def session(self):
        raise NotImplementedError


class SmtpSender(Worker):
    """Delivers to local accounts through A's MX, a few messages per connection."""

    def session(self):
        t = self.t
        with smtplib.SMTP("127.0.0.1", t.a.ports["smtp"], timeout=IO_TIMEOUT) as s:
            s.ehlo("torture.test")
            t.ledger.count("smtp_sessions")
            for _ in range(self.rng.randint(1, 6)):
                if not t.running.is_set():
                    break
                self.n += 1
                rcpt = self.rng.choice(LOCAL_RCPTS)
                mid = f"t{t.cycle}.{self.name}.{self.n}@torture.test"
                raw, h = make_message(self.rng, mid, "sender@remote.example", rcpt)
                code, _ = s.mail("sender@remote.example")
                if code != 250:
                    return
                code, _ = s.rcpt(rcpt)
                if code != 250:
                    s.rset()
                    continue
                t.ledger.pending(mid, rcpt, h)
                code, _ = s.data(raw)  # raises if the connection dies: stays "pending"
                t.ledger.answer(mid, "acked" if code == 250 else "refused")
                time.sleep(self.rng.random() * 0.02)


class Submitter(Worker):
    """Submits mail for b.test (STARTTLS, AUTH): A queues it and relays it to B."""

    def session(self):
        t = self.t
        with smtplib.SMTP("127.0.0.1", t.a.ports["submission"], timeout=IO_TIMEOUT) as s:
            s.ehlo("torture.test")
            s.starttls(context=tls_context())
            s.ehlo("torture.test")
            s.login(SUBMIT_USER, PASSWORD)
            t.ledger.count("smtp_sessions")
            for _ in range(self.rng.randint(1, 4)):
                if not t.running.is_set():
                    break
                self.n += 1
                mid = f"t{t.cycle}.{self.name}.{self.n}@torture.test"
                raw, h = make_message(self.rng, mid, SUBMIT_USER, REMOTE_RCPT)
                code, _ = s.mail(SUBMIT_USER)
                if code != 250:
                    return
                code, _ = s.rcpt(REMOTE_RCPT)
                if code != 250:
                    s.rset()
                    continue
                t.ledger.pending(mid, "relay", h)
                code, _ = s.data(raw)
                t.ledger.answer(mid, "acked" if code == 250 else "refused")
                time.sleep(0.02 + self.rng.random() * 0.05)


def imap_connect(port, user):
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=tls_context(), timeout=IO_TIMEOUT)
    m.login(user, PASSWORD)
    return m


FETCH_RE = re.compile(rb"UID (\d+)")
FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")


def imap_list(m, what="(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", uids="1:*"):
    """UID FETCH over the selected mailbox: [(uid, flags, Message-ID or None)]."""
    typ, data = m.uid("FETCH", uids, what)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"FETCH: {typ} {data}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        head, literal = item
        # Items after the literal (e.g. FLAGS) arrive in the next element.
        tail = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
        u = FETCH_RE.search(head) or FETCH_RE.search(tail)
        f = FLAGS_RE.search(head) or FLAGS_RE.search(tail)
        mid = MSGID_RE.search(literal)
        if u:
            out.append((int(u.group(1)), f.group(1).decode() if f else "",
                        mid.group(1).decode() if mid else None))
    return out


class ImapWorker(Worker):
    """One account: flags, UID MOVE between INBOX and Archive, UID EXPUNGE."""

    def __init__(self, name, t, seed, user):
        super().__init__(name, t, seed)
        self.user = user

    def session(self):
        t, rng = self.t, self.rng
        m = imap_connect(t.a.ports["imaps"], self.user)
        t.ledger.count("imap_sessions")
        try:
            for _ in range(rng.randint(1, 4)):
                if not t.running.is_set():
                    break
                box = "INBOX" if rng.random() < 0.75 else "Archive"
                typ, _ = m.select(box)
                if typ != "OK":
                    raise imaplib.IMAP4.error(f"SELECT {box}: {typ}")
                if rng.random() < 0.3:
                    # APPEND is acknowledged by its tagged OK, like SMTP's 250.
                    self.n += 1
                    mid = f"t{t.cycle}.{self.name}.{self.n}@torture.test"
                    raw, h = make_message(rng, mid, self.user, self.user)
                    t.ledger.pending(mid, self.user, h)
                    typ, _ = m.append(box, "(\\Seen)" if rng.random() < 0.5 else None, None, raw)
                    t.ledger.answer(mid, "acked" if typ == "OK" else "refused")
                msgs = imap_list(m)
                for uid, _, _ in msgs:
                    t.ledger.shown(self.user, box, uid)
                if not msgs:
                    time.sleep(0.05)
                    continue
                rng.shuffle(msgs)
                k = max(1, len(msgs) // 5)
                flag_set, move_set, del_set = msgs[:k], msgs[k:2 * k], msgs[2 * k:3 * k]
                if flag_set:
                    flag = rng.choice(["\\Seen", "\\Flagged", "\\Answered", "$Torture"])
                    op = rng.choice(["+FLAGS.SILENT", "-FLAGS.SILENT", "+FLAGS"])
                    typ, _ = m.uid("STORE", ",".join(str(u) for u, _, _ in flag_set), op, f"({flag})")
                    t.ledger.count("flagged", len(flag_set))
                if move_set and rng.random() < 0.7:
                    dest = "Archive" if box == "INBOX" else "INBOX"
                    typ, _ = m.uid("MOVE", ",".join(str(u) for u, _, _ in move_set), dest)
                    if typ == "OK":
                        t.ledger.count("moved", len(move_set))
                        code = m.response("COPYUID")[1]
                        for c in code or []:
                            if c:
                                parts = (c.decode() if isinstance(c, bytes) else c).split()
                                if len(parts) >= 3:
                                    for u in expand_uids(parts[2]):
                                        t.ledger.shown(self.user, dest, u)
                if del_set and rng.random() < 0.6:
                    mids = [mid for _, _, mid in del_set if mid]
                    uids = ",".join(str(u) for u, _, _ in del_set)
                    t.ledger.deleting(mids)
                    typ, _ = m.uid("STORE", uids, "+FLAGS.SILENT", "(\\Deleted)")
                    if typ == "OK":
                        typ, _ = m.uid("EXPUNGE", uids)
                        if typ == "OK":
                            t.ledger.confirm_deleted(mids)
                time.sleep(rng.random() * 0.05)
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass


def expand_uids(text):
    out = []
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            a, b = int(a), int(b)
            out.extend(range(min(a, b), max(a, b) + 1))
        elif part.isdigit():
            out.append(int(part))
    return out


class PopWorker(Worker):
    """POP3 over TLS: reads the Message-IDs (TOP n 0), deletes some, QUIT."""

    def session(self):
        t, rng = self.t, self.rng
        p = poplib.POP3_SSL("127.0.0.1", t.a.ports["pop3s"], context=tls_context(), timeout=IO_TIMEOUT)
        try:
            p.user(POP_USER)
            p.pass_(PASSWORD)
            t.ledger.count("pop3_sessions")
            _, listing, _ = p.list()
            numbers = [int(line.split()[0]) for line in listing]
            rng.shuffle(numbers)
            doomed = []
            for n in numbers[:max(1, len(numbers) // 3)] if numbers else []:
                _, lines, _ = p.top(n, 0)
                mid = MSGID_RE.search(b"\r\n".join(lines))
                if rng.random() < 0.3 and n == numbers[0]:
                    # Check one whole message on the way.
                    _, whole, _ = p.retr(n)
                    raw = b"\r\n".join(whole) + b"\r\n"
                    if mid:
                        t.check_hash(mid.group(1).decode(), raw, "POP3 RETR")
                p.dele(n)
                if mid:
                    doomed.append(mid.group(1).decode())
            t.ledger.deleting(doomed)
            resp = p.quit()
            if resp.startswith(b"+OK"):
                t.ledger.confirm_deleted(doomed)
        finally:
            try:
                p.close()
            except OSError:
                pass
        time.sleep(0.1 + rng.random() * 0.3)


class JmapWorker(Worker):
    """JMAP over HTTPS: Email/set keyword changes, moves and destroys."""

    def call(self, calls):
        t = self.t
        c = http.client.HTTPSConnection("127.0.0.1", t.a.ports["http"], timeout=IO_TIMEOUT,
                                        context=tls_context())
        auth = base64.b64encode(f"{JMAP_USER}:{PASSWORD}".encode()).decode()
        body = json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                           "methodCalls": calls})
        try:
            c.request("POST", "/jmap/api/", body=body,
                      headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                raise http.client.HTTPException(f"JMAP {r.status}: {data[:200]!r}")
            t.ledger.count("jmap_requests")
            return json.loads(data)["methodResponses"]
        finally:
            c.close()

    def session(self):
        t, rng = self.t, self.rng
        c = http.client.HTTPSConnection("127.0.0.1", t.a.ports["http"], timeout=IO_TIMEOUT,
                                        context=tls_context())
        auth = base64.b64encode(f"{JMAP_USER}:{PASSWORD}".encode()).decode()
        c.request("GET", "/.well-known/jmap", headers={"Authorization": f"Basic {auth}"})
        r = c.getresponse()
        session = json.loads(r.read())
        c.close()
        acc = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        res = self.call([["Mailbox/get", {"accountId": acc, "properties": ["role", "name"]}, "m"]])
        boxes = {b.get("role") or b["name"]: b["id"] for b in res[0][1]["list"]}
        inbox, archive = boxes["inbox"], boxes["archive"]
        for _ in range(rng.randint(1, 5)):
            if not t.running.is_set():
                break
            box = inbox if rng.random() < 0.7 else archive
            res = self.call([
                ["Email/query", {"accountId": acc, "filter": {"inMailbox": box}, "limit": 40}, "q"],
                ["Email/get", {"accountId": acc, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                               "properties": ["messageId", "keywords", "mailboxIds"]}, "g"],
            ])
            emails = res[1][1]["list"]
            if not emails:
                time.sleep(0.05)
                continue
            rng.shuffle(emails)
            update, destroy = {}, []
            for e in emails[:max(1, len(emails) // 4)]:
                kw = rng.choice(["$seen", "$flagged", "$answered", "torture"])
                update[e["id"]] = {f"keywords/{kw}": (None if kw in e.get("keywords", {}) else True)}
            for e in emails[len(emails) // 4: len(emails) // 4 + 2]:
                if rng.random() < 0.3:
                    update[e["id"]] = {"mailboxIds": {archive if box == inbox else inbox: True}}
            for e in emails[-2:]:
                if rng.random() < 0.3 and e["id"] not in update:
                    destroy.append(e)
            mids = {e["id"]: (e.get("messageId") or [None])[0] for e in destroy}
            t.ledger.deleting([m for m in mids.values() if m])
            res = self.call([["Email/set", {"accountId": acc, "update": update,
                                            "destroy": [e["id"] for e in destroy]}, "s"]])
            args = res[0][1]
            if res[0][0] != "Email/set":
                raise http.client.HTTPException(f"Email/set: {res[0]}")
            t.ledger.count("flagged", len(args.get("updated") or {}))
            t.ledger.confirm_deleted([mids[i] for i in args.get("destroyed") or [] if mids.get(i)])
            time.sleep(rng.random() * 0.1)


# ---------------------------------------------------------------- the torture


class Torture:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.stop = threading.Event()
        self.running = threading.Event()
        self.ledger = Ledger()
        self.violations = []
        self.vlock = threading.Lock()
        self.cycle = 0
        self.root = Path(tempfile.mkdtemp(prefix="pochta-torture-"))
        self.b = Instance(self.root, "b", args.binary,
                          'hostname = "mx.b.test"\ndomains = ["b.test"]')
        self.b.start()
        self.b.add_user(REMOTE_RCPT)
        self.a = Instance(self.root, "a", args.binary,
                          'hostname = "mx.a.test"\ndomains = ["a.test"]',
                          f'[relay.routes]\n"b.test" = "127.0.0.1:{self.b.ports["smtp"]}"\n\n'
                          '[queue]\nretry = "1s"\nmax_retry = "1s"\n')
        self.a.start()
        for u in ALL_A_USERS:
            self.a.add_user(u)
        # What verification saw last: (instance, account, mailbox) -> values
        self.uidvalidity = {}
        self.uidnext = {}
        self.uids = {}  # -> {uid: Message-ID}
        self.hashed = set()  # (account, Message-ID) whose body was compared
        self.relay_dups = set()
        self.checks_run = 0
        self.kills = 0
        self.workers = []
        seed = args.seed * 1000
        for i in range(args.smtp):
            self.workers.append(SmtpSender(f"smtp{i}", self, seed + i))
        self.workers.append(Submitter("submit", self, seed + 50))
        for i, u in enumerate(IMAP_USERS):
            self.workers.append(ImapWorker(f"imap{i}", self, seed + 100 + i, u))
        self.workers.append(PopWorker("pop3", self, seed + 200))
        self.workers.append(JmapWorker("jmap", self, seed + 300))

    def violation(self, what):
        with self.vlock:
            self.violations.append(f"cycle {self.cycle}: {what}")
        log(f"VIOLATION: {what}")

    def check_hash(self, mid, raw, where):
        sent = self.ledger.sent.get(mid)
        if sent and sent["hash"] != body_hash(raw):
            self.violation(f"{where}: body of {mid} differs from what was sent")

    def pause(self):
        self.running.clear()
        deadline = time.time() + 3 * IO_TIMEOUT
        for w in self.workers:
            if not w.idle.wait(max(0.1, deadline - time.time())):
                self.violation(f"worker {w.name} did not stop within {3 * IO_TIMEOUT} s")

    def lose_one_message(self):
        """Self-test (--inject-loss): removes one acknowledged message from the
        stopped store, keeping every counter right, as a durability bug that
        loses a committed row would. Only the ledger can tell; the run must fail."""
        sent, deleted, _, _ = self.ledger.snapshot()
        db = sqlite3.connect(self.a.data / "store.sqlite3")
        try:
            rows = db.execute("SELECT m.id, m.mailbox_id, m.blob_id, m.flags, m.size, b.data "
                              "FROM messages m JOIN blobs b ON b.id = m.blob_id").fetchall()
            for mid_row, mailbox, blob, flags, size, data in rows:
                mid = MSGID_RE.search(data)
                mid = mid.group(1).decode() if mid else None
                if mid in sent and sent[mid]["state"] == "acked" and mid not in deleted:
                    db.execute("DELETE FROM messages WHERE id = ?", (mid_row,))
                    db.execute("UPDATE blobs SET refs = refs - 1 WHERE id = ?", (blob,))
                    db.execute("DELETE FROM blobs WHERE id = ? AND refs <= 0", (blob,))
                    db.execute("UPDATE mailboxes SET total = total - 1, unseen = unseen - ?, "
                               "deleted = deleted - ?, size = size - ? WHERE id = ?",
                               (int(flags & 1 == 0), int(flags & 8 != 0), size, mailbox))
                    db.commit()
                    log(f"self-test: removed {mid} behind the server's back")
                    return
        finally:
            db.close()

    def pochta_check(self, inst, when, *extra):
        self.checks_run += 1
        r = inst.cli("check", *extra)
        if r.returncode != 0:
            self.violation(f"pochta check ({inst.name}, {when}) exited {r.returncode}:\n{r.stdout}{r.stderr}")

    # ------------------------------------------------------------ verification

    def scan(self, inst, user):
        """Every mailbox of `user` over IMAP: {mailbox: (status, [(uid, flags, mid)])}."""
        m = imap_connect(inst.ports["imaps"], user)
        try:
            typ, boxes = m.list('""', "*")
            names = []
            for b in boxes:
                line = b.decode() if isinstance(b, bytes) else str(b)
                name = line.rsplit(" ", 1)[-1].strip('"')
                names.append(name)
            out = {}
            for name in names:
                typ, st = m.status(name, "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
                if typ != "OK":
                    raise imaplib.IMAP4.error(f"STATUS {name}: {st}")
                text = st[0].decode()
                status = {k: int(v) for k, v in re.findall(r"(MESSAGES|UNSEEN|UIDNEXT|UIDVALIDITY) (\d+)", text)}
                typ, _ = m.select(f'"{name}"', readonly=True)
                msgs = imap_list(m) if status.get("MESSAGES") else []
                new = [u for u, _, mid in msgs if mid and (user, mid) not in self.hashed]
                if new:
                    for u, _, raw in self.fetch_bodies(m, new):
                        mid = MSGID_RE.search(raw)
                        if mid:
                            mid = mid.group(1).decode()
                            self.hashed.add((user, mid))
                            self.check_hash(mid, raw, f"{inst.name} {user} {name} UID {u}")
                            try:
                                email.message_from_bytes(raw, policy=email.policy.default).get_body()
                            except Exception as e:
                                self.violation(f"{inst.name} {user} {name} UID {u}: does not parse: {e}")
                out[name] = (status, msgs)
            m.logout()
            return out
        finally:
            try:
                m.shutdown()
            except OSError:
                pass

    def fetch_bodies(self, m, uids):
        out = []
        for i in range(0, len(uids), 200):
            chunk = ",".join(str(u) for u in uids[i:i + 200])
            typ, data = m.uid("FETCH", chunk, "(UID BODY.PEEK[])")
            for item in data:
                if isinstance(item, tuple):
                    u = FETCH_RE.search(item[0])
                    out.append((int(u.group(1)) if u else 0, None, item[1]))
        return out

    def store_counts(self, inst, user):
        """{mailbox: (rows, unseen rows, kept total, kept unseen)} read from the store."""
        db = inst.db()
        try:
            rows = db.execute(
                """SELECT b.name, COUNT(m.id), COALESCE(SUM(m.flags & 1 = 0), 0), b.total, b.unseen
                   FROM mailboxes b JOIN accounts a ON a.id = b.account_id
                   LEFT JOIN messages m ON m.mailbox_id = b.id
                   WHERE a.address = ? AND b.parent_id = 0 GROUP BY b.id""", (user,)).fetchall()
        finally:
            db.close()
        return {r[0]: r[1:] for r in rows}

    def queued_ids(self):
        db = self.a.db()
        try:
            blobs = db.execute("SELECT b.data FROM queue q JOIN blobs b ON b.id = q.blob_id").fetchall()
        finally:
            db.close()
        out = {}
        for (data,) in blobs:
            mid = MSGID_RE.search(data)
            if mid:
                out[mid.group(1).decode()] = out.get(mid.group(1).decode(), 0) + 1
        return out

    @staticmethod
    def count_mismatches(inst, user, scan, counts):
        """IMAP STATUS against the messages listed and against the store."""
        out = []
        for name, (status, msgs) in scan.items():
            key = (inst.name, user, name)
            listed = len(msgs)
            unseen = sum(1 for _, f, _ in msgs if "\\Seen" not in f)
            if status.get("MESSAGES") != listed or status.get("UNSEEN") != unseen:
                out.append(f"{key}: STATUS {status} but {listed} messages listed, {unseen} unseen")
            st = counts.get(name)
            if st is None or st != (listed, unseen, listed, unseen):
                out.append(f"{key}: store has (rows, unseen, total, unseen kept) = {st}, "
                           f"IMAP lists {listed} / {unseen} unseen")
        missing = set(counts) - set(scan)
        if missing:
            out.append(f"{inst.name} {user}: mailboxes {sorted(missing)} in the store but not in LIST")
        return out

    def verify(self, final=False):
        sent, deleted, shown, _ = self.ledger.snapshot()
        present = {}  # (account, Message-ID) -> count
        targets = [(self.a, u) for u in ALL_A_USERS] + [(self.b, REMOTE_RCPT)]
        for inst, user in targets:
            # B may be receiving relayed mail meanwhile (A's queue runs): a
            # count that moved between STATUS and FETCH is looked at again.
            for attempt in range(6):
                scan = self.scan(inst, user)
                counts = self.store_counts(inst, user)
                mismatches = self.count_mismatches(inst, user, scan, counts)
                if not mismatches:
                    break
                time.sleep(0.5)
            for m in mismatches:
                self.violation(m)
            for name, (status, msgs) in scan.items():
                key = (inst.name, user, name)
                uv, nxt = status.get("UIDVALIDITY"), status.get("UIDNEXT", 0)
                if self.uidvalidity.setdefault(key, uv) != uv:
                    self.violation(f"{key}: UIDVALIDITY changed {self.uidvalidity[key]} -> {uv}")
                prev_next = self.uidnext.get(key, 1)
                if nxt < prev_next:
                    self.violation(f"{key}: UIDNEXT went back {prev_next} -> {nxt}")
                if inst is self.a and nxt <= shown.get((user, name), 0):
                    self.violation(f"{key}: UIDNEXT {nxt} but a client was shown UID {shown[(user, name)]}")
                known = self.uids.setdefault(key, {})
                for uid, _, mid in msgs:
                    if uid >= nxt:
                        self.violation(f"{key}: UID {uid} not below UIDNEXT {nxt}")
                    if uid in known and known[uid] != mid:
                        self.violation(f"{key}: UID {uid} reused: was {known[uid]}, now {mid}")
                    elif uid not in known and uid < prev_next:
                        self.violation(f"{key}: new UID {uid} ({mid}) is below the earlier UIDNEXT {prev_next}")
                    known[uid] = mid
                    if mid:
                        present[(user, mid)] = present.get((user, mid), 0) + 1
                self.uidnext[key] = max(prev_next, nxt)
        queued = self.queued_ids()
        local = set(LOCAL_RCPTS)
        for (user, mid), n in present.items():
            if mid.endswith("@torture.test") and mid not in sent:
                self.violation(f"{user}: {mid} is stored but was never sent")
            elif n > 1 and user != REMOTE_RCPT:
                self.violation(f"{user}: {mid} is stored {n} times")
        stats = {"acked": 0, "pending": 0, "refused": 0, "deleted": 0}
        for mid, s in sent.items():
            stats[s["state"]] += 1
            gone = deleted.get(mid)
            stats["deleted"] += gone == "confirmed"
            if s["to"] in local:
                n = present.get((s["to"], mid), 0)
                elsewhere = [u for u in ALL_A_USERS if u != s["to"] and present.get((u, mid))]
                if elsewhere:
                    self.violation(f"{mid} for {s['to']} found in {elsewhere}")
                if s["state"] == "refused" and n:
                    self.violation(f"{mid} was refused but is stored")
                elif gone == "confirmed" and n:
                    self.violation(f"{mid}: deleted (confirmed) but stored again")
                elif s["state"] == "acked" and gone is None and n != 1:
                    self.violation(f"{mid} for {s['to']} acknowledged, present {n} times")
                elif n > 1:
                    self.violation(f"{mid} for {s['to']} present {n} times")
            else:
                at_b = present.get((REMOTE_RCPT, mid), 0)
                in_queue = queued.get(mid, 0)
                if in_queue > 1:
                    self.violation(f"relay {mid} queued {in_queue} times")
                if s["state"] == "acked" and at_b + in_queue == 0:
                    self.violation(f"relay {mid} acknowledged but neither queued at A nor at B")
                if s["state"] == "refused" and at_b + in_queue:
                    self.violation(f"relay {mid} was refused but is queued or delivered")
                if at_b > 2 or (at_b > 1 and in_queue):
                    self.violation(f"relay {mid} at B {at_b} times, queued {in_queue}")
                elif at_b > 1 or (at_b and in_queue):
                    # The documented at-least-once window of SMTP relay: A dies
                    # between B's 250 and recording it, so it sends again
                    # (RFC 5321 §6.1 and RFC 1047). Once per kill at most.
                    self.relay_dups.add(mid)
                if final and s["state"] == "acked" and (in_queue or at_b == 0):
                    self.violation(f"relay {mid} not delivered to B by the end (queued {in_queue})")
        if len(self.relay_dups) > self.kills:
            self.violation(f"{len(self.relay_dups)} relayed messages sent twice, more than the {self.kills} kills explain")
        return stats

    # ------------------------------------------------------------ the run

    def run(self):
        args = self.args
        started = time.time()
        log(f"torture in {self.root}: {args.cycles} cycles, load {args.min_load}-{args.max_load} s, seed {args.seed}")
        for w in self.workers:
            w.start()
        try:
            for cycle in range(1, args.cycles + 1):
                self.cycle = cycle
                self.running.set()
                load = self.rng.uniform(args.min_load, args.max_load)
                if self.rng.random() < 0.15:
                    load = self.rng.uniform(0.05, 0.5)  # sometimes right after the start
                time.sleep(load)
                self.a.kill9()
                self.kills += 1
                self.pause()
                if self.args.inject_loss and cycle == 1:
                    self.lose_one_message()
                self.pochta_check(self.a, "stopped after kill -9")
                self.a.start()
                stats = self.verify()
                self.pochta_check(self.a, "live after restart")
                self.pochta_check(self.b, "live")
                _, _, _, counts = self.ledger.snapshot()
                log(f"cycle {cycle}/{args.cycles}: load {load:.1f} s; sent {sum(stats[k] for k in ('acked', 'pending', 'refused'))}"
                    f" (acked {stats['acked']}, answer lost {stats['pending']}, refused {stats['refused']}),"
                    f" deleted {stats['deleted']}, client errors {counts['client_errors']},"
                    f" violations {len(self.violations)}")
            # The end: a last stretch of load without a kill, then drain the queue.
            self.cycle += 1
            self.running.set()
            time.sleep(min(2.0, args.max_load))
            self.pause()
            deadline = time.time() + 120
            while time.time() < deadline and self.queued_ids():
                time.sleep(0.5)
            stats = self.verify(final=True)
            self.pochta_check(self.b, "live")
        finally:
            self.stop.set()
            rc_a, rc_b = self.a.terminate(), self.b.terminate()
        if rc_a != 0 or rc_b != 0:
            self.violation(f"SIGTERM exit status: A {rc_a}, B {rc_b}")
        self.pochta_check(self.a, "stopped, --full", "--full")
        self.pochta_check(self.b, "stopped, --full", "--full")
        _, _, _, counts = self.ledger.snapshot()
        took = time.time() - started
        print()
        print("torture summary")
        print(f"  cycles (kill -9 + restart)      {self.kills}")
        print(f"  messages acknowledged           {stats['acked']} (SMTP 250, APPEND OK)")
        print(f"    of which relayed to B         {sum(1 for s in self.ledger.sent.values() if s['to'] == 'relay' and s['state'] == 'acked')}")
        print(f"  answers lost in a kill          {stats['pending']}")
        print(f"  refused (4xx/5xx)               {stats['refused']}")
        print(f"  deletions confirmed             {stats['deleted']} (IMAP UID EXPUNGE, POP3 QUIT, JMAP destroy)")
        print(f"  flag/keyword changes            {counts['flagged']}; moves {counts['moved']}")
        print(f"  sessions                        SMTP {counts['smtp_sessions']}, IMAP {counts['imap_sessions']},"
              f" POP3 {counts['pop3_sessions']}, JMAP requests {counts['jmap_requests']}")
        print(f"  client errors (killed server)   {counts['client_errors']}")
        print(f"  pochta check runs               {self.checks_run}")
        print(f"  relay re-deliveries (allowed)   {len(self.relay_dups)}")
        print(f"  time                            {took:.0f} s")
        print(f"  invariant violations            {len(self.violations)}")
        for v in self.violations[:50]:
            print(f"    {v}")
        if self.violations or self.args.keep:
            print(f"  data kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        return 1 if self.violations else 0


def main():
    repo = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.environ.get("POCHTA_BIN", str(repo / "target/release/pochta")))
    p.add_argument("--cycles", type=int, default=20, help="kill -9 / restart cycles (default 20)")
    p.add_argument("--min-load", type=float, default=3.0, help="shortest load phase, seconds")
    p.add_argument("--max-load", type=float, default=8.0, help="longest load phase, seconds")
    p.add_argument("--smtp", type=int, default=3, help="concurrent SMTP delivery connections")
    p.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    p.add_argument("--short", action="store_true", help="the CI form: 5 cycles of 1-3 s")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    p.add_argument("--inject-loss", action="store_true",
                   help="self-test: lose one acknowledged message after the first kill; the run must fail")
    args = p.parse_args()
    if args.short:
        args.cycles, args.min_load, args.max_load = 5, 1.0, 3.0
    if args.cycles < 1 or args.cycles > 10000 or args.min_load <= 0 or args.max_load < args.min_load:
        p.error("need 1 <= cycles <= 10000 and 0 < min-load <= max-load")
    if not os.access(args.binary, os.X_OK):
        p.error(f"{args.binary} is not an executable (cargo build --release, or --binary)")
    t = Torture(args)
    sys.exit(t.run())


if __name__ == "__main__":
    main()
