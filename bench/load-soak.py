#!/usr/bin/env python3
"""Load soak: many concurrent IMAP sessions doing a realistic mix, JMAP web-mail clients,
plus a steady SMTP delivery stream, for minutes, against one pochta; no error, no leak,
latency reported.

pochta only (no reference system: this is a test with absolute figures, not a ratio).
`target/release/pochta serve` (POCHTA_BIN to use another binary; built with `cargo build
--release` only if missing) gets a fresh data directory, the MX and IMAPS listeners on
free loopback ports, USERS users, and MESSAGES messages in each INBOX, delivered over
SMTP before anything is measured (the generator of bench/imap-load.py: realistic
senders, subjects, dates, threads, multipart, attachments, 1.4-8 KiB). Then, for
DURATION seconds:

  * SESSIONS IMAP sessions (IMAPS) spread over PROCS client processes (asyncio, so
    that the GIL does not serialise them), user = session % USERS. Each starts at a
    random moment of the first RAMP seconds, logs in, selects INBOX, and loops: think
    THINK_MIN..THINK_MAX seconds, then one step, drawn with these weights:
        noop    22  NOOP (sees new mail as EXISTS)
        idle    18  IDLE for 5-30 s (counts the EXISTS pushed), DONE
        sync    18  SELECT INBOX, FETCH of the newest 50 (UID FLAGS), then the headers
                    (ENVELOPE, RFC822.SIZE, INTERNALDATE, BODY.PEEK[HEADER.FIELDS ...])
                    of up to 10 messages that arrived since the last sync
        read    18  UID FETCH of the headers of 3 messages, BODY.PEEK[] of one, UID STORE
                    +FLAGS.SILENT (\\Seen) of it
        flag    10  UID STORE +FLAGS / -FLAGS (\\Flagged or \\Seen) of one
        search   5  UID SEARCH: UNSEEN, FLAGGED, SUBJECT <word> or FROM <name> SINCE <date>
        status   4  STATUS of Archive, Drafts, Sent (MESSAGES UNSEEN UIDNEXT)
        draft    3  APPEND to Drafts, SELECT Drafts, UID STORE +FLAGS.SILENT (\\Deleted),
                    UID EXPUNGE of it, SELECT INBOX
        move     2  UID MOVE one to Archive, SELECT Archive, UID MOVE it back, SELECT INBOX
    and every RELOGIN_MIN..RELOGIN_MAX seconds logs out and logs in again on a new
    connection. The sessions of one user share its mailboxes; session k of the n of a
    user only reads, flags and moves the messages whose UID is k modulo n, so no step
    of one session races another's move (concurrent flag changes and the EXISTS and
    EXPUNGE that others' moves and the deliveries cause are the point). At the end each
    session finishes its step and logs out.
  * JMAP_SESSIONS web-mail clients (HTTPS, keep-alive, Basic auth; threads of one more
    process) over JMAP_USERS users of their own (user<USERS+1>.., so that no IMAP move
    races their updates), each starting in the ramp with the session resource,
    Mailbox/get and the 50 newest of its INBOX, then looping: think THINK_MIN..THINK_MAX
    seconds, then one step:
        poll       30  Email/changes since its state, Email/get of the created (list
                       properties) and the updated (keywords)
        newest     20  Email/query inMailbox INBOX by receivedAt descending, limit 50, and
                       Email/get of them (threadId, mailboxIds, keywords, from, subject,
                       receivedAt, size, preview) by back-reference
        read       20  Email/get of one with its text body values, Email/set $seen
        flag       10  Email/set $flagged on or off
        search     10  Email/query (text or subject word, $flagged, unseen in INBOX),
                       limit 20, with Email/get and SearchSnippet/get
        thread      5  Thread/get of one email's thread and Email/get of its emails
        mailboxes   5  Mailbox/get
  * SMTP_RATE messages/s delivered to the MX over SMTP_CONNS connections (kept open,
    reopened every 200 messages), each to a random user's INBOX (so NOOP, IDLE and
    Email/changes see them).

Every reply is checked (JMAP: an HTTP status other than 200, a method error, any
notFound, notCreated or notUpdated; IMAP: a tagged NO or BAD, an untagged NO, BAD or BYE
(but the BYE of LOGOUT), a missing FETCH response (unless the tagged OK says
[EXPUNGEISSUED]: another session of the user moved that message away, which is counted),
a missing literal, COPYUID or APPENDUID), a timeout (TIMEOUT), a closed connection, an
SMTP refusal: each is an error, and there must be none.

Measured: the latency of every command (time from sending it to its tagged reply; for
IDLE the continuation, for DONE the tagged OK; CONNECT is TCP + TLS + greeting; SMTP
is one message on an open connection, MAIL to the 250 after DATA), p50/p95/p99/max per
command after the warm-up (WARMUP seconds) and per minute; the server's VmRSS, open
files and threads every SAMPLE seconds: RSS at the end of the warm-up against the end
and the least-squares slope (MiB/min) after the warm-up, over all of it and over its
second half; "flat" means the end is within LEAK_TOLERANCE % of the warm-up figure;
the server's CPU (and the clients', the other processes') during the steady part;
the load average.

Verified at the end: every user's INBOX holds exactly MESSAGES plus the messages that
got a 250 for it during the run, and Archive and Drafts are empty again (IMAP STATUS on
fresh logins); `pochta check` on the stopped server's store exits 0; the server log has
no ERROR and no panic. The exit status is non-zero if anything failed.

    python3 bench/load-soak.py                               # 1000 sessions, 10 minutes
    SESSIONS=200 DURATION=60 USERS=20 python3 bench/load-soak.py   # quick mode, ~2 min

Settings (environment variables):
  SESSIONS=1000      concurrent IMAP sessions
  DURATION=600       seconds of load (ramp and warm-up included)
  USERS=100          users (user1..userUSERS@example.test)
  MESSAGES=300       messages in each INBOX before the run (delivered over SMTP)
  JMAP_SESSIONS=50   concurrent JMAP clients (0: none, and no HTTP listener)
  JMAP_USERS=10      users of the JMAP clients, after the IMAP users
  SMTP_RATE=20       messages/s delivered during the run
  SMTP_CONNS=4       SMTP connections of that stream
  PROCS=4            IMAP client processes
  RAMP=60            sessions start at random moments of the first RAMP seconds
                     (default: min(60, DURATION/5))
  WARMUP=90          seconds before the steady part (latency figures, the RSS baseline);
                     default: min(90, DURATION/3)
  THINK_MIN=1 THINK_MAX=5       seconds between two steps of a session
  RELOGIN_MIN=120 RELOGIN_MAX=480   seconds between two logins of a session
  SAMPLE=5           seconds between two samples of the server's RSS
  LEAK_TOLERANCE=10  % of growth of RSS from the end of the warm-up to the end that is
                     still "flat"
  TIMEOUT=60         seconds a client waits for a reply before it is an error
  LOAD_CONNS=4       SMTP connections (processes) of the pre-load
  BENCH_DIR          work directory (default target/bench-load-soak, on a disk)
  POCHTA_BIN         the pochta binary (default target/release/pochta, built if missing;
                     copied into BENCH_DIR, so a rebuild during the run changes nothing)
  PORTS=SMTP,IMAPS[,HTTPS]  loopback ports (default: free ones)
  WEIGHTS=           change step weights, e.g. WEIGHTS=search=0,move=5
  SEED=1             seed of the sessions' random choices
  KEEP=0             1: keep the data directory afterwards
  TRIM=0             1: after the sessions logged out, make pochta call malloc_trim(0)
                     (through gdb) and print its RSS again: memory glibc kept after it
                     was freed goes back, what stays is still allocated
"""

import asyncio
import base64
import collections
import http.client
import importlib.util
import json
import multiprocessing
import os
import random
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402  (the helpers the benchmarks share)
from benchlib import (  # noqa: E402
    REPO, BenchError, client_context, cpu_now, die, env, log, machine_cpu, proc_stat, raise_fd_limit, stop_pochta,
    wait_port,
)

PASSWORD = "soak-pass-1"
DOMAIN = "example.test"

# The message generator of bench/imap-load.py, if it is there; a plain one otherwise.
try:
    _spec = importlib.util.spec_from_file_location("imap_load", HERE / "imap-load.py")
    _il = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_il)
    _make_message = _il.make_message
    WORDS, FIRST = _il.WORDS, _il.FIRST
except Exception:  # noqa: BLE001 (any failure: fall back)
    _make_message = None
    WORDS = "meeting agenda budget invoice project deadline review report release".split()
    FIRST = "Anna Boris Chen Dmitri Elena Olga Pavel".split()

STEPS = (("noop", 22), ("idle", 18), ("sync", 18), ("read", 18), ("flag", 10),
         ("search", 5), ("status", 4), ("draft", 3), ("move", 2))
HEADER_ITEMS = ("(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE "
                "BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID REFERENCES)])")


class Settings:
    def __init__(self):
        self.sessions = int(env("SESSIONS", "1000"))
        self.duration = float(env("DURATION", "600"))
        self.users = int(env("USERS", "100"))
        self.messages = int(env("MESSAGES", "300"))
        self.jmap_sessions = int(env("JMAP_SESSIONS", "50"))
        self.jmap_users = int(env("JMAP_USERS", "10")) if self.jmap_sessions else 0
        self.smtp_rate = float(env("SMTP_RATE", "20"))
        self.smtp_conns = int(env("SMTP_CONNS", "4"))
        self.procs = max(1, int(env("PROCS", "4")))
        self.ramp = float(env("RAMP", str(min(60.0, self.duration / 5))))
        self.warmup = float(env("WARMUP", str(min(90.0, self.duration / 3))))
        self.think = (float(env("THINK_MIN", "1")), float(env("THINK_MAX", "5")))
        self.relogin = (float(env("RELOGIN_MIN", "120")), float(env("RELOGIN_MAX", "480")))
        self.sample = float(env("SAMPLE", "5"))
        self.leak_tolerance = float(env("LEAK_TOLERANCE", "10"))
        self.timeout = float(env("TIMEOUT", "60"))
        self.load_conns = int(env("LOAD_CONNS", "4"))
        self.bench_dir = Path(env("BENCH_DIR", str(REPO / "target" / "bench-load-soak")))
        self.pochta_bin = env("POCHTA_BIN", "")
        self.ports = env("PORTS", "")
        self.seed = int(env("SEED", "1"))
        self.keep = env("KEEP", "0") == "1"
        self.trim = env("TRIM", "0") == "1"
        self.weights = dict(STEPS)
        for item in filter(None, env("WEIGHTS", "").split(",")):
            k, _, v = item.partition("=")
            if k not in self.weights or not v.isdigit():
                die(f"WEIGHTS: {item!r}: expected step=integer, steps {', '.join(self.weights)}")
            self.weights[k] = int(v)
        if self.sessions < 1 or self.users < 1 or self.users > self.sessions:
            die("need 1 <= USERS <= SESSIONS")
        if self.jmap_sessions and not 1 <= self.jmap_users <= self.jmap_sessions:
            die("need 1 <= JMAP_USERS <= JMAP_SESSIONS")
        self.all_users = self.users + self.jmap_users
        if self.warmup >= self.duration:
            die("WARMUP must be shorter than DURATION")


# ---------------------------------------------------------------- messages


def make_message(kind, user, seq):
    """Bytes with CRLF. The generator's own Return-Path/Received lines are dropped: the
    server adds its own at delivery."""
    if _make_message is not None:
        data, _ = _make_message(kind, user, seq)
        lines = data.split(b"\r\n")
        i = 0
        while lines[i].startswith((b"Return-Path:", b"Received:", b"\t")):
            i += 1
        return b"\r\n".join(lines[i:])
    rng = random.Random(f"{kind}-{user}-{seq}")
    words = " ".join(rng.choice(WORDS) for _ in range(5))
    body = "\r\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(rng.randint(20, 100)))
    return (f"From: {rng.choice(FIRST)} <sender{seq}@example.com>\r\nTo: <user{user}@{DOMAIN}>\r\n"
            f"Subject: {words.capitalize()}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            f"Message-ID: <{kind}.{user}.{seq}@example.com>\r\n\r\n{body}\r\n").encode()


def user_addr(u):
    return f"user{u}@{DOMAIN}"


# ---------------------------------------------------------------- /proc helpers


def proc_cpu(pid):
    st = proc_stat(pid)
    return st[1] if st else None


def status_fields(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def open_files(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def machine_busy():
    """CPU seconds of the whole machine: (busy including irq, steal)."""
    busy, irq, steal = machine_cpu()
    return busy + irq, steal


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the server


def pochta_copy(s):
    """POCHTA_BIN, or target/release/pochta (built only if missing), copied into
    BENCH_DIR: a rebuild during the run changes nothing."""
    b = Path(s.pochta_bin) if s.pochta_bin else benchlib.pochta_binary(s, reuse_built=True)
    if not b.is_file():
        die(f"no pochta binary at {b}")
    copy = s.bench_dir / "pochta"
    shutil.copy2(b, copy)
    return copy


def start_pochta(s, binary, smtp_port, imaps_port, http_port):
    d = s.bench_dir / "server"
    shutil.rmtree(d, ignore_errors=True)
    (d / "data").mkdir(parents=True)
    cfg = d / "pochta.toml"
    conns = 2 * s.sessions + 200  # re-logins overlap the old connection's close
    cfg.write_text(
        f"""hostname = "mail.soak.example"
data_dir = "{d / 'data'}"
domains = ["{DOMAIN}"]

[listen]
smtp = "127.0.0.1:{smtp_port}"
submission = ""
submissions = ""
imap = ""
imaps = "127.0.0.1:{imaps_port}"
pop3 = ""
pop3s = ""
http = "{f'127.0.0.1:{http_port}' if s.jmap_sessions else ''}"

[limits]
connections_per_ip = {conns}
connections = {conns}

[log]
level = "info"
"""
    )
    from concurrent.futures import ThreadPoolExecutor

    def add(u):
        r = subprocess.run([str(binary), "--config", str(cfg), "user", "add", user_addr(u), "--password-stdin"],
                           input=PASSWORD + "\n", capture_output=True, text=True)
        if r.returncode != 0:
            return f"pochta user add {user_addr(u)} failed: {r.stderr.strip()}"
        return None

    with ThreadPoolExecutor(2) as ex:
        for err in ex.map(add, range(1, s.all_users + 1)):
            if err:
                die(err)
    logf = open(d / "server.log", "w")
    server = subprocess.Popen([str(binary), "--config", str(cfg), "serve"], stdout=logf,
                              stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
    server.logfile = logf
    server.cfg = cfg
    wait_port("127.0.0.1", smtp_port, timeout=60.0, proc=server, what="pochta")
    wait_port("127.0.0.1", imaps_port, timeout=60.0, proc=server, what="pochta")
    if s.jmap_sessions:
        wait_port("127.0.0.1", http_port, timeout=60.0, proc=server, what="pochta")
    return server


# ---------------------------------------------------------------- SMTP: pre-load and stream


def preload_job(job):
    port, items = job
    try:
        c = smtplib.SMTP("127.0.0.1", port, timeout=120)
        c.ehlo("loader.soak.example")
        for i, (u, seq) in enumerate(items):
            c.sendmail(f"loader@example.com", [user_addr(u)], make_message("m", u, seq))
        c.quit()
        return len(items), None
    except Exception as e:  # noqa: BLE001
        return 0, f"{type(e).__name__}: {e}"


def preload(s, port):
    items = [(u, q) for q in range(1, s.messages + 1) for u in range(1, s.all_users + 1)]
    jobs = [(port, items[i::s.load_conns]) for i in range(s.load_conns)]
    t0 = time.monotonic()
    with multiprocessing.Pool(s.load_conns) as pool:
        res = pool.map(preload_job, jobs)
    errs = [e for _, e in res if e]
    if errs:
        die(f"pre-load failed: {errs[0]}")
    n = sum(k for k, _ in res)
    log(f"pre-loaded {n} messages ({s.messages} per user) over SMTP in {time.monotonic() - t0:.1f} s")


def smtp_stream(conn, spec):
    """Delivers spec['rate'] messages/s over spec['conns'] connections until spec['end']
    (monotonic). Sends back counts per user, latencies and errors."""
    rate, nconn, end, port = spec["rate"], spec["conns"], spec["end"], spec["port"]
    delivered = collections.Counter()
    lat = []  # (t, seconds)
    errors = []
    late = [0.0]
    lock = threading.Lock()
    t0 = spec["t0"]

    def worker(j):
        rng = random.Random(spec["seed"] * 1000 + j)
        c = None
        sent_on_conn = 0
        i = 0
        while True:
            due = t0 + (i * nconn + j) / rate
            if due >= end:
                break
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                with lock:
                    late[0] = max(late[0], now - due)
            u = rng.randint(1, spec["users"])
            seq = 1_000_000 + (i * nconn + j)
            msg = make_message("d", u, seq)
            try:
                if c is None or sent_on_conn >= 200:
                    if c is not None:
                        c.quit()
                    c = smtplib.SMTP("127.0.0.1", port, timeout=spec["timeout"])
                    c.ehlo("stream.soak.example")
                    sent_on_conn = 0
                t = time.monotonic()
                refused = c.sendmail("stream@example.com", [user_addr(u)], msg)
                d = time.monotonic() - t
                if refused:
                    raise smtplib.SMTPException(f"refused: {refused}")
                with lock:
                    delivered[u] += 1
                    lat.append((t - t0, d))
                sent_on_conn += 1
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append((time.monotonic() - t0, "SMTP", f"{type(e).__name__}: {e}"[:300]))
                try:
                    if c is not None:
                        c.close()
                except Exception:  # noqa: BLE001
                    pass
                c = None
            i += 1
        if c is not None:
            try:
                c.quit()
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append((time.monotonic() - t0, "SMTP", f"QUIT: {type(e).__name__}: {e}"[:300]))

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(nconn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn.send({"delivered": dict(delivered), "lat": lat, "errors": errors, "late": late[0], "cpu": cpu_now()})


# ---------------------------------------------------------------- IMAP client


class ImapErr(Exception):
    pass


class Stats:
    """Latencies and errors of one client process."""

    def __init__(self, t0, warmup, duration):
        self.t0, self.warmup, self.duration = t0, warmup, duration
        self.steady = collections.defaultdict(list)  # command -> [seconds], after the warm-up
        self.early = collections.defaultdict(list)   # the same during the warm-up
        self.final = collections.defaultdict(list)   # started after DURATION: every session's last DONE, LOGOUT
        self.minute = collections.defaultdict(list)  # minute -> [seconds], all commands
        self.errors = []                             # (t, command, text)
        self.n_errors = 0
        self.commands = 0
        self.exists_seen = 0                         # EXISTS increases seen in NOOP/IDLE
        self.races = 0

    def add(self, cmd, start, secs):
        t = start - self.t0
        self.commands += 1
        if t >= self.duration:
            self.final[cmd].append(secs)
            return
        (self.steady if t >= self.warmup else self.early)[cmd].append(secs)
        self.minute[int(t // 60)].append(secs)

    def error(self, cmd, text):
        self.n_errors += 1
        if len(self.errors) < 200:
            self.errors.append((round(time.monotonic() - self.t0, 1), cmd, text[:300]))
        if self.n_errors <= 3:
            print(f"  error at {time.monotonic() - self.t0:.1f} s: {cmd}: {text[:300]}", file=sys.stderr, flush=True)


RE_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r\n$")
RE_EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE\r\n$")
RE_UID = re.compile(rb"[( ]UID (\d+)")
RE_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
RE_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
RE_COPYUID = re.compile(rb"\[COPYUID (\d+) (\d+) (\d+)\]")
RE_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


class Session:
    def __init__(self, idx, spec, stats, ctx):
        self.idx = idx
        self.user = idx % spec["users"] + 1
        self.k = idx // spec["users"]                     # this session's share of UIDs
        self.n = len(range(self.user - 1, spec["sessions"], spec["users"]))  # sessions of the user
        self.spec, self.stats, self.ctx = spec, stats, ctx
        self.rng = random.Random(spec["seed"] * 1_000_003 + idx)
        self.r = self.w = None
        self.tagn = 0
        self.exists = 0
        self.selected = None
        self.known = {}        # own UIDs in INBOX seen lately -> flags
        self.max_uid = 0       # highest INBOX UID listed by the last sync
        self.drafts = 0
        self.counted = False   # counted in `active`

    # -- wire

    def own(self, uid):
        return uid % self.n == self.k

    async def readline(self):
        line = await asyncio.wait_for(self.r.readline(), self.spec["timeout"])
        if not line:
            raise ImapErr("the server closed the connection")
        if not line.endswith(b"\r\n"):
            raise ImapErr(f"line without CRLF: {line[:100]!r}")
        return line

    async def response(self):
        """One response line with its literals: (text without literal bytes, literal sizes)."""
        line = await self.readline()
        text, lits = line, []
        while True:
            m = RE_LITERAL.search(line)
            if not m:
                return text, lits
            n = int(m.group(1))
            await asyncio.wait_for(self.r.readexactly(n), self.spec["timeout"])
            lits.append(n)
            line = await self.readline()
            text = text + line

    def untagged(self, text, cmd, notify):
        if text.startswith(b"* "):
            m = RE_EXISTS.match(text)
            if m:
                n = int(m.group(1))
                if notify and n > self.exists:
                    self.stats.exists_seen += 1
                self.exists = n
                return
            if RE_EXPUNGE.match(text):
                self.exists -= 1
                return
            if text.startswith((b"* NO", b"* BAD")) or (text.startswith(b"* BYE") and cmd != "LOGOUT"):
                raise ImapErr(f"untagged: {text[:200]!r}")

    async def command(self, cmd, line, literal=None, notify=False):
        """Sends one command, returns [(text, literal sizes)] of its untagged responses and
        the tagged line. Anything but a tagged OK raises."""
        self.tagn += 1
        tag = b"t%d" % self.tagn
        start = time.monotonic()
        if literal is None:
            self.w.write(tag + b" " + line + b"\r\n")
        else:
            self.w.write(tag + b" " + line + b" {%d}\r\n" % len(literal))
            while True:
                text, _ = await self.response()
                if text.startswith(b"+"):
                    break
                if text.startswith(tag + b" "):
                    raise ImapErr(f"{cmd}: {text[:200]!r}")
                self.untagged(text, cmd, notify)
            self.w.write(literal + b"\r\n")
        out = []
        while True:
            text, lits = await self.response()
            if text.startswith(tag + b" "):
                break
            self.untagged(text, cmd, notify)
            out.append((text, lits))
        secs = time.monotonic() - start
        if not text.startswith(tag + b" OK"):
            raise ImapErr(f"{cmd}: {text[:200]!r}")
        self.stats.add(cmd, start, secs)
        return out, text

    async def connect(self):
        start = time.monotonic()
        self.r, self.w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.spec["port"], ssl=self.ctx, limit=1 << 20),
            self.spec["timeout"])
        text, _ = await self.response()
        if not text.startswith(b"* OK"):
            raise ImapErr(f"greeting: {text[:200]!r}")
        self.stats.add("CONNECT", start, time.monotonic() - start)
        await self.command("LOGIN", f'LOGIN "{user_addr(self.user)}" "{PASSWORD}"'.encode())
        self.selected = None
        await self.select(b"INBOX")
        await self.sync(first=True)

    async def logout(self):
        if self.w is None:
            return
        try:
            await self.command("LOGOUT", b"LOGOUT")
        finally:
            self.close()

    def close(self):
        if self.w is not None:
            self.w.transport.abort()
        self.r = self.w = None

    async def select(self, box):
        out, _ = await self.command("SELECT", b"SELECT " + box)
        if not any(RE_EXISTS.match(t) for t, _ in out):
            raise ImapErr(f"SELECT {box.decode()}: no EXISTS")
        self.selected = box

    # -- steps

    async def sync(self, first=False):
        if not first:
            await self.select(b"INBOX")
        if self.exists == 0:
            return
        lo, hi = max(1, self.exists - 49), self.exists
        out, tagged = await self.command("FETCH-FLAGS", b"FETCH %d:* (UID FLAGS)" % lo)
        uids = []
        for t, _ in out:
            if b" FETCH " in t:
                m, f = RE_UID.search(t), RE_FLAGS.search(t)
                if not m or not f:
                    raise ImapErr(f"FETCH-FLAGS: {t[:200]!r}")
                uids.append((int(m.group(1)), f.group(1)))
        # EXISTS may grow meanwhile, not shrink (no EXPUNGE during FETCH); a message
        # another session of the user moved away is left out, and the tagged OK says
        # so with [EXPUNGEISSUED] (RFC 5530, RFC 2180 §4.1.3).
        if len(uids) < hi - lo + 1:
            if b"[EXPUNGEISSUED]" not in tagged:
                raise ImapErr(f"FETCH-FLAGS: {len(uids)} responses for {lo}:* with {hi} messages")
            self.stats.races += 1
        self.known = {u: f for u, f in uids if self.own(u)}
        new = sorted(u for u, _ in uids if u > self.max_uid)
        if not first and new:
            want = new[-10:]
            out, _ = await self.command("FETCH-HEADERS", b"UID FETCH %s %s" % (
                ",".join(map(str, want)).encode(), HEADER_ITEMS.encode()))
            got = {int(m.group(1)) for t, lits in out if b" FETCH " in t and lits
                   for m in [RE_UID.search(t)] if m}
            if not got <= set(want):  # another session may have moved one away meanwhile
                raise ImapErr(f"FETCH-HEADERS of {want}: got {sorted(got)}")
        self.max_uid = max([self.max_uid] + [u for u, _ in uids])

    def pick(self, n=1):
        own = list(self.known)
        if not own:
            return []
        return self.rng.sample(own, min(n, len(own)))

    async def ensure_inbox(self):
        if self.selected != b"INBOX":
            await self.select(b"INBOX")

    async def step(self, kind, stop_at):
        await self.ensure_inbox()
        if kind == "noop":
            await self.command("NOOP", b"NOOP", notify=True)
        elif kind == "idle":
            await self.idle(min(self.rng.uniform(5, 30), max(0.0, stop_at - time.monotonic())))
        elif kind == "sync":
            await self.sync()
        elif kind == "read":
            uids = self.pick(3)
            if not uids:
                return await self.sync()
            out, _ = await self.command("FETCH-HEADERS", b"UID FETCH %s %s" % (
                ",".join(map(str, uids)).encode(), HEADER_ITEMS.encode()))
            # Other FETCH responses are flag changes made by the user's other sessions.
            got = {int(m.group(1)) for t, lits in out if b" FETCH " in t and lits
                   for m in [RE_UID.search(t)] if m}
            if got != set(uids):
                raise ImapErr(f"FETCH-HEADERS of own {sorted(uids)}: got {sorted(got)}")
            u = uids[0]
            out, _ = await self.command("FETCH-BODY", b"UID FETCH %d (UID BODY.PEEK[])" % u)
            if not any(b" FETCH " in t and lits and lits[0] > 0 for t, lits in out):
                raise ImapErr(f"FETCH-BODY {u}: no literal")
            await self.command("STORE", b"UID STORE %d +FLAGS.SILENT (\\Seen)" % u)
        elif kind == "flag":
            uids = self.pick(1)
            if not uids:
                return await self.command("NOOP", b"NOOP", notify=True)
            op = self.rng.choice((b"+FLAGS (\\Flagged)", b"-FLAGS (\\Flagged)", b"-FLAGS (\\Seen)"))
            out, _ = await self.command("STORE", b"UID STORE %d %s" % (uids[0], op))
            if not any(b" FETCH " in t for t, _ in out):
                raise ImapErr(f"STORE {uids[0]}: no FETCH response")
        elif kind == "search":
            q = self.rng.choice((b"UNSEEN", b"FLAGGED",
                                 b'SUBJECT "%s"' % self.rng.choice(WORDS).encode(),
                                 b'FROM "%s" SINCE 1-Jan-2019' % self.rng.choice(FIRST).lower().encode()))
            out, _ = await self.command("SEARCH", b"UID SEARCH " + q)
            if not any(t.startswith(b"* SEARCH") for t, _ in out):
                raise ImapErr("SEARCH: no SEARCH response")
        elif kind == "status":
            for box in (b"Archive", b"Drafts", b"Sent"):
                out, _ = await self.command("STATUS", b"STATUS %s (MESSAGES UNSEEN UIDNEXT)" % box)
                if not any(t.startswith(b"* STATUS") for t, _ in out):
                    raise ImapErr("STATUS: no STATUS response")
        elif kind == "draft":
            self.drafts += 1
            msg = (f"From: User {self.user} <{user_addr(self.user)}>\r\nTo: someone@example.com\r\n"
                   f"Subject: Draft {self.idx}.{self.drafts}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
                   f"Message-ID: <draft.{self.idx}.{self.drafts}@soak.example>\r\nMIME-Version: 1.0\r\n"
                   f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
                   + "\r\n".join(" ".join(self.rng.choice(WORDS) for _ in range(10)) for _ in range(20))
                   + "\r\n").encode()
            _, tagged = await self.command("APPEND", b"APPEND Drafts (\\Draft \\Seen)", literal=msg)
            m = RE_APPENDUID.search(tagged)
            if not m:
                raise ImapErr(f"APPEND: no APPENDUID: {tagged[:200]!r}")
            uid = int(m.group(2))
            await self.select(b"Drafts")
            await self.command("STORE", b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
            out, _ = await self.command("EXPUNGE", b"UID EXPUNGE %d" % uid)
            if not any(RE_EXPUNGE.match(t) for t, _ in out):
                raise ImapErr(f"UID EXPUNGE {uid}: no EXPUNGE response")
            await self.select(b"INBOX")
        elif kind == "move":
            uids = self.pick(1)
            if not uids:
                return await self.command("NOOP", b"NOOP", notify=True)
            u = uids[0]
            out, tagged = await self.command("MOVE", b"UID MOVE %d Archive" % u)
            m = RE_COPYUID.search(tagged) or next(
                (RE_COPYUID.search(t) for t, _ in out if RE_COPYUID.search(t)), None)
            if not m:
                raise ImapErr(f"UID MOVE {u} Archive: no COPYUID")
            self.known.pop(u, None)
            dst = int(m.group(3))
            await self.select(b"Archive")
            out, tagged = await self.command("MOVE", b"UID MOVE %d INBOX" % dst)
            m = RE_COPYUID.search(tagged) or next(
                (RE_COPYUID.search(t) for t, _ in out if RE_COPYUID.search(t)), None)
            if not m:
                raise ImapErr(f"UID MOVE {dst} INBOX: no COPYUID")
            await self.select(b"INBOX")
            back = int(m.group(3))
            if self.own(back):
                self.known[back] = b""

    async def idle(self, seconds):
        self.tagn += 1
        tag = b"t%d" % self.tagn
        start = time.monotonic()
        self.w.write(tag + b" IDLE\r\n")
        while True:
            text, _ = await self.response()
            if text.startswith(b"+"):
                break
            if text.startswith(tag + b" "):
                raise ImapErr(f"IDLE: {text[:200]!r}")
            self.untagged(text, "IDLE", True)
        self.stats.add("IDLE", start, time.monotonic() - start)
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                line = await asyncio.wait_for(self.r.readline(), left)
            except asyncio.TimeoutError:
                break
            if not line:
                raise ImapErr("the server closed the connection during IDLE")
            self.untagged(line, "IDLE", True)
        start = time.monotonic()
        self.w.write(b"DONE\r\n")
        while True:
            text, _ = await self.response()
            if text.startswith(tag + b" "):
                break
            self.untagged(text, "IDLE", True)
        if not text.startswith(tag + b" OK"):
            raise ImapErr(f"IDLE/DONE: {text[:200]!r}")
        self.stats.add("DONE", start, time.monotonic() - start)

    async def run(self, start_at, stop_at, sem, active):
        spec, rng = self.spec, self.rng
        kinds = list(spec["weights"])
        weights = list(spec["weights"].values())
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        relogin_at = None
        while time.monotonic() < stop_at:
            try:
                if self.w is None:
                    async with sem:
                        await self.connect()
                    active[0] += 1
                    self.counted = True
                    relogin_at = time.monotonic() + rng.uniform(*spec["relogin"])
                think = rng.uniform(*spec["think"])
                if time.monotonic() + think >= stop_at:
                    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
                    break
                await asyncio.sleep(think)
                if time.monotonic() >= relogin_at:
                    active[0] -= 1
                    self.counted = False
                    await self.logout()
                    continue
                kind = rng.choices(kinds, weights)[0]
                await self.step(kind, stop_at)
            except (ImapErr, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
                self.stats.error(type(e).__name__, f"session {self.idx} user{self.user}: {e}")
                if self.counted:
                    active[0] -= 1
                    self.counted = False
                self.close()
                await asyncio.sleep(1)
        if self.w is not None:
            try:
                await self.logout()
            except (ImapErr, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
                self.stats.error("LOGOUT", f"session {self.idx}: {e}")
                self.close()
        if self.counted:
            active[0] -= 1
            self.counted = False


async def client_main(conn, spec):
    t0 = spec["t0"]
    stats = Stats(t0, spec["warmup"], spec["duration"])
    ctx = client_context()
    sem = asyncio.Semaphore(16)  # connection set-ups at once in this process
    active = [0]
    stop_at = t0 + spec["duration"]
    rng = random.Random(spec["seed"] * 7 + spec["proc"])
    sessions = [Session(i, spec, stats, ctx) for i in spec["indexes"]]
    tasks = [asyncio.ensure_future(s.run(t0 + rng.uniform(0, spec["ramp"]), stop_at, sem, active))
             for s in sessions]

    async def progress():
        while True:
            await asyncio.sleep(5)
            conn.send({"progress": True, "commands": stats.commands, "errors": stats.n_errors,
                       "active": active[0], "exists_seen": stats.exists_seen})

    p = asyncio.ensure_future(progress())
    await asyncio.gather(*tasks)
    p.cancel()
    conn.send({"progress": False, "steady": dict(stats.steady), "early": dict(stats.early),
               "minute": dict(stats.minute), "final": dict(stats.final), "errors": stats.errors, "n_errors": stats.n_errors,
               "commands": stats.commands, "exists_seen": stats.exists_seen, "races": stats.races,
               "cpu": cpu_now()})


def client_proc(conn, spec):
    try:
        asyncio.run(client_main(conn, spec))
    except BaseException as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        conn.send({"progress": False, "crash": f"{type(e).__name__}: {e}"})


# ---------------------------------------------------------------- JMAP client

JMAP_STEPS = (("poll", 30), ("newest", 20), ("read", 20), ("flag", 10), ("search", 10),
              ("thread", 5), ("mailboxes", 5))
JMAP_USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
LIST_PROPS = ["threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt", "size", "preview"]


class JmapSession:
    """One web-mail client: keep-alive HTTPS, Basic auth, its own user (JMAP users are not
    IMAP users, so no IMAP move races its updates); every call's reply is checked."""

    def __init__(self, idx, spec, stats, lock):
        self.idx, self.spec, self.stats, self.lock = idx, spec, stats, lock
        self.user = spec["first_user"] + idx % spec["jmap_users"]
        self.rng = random.Random(spec["seed"] * 7_000_003 + idx)
        auth = f"{user_addr(self.user)}:{PASSWORD}".encode()
        self.headers = {"Authorization": "Basic " + base64.b64encode(auth).decode(),
                        "Content-Type": "application/json", "Accept": "application/json"}
        self.http = None
        self.ids = []           # ids of the newest emails seen, with their keywords
        self.keywords = {}
        self.threads = {}
        self.state = None

    def connect(self):
        self.http = http.client.HTTPSConnection("127.0.0.1", self.spec["port"], timeout=self.spec["timeout"],
                                                context=client_context())

    def request(self, method, path, body=None):
        """(status, body). A kept-alive connection the server closed is retried once,
        on a new one (every request here may be repeated)."""
        for retry in (False, True):
            fresh = self.http is None
            if fresh:
                self.connect()
            try:
                self.http.request(method, path, body=body, headers=self.headers)
                r = self.http.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.http.close()
                self.http = None
                if fresh or retry:
                    raise

    def call(self, step, calls):
        """Runs one JMAP request; the method responses, or None after recording an error."""
        t = time.monotonic()
        try:
            status, data = self.request("POST", self.api, json.dumps({"using": JMAP_USING, "methodCalls": calls}))
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.stats.error(f"JMAP {step}", f"{type(e).__name__}: {e}")
            return None
        d = time.monotonic() - t
        with self.lock:
            self.stats.add(f"JMAP {step}", t, d)
        if status != 200:
            with self.lock:
                self.stats.error(f"JMAP {step}", f"HTTP {status}: {data[:200]!r}")
            return None
        responses = json.loads(data)["methodResponses"]
        for name, args, _ in responses:
            bad = (name == "error" or args.get("notUpdated") or args.get("notCreated")
                   or args.get("notDestroyed") or args.get("notFound"))
            if bad:
                with self.lock:
                    self.stats.error(f"JMAP {step}", f"{name}: {json.dumps(args)[:250]}")
                return None
        return responses

    def remember(self, emails):
        for e in emails:
            if e["id"] not in self.keywords:
                self.ids.append(e["id"])
            self.keywords[e["id"]] = dict(e.get("keywords", {}))
            self.threads[e["id"]] = e["threadId"]
        self.ids = self.ids[-200:]

    def start(self):
        t = time.monotonic()
        status, data = self.request("GET", "/.well-known/jmap")
        if status != 200:
            raise RuntimeError(f"JMAP session resource: HTTP {status}")
        session = json.loads(data)
        with self.lock:
            self.stats.add("JMAP session", t, time.monotonic() - t)
        self.api = urllib.parse.urlsplit(session["apiUrl"]).path
        self.account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        r = self.call("mailboxes", [["Mailbox/get", {"accountId": self.account, "ids": None}, "m"]])
        if r is None:
            raise RuntimeError("JMAP Mailbox/get failed")
        self.inbox = next(m["id"] for m in r[0][1]["list"] if m.get("role") == "inbox")
        self.newest()

    def newest(self):
        r = self.call("newest", [
            ["Email/query", {"accountId": self.account, "filter": {"inMailbox": self.inbox},
                             "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 50}, "q"],
            ["Email/get", {"accountId": self.account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": LIST_PROPS}, "g"]])
        if r:
            self.remember(r[1][1]["list"])
            self.state = self.state or r[1][1]["state"]

    def step(self, name):
        a = self.account
        if name == "newest":
            self.newest()
        elif name == "poll":
            r = self.call("poll", [
                ["Email/changes", {"accountId": a, "sinceState": self.state, "maxChanges": 200}, "c"],
                ["Email/get", {"accountId": a, "#ids": {"resultOf": "c", "name": "Email/changes", "path": "/created"},
                               "properties": LIST_PROPS}, "g1"],
                ["Email/get", {"accountId": a, "#ids": {"resultOf": "c", "name": "Email/changes", "path": "/updated"},
                               "properties": ["keywords", "mailboxIds"]}, "g2"]])
            if r:
                self.state = r[0][1]["newState"]
                self.remember(r[1][1]["list"])
                for e in r[2][1]["list"]:
                    self.keywords[e["id"]] = dict(e.get("keywords", {}))
                with self.lock:
                    self.stats.exists_seen += len(r[0][1]["created"])
        elif name == "read" and self.ids:
            i = self.rng.choice(self.ids)
            self.call("read", [
                ["Email/get", {"accountId": a, "ids": [i], "fetchTextBodyValues": True, "maxBodyValueBytes": 65536,
                               "properties": ["subject", "from", "to", "sentAt", "textBody", "bodyValues",
                                              "attachments", "messageId", "references"]}, "g"],
                ["Email/set", {"accountId": a, "update": {i: {"keywords/$seen": True}}}, "s"]])
            self.keywords.setdefault(i, {})["$seen"] = True
        elif name == "flag" and self.ids:
            i = self.rng.choice(self.ids)
            on = not self.keywords.get(i, {}).get("$flagged", False)
            self.call("flag", [["Email/set", {"accountId": a, "update": {i: {"keywords/$flagged": on or None}}}, "s"]])
            if on:
                self.keywords.setdefault(i, {})["$flagged"] = True
            else:
                self.keywords.get(i, {}).pop("$flagged", None)
        elif name == "search":
            word = self.rng.choice(WORDS)
            f = self.rng.choice([{"text": word}, {"subject": word}, {"hasKeyword": "$flagged"},
                                 {"operator": "AND", "conditions": [{"inMailbox": self.inbox}, {"notKeyword": "$seen"}]}])
            self.call("search", [
                ["Email/query", {"accountId": a, "filter": f, "limit": 20,
                                 "sort": [{"property": "receivedAt", "isAscending": False}]}, "q"],
                ["Email/get", {"accountId": a, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                               "properties": LIST_PROPS}, "g"],
                ["SearchSnippet/get", {"accountId": a, "filter": f,
                                       "#emailIds": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "s"]])
        elif name == "thread" and self.ids:
            i = self.rng.choice(self.ids)
            self.call("thread", [
                ["Thread/get", {"accountId": a, "ids": [self.threads[i]]}, "t"],
                ["Email/get", {"accountId": a, "#ids": {"resultOf": "t", "name": "Thread/get", "path": "/list/*/emailIds"},
                               "properties": LIST_PROPS}, "g"]])
        elif name == "mailboxes":
            self.call("mailboxes", [["Mailbox/get", {"accountId": a, "ids": None}, "m"]])

    def run(self, end):
        spec = self.spec
        time.sleep(max(0.0, spec["t0"] + self.rng.random() * spec["ramp"] - time.monotonic()))
        steps = [k for k, w in JMAP_STEPS for _ in range(w)]
        try:
            self.start()
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.stats.error("JMAP session", f"{type(e).__name__}: {e}")
            return
        while True:
            time.sleep(self.rng.uniform(*spec["think"]))
            if time.monotonic() >= end:
                break
            self.step(self.rng.choice(steps))
        if self.http is not None:
            self.http.close()


def jmap_proc(conn, spec):
    """JMAP_SESSIONS web-mail clients, a thread each (they think far longer than they
    work, so the GIL does not serialise them)."""
    try:
        stats = Stats(spec["t0"], spec["warmup"], spec["duration"])
        lock = threading.Lock()
        end = spec["t0"] + spec["duration"]
        sessions = [JmapSession(i, spec, stats, lock) for i in range(spec["jmap_sessions"])]
        threads = [threading.Thread(target=x.run, args=(end,), daemon=True) for x in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conn.send({"steady": dict(stats.steady), "early": dict(stats.early), "errors": stats.errors,
                   "n_errors": stats.n_errors, "commands": stats.commands, "created_seen": stats.exists_seen,
                   "cpu": cpu_now()})
    except BaseException as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        conn.send({"crash": f"{type(e).__name__}: {e}"})


# ---------------------------------------------------------------- verification


class SyncImap:
    """A tiny blocking client for the final STATUS checks."""

    def __init__(self, port, user):
        raw = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s = client_context().wrap_socket(raw)
        self.f = self.s.makefile("rb")
        self.n = 0
        self.f.readline()
        self.cmd(f'LOGIN "{user_addr(user)}" "{PASSWORD}"')

    def cmd(self, line):
        self.n += 1
        tag = f"v{self.n}".encode()
        self.s.sendall(tag + b" " + line.encode() + b"\r\n")
        out = []
        while True:
            r = self.f.readline()
            if not r:
                die("verification: the server closed the connection")
            if r.startswith(tag + b" "):
                if not r.startswith(tag + b" OK"):
                    die(f"verification: {line}: {r!r}")
                return out
            out.append(r)

    def messages(self, box):
        out = self.cmd(f"STATUS {box} (MESSAGES)")
        for r in out:
            m = re.search(rb"MESSAGES (\d+)", r)
            if r.startswith(b"* STATUS") and m:
                return int(m.group(1))
        die(f"verification: no STATUS for {box}")

    def close(self):
        try:
            self.cmd("LOGOUT")
        except BenchError:
            pass
        self.s.close()


def mailbox_counts(s, port):
    out = {}
    for u in range(1, s.all_users + 1):
        c = SyncImap(port, u)
        out[u] = (c.messages("INBOX"), c.messages("Archive"), c.messages("Drafts"))
        c.close()
    return out


# ---------------------------------------------------------------- report


def pct(xs, p):
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def lat_row(name, xs):
    xs = sorted(xs)
    return (f"{name:<14} {len(xs):>9} {1e3 * pct(xs, 50):>8.2f} {1e3 * pct(xs, 95):>8.2f} "
            f"{1e3 * pct(xs, 99):>8.2f} {1e3 * xs[-1] if xs else float('nan'):>9.1f}")


def slope(points):
    """Least-squares slope of (t seconds, value) in value per minute."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / den if den else float("nan")


ORDER = ("CONNECT", "LOGIN", "SELECT", "FETCH-FLAGS", "FETCH-HEADERS", "FETCH-BODY", "STORE",
         "SEARCH", "STATUS", "APPEND", "EXPUNGE", "MOVE", "NOOP", "IDLE", "DONE", "LOGOUT")


def is_imap(key):
    return key != "SMTP" and not key.startswith("JMAP ")


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    s = Settings()
    s.bench_dir.mkdir(parents=True, exist_ok=True)
    fs = subprocess.run(["df", "-T", str(s.bench_dir)], capture_output=True, text=True).stdout.split("\n")[1:2]
    if fs and "tmpfs" in fs[0]:
        die(f"BENCH_DIR {s.bench_dir} is on tmpfs; give a directory on a disk")
    limit = raise_fd_limit(s.sessions * 2 + 2000)
    if s.ports:
        smtp_port, imaps_port, *rest = (int(x) for x in s.ports.split(","))
        http_port = rest[0] if rest else free_port()
    else:
        smtp_port, imaps_port, http_port = free_port(), free_port(), free_port()
    binary = pochta_copy(s)
    log(f"load-soak: {s.sessions} IMAP sessions over {s.users} users ({s.messages} messages each), "
        f"{s.smtp_rate:g} SMTP msg/s, {s.duration:.0f} s (ramp {s.ramp:.0f} s, warm-up {s.warmup:.0f} s), "
        f"{s.procs} client processes; open-file limit {limit}")
    log("steps (weights): " + ", ".join(f"{k} {w}" for k, w in s.weights.items()) +
        f"; think {s.think[0]:g}..{s.think[1]:g} s, re-login every {s.relogin[0]:g}..{s.relogin[1]:g} s")
    log(f"machine: {os.cpu_count()} CPUs; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if s.jmap_sessions:
        log(f"JMAP: {s.jmap_sessions} web-mail sessions over {s.jmap_users} users of their own "
            f"(user{s.users + 1}..), HTTPS; steps (weights): " + ", ".join(f"{k} {w}" for k, w in JMAP_STEPS))
    server = start_pochta(s, binary, smtp_port, imaps_port, http_port)
    failures = []
    try:
        preload(s, smtp_port)
        base = mailbox_counts(s, imaps_port)
        bad = {u: c for u, c in base.items() if c != (s.messages, 0, 0)}
        if bad:
            die(f"after the pre-load, (INBOX, Archive, Drafts) differ for {len(bad)} users, e.g. {list(bad.items())[:3]}")
        pid = server.pid
        st = status_fields(pid)
        rss_before = st.get("VmRSS", 0) / 1024
        log(f"server pid {pid}: VmRSS {rss_before:.1f} MiB after the pre-load; "
            f"IMAPS 127.0.0.1:{imaps_port}, MX 127.0.0.1:{smtp_port}")

        ctx = multiprocessing.get_context("fork")
        t0 = time.monotonic() + 1.0
        common = {"t0": t0, "duration": s.duration, "warmup": s.warmup, "ramp": s.ramp, "users": s.users,
                  "sessions": s.sessions, "port": imaps_port, "timeout": s.timeout, "think": s.think,
                  "relogin": s.relogin, "seed": s.seed, "weights": s.weights}
        clients = []
        for p in range(s.procs):
            a, b = ctx.Pipe()
            spec = dict(common, proc=p, indexes=list(range(p, s.sessions, s.procs)))
            proc = ctx.Process(target=client_proc, args=(b, spec), daemon=True)
            proc.start()
            clients.append([proc, a, None, {}])
        sa, sb = ctx.Pipe()
        smtp_proc = ctx.Process(target=smtp_stream, args=(sb, {
            "t0": t0, "end": t0 + s.duration, "rate": s.smtp_rate, "conns": s.smtp_conns, "port": smtp_port,
            "users": s.all_users, "seed": s.seed, "timeout": s.timeout}), daemon=True)
        smtp_proc.start()
        smtp_result = None
        jmap_conn, jmap_result = None, {}
        if s.jmap_sessions:
            ja, jb = ctx.Pipe()
            jmap = ctx.Process(target=jmap_proc, args=(jb, dict(
                common, port=http_port, jmap_sessions=s.jmap_sessions, jmap_users=s.jmap_users,
                first_user=s.users + 1)), daemon=True)
            jmap.start()
            jmap_conn, jmap_result = ja, None

        samples = []  # (t, rss KiB, cpu s, fds, threads, machine busy)
        printed = -1
        every = 60 if s.duration >= 300 else 10
        cpu_warm = cpu_end = None
        log("")
        log(f"{'t s':>5} {'sessions':>8} {'cmd/s':>7} {'errors':>6} {'EXISTS':>7} {'RSS MiB':>8} "
            f"{'CPU %':>6} {'fds':>6} {'thr':>4} {'load1':>6}")
        last_cmds, last_t, last_cpu = 0, t0, proc_cpu(pid)
        next_sample = t0
        while True:
            now = time.monotonic()
            for c in clients:
                while c[2] is None and c[1].poll():
                    try:
                        msg = c[1].recv()
                    except EOFError:
                        c[0].join(5)
                        die(f"client process {c[0].pid} exited without its results (exit code {c[0].exitcode})")
                    if msg.get("progress"):
                        c[3] = msg
                    else:
                        c[2] = msg
            if smtp_result is None and sa.poll():
                smtp_result = sa.recv()
            if jmap_result is None and jmap_conn.poll():
                jmap_result = jmap_conn.recv()
            if all(c[2] is not None for c in clients) and smtp_result is not None and jmap_result is not None:
                break
            if server.poll() is not None:
                die(f"pochta exited during the run with status {server.returncode}")
            if now >= next_sample and now <= t0 + s.duration + 1:
                t = now - t0
                stf = status_fields(pid)
                cpu = proc_cpu(pid)
                samples.append((t, stf.get("VmRSS", 0), cpu, open_files(pid), stf.get("Threads", 0), machine_busy()))
                if cpu_warm is None and t >= s.warmup:
                    cpu_warm = (t, cpu, machine_busy(), cpu_now(), time.monotonic())
                if cpu_warm is not None:
                    cpu_end = (t, cpu, machine_busy(), cpu_now(), time.monotonic())
                next_sample += s.sample
                if int(t // every) > printed:
                    printed = int(t // every)
                    cmds = sum(c[3].get("commands", 0) for c in clients)
                    errs = sum(c[3].get("errors", 0) for c in clients)
                    act = sum(c[3].get("active", 0) for c in clients)
                    ex = sum(c[3].get("exists_seen", 0) for c in clients)
                    dt = max(1e-6, now - last_t)
                    log(f"{t:>5.0f} {act:>8} {(cmds - last_cmds) / dt:>7.0f} {errs:>6} {ex:>7} "
                        f"{stf.get('VmRSS', 0) / 1024:>8.1f} {100 * (cpu - last_cpu) / dt:>6.0f} "
                        f"{samples[-1][3]:>6} {samples[-1][4]:>4} {os.getloadavg()[0]:>6.2f}")
                    last_cmds, last_t, last_cpu = cmds, now, cpu
            if now > t0 + s.duration + 4 * s.timeout + 120:
                die("the clients did not finish")
            time.sleep(0.2)
        load_end = os.getloadavg()
        time.sleep(5)
        rss_closed = status_fields(pid).get("VmRSS", 0) / 1024
        fds_closed = open_files(pid)
        rss_trimmed = None
        if s.trim and shutil.which("gdb"):
            # Freed memory glibc keeps (not a leak) goes back to the system; what stays is live.
            subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
                           capture_output=True, timeout=120)
            time.sleep(1)
            rss_trimmed = status_fields(pid).get("VmRSS", 0) / 1024
        for c in clients:
            c[0].join(10)
        smtp_proc.join(10)

        # ------------------------------------------------------------ results
        crashed = [c[2]["crash"] for c in clients if "crash" in c[2]]
        if crashed:
            die(f"a client process crashed: {crashed[0]}")
        steady, early, minute = collections.defaultdict(list), collections.defaultdict(list), collections.defaultdict(list)
        final = collections.defaultdict(list)
        errors, n_errors, commands, exists_seen, races, client_cpu = [], 0, 0, 0, 0, 0.0
        for c in clients:
            r = c[2]
            for k, v in r["steady"].items():
                steady[k] += v
            for k, v in r["early"].items():
                early[k] += v
            for k, v in r["minute"].items():
                minute[k] += v
            for k, v in r["final"].items():
                final[k] += v
            errors += r["errors"]
            n_errors += r["n_errors"]
            commands += r["commands"]
            exists_seen += r["exists_seen"]
            races += r.get("races", 0)
            client_cpu += r["cpu"]
        if "crash" in jmap_result:
            die(f"the JMAP client process crashed: {jmap_result['crash']}")
        for k, v in jmap_result.get("steady", {}).items():
            steady[k] += v
        for k, v in jmap_result.get("early", {}).items():
            early[k] += v
        errors += jmap_result.get("errors", [])
        n_errors += jmap_result.get("n_errors", 0)
        smtp_lat = smtp_result["lat"]
        for t, d in smtp_lat:
            (steady if t >= s.warmup else early)["SMTP"].append(d)
        n_errors += len(smtp_result["errors"])
        errors += smtp_result["errors"]
        delivered = smtp_result["delivered"]
        n_delivered = sum(delivered.values())

        log("")
        steady_secs = s.duration - s.warmup
        n_steady = sum(len(v) for k, v in steady.items() if is_imap(k))
        log(f"latency after the warm-up ({s.warmup:.0f}..{s.duration:.0f} s; {n_steady} IMAP commands, "
            f"{n_steady / steady_secs:.0f}/s):")
        log(f"{'command':<14} {'count':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>9}")
        for k in ORDER + tuple(sorted(k for k in set(steady) - set(ORDER) if is_imap(k))):
            if steady.get(k):
                log(lat_row(k, steady[k]))
        log(lat_row("all IMAP", [x for k, v in steady.items() if is_imap(k) for x in v]))
        jmap_keys = sorted(k for k in steady if k.startswith("JMAP "))
        for k in jmap_keys:
            log(lat_row(k, steady[k]))
        if jmap_keys:
            log(lat_row("all JMAP", [x for k in jmap_keys for x in steady[k]]))
        if steady.get("SMTP"):
            log(lat_row("SMTP message", steady["SMTP"]))
        if early:
            log(f"during the warm-up (0..{s.warmup:.0f} s, logins of the ramp): " + "; ".join(
                f"{k} n={len(v)} p50 {1e3 * pct(sorted(v), 50):.1f} p99 {1e3 * pct(sorted(v), 99):.1f} ms"
                for k, v in sorted(early.items()) if k in ("CONNECT", "LOGIN", "SELECT")))
        if final:
            log(f"after {s.duration:.0f} s, every session's last command at once (not in the figures above): " + "; ".join(
                f"{k} n={len(v)} p50 {1e3 * pct(sorted(v), 50):.1f} p99 {1e3 * pct(sorted(v), 99):.1f} ms"
                for k, v in sorted(final.items())))
        log("")
        log("per minute (all IMAP commands):")
        log(f"{'minute':>6} {'count':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>9} {'RSS MiB':>8}")
        for m in sorted(minute):
            xs = sorted(minute[m])
            rs = [r for t, r, *_ in samples if m * 60 <= t < (m + 1) * 60]
            log(f"{m:>6} {len(xs):>8} {1e3 * pct(xs, 50):>8.2f} {1e3 * pct(xs, 99):>8.2f} {1e3 * xs[-1]:>9.1f} "
                f"{(rs[-1] / 1024 if rs else float('nan')):>8.1f}")

        # memory
        post = [(t, r / 1024) for t, r, *_ in samples if t >= s.warmup]
        warm_rss = post[0][1] if post else float("nan")
        end_rss = post[-1][1] if post else float("nan")
        half = [p for p in post if p[0] >= (s.warmup + s.duration) / 2]
        growth = 100 * (end_rss - warm_rss) / warm_rss if post else float("nan")
        hwm = status_fields(pid).get("VmHWM", 0) / 1024
        fds_warm = next((f for t, _, _, f, *_ in samples if t >= s.warmup), 0)
        fds_end = samples[-1][3] if samples else 0
        thr = [x[4] for x in samples if x[0] >= s.warmup]
        flat = growth <= s.leak_tolerance
        log("")
        log(f"server RSS: {warm_rss:.1f} MiB at {post[0][0] if post else 0:.0f} s (end of the warm-up), "
            f"{end_rss:.1f} MiB at the end ({growth:+.1f} %); slope after the warm-up {slope(post):+.2f} MiB/min, "
            f"over its second half {slope(half):+.2f} MiB/min; min..max after the warm-up "
            f"{min(v for _, v in post):.1f}..{max(v for _, v in post):.1f} MiB; VmHWM {hwm:.1f} MiB: "
            f"{'flat' if flat else 'GROWING'} (tolerance {s.leak_tolerance:g} %)")
        log(f"server RSS {rss_before:.1f} MiB before the load, {rss_closed:.1f} MiB 5 s after every session "
            f"logged out; open files {fds_closed} then" + (
                f"; {rss_trimmed:.1f} MiB after malloc_trim(0) (TRIM=1)" if rss_trimmed is not None else ""))
        log(f"server open files {fds_warm} at the end of the warm-up, {fds_end} at the end; threads "
            f"{min(thr) if thr else 0}..{max(thr) if thr else 0}")
        if not flat:
            failures.append(f"RSS grew {growth:.1f} % after the warm-up (tolerance {s.leak_tolerance:g} %)")
        if cpu_warm and cpu_end:
            wall = cpu_end[0] - cpu_warm[0]
            srv = cpu_end[1] - cpu_warm[1]
            mach = cpu_end[2][0] - cpu_warm[2][0]
            n_cmd_window = sum(len(v) for v in steady.values())
            log(f"server CPU after the warm-up: {srv:.1f} s in {wall:.0f} s = {srv / wall:.2f} CPUs "
                f"({1e3 * srv / max(1, n_cmd_window):.2f} ms per IMAP command, JMAP request or SMTP message); whole machine "
                f"{mach / wall:.2f} CPUs busy of {os.cpu_count()}, steal {(cpu_end[2][1] - cpu_warm[2][1]) / wall:.2f}")
        total_cpu = samples[-1][2] - samples[0][2] if samples else 0
        log(f"server CPU over the whole run {total_cpu:.1f} s; client processes {client_cpu:.1f} s, "
            f"SMTP stream {smtp_result['cpu']:.1f} s")
        if s.jmap_sessions:
            log(f"JMAP: {jmap_result['commands']} requests, {jmap_result['created_seen']} new emails seen by "
                f"Email/changes; client CPU {jmap_result['cpu']:.1f} s")
        log(f"SMTP stream: {n_delivered} messages delivered ({n_delivered / s.duration:.1f}/s, "
            f"most late {smtp_result['late']:.2f} s); IMAP: {commands} commands, "
            f"{exists_seen} EXISTS seen by NOOP/IDLE, {races} FETCH answered [EXPUNGEISSUED] (another "
            f"session's MOVE in between)")
        log(f"load average at the end {' '.join(f'{x:.2f}' for x in load_end)}")
        log(f"errors: {n_errors}")
        if n_errors:
            kinds = collections.Counter((e[1], re.sub(r"\d+", "N", e[2])[:80]) for e in errors)
            for (cmd, text), n in kinds.most_common(10):
                log(f"  {n:>5} x {cmd}: {text}")
            for e in errors[:10]:
                log(f"  at {e[0]} s {e[1]}: {e[2]}")
            failures.append(f"{n_errors} errors")

        # ------------------------------------------------------------ verification
        end = mailbox_counts(s, imaps_port)
        wrong = []
        for u in range(1, s.all_users + 1):
            want = (s.messages + delivered.get(u, 0), 0, 0)
            if end[u] != want:
                wrong.append((u, end[u], want))
        if wrong:
            failures.append(f"mailbox counts differ for {len(wrong)} users (user, (INBOX, Archive, Drafts), expected): {wrong[:5]}")
            log(f"verification: (INBOX, Archive, Drafts) WRONG for {len(wrong)} users, e.g. {wrong[:5]}")
        else:
            log(f"verification: every INBOX holds its {s.messages} + delivered messages "
                f"({sum(v[0] for v in end.values())} in all), Archive and Drafts empty")
        stop_pochta(server, timeout=90)
        r = subprocess.run([str(binary), "--config", str(server.cfg), "check"], capture_output=True, text=True)
        tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
        log(f"pochta check: exit {r.returncode}: {' | '.join(tail)}")
        if r.returncode != 0:
            failures.append(f"pochta check exited {r.returncode}")
        bad_lines = []
        with open(server.cfg.parent / "server.log", errors="replace") as f:
            for line in f:
                if " ERROR " in line or "panicked" in line:
                    bad_lines.append(line.rstrip())
        warns = 0
        with open(server.cfg.parent / "server.log", errors="replace") as f:
            warns = sum(1 for line in f if " WARN " in line)
        log(f"server log: {len(bad_lines)} ERROR/panic lines, {warns} WARN lines")
        for line in bad_lines[:5]:
            log(f"  {line[:300]}")
        if bad_lines:
            failures.append(f"{len(bad_lines)} ERROR/panic lines in the server log")
    finally:
        stop_pochta(server, timeout=90)
        if not s.keep:
            shutil.rmtree(s.bench_dir / "server" / "data", ignore_errors=True)
    log("")
    if failures:
        log("FAILED: " + "; ".join(failures))
        return 1
    log("passed: no error, RSS flat, counts match, pochta check clean")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"load-soak: {e}")
        sys.exit(2)
