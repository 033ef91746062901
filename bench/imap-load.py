#!/usr/bin/env python3
"""IMAP benchmark: pochta's IMAP server against Dovecot's (Maildir), three workloads.

Both servers hold the same messages, byte for byte (loaded into pochta with pipelined
APPENDs over IMAPS; the very same octets written as Maildir files, LF line ends and
`,S=`/`,W=` sizes in the name, into the users' Maildirs of Dovecot from the reference
stack, in pochta's UID order, with pochta's INTERNALDATE as mtime). Loading is not
measured. Every message is generated (deterministically) to look like real mail: distinct
senders, subjects and dates, replies with In-Reply-To/References, a quarter
multipart/alternative, a fifth with a base64 attachment, 1-8 KiB.

  mixed  SESSIONS concurrent clients (one process each, each its own user with
         MIXED_MESSAGES messages), each looping for DURATION seconds over whole sessions:
         connect (IMAPS, or STARTTLS with TLS=starttls), LOGIN, SELECT INBOX,
         UID FETCH of 20 messages (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]),
         UID FETCH BODY.PEEK[] of 3, UID STORE +FLAGS (\\Flagged) and -FLAGS of one, APPEND
         of a new message, UID STORE +FLAGS.SILENT (\\Deleted) and UID EXPUNGE of it (so the
         mailbox stays as it was), LOGOUT: 10 commands per session. Commands/s and
         sessions/s per server, ratio pochta/dovecot (target >= 2).
  big    one mailbox of BIG_COUNT messages (user100). On one connection per server, in
         turn: SELECT, UID FETCH 1:* (FLAGS), FETCH 1:50 (ENVELOPE BODYSTRUCTURE), UID FETCH
         of one BODY.PEEK[], UID SEARCH HEADER SUBJECT, UID SEARCH FROM, SORT (DATE) UTF-8 ALL,
         STATUS, APPEND, UID STORE +FLAGS.SILENT (\\Deleted) and UID EXPUNGE of the appended
         message. A warm-up pass first (Dovecot builds its index and cache files on first
         access: the cold figures are printed apart), then BIG_RUNS passes alternating which
         server goes first; median per operation and the ratio (target: none slower than
         Dovecot, i.e. every ratio pochta/dovecot <= 1).
  idle   IDLE_COUNT connections held open, spread over IDLE_USERS users: IMAPS, LOGIN,
         SELECT INBOX, IDLE. The server's memory before and after (pochta: its process;
         Dovecot: the sum over master, imap-login, imap, auth, ... processes), per
         connection; target pochta <= 1/10 of Dovecot. Summed RSS counts shared pages
         (libraries, Dovecot's mmap'ed config) once per process; summed PSS divides them
         among the processes that share them: both are printed.

Every reply is checked lightly (counts of FETCH responses, literal sizes, EXISTS,
APPENDUID, EXPUNGE, SEARCH and SORT results against those computed from the generated
messages), so that a broken server cannot win; any difference stops the benchmark.

Run from anywhere inside the repository, as root (the reference stack installs Debian
packages and starts Postfix and Dovecot on 127.0.0.2):

    python3 bench/imap-load.py                          # all three workloads
    WORKLOADS=mixed DURATION=10 MIXED_RUNS=1 python3 bench/imap-load.py   # a quick look
    WORKLOADS=big BIG_COUNT=20000 python3 bench/imap-load.py
    WORKLOADS=idle IDLE_COUNT=2000 python3 bench/imap-load.py

Settings (environment variable, or the option of the same name in lower case):
  WORKLOADS=mixed,big,idle   which workloads to run
  SESSIONS=50          mixed: concurrent sessions, one client process and one user each
                       (user1..userSESSIONS); at most 99
  MIXED_MESSAGES=200   mixed and idle: messages in each of those users' INBOX
  DURATION=25          mixed: seconds per measured run (sessions started before the end
                       are finished)
  MIXED_RUNS=2         mixed: measured runs per server, alternating which goes first
  WARMUP_SECONDS=4     mixed: a short unmeasured run per server first
  BIG_COUNT=100000     big: messages in user100's INBOX
  BIG_RUNS=7           big: measured passes per server (the median is compared)
  IDLE_COUNT=10000     idle: connections held open per server
  IDLE_USERS=50        idle: users they log in as (round robin; their INBOX has
                       MIXED_MESSAGES messages)
  IDLE_PROCS=4         idle: client processes (asyncio, IDLE_COUNT/IDLE_PROCS connections each)
  IDLE_INFLIGHT=64     idle: connection set-ups in progress at once per client process
  IDLE_SETTLE=5        idle: seconds between the last IDLE and the memory sample
  DOVECOT_LOGIN=performance   idle: Dovecot's login processes. performance: a few
                       imap-login processes proxy all connections (service_count = 0,
                       Dovecot's advice for many users, the leaner setup); security: the
                       reference stack's (Debian's) default, one imap-login process per
                       connection (about 1.3 MiB more per connection: 10 000 connections
                       need some 22 GiB). Either way one imap process per connection.
  TLS=implicit         implicit: the IMAPS port; starttls: STARTTLS on the IMAP port
                       (mixed; big and idle always use IMAPS)
  CERT=stack           stack: pochta serves the reference stack's certificate (RSA 2048,
                       the one Dovecot serves: the same handshake cost); own: pochta's
                       self-signed one (ECDSA P-256)
  LOAD_CONNS=8         connections (processes) that APPEND the messages into pochta
  TIMEOUT=180          socket timeout of the clients, seconds
  REFERENCE_STACK      path of the reference-stack script
                       (default: ../shared/peers/reference-stack next to the repository)
  RS_IMAP=12143 ...    the reference stack's ports; this benchmark moves them all (RS_SMTP
                       12525, RS_SUBMISSION 12587, RS_SUBMISSIONS 12465, RS_IMAP 12143,
                       RS_IMAPS 12993, RS_POP3 12110, RS_POP3S 12995) off the stack's
                       defaults and off the other benchmarks' ports
  BENCH_DIR            work directory (default: target/bench-imap, on a disk)
  POCHTA_BIN           a pochta binary to use instead of building target/release/pochta
  POCHTA_PORTS=14143,14993   pochta's IMAP and IMAPS ports on 127.0.0.1
  KEEP=0               1: keep both servers' mail in BENCH_DIR afterwards
  PROFILE=             perf: `perf record --call-graph dwarf` of pochta during the
                       measured part of each workload (BENCH_DIR/perf-WORKLOAD.data); the
                       timings of such a run are not results
"""

import argparse
import asyncio
import base64
import calendar
import collections
import hashlib
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (the helpers the benchmarks share)
from benchlib import (  # noqa: E402
    REPO, BenchError, client_context, comm, cpu_now, die, env, kib_field, log, machine_cpu, pochta_binary,
    start_profiler, stop_pochta, stop_profiler, tree, tree_cpu, wait_port,
)

PASSWORD = "secret-pass-1"  # the reference stack's password for every user
BIG_USER = 100
RS_PORTS = {
    "RS_SMTP": "12525", "RS_SUBMISSION": "12587", "RS_SUBMISSIONS": "12465",
    "RS_IMAP": "12143", "RS_IMAPS": "12993", "RS_POP3": "12110", "RS_POP3S": "12995",
}
rs_env = partial(benchlib.rs_env, RS_PORTS)
rs_cmd = partial(benchlib.rs_cmd, ports=RS_PORTS, timeout=600)
ALL_WORKLOADS = ("mixed", "big", "idle")


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="See the module docstring (head -85 bench/imap-load.py) and bench/README.md.",
    )
    p.add_argument("--workloads", default=env("WORKLOADS", ",".join(ALL_WORKLOADS)))
    p.add_argument("--sessions", type=int, default=int(env("SESSIONS", "50")))
    p.add_argument("--mixed-messages", type=int, default=int(env("MIXED_MESSAGES", "200")))
    p.add_argument("--duration", type=float, default=float(env("DURATION", "25")))
    p.add_argument("--mixed-runs", type=int, default=int(env("MIXED_RUNS", "2")))
    p.add_argument("--warmup-seconds", type=float, default=float(env("WARMUP_SECONDS", "4")))
    p.add_argument("--big-count", type=int, default=int(env("BIG_COUNT", "100000")))
    p.add_argument("--big-runs", type=int, default=int(env("BIG_RUNS", "7")))
    p.add_argument("--idle-count", type=int, default=int(env("IDLE_COUNT", "10000")))
    p.add_argument("--idle-users", type=int, default=int(env("IDLE_USERS", "50")))
    p.add_argument("--idle-procs", type=int, default=int(env("IDLE_PROCS", "4")))
    p.add_argument("--idle-inflight", type=int, default=int(env("IDLE_INFLIGHT", "64")))
    p.add_argument("--idle-settle", type=float, default=float(env("IDLE_SETTLE", "5")))
    p.add_argument("--dovecot-login", choices=["performance", "security"], default=env("DOVECOT_LOGIN", "performance"))
    p.add_argument("--tls", choices=["implicit", "starttls"], default=env("TLS", "implicit"))
    p.add_argument("--cert", choices=["stack", "own"], default=env("CERT", "stack"))
    p.add_argument("--load-conns", type=int, default=int(env("LOAD_CONNS", "8")))
    p.add_argument("--timeout", type=float, default=float(env("TIMEOUT", "180")))
    p.add_argument(
        "--reference-stack",
        default=env("REFERENCE_STACK", str(REPO.parent / "shared" / "peers" / "reference-stack")),
    )
    p.add_argument("--bench-dir", default=env("BENCH_DIR", str(REPO / "target" / "bench-imap")))
    p.add_argument("--pochta-bin", default=env("POCHTA_BIN", ""))
    p.add_argument("--pochta-ports", default=env("POCHTA_PORTS", "14143,14993"))
    p.add_argument("--keep", type=int, default=int(env("KEEP", "0")))
    p.add_argument("--profile", choices=["", "perf"], default=env("PROFILE", ""))
    a = p.parse_args()
    a.workloads = [w.strip().lower() for w in a.workloads.split(",") if w.strip()]
    if not a.workloads or any(w not in ALL_WORKLOADS for w in a.workloads):
        p.error("WORKLOADS is a comma-separated list of mixed, big and idle")
    # Always in this order: idle reconfigures Dovecot for its connections.
    a.workloads = [w for w in ALL_WORKLOADS if w in a.workloads]
    if not 1 <= a.sessions <= 99:
        p.error("SESSIONS must be 1..99 (one user each; user100 holds the big mailbox)")
    if not 1 <= a.idle_users <= 99:
        p.error("IDLE_USERS must be 1..99")
    if a.mixed_messages < 30 or a.big_count < 100:
        p.error("MIXED_MESSAGES must be at least 30 and BIG_COUNT at least 100")
    if min(a.mixed_runs, a.big_runs, a.idle_count, a.idle_procs, a.idle_inflight, a.load_conns) < 1:
        p.error("run counts, IDLE_COUNT, IDLE_PROCS, IDLE_INFLIGHT and LOAD_CONNS must be at least 1")
    if a.duration <= 0:
        p.error("DURATION must be positive")
    try:
        a.imap_port, a.imaps_port = (int(x) for x in a.pochta_ports.split(","))
    except ValueError:
        p.error("POCHTA_PORTS is IMAP,IMAPS, e.g. 14143,14993")
    return a


# ---------------------------------------------------------------- memory of a process tree


def memory(root):
    """Memory of root's process tree: {"rss", "pss", "procs", "by": {comm: [n, rss, pss]}}, KiB."""
    by = collections.defaultdict(lambda: [0, 0, 0])
    rss = pss = n = 0
    for pid in tree(root):
        r = kib_field(f"/proc/{pid}/status", "VmRSS")
        s = kib_field(f"/proc/{pid}/smaps_rollup", "Pss")
        if r == 0 and s == 0:
            continue  # gone, or a kernel thread
        c = by[comm(pid)]
        c[0] += 1
        c[1] += r
        c[2] += s
        rss, pss, n = rss + r, pss + s, n + 1
    return {"rss": rss, "pss": pss, "procs": n, "by": dict(by)}


# ---------------------------------------------------------------- the messages

FIRST = ("Anna Boris Chen Dmitri Elena Farid Grace Hiroshi Ines Jonas Kateryna Liam Maya Nikolai "
         "Olga Pavel Quentin Rosa Sven Tatiana Ulrich Valentina Wei Xavier Yusuf Zoe Amara Bruno "
         "Camille Diego").split()
LAST = ("Ivanova Schmidt Tanaka Novak Garcia Kowalski Lindqvist Okafor Petrov Rossi Dubois Jensen "
        "Moreau Nakamura Fischer Horvat Silva Andersen Kuznetsov Weber Costa Berg Sato Lambert "
        "Nilsen Popescu Vargas Keller Ortiz Brandt").split()
DOMAINS = ("example.com mail.example.org corp.example.net lists.example.edu shop.example "
           "university.example dev.example.io news.example.co bank.example travel.example").split()
WORDS = ("meeting agenda quarterly budget invoice project deadline review draft proposal contract "
         "schedule update report release notes minutes travel booking order shipment delivery "
         "payment reminder account password security alert newsletter weekly summary team lunch "
         "offsite planning roadmap feedback survey results candidate interview offer welcome "
         "onboarding training session workshop conference talk slides paper submission deadline "
         "extension question answer issue ticket support outage incident postmortem backup "
         "migration server database cluster deploy build pipeline test failure patch version "
         "changelog license renewal subscription receipt statement tax holiday vacation birthday "
         "party dinner photos trip flight hotel visa documents signature approval request access "
         "permission calendar invitation call notes follow action items priority urgent hello "
         "thanks congratulations apology correction reminder garden kitchen bicycle concert "
         "library museum harbor mountain river forest winter spring summer autumn").split()
WORDS = sorted(set(WORDS))
LISTS = ("dev", "announce", "ops", "finance", "hr", "users")
TZ_MINUTES = (0, 60, 120, -300, -420, 330, 540, -180, 180, 600, -240, 0)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DATE_BASE = 1546300800  # 2019-01-01T00:00:00Z
# Search terms of the big workload: a subject word and a first name; neither is part of
# any other word, name, domain or list name, so "contains" is exact.
SUBJECT_TERM = "budget"
FROM_TERM = "olga"


def rfc2822_date(utc, tz_minutes):
    t = time.gmtime(utc + tz_minutes * 60)
    sign = "+" if tz_minutes >= 0 else "-"
    m = abs(tz_minutes)
    return (f"{DAYS[t.tm_wday]}, {t.tm_mday:02d} {MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{m // 60:02d}{m % 60:02d}")


def internal_date(utc):
    t = time.gmtime(utc)
    return f"{t.tm_mday:02d}-{MONTHS[t.tm_mon - 1]}-{t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def wrap(words, width=72):
    lines, cur = [], []
    n = 0
    for w in words:
        if n + len(w) + 1 > width and cur:
            lines.append(" ".join(cur))
            cur, n = [], 0
        cur.append(w)
        n += len(w) + 1
    if cur:
        lines.append(" ".join(cur))
    return lines


def make_message(kind, user, seq):
    """Message `seq` of `user` in set `kind` ("m": the mixed/idle users, "b": the big
    mailbox, "a": messages APPENDed during the runs). Returns (bytes with CRLF, info):
    info has the sent date (UTC), the Subject and From header values."""
    bid = f"{kind}-user{user}-{seq}"
    rng = random.Random(int.from_bytes(hashlib.sha256(bid.encode()).digest()[:8], "big"))
    first, last, dom = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    from_h = f"{first} {last} <{first.lower()}.{last.lower()}@{dom}>"
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
    subject = " ".join(words).capitalize()
    r = rng.random()
    reply = r < 0.3
    if reply:
        subject = "Re: " + subject
    elif r < 0.35:
        subject = "Fwd: " + subject
    elif r < 0.45:
        subject = f"[{rng.choice(LISTS)}] {subject}"
    if rng.random() < 0.3:
        subject += f" #{rng.randint(100, 99999)}"
    # Sent dates: one every 10 minutes with a jitter, some sent hours or days earlier
    # (late delivery). Distinct by construction: (seq*37) % 600 is distinct for seqs less
    # than 600 apart and the lateness is under 600 slots.
    utc = DATE_BASE + seq * 600 + (seq * 37) % 600
    if rng.random() < 0.1:
        utc -= 600 * rng.randint(6, 288)
    tz = rng.choice(TZ_MINUTES)
    mid = f"<{hashlib.sha1(bid.encode()).hexdigest()[:16]}.{seq}@{dom}>"
    head = [
        f"Return-Path: <{first.lower()}.{last.lower()}@{dom}>",
        f"Received: from mx.{dom} (mx.{dom} [192.0.2.{seq % 250 + 1}])\r\n\tby mail.example.test with ESMTPS id {seq:08x}\r\n\tfor <user{user}@example.test>; {rfc2822_date(utc + 30, 0)}",
        f"From: {from_h}",
        f"To: User {user} <user{user}@example.test>",
    ]
    if rng.random() < 0.2:
        head.append(f"Cc: {rng.choice(FIRST)} {rng.choice(LAST)} <cc{rng.randint(1, 999)}@{rng.choice(DOMAINS)}>")
    head += [f"Subject: {subject}", f"Date: {rfc2822_date(utc, tz)}", f"Message-ID: {mid}"]
    if reply and seq > 1:
        parent = f"<{hashlib.sha1(f'{kind}-user{user}-{seq - 1}'.encode()).hexdigest()[:16]}.{seq - 1}@{dom}>"
        head += [f"In-Reply-To: {parent}", f"References: {parent}"]
    head += [f"X-Bench-Id: {bid}", "MIME-Version: 1.0"]
    target = int(1024 * 2 ** rng.uniform(0.5, 3))  # 1.4 .. 8 KiB, log-uniform
    paras = []
    total = 0
    while total < target * 0.7:
        p = wrap([rng.choice(WORDS) for _ in range(rng.randint(20, 80))])
        paras.append(p)
        total += sum(len(x) + 2 for x in p) + 2
    text = "\r\n\r\n".join("\r\n".join(p) for p in paras) + "\r\n"
    kind_r = rng.random()
    if kind_r < 0.55:
        head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit"]
        body = text
    elif kind_r < 0.8:
        b = f"=_alt_{seq:x}_{rng.randint(0, 1 << 30):x}"
        html = "<html><body>\r\n" + "\r\n".join(f"<p>{' '.join(p)}</p>" for p in paras) + "\r\n</body></html>\r\n"
        head += [f'Content-Type: multipart/alternative; boundary="{b}"']
        body = (f"This is a multi-part message in MIME format.\r\n\r\n--{b}\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n"
                f"--{b}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{html}\r\n"
                f"--{b}--\r\n")
    else:
        b = f"=_mix_{seq:x}_{rng.randint(0, 1 << 30):x}"
        att = base64.encodebytes(rng.randbytes(rng.randint(400, 2500))).decode().replace("\n", "\r\n")
        name = f"{rng.choice(WORDS)}-{seq}.pdf"
        head += [f'Content-Type: multipart/mixed; boundary="{b}"']
        body = (f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n"
                f'--{b}\r\nContent-Type: application/pdf; name="{name}"\r\nContent-Disposition: attachment; filename="{name}"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{att}\r\n--{b}--\r\n")
    data = ("\r\n".join(head) + "\r\n\r\n" + body).encode()
    return data, {"utc": utc, "subject": subject, "from": from_h}


# ---------------------------------------------------------------- the IMAP client


class ImapError(Exception):
    pass


_CTX = None


class Imap:
    """A blocking IMAP client: one command at a time (or pipelined with send/wait).

    The tagged reply is found by searching for "\\n<tag> " in what was read: the tags
    (T00001, ...) do not occur in the generated messages, so literals need no parsing."""

    def __init__(self, host, port, tls, timeout):
        global _CTX
        if _CTX is None:
            _CTX = client_context()
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls == "implicit":
            s = _CTX.wrap_socket(s)
        self.sock = s
        self.buf = bytearray()
        self.n = 0
        self.commands = 0
        greeting = self.readline()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting: {greeting[:200]!r}")
        if tls == "starttls":
            self.command("STARTTLS")
            if self.buf:
                raise ImapError("data after the STARTTLS reply")
            self.sock = _CTX.wrap_socket(self.sock)

    def cipher(self):
        return f"{self.sock.version()} {self.sock.cipher()[0]}"

    def _recv(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ImapError("the server closed the connection")
        self.buf += chunk

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._recv()

    def tag(self):
        self.n += 1
        return f"T{self.n:05d}"

    def send(self, data):
        self.sock.sendall(data)

    def wait(self, tag):
        """Reads up to the tagged reply of `tag`: (status, tagged line, untagged data)."""
        t = tag.encode() + b" "
        pos = 0
        while True:
            if self.buf.startswith(t):
                i = 0
            else:
                i = self.buf.find(b"\n" + t, max(0, pos - len(t) - 1))
                if i >= 0:
                    i += 1
            if i >= 0:
                j = self.buf.find(b"\r\n", i)
                if j >= 0:
                    data = bytes(self.buf[:i])
                    line = bytes(self.buf[i:j])
                    del self.buf[: j + 2]
                    self.commands += 1
                    return line.split(b" ", 2)[1].decode("latin-1"), line, data
            else:
                pos = len(self.buf)
            self._recv()

    def command(self, text, ok=True):
        tag = self.tag()
        self.send(f"{tag} {text}\r\n".encode())
        status, line, data = self.wait(tag)
        if ok and status != "OK":
            raise ImapError(f"{text[:60]}: {line[:300].decode('latin-1')}")
        return line, data

    def send_append(self, msg, flags="", date=None):
        """Sends an APPEND to INBOX with a non-synchronizing literal (LITERAL+); returns its tag."""
        tag = self.tag()
        parts = [tag, "APPEND INBOX"]
        if flags:
            parts.append(f"({flags})")
        if date:
            parts.append(f'"{date}"')
        parts.append(f"{{{len(msg)}+}}")
        self.send(" ".join(parts).encode() + b"\r\n" + msg + b"\r\n")
        return tag

    def append_uid(self, tag):
        status, line, _ = self.wait(tag)
        m = re.search(rb"\[APPENDUID \d+ (\d+)\]", line)
        if status != "OK" or not m:
            raise ImapError(f"APPEND: {line[:300].decode('latin-1')}")
        return int(m.group(1))

    def login(self, user):
        self.command(f'LOGIN "{user}" "{PASSWORD}"')

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


FETCH_RE = re.compile(rb"\* \d+ FETCH \(")
UID_RE = re.compile(rb"\bUID (\d+)")
SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")
IDATE_RE = re.compile(rb'INTERNALDATE "([^"]+)"')


IDATE_PARTS = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")


def parse_idate(s):
    """An INTERNALDATE ("dd-Mon-yyyy hh:mm:ss +zzzz", day maybe space-padded) as a Unix time."""
    m = IDATE_PARTS.search(s)
    if not m:
        raise ImapError(f"bad INTERNALDATE {s!r}")
    d, mon, y, hh, mm, ss, sign, zh, zm = m.groups()
    t = calendar.timegm((int(y), MONTHS.index(mon.decode().capitalize()) + 1, int(d), int(hh), int(mm), int(ss), 0, 0, 0))
    off = (int(zh) * 60 + int(zm)) * 60
    return t - off if sign == b"+" else t + off


def numbers(data, word):
    """The numbers of the `* SEARCH ...` or `* SORT ...` response in `data`."""
    m = re.search(rb"\* " + word + rb"([ 0-9]*)\r\n", data)
    if not m:
        raise ImapError(f"no {word.decode()} response in {data[:200]!r}")
    return [int(x) for x in m.group(1).split()]


# ---------------------------------------------------------------- loading


def load_job(job):
    """One loading connection: APPENDs messages `seqs` of `user` into pochta's INBOX
    (pipelined, LITERAL+) and writes each, with LF line ends, as a file in Dovecot's
    Maildir tmp/. Returns [(seq, uid, size, lf size, internal date, info)]."""
    try:
        im = Imap("127.0.0.1", job["port"], "implicit", job["timeout"])
        im.login(f"user{job['user']}@example.test")
        pending = collections.deque()
        out = []
        tmp = os.path.join(job["maildir"], "tmp")
        for seq in job["seqs"]:
            msg, info = make_message(job["kind"], job["user"], seq)
            idate = info["utc"] + 30
            tag = im.send_append(msg, date=internal_date(idate))
            lf = msg.replace(b"\r\n", b"\n")
            path = os.path.join(tmp, f"bench-{seq}")
            with open(path, "wb") as f:
                f.write(lf)
            os.chown(path, job["uid"], job["gid"])
            os.chmod(path, 0o600)
            pending.append((tag, seq, len(msg), len(lf), idate, info))
            if len(pending) >= 32:
                t, *rest = pending.popleft()
                out.append((rest[0], im.append_uid(t), *rest[1:]))
        while pending:
            t, *rest = pending.popleft()
            out.append((rest[0], im.append_uid(t), *rest[1:]))
        im.command("LOGOUT")
        im.close()
        return out
    except Exception as e:
        return f"user{job['user']}: {type(e).__name__}: {e}"


def load_mailboxes(a, dovecot, plan):
    """plan: [(kind, user, count)]. Loads them into pochta (APPEND) and Dovecot (Maildir
    files in pochta's UID order). Returns {user: mailbox facts} (uids in order, sizes,
    sent dates, subjects, senders)."""
    jobs = []
    for kind, user, count in plan:
        seqs = list(range(1, count + 1))
        parts = max(1, min(a.load_conns, count // 2000))
        for k in range(parts):
            jobs.append({
                "port": a.imaps_port, "timeout": a.timeout, "user": user, "kind": kind,
                "seqs": seqs[k::parts], "maildir": dovecot["maildirs"][user],
                "uid": dovecot["uid"], "gid": dovecot["gid"],
            })
    t0 = time.monotonic()
    results = collections.defaultdict(list)
    ctx = multiprocessing.get_context("fork")
    # close() + join(), not the context manager: its terminate() can hang for good
    # when a worker is stopped while it holds the task queue's lock (seen here once).
    pool = ctx.Pool(a.load_conns)
    try:
        answers = list(pool.imap(load_job, jobs))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    pool.join()
    for job, res in zip(jobs, answers):
        if isinstance(res, str):
            die(f"loading pochta failed: {res}")
        results[job["user"]].extend(res)
    t_pochta = time.monotonic() - t0
    boxes = {}
    for kind, user, count in plan:
        recs = sorted(results[user], key=lambda r: r[1])  # by pochta's UID
        if len(recs) != count or len({r[1] for r in recs}) != count:
            die(f"user{user}: {len(recs)} APPENDs answered, {count} sent")
        md = dovecot["maildirs"][user]
        for seq, uid, size, lfsize, idate, _ in recs:
            # Dovecot gives new files UIDs in the order of the time in their names.
            name = f"{1600000000 + uid}.M{uid}P{seq}Q1.bench,S={lfsize},W={size}:2,"
            dst = os.path.join(md, "cur", name)
            os.rename(os.path.join(md, "tmp", f"bench-{seq}"), dst)
            os.utime(dst, (idate, idate))
        boxes[user] = {
            "uids": [r[1] for r in recs], "sizes": [r[2] for r in recs], "idates": [r[4] for r in recs],
            "utc": [r[5]["utc"] for r in recs], "subjects": [r[5]["subject"] for r in recs],
            "froms": [r[5]["from"] for r in recs], "kind": kind, "seqs": [r[0] for r in recs],
        }
    total = sum(c for _, _, c in plan)
    log(f"  loaded {total} messages into pochta with APPEND over {min(a.load_conns, len(jobs))} connections "
        f"in {t_pochta:.1f} s, and the same octets into Dovecot's Maildirs ({time.monotonic() - t0:.1f} s in all; not measured)")
    return boxes


def verify_mailbox(srv, user, box, a, label):
    """Both servers must list the same UIDs, sizes and INTERNALDATEs as loaded; a few
    messages are compared octet for octet with the generated ones. Returns the time of
    the first SELECT (cold for Dovecot: it builds its index)."""
    im = Imap(srv["host"], srv["imaps"], "implicit", a.timeout)
    im.login(f"user{user}@example.test")
    t = time.monotonic()
    _, data = im.command("SELECT INBOX")
    t_select = time.monotonic() - t
    n = len(box["uids"])
    if b"* %d EXISTS" % n not in data:
        die(f"{label}: SELECT INBOX of user{user} does not say {n} EXISTS: {data[:300]!r}")
    _, data = im.command("UID FETCH 1:* (RFC822.SIZE INTERNALDATE)")
    got = []
    for line in data.split(b"\r\n"):
        if line.startswith(b"* "):
            u, s, d = UID_RE.search(line), SIZE_RE.search(line), IDATE_RE.search(line)
            if not (u and s and d):
                die(f"{label}: unexpected FETCH response {line[:200]!r}")
            got.append((int(u.group(1)), int(s.group(1)), parse_idate(d.group(1))))
    want = list(zip(box["uids"], box["sizes"], box["idates"]))
    if got != want:
        bad = next((g, w) for g, w in zip(got + [None] * n, want) if g != w)
        die(f"{label}: user{user}'s INBOX is not as loaded ({len(got)} messages listed, {n} loaded); "
            f"first difference (uid, size, internaldate): got {bad[0]}, loaded {bad[1]}")
    for k in sorted({0, n // 2, n - 1}):
        uid = box["uids"][k]
        _, data = im.command(f"UID FETCH {uid} BODY.PEEK[]")
        msg, _ = make_message(box["kind"], user, box["seqs"][k])
        head = b"{%d}\r\n" % len(msg)
        i = data.find(head)
        if i < 0 or data[i + len(head) : i + len(head) + len(msg)] != msg:
            die(f"{label}: message uid {uid} of user{user} is not the one loaded")
    im.command("LOGOUT")
    im.close()
    return t_select


# ---------------------------------------------------------------- pochta


def start_pochta(a, binary, work, users, dovecot, http=""):
    """Starts pochta with a fresh data directory and `users`; `http` is the address of
    its JMAP listener ("" for none: this benchmark does not use it)."""
    d = work / "pochta"
    shutil.rmtree(d, ignore_errors=True)
    (d / "data").mkdir(parents=True)
    cfg = d / "pochta.toml"
    conns = max(5000, a.idle_count + 2000)
    tls = ""
    if a.cert == "stack":
        tls = f'[tls]\ncert = "{dovecot["dir"] / "dc" / "cert.pem"}"\nkey = "{dovecot["dir"] / "dc" / "key.pem"}"\n'
    cfg.write_text(
        f"""hostname = "mail.bench.example"
data_dir = "{d / 'data'}"
domains = ["example.test"]

[listen]
smtp = ""
submission = ""
submissions = ""
imap = "127.0.0.1:{a.imap_port}"
imaps = "127.0.0.1:{a.imaps_port}"
pop3 = ""
pop3s = ""
http = "{http}"

{tls}
[limits]
connections_per_ip = {conns}
connections = {conns}

[log]
level = "info"
"""
    )
    for u in users:
        r = subprocess.run(
            [str(binary), "--config", str(cfg), "user", "add", f"user{u}@example.test", "--password-stdin"],
            input=PASSWORD + "\n", capture_output=True, text=True,
        )
        if r.returncode != 0:
            die(f"pochta user add failed: {r.stderr.strip()}")
    return launch_pochta(a, binary, cfg)


def launch_pochta(a, binary, cfg):
    logf = open(cfg.parent / "server.log", "a")
    server = subprocess.Popen(
        [str(binary), "--config", str(cfg), "serve"], stdout=logf, stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": "info"},
    )
    server.logfile = logf
    wait_port("127.0.0.1", a.imaps_port, proc=server)
    wait_port("127.0.0.1", a.imap_port, proc=server)
    return server


# ---------------------------------------------------------------- dovecot


def doveconf(d, *keys):
    r = subprocess.run(["doveconf", "-c", str(d / "dc" / "dovecot.conf"), *keys], capture_output=True, text=True)
    return r.stdout.strip()


def start_dovecot(a, work, users):
    d = work / "dovecot"
    rs_cmd(a, "stop", str(d))
    shutil.rmtree(d, ignore_errors=True)
    ports = dict(line.split("=", 1) for line in rs_cmd(a, "start", str(d)).splitlines() if "=" in line)
    host = ports["host"]
    pidfile = d / "dc" / "run" / "master.pid"
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    else:
        die(f"Dovecot did not start: no {pidfile} (see {d / 'dc' / 'log'})")
    master = int(pidfile.read_text().strip())
    st = os.stat(d / "mail")
    uid, gid = st.st_uid, st.st_gid
    maildirs = {}
    dom = d / "mail" / "example.test"
    dom.mkdir(mode=0o700, exist_ok=True)
    os.chown(dom, uid, gid)
    for u in users:
        md = dom / f"user{u}"
        for sub in ("", "cur", "new", "tmp"):
            p = md / sub
            p.mkdir(mode=0o700, exist_ok=True)
            os.chown(p, uid, gid)
        maildirs[u] = str(md)
    wait_port(host, int(ports["imaps"]))
    return {
        "dir": d, "host": host, "imap": int(ports["imap"]), "imaps": int(ports["imaps"]),
        "master": master, "uid": uid, "gid": gid, "maildirs": maildirs,
    }


def dovecot_limits(a, dovecot):
    """Configures Dovecot for IDLE_COUNT connections (appended to the stack's
    dovecot.conf, then `doveadm reload`; the idle workload runs last).

    One imap process per connection in both login modes (Dovecot's imap service keeps
    client_limit = 1). DOVECOT_LOGIN=performance: Dovecot's "high-performance" login
    mode, a few long-lived imap-login processes (service_count = 0) each proxying the TLS
    of many connections; security: the stack's default (Debian's), one imap-login
    process per connection (service_count = 1), which about doubles Dovecot's memory.
    Returns (the stack's limits before, what was changed)."""
    d = dovecot["dir"]
    need = a.idle_count + 500

    def num(key):
        try:
            return int(doveconf(d, "-h", key).split()[0])
        except (IndexError, ValueError):
            return 0

    cur = {
        "imap-login service_count": num("service/imap-login/service_count"),
        "imap-login process_limit": num("service/imap-login/process_limit"),
        "imap process_limit": num("service/imap/process_limit"),
        "mail_max_userip_connections": num("mail_max_userip_connections"),
    }
    per_user = -(-a.idle_count // a.idle_users) + 10
    login = ("  service_count = 0\n  process_min_avail = %d\n  client_limit = %d\n  process_limit = %d\n"
             "  vsz_limit = 0\n" % (os.cpu_count() or 1, need, max(need, 100))
             if a.dovecot_login == "performance" else f"  process_limit = {need}\n")
    conf = d / "dc" / "dovecot.conf"
    with open(conf, "a") as f:
        f.write(f"\n# imap-load.py: room for {a.idle_count} idle connections, login mode {a.dovecot_login}\n"
                f"mail_max_userip_connections = {max(per_user, cur['mail_max_userip_connections'])}\n"
                f"service imap-login {{\n{login}}}\n"
                f"service imap {{\n  process_limit = {max(need, cur['imap process_limit'])}\n  client_limit = 1\n}}\n")
    r = subprocess.run(["doveadm", "-c", str(conf), "reload"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        die(f"doveadm reload failed: {r.stderr.strip()}")
    time.sleep(3)
    now = {
        "imap-login service_count": num("service/imap-login/service_count"),
        "imap-login process_limit": num("service/imap-login/process_limit"),
        "imap-login client_limit": num("service/imap-login/client_limit"),
        "imap process_limit": num("service/imap/process_limit"),
        "mail_max_userip_connections": num("mail_max_userip_connections"),
    }
    return cur, now


# ---------------------------------------------------------------- mixed


MIXED_OPS = ("connect", "LOGIN", "SELECT", "FETCH headers", "FETCH bodies", "STORE +Flagged",
             "STORE -Flagged", "APPEND", "STORE +Deleted", "UID EXPUNGE", "LOGOUT")


def mixed_session(spec, box, rng, lat):
    """One session as described in the module docstring; appends latencies to `lat`."""
    n = len(box["uids"])
    t = time.monotonic()
    im = Imap(spec["host"], spec["port"], spec["tls"], spec["timeout"])
    t1 = time.monotonic()
    lat["connect"].append(t1 - t)

    def op(name, text):
        t0 = time.monotonic()
        r = im.command(text)
        lat[name].append(time.monotonic() - t0)
        return r

    op("LOGIN", f'LOGIN "{spec["user"]}" "{PASSWORD}"')
    _, data = op("SELECT", "SELECT INBOX")
    if b"* %d EXISTS" % n not in data:
        raise ImapError(f"SELECT: not {n} EXISTS: {data[:300]!r}")
    k = rng.randrange(0, n - 20)
    _, data = op("FETCH headers", f"UID FETCH {box['uids'][k]}:{box['uids'][k + 19]} (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
    if len(FETCH_RE.findall(data)) != 20 or data.count(b"Subject: ") < 20:
        raise ImapError(f"FETCH headers: not 20 messages with a Subject: {data[:300]!r}")
    picks = sorted(rng.sample(range(n), 3))
    _, data = op("FETCH bodies", "UID FETCH " + ",".join(str(box["uids"][i]) for i in picks) + " BODY.PEEK[]")
    if len(FETCH_RE.findall(data)) != 3 or any(b"{%d}\r\n" % box["sizes"][i] not in data for i in picks):
        raise ImapError(f"FETCH bodies: not the 3 messages of the expected sizes: {data[:300]!r}")
    s = box["uids"][rng.randrange(n)]
    _, data = op("STORE +Flagged", f"UID STORE {s} +FLAGS (\\Flagged)")
    if b"\\Flagged" not in data:
        raise ImapError(f"STORE +FLAGS: no FETCH with \\Flagged: {data[:300]!r}")
    _, data = op("STORE -Flagged", f"UID STORE {s} -FLAGS (\\Flagged)")
    if not FETCH_RE.search(data):
        raise ImapError(f"STORE -FLAGS: no FETCH response: {data[:300]!r}")
    msg = spec["append"][rng.randrange(len(spec["append"]))]
    t0 = time.monotonic()
    uid = im.append_uid(im.send_append(msg))
    lat["APPEND"].append(time.monotonic() - t0)
    op("STORE +Deleted", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
    _, data = op("UID EXPUNGE", f"UID EXPUNGE {uid}")
    if b" EXPUNGE\r\n" not in data:
        raise ImapError(f"UID EXPUNGE: no EXPUNGE response: {data[:300]!r}")
    _, data = op("LOGOUT", "LOGOUT")
    if b"* BYE" not in data:
        raise ImapError("LOGOUT: no BYE")
    im.close()
    return im.commands


def mixed_client(conn, barrier, spec):
    res = {"user": spec["user"]}
    try:
        box = spec["box"]
        rng = random.Random(spec["seed"])
        spec["append"] = [make_message("a", spec["uno"], 1000 * spec["seed"] + i)[0] for i in range(8)]
        lat = collections.defaultdict(list)
        barrier.wait(timeout=120)
        t0, c0 = time.monotonic(), cpu_now()
        end = t0 + spec["duration"]
        sessions = commands = 0
        while time.monotonic() < end:
            commands += mixed_session(spec, box, rng, lat)
            sessions += 1
        res.update(sessions=sessions, commands=commands, t_end=time.monotonic(), cpu=cpu_now() - c0, lat=dict(lat))
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
    conn.send(res)
    conn.close()


def mixed_run(a, srv, boxes, users, duration, tag, seed):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(users) + 1)
    procs, pipes = [], []
    port = srv["imaps"] if a.tls == "implicit" else srv["imap"]
    for k, u in enumerate(users):
        spec = {"host": srv["host"], "port": port, "tls": a.tls, "user": f"user{u}@example.test", "uno": u,
                "timeout": a.timeout, "duration": duration, "box": boxes[u], "seed": seed * 1000 + k}
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=mixed_client, args=(tx, barrier, spec), daemon=True)
        p.start()
        tx.close()
        procs.append(p)
        pipes.append(rx)
    root = srv["root"]
    load1 = os.getloadavg()[0]
    cpu0, m0 = tree_cpu(root), machine_cpu()
    barrier.wait(timeout=120)
    t0 = time.monotonic()
    results = []
    deadline = t0 + duration + a.timeout + 60
    for rx in pipes:
        if rx.poll(max(1.0, deadline - time.monotonic())):
            try:
                results.append(rx.recv())
                continue
            except EOFError:
                pass
        results.append({"error": "a client process died or did not answer in time"})
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    errs = [r for r in results if "error" in r]
    if errs:
        die(f"{tag}: {errs[0].get('user', '')}: {errs[0]['error']} ({len(errs)} of {len(results)} sessions failed)")
    time.sleep(0.3)
    cpu1, m1 = tree_cpu(root), machine_cpu()
    secs = max(r["t_end"] for r in results) - t0
    sessions = sum(r["sessions"] for r in results)
    commands = sum(r["commands"] for r in results)
    client_cpu = sum(r["cpu"] for r in results)
    server_cpu = cpu1 - cpu0
    lat = collections.defaultdict(list)
    for r in results:
        for k, v in r["lat"].items():
            lat[k].extend(v)
    return {
        "server": srv["name"], "seconds": secs, "sessions": sessions, "commands": commands,
        "ops": commands / secs, "sps": sessions / secs, "server_cpu": server_cpu, "client_cpu": client_cpu,
        "other_cpu": max(0.0, (m1[0] - m0[0]) - server_cpu - client_cpu), "irq": m1[1] - m0[1],
        "steal": m1[2] - m0[2], "load1": load1,
        "lat": {k: statistics.median(v) for k, v in lat.items()},
        "p99": {k: sorted(v)[int(0.99 * (len(v) - 1))] for k, v in lat.items()},
    }


def workload_mixed(a, work, ps, ds, boxes):
    users = list(range(1, a.sessions + 1))
    log(f"mixed: {a.sessions} concurrent sessions (one process and one user each, {a.mixed_messages} messages "
        f"per INBOX), {'IMAPS' if a.tls == 'implicit' else 'STARTTLS'}, {10 if a.tls == 'implicit' else 11} commands per session; "
        f"{a.mixed_runs} run(s) of {a.duration:.0f} s per server after a {a.warmup_seconds:.0f} s warm-up")
    for srv in (ps, ds):
        mixed_run(a, srv, boxes, users, a.warmup_seconds, f"{srv['name']} mixed warm-up", 0)
    runs = []
    prof = None
    for run in range(1, a.mixed_runs + 1):
        for srv in ((ps, ds) if run % 2 else (ds, ps)):
            if srv is ps and run == 1:
                prof = start_profiler(a.profile, ps["root"], None, work / "perf-mixed.data")
            f = mixed_run(a, srv, boxes, users, a.duration, f"{srv['name']} mixed run {run}", run)
            if srv is ps and prof:
                stop_profiler(prof)
                prof = None
            f["run"] = run
            runs.append(f)
            log(f"  {f['server']:<8} run {run}: {f['sessions']} sessions, {f['commands']} commands in {f['seconds']:.2f} s = "
                f"{f['ops']:7.0f} commands/s, {f['sps']:6.1f} sessions/s; server CPU {f['server_cpu']:.1f} s = "
                f"{1e3 * f['server_cpu'] / f['sessions']:.2f} ms/session; client CPU {f['client_cpu']:.1f} s "
                f"({f['client_cpu'] / f['seconds']:.2f} CPUs); interrupts {f['irq']:.1f} s, other processes "
                f"{f['other_cpu']:.1f} s, steal {f['steal']:.1f} s; load {f['load1']:.2f}")
    return runs


BUSY = []  # (what, CPUs used by other processes)


def report_mixed(a, runs):
    for f in runs:
        BUSY.append((f"mixed {f['server']} run {f['run']}", f["other_cpu"] / f["seconds"]))
    out = []
    best, med = {}, {}
    for s in ("pochta", "dovecot"):
        rs = [f for f in runs if f["server"] == s]
        best[s] = max(rs, key=lambda f: f["ops"])
        med[s] = statistics.median(f["ops"] for f in rs)
    out.append(f"{'server':<8} {'sessions':>8} {'commands':>9} {'seconds':>8} {'commands/s':>11} {'sessions/s':>11} "
               f"{'median cmd/s':>13} {'CPU ms/session':>15} {'client CPUs':>12}  (best of {a.mixed_runs})")
    for s in ("pochta", "dovecot"):
        b = best[s]
        out.append(f"{s:<8} {b['sessions']:>8} {b['commands']:>9} {b['seconds']:>8.2f} {b['ops']:>11.0f} {b['sps']:>11.1f} "
                   f"{med[s]:>13.0f} {1e3 * b['server_cpu'] / b['sessions']:>15.2f} {b['client_cpu'] / b['seconds']:>12.2f}")
    ratio = best["pochta"]["ops"] / best["dovecot"]["ops"]
    ratio_med = med["pochta"] / med["dovecot"]
    cpu_ratio = (best["dovecot"]["server_cpu"] / best["dovecot"]["sessions"]) / max(
        1e-9, best["pochta"]["server_cpu"] / best["pochta"]["sessions"])
    out.append(f"ratio pochta/dovecot, mixed: {ratio:.2f} best, {ratio_med:.2f} median (commands/s; {best['pochta']['commands'] / best['pochta']['sessions']:.0f} commands per session; "
               f"target >= 2: {'met' if min(ratio, ratio_med) >= 2 else 'NOT met'}); server CPU per session dovecot/pochta {cpu_ratio:.2f}")
    out.append(f"  median latency per command, ms (best run; p99 in brackets):")
    out.append(f"  {'command':<16} {'pochta':>16} {'dovecot':>16}")
    for k in MIXED_OPS:
        p, d = best["pochta"], best["dovecot"]
        out.append(f"  {k:<16} {1e3 * p['lat'][k]:>7.2f} [{1e3 * p['p99'][k]:>6.1f}] {1e3 * d['lat'][k]:>7.2f} [{1e3 * d['p99'][k]:>6.1f}]")
    return out


# ---------------------------------------------------------------- big


BIG_OPS = ("SELECT", "UID FETCH 1:* FLAGS", "FETCH 1:50 ENV+BODYSTR", "UID FETCH 1 BODY[]",
           "UID SEARCH HEADER SUBJECT", "UID SEARCH FROM", "SORT (DATE)", "STATUS", "APPEND",
           "UID STORE +Deleted", "UID EXPUNGE")


class BigChecker:
    """What the big mailbox's replies must say, from the generated messages."""

    def __init__(self, box):
        self.box = box
        self.n = len(box["uids"])
        self.subject_hits = [u for u, s in zip(box["uids"], box["subjects"]) if SUBJECT_TERM in s.lower()]
        self.from_hits = [u for u, f in zip(box["uids"], box["froms"]) if FROM_TERM in f.lower()]
        order = sorted(range(self.n), key=lambda i: (box["utc"][i], i))
        self.sort_msns = [i + 1 for i in order]


def big_pass(im, chk, rng, appendmsg, label):
    """One pass of the big workload's operations on connection `im`: {op: seconds}."""
    n, box = chk.n, chk.box
    times = {}

    def op(name, text):
        t0 = time.monotonic()
        line, data = im.command(text)
        times[name] = time.monotonic() - t0
        return data

    def bad(what, data):
        die(f"{label}: {what}: {data[:300]!r}")

    data = op("SELECT", "SELECT INBOX")
    if b"* %d EXISTS" % n not in data:
        bad(f"SELECT does not say {n} EXISTS", data)
    data = op("UID FETCH 1:* FLAGS", "UID FETCH 1:* (FLAGS)")
    if len(FETCH_RE.findall(data)) != n:
        bad(f"UID FETCH 1:* (FLAGS) gave {len(FETCH_RE.findall(data))} responses, not {n}", data)
    data = op("FETCH 1:50 ENV+BODYSTR", "FETCH 1:50 (ENVELOPE BODYSTRUCTURE)")
    if len(FETCH_RE.findall(data)) != 50 or data.count(b"ENVELOPE (") != 50 or data.count(b"BODYSTRUCTURE (") != 50:
        bad("FETCH 1:50 (ENVELOPE BODYSTRUCTURE) did not give 50 of each", data)
    k = rng.randrange(n)
    data = op("UID FETCH 1 BODY[]", f"UID FETCH {box['uids'][k]} BODY.PEEK[]")
    if b"{%d}\r\n" % box["sizes"][k] not in data:
        bad(f"UID FETCH {box['uids'][k]} BODY.PEEK[] is not {box['sizes'][k]} octets", data)
    data = op("UID SEARCH HEADER SUBJECT", f'UID SEARCH HEADER SUBJECT "{SUBJECT_TERM}"')
    got = sorted(numbers(data, b"SEARCH"))
    if got != chk.subject_hits:
        die(f"{label}: UID SEARCH HEADER SUBJECT {SUBJECT_TERM}: {len(got)} UIDs, {len(chk.subject_hits)} expected "
            f"(first differences: {sorted(set(got) ^ set(chk.subject_hits))[:5]})")
    data = op("UID SEARCH FROM", f'UID SEARCH FROM "{FROM_TERM}"')
    got = sorted(numbers(data, b"SEARCH"))
    if got != chk.from_hits:
        die(f"{label}: UID SEARCH FROM {FROM_TERM}: {len(got)} UIDs, {len(chk.from_hits)} expected "
            f"(first differences: {sorted(set(got) ^ set(chk.from_hits))[:5]})")
    data = op("SORT (DATE)", "SORT (DATE) UTF-8 ALL")
    got = numbers(data, b"SORT")
    if got != chk.sort_msns:
        i = next((i for i, (x, y) in enumerate(zip(got, chk.sort_msns)) if x != y), min(len(got), n))
        die(f"{label}: SORT (DATE): {len(got)} numbers; first difference at position {i}: "
            f"{got[i:i + 3]} instead of {chk.sort_msns[i:i + 3]}")
    data = op("STATUS", "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
    if not re.search(rb"MESSAGES %d\b" % n, data):
        bad(f"STATUS does not say MESSAGES {n}", data)
    t0 = time.monotonic()
    uid = im.append_uid(im.send_append(appendmsg, flags="\\Seen"))
    times["APPEND"] = time.monotonic() - t0
    op("UID STORE +Deleted", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
    data = op("UID EXPUNGE", f"UID EXPUNGE {uid}")
    if b"* %d EXPUNGE" % (n + 1) not in data:
        bad(f"UID EXPUNGE {uid} did not expunge message {n + 1}", data)
    return times


def workload_big(a, work, ps, ds, box):
    n = len(box["uids"])
    chk = BigChecker(box)
    log(f"big: user{BIG_USER}'s INBOX of {n} messages ({sum(box['sizes']) / 1e6:.0f} MB); one IMAPS connection per "
        f"server; {a.big_runs} measured passes after a warm-up; SEARCH HEADER SUBJECT \"{SUBJECT_TERM}\" matches "
        f"{len(chk.subject_hits)}, SEARCH FROM \"{FROM_TERM}\" {len(chk.from_hits)}")
    cold = {}
    for srv in (ps, ds):
        cold[srv["name"]] = verify_mailbox(srv, BIG_USER, box, a, f"{srv['name']} big")
    log(f"  first SELECT after loading (cold; Dovecot then reads the Maildir and writes its index): "
        f"pochta {1e3 * cold['pochta']:.0f} ms, Dovecot {1e3 * cold['dovecot']:.0f} ms; UIDs, sizes and "
        f"INTERNALDATEs of all {n} messages identical in both, samples identical to the generated messages")
    conns = {}
    for srv in (ps, ds):
        im = Imap(srv["host"], srv["imaps"], "implicit", max(a.timeout, 600))
        im.login(f"user{BIG_USER}@example.test")
        conns[srv["name"]] = im
    appendmsgs = [make_message("a", BIG_USER, 900000 + i)[0] for i in range(4)]
    results = {"pochta": [], "dovecot": []}
    prof = None
    load1 = os.getloadavg()[0]
    cpu0, m0, self0, t0 = tree_cpu(ps["root"]) + tree_cpu(ds["root"]), machine_cpu(), cpu_now(), time.monotonic()
    try:
        for rep in range(a.big_runs + 1):
            order = ("pochta", "dovecot") if rep % 2 == 0 else ("dovecot", "pochta")
            for name in order:
                rng = random.Random(rep)
                if name == "pochta" and rep == 1:
                    prof = start_profiler(a.profile, ps["root"], None, work / "perf-big.data")
                t = big_pass(conns[name], chk, rng, appendmsgs[rep % 4], f"{name} big pass {rep}")
                if name == "pochta" and prof and rep == a.big_runs:
                    stop_profiler(prof)
                    prof = None
                if rep == 0:
                    log(f"  warm-up pass {name:<8}: " + ", ".join(f"{k} {1e3 * v:.0f}" for k, v in t.items()) + " ms")
                else:
                    results[name].append(t)
        cpu1, m1, self1 = tree_cpu(ps["root"]) + tree_cpu(ds["root"]), machine_cpu(), cpu_now()
        other = max(0.0, (m1[0] - m0[0]) - (cpu1 - cpu0) - (self1 - self0))
        BUSY.append(("big", other / (time.monotonic() - t0)))
        pm, dm = memory(ps["root"]), memory(ds["root"])
        imap = dm["by"].get("imap", [0, 0, 0])
        hwm = kib_field(f"/proc/{ps['root']}/status", "VmHWM")
        log(f"  memory after the passes: pochta VmRSS {pm['rss'] / 1024:.0f} MiB (VmHWM {hwm / 1024:.0f} MiB); "
            f"Dovecot {dm['rss'] / 1024:.0f} MiB RSS over {dm['procs']} processes, of which the imap process(es) {imap[1] / 1024:.0f} MiB")
        log(f"  measured passes: {time.monotonic() - t0:.0f} s; other processes used {other:.1f} s of CPU "
            f"({other / (time.monotonic() - t0):.2f} CPUs), interrupts {m1[1] - m0[1]:.1f} s, steal {m1[2] - m0[2]:.1f} s; "
            f"load {load1:.2f} before")
    finally:
        if prof:
            stop_profiler(prof)
        for im in conns.values():
            try:
                im.command("LOGOUT")
            except Exception:
                pass
            im.close()
    return results


def report_big(a, results):
    out = [f"{'operation (big mailbox)':<28} {'pochta ms':>10} {'dovecot ms':>11} {'ratio p/d':>10}  "
           f"{'pochta min..max':>17} {'dovecot min..max':>17}  (median of {a.big_runs})"]
    worst = 0.0
    slower = []
    for k in BIG_OPS:
        p = [r[k] for r in results["pochta"]]
        d = [r[k] for r in results["dovecot"]]
        mp, md = statistics.median(p), statistics.median(d)
        ratio = mp / md
        worst = max(worst, ratio)
        if ratio > 1:
            slower.append(f"{k} ({ratio:.2f})")
        out.append(f"{k:<28} {1e3 * mp:>10.2f} {1e3 * md:>11.2f} {ratio:>10.2f}  "
                   f"{1e3 * min(p):>7.1f}..{1e3 * max(p):<8.1f} {1e3 * min(d):>7.1f}..{1e3 * max(d):<8.1f}")
    out.append(f"big: target 'no operation slower than Dovecot' (every ratio <= 1): "
               + ("met" if not slower else "NOT met: " + ", ".join(slower)))
    return out


# ---------------------------------------------------------------- idle


async def idle_one(host, port, ctx, user, n_exist, timeout, sem, held, errors):
    async with sem:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), timeout)

            async def until(prefix):
                while True:
                    line = await asyncio.wait_for(r.readline(), timeout)
                    if not line:
                        raise ImapError("the server closed the connection")
                    if line.startswith(prefix):
                        return line

            await until(b"* OK")
            w.write(f'a LOGIN "{user}" "{PASSWORD}"\r\n'.encode())
            line = await until(b"a ")
            if not line.startswith(b"a OK"):
                raise ImapError(f"LOGIN: {line[:200]!r}")
            w.write(b"b SELECT INBOX\r\n")
            exists = False
            while True:
                line = await asyncio.wait_for(r.readline(), timeout)
                if not line:
                    raise ImapError("the server closed the connection")
                if line == b"* %d EXISTS\r\n" % n_exist:
                    exists = True
                if line.startswith(b"b "):
                    break
            if not line.startswith(b"b OK") or not exists:
                raise ImapError(f"SELECT: {line[:200]!r} (EXISTS {n_exist} seen: {exists})")
            w.write(b"c IDLE\r\n")
            await until(b"+")
            held.append((r, w))
        except Exception as e:
            errors.append(f"{user}: {type(e).__name__}: {e}")


async def idle_main(conn, spec):
    ctx = client_context()
    sem = asyncio.Semaphore(spec["inflight"])
    held, errors = [], []
    t0 = time.monotonic()
    tasks = [
        asyncio.ensure_future(idle_one(spec["host"], spec["port"], ctx, u, spec["exists"], spec["timeout"], sem, held, errors))
        for u in spec["users"]
    ]
    done_at = None
    while True:
        await asyncio.sleep(0.2)
        if done_at is None and all(t.done() for t in tasks):
            done_at = time.monotonic()
            conn.send({"held": len(held), "errors": errors[:5], "n_errors": len(errors), "seconds": done_at - t0,
                       "cpu": cpu_now()})
        if conn.poll():
            conn.recv()
            break
    for t in tasks:
        t.cancel()
    for _, w in held:
        try:
            w.write(b"DONE\r\nd LOGOUT\r\n")
        except Exception:
            pass
    await asyncio.sleep(0.5)
    for _, w in held:
        w.transport.abort()
    await asyncio.sleep(0.2)


def idle_client(conn, spec):
    try:
        asyncio.run(idle_main(conn, spec))
    except Exception as e:
        try:
            conn.send({"held": 0, "errors": [f"{type(e).__name__}: {e}"], "n_errors": 1, "seconds": 0, "cpu": 0})
        except Exception:
            pass


def settle(root, name, seconds=30):
    """Waits until the server's tree stops shrinking (Dovecot's imap and imap-login
    processes of closed connections exit)."""
    prev = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        n = len(tree(root))
        if n == prev:
            return
        prev = n
        time.sleep(1.0)


def idle_run(a, srv, boxes):
    users = [f"user{(i % a.idle_users) + 1}@example.test" for i in range(a.idle_count)]
    n_exist = len(boxes[1]["uids"])
    root = srv["root"]
    # Warm-up: each user logs in once (pochta's argon2 check, then cached; Dovecot's auth
    # process), so that the baseline holds what a server that has seen these users holds.
    for u in range(1, a.idle_users + 1):
        im = Imap(srv["host"], srv["imaps"], "implicit", a.timeout)
        im.login(f"user{u}@example.test")
        im.command("SELECT INBOX")
        im.command("LOGOUT")
        im.close()
    settle(root, srv["name"])
    time.sleep(1.0)
    before = memory(root)
    ctx = multiprocessing.get_context("fork")
    procs, pipes = [], []
    cpu0 = tree_cpu(root)
    t0 = time.monotonic()
    for k in range(a.idle_procs):
        spec = {"host": srv["host"], "port": srv["imaps"], "users": users[k :: a.idle_procs], "exists": n_exist,
                "timeout": a.timeout, "inflight": a.idle_inflight}
        here, there = ctx.Pipe()
        p = ctx.Process(target=idle_client, args=(there, spec), daemon=True)
        p.start()
        procs.append(p)
        pipes.append(here)
    reports = []
    try:
        deadline = t0 + max(600.0, a.idle_count * 0.1)
        for pipe in pipes:
            if not pipe.poll(max(1.0, deadline - time.monotonic())):
                die(f"{srv['name']} idle: the connections were not all set up within {deadline - t0:.0f} s")
            reports.append(pipe.recv())
        ramp = time.monotonic() - t0
        cpu1 = tree_cpu(root)
        errors = [e for r in reports for e in r["errors"]]
        n_err = sum(r["n_errors"] for r in reports)
        held = sum(r["held"] for r in reports)
        if n_err:
            die(f"{srv['name']} idle: {n_err} of {a.idle_count} connections failed, e.g. {errors[:3]}")
        time.sleep(a.idle_settle)
        after = memory(root)
        time.sleep(2.0)
        after2 = memory(root)
    finally:
        for pipe in pipes:
            try:
                pipe.send("close")
            except Exception:
                pass
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    settle(root, srv["name"], 120)
    time.sleep(2.0)
    closed = memory(root)
    return {"server": srv["name"], "held": held, "ramp": ramp, "ramp_cpu": cpu1 - cpu0, "before": before,
            "after": after, "after2": after2, "closed": closed}


def workload_idle(a, ps, ds, boxes, dovecot):
    cur, now = dovecot_limits(a, dovecot)
    log(f"idle: {a.idle_count} connections per server (IMAPS, LOGIN, SELECT INBOX of {len(boxes[1]['uids'])} messages, "
        f"IDLE) as {a.idle_users} users, from {a.idle_procs} asyncio client processes, {a.idle_inflight} set-ups in "
        f"flight each; Dovecot's {a.dovecot_login} login mode: " + ", ".join(f"{k} {v}" for k, v in now.items())
        + " (the stack's: " + ", ".join(f"{k} {v}" for k, v in cur.items()) + ")")
    out = []
    for srv in (ps, ds):
        f = idle_run(a, srv, boxes)
        out.append(f)
        b, x = f["before"], f["after"]
        log(f"  {f['server']:<8}: {f['held']} connections idle after {f['ramp']:.1f} s (server CPU {f['ramp_cpu']:.1f} s); "
            f"memory before {b['rss'] / 1024:.1f} MiB RSS / {b['pss'] / 1024:.1f} MiB PSS over {b['procs']} processes, "
            f"with the connections {x['rss'] / 1024:.1f} MiB RSS / {x['pss'] / 1024:.1f} MiB PSS over {x['procs']} processes "
            f"({f['after2']['rss'] / 1024:.1f} MiB RSS 2 s later); after they closed {f['closed']['rss'] / 1024:.1f} MiB RSS "
            f"over {f['closed']['procs']} processes")
        if f["server"] == "dovecot":
            by = x["by"]
            log("    Dovecot processes with the connections: " + "; ".join(
                f"{k} {v[0]} x {v[1] / v[0]:.0f} KiB RSS, {v[2] / v[0]:.0f} KiB PSS"
                for k, v in sorted(by.items(), key=lambda kv: -kv[1][1])))
    return out


def report_idle(a, runs):
    per = {}
    for f in runs:
        n = f["held"]
        per[f["server"]] = {
            "rss": (f["after"]["rss"] - f["before"]["rss"]) / n,
            "pss": (f["after"]["pss"] - f["before"]["pss"]) / n,
            "f": f,
        }
    out = [f"{'server':<8} {'connections':>11} {'RSS before MiB':>15} {'RSS after MiB':>14} {'KiB/conn RSS':>13} "
           f"{'PSS before MiB':>15} {'PSS after MiB':>14} {'KiB/conn PSS':>13} {'set-up s':>9}"]
    for s in ("pochta", "dovecot"):
        f = per[s]["f"]
        out.append(f"{s:<8} {f['held']:>11} {f['before']['rss'] / 1024:>15.1f} {f['after']['rss'] / 1024:>14.1f} "
                   f"{per[s]['rss']:>13.1f} {f['before']['pss'] / 1024:>15.1f} {f['after']['pss'] / 1024:>14.1f} "
                   f"{per[s]['pss']:>13.1f} {f['ramp']:>9.1f}")
    if per["pochta"]["rss"] <= 0 or per["pochta"]["pss"] <= 0:
        die("pochta's memory did not grow with the idle connections: the baseline is not valid")
    r_rss = per["dovecot"]["rss"] / per["pochta"]["rss"]
    r_pss = per["dovecot"]["pss"] / per["pochta"]["pss"]
    out.append(f"ratio pochta/dovecot memory per idle connection: {1 / r_rss:.4f} by summed RSS (Dovecot {r_rss:.1f}x pochta), "
               f"{1 / r_pss:.4f} by summed PSS (Dovecot {r_pss:.1f}x); target <= 0.1: "
               f"{'met' if min(r_rss, r_pss) >= 10 else 'NOT met'} (RSS {'met' if r_rss >= 10 else 'not met'}, "
               f"PSS {'met' if r_pss >= 10 else 'not met'})")
    return out


# ---------------------------------------------------------------- main


def raise_fd_limit(a):
    """Raises the open-file limit (inherited by pochta, Dovecot and the clients) to the
    hard limit, and past it if allowed. pochta holds one descriptor per connection in
    one process; Dovecot a few per process; the idle clients spread theirs over
    IDLE_PROCS processes."""
    need = a.idle_count + 5000 if "idle" in a.workloads else 8192
    return benchlib.raise_fd_limit(need, f"pochta needs about {need} for {a.idle_count} idle connections; "
                                         "lower IDLE_COUNT or raise the limit (ulimit -Hn)")


def main():
    a = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rs = Path(a.reference_stack)
    if not rs.is_file():
        print(
            f"imap-load: error: the reference-stack script was not found at {rs}.\n"
            "  It starts Postfix and Dovecot from Debian's packages for comparisons; set REFERENCE_STACK=/path/to/reference-stack\n"
            "  (in the project's workplace it is shared/peers/reference-stack beside the repository).",
            file=sys.stderr,
        )
        sys.exit(1)
    a.reference_stack = str(rs.resolve())
    if os.geteuid() != 0:
        print("imap-load: error: run as root: the reference stack installs Debian packages and starts Dovecot", file=sys.stderr)
        sys.exit(1)
    work = Path(a.bench_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout.split("\n")[1:2]
    if fs and "tmpfs" in fs[0]:
        print(f"imap-load: error: {work} is on tmpfs: set BENCH_DIR to a directory on a disk", file=sys.stderr)
        sys.exit(1)
    nofile = raise_fd_limit(a)
    if "idle" in a.workloads:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        procs = (2 if a.dovecot_login == "security" else 1) * a.idle_count
        if procs + 2000 > pid_max:
            log(f"warning: Dovecot needs about {procs} processes for {a.idle_count} idle connections; "
                f"kernel.pid_max is {pid_max}")

    small_users = list(range(1, max(a.sessions if "mixed" in a.workloads else 0,
                                    a.idle_users if "idle" in a.workloads else 0) + 1))
    all_users = small_users + ([BIG_USER] if "big" in a.workloads else [])
    binary = pochta_binary(a)
    log(f"imap-load: workloads {', '.join(a.workloads)}; work dir {work}; {os.cpu_count()} CPUs; "
        f"open-file limit {nofile}; pochta {binary}; pochta's certificate: {'the reference stack one (RSA 2048, as Dovecot)' if a.cert == 'stack' else 'its own (ECDSA P-256)'}")
    log(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if a.profile:
        log(f"  PROFILE={a.profile}: pochta runs under a profiler, so these timings are NOT results")

    pochta = dovecot = None
    report = []
    failed = None
    try:
        log("starting Dovecot (reference stack) and pochta ...")
        dovecot = start_dovecot(a, work, all_users)
        pochta = start_pochta(a, binary, work, all_users, dovecot)
        ps = {"name": "pochta", "host": "127.0.0.1", "imap": a.imap_port, "imaps": a.imaps_port, "root": pochta.pid}
        ds = {"name": "dovecot", "host": dovecot["host"], "imap": dovecot["imap"], "imaps": dovecot["imaps"],
              "root": dovecot["master"]}
        plan = [("m", u, a.mixed_messages) for u in small_users]
        if "big" in a.workloads:
            plan.append(("b", BIG_USER, a.big_count))
        log("loading ...")
        boxes = load_mailboxes(a, dovecot, plan)
        if small_users:
            for srv in (ps, ds):
                for u in small_users:
                    verify_mailbox(srv, u, boxes[u], a, f"{srv['name']} user{u}")
            log(f"  users 1..{len(small_users)}: UIDs, sizes and INTERNALDATEs identical in both servers")
        ciphers = {}
        for srv in (ps, ds):
            im = Imap(srv["host"], srv["imaps"], "implicit", a.timeout)
            ciphers[srv["name"]] = im.cipher()
            im.close()
        log(f"  TLS: pochta {ciphers['pochta']}, Dovecot {ciphers['dovecot']}")

        for w in a.workloads:
            # The loading left about 2 GB of dirty pages (pochta's database, Dovecot's
            # Maildir files): flush them so that no measured fsync waits behind them.
            os.sync()
            log()
            if w == "mixed":
                runs = workload_mixed(a, work, ps, ds, boxes)
                report += [""] + report_mixed(a, runs)
            elif w == "big":
                res = workload_big(a, work, ps, ds, boxes[BIG_USER])
                report += [""] + report_big(a, res)
            elif w == "idle":
                if len(a.workloads) > 1:
                    # A fresh process: the other workloads leave pochta's heap grown
                    # (the big mailbox's SEARCH and SORT), which would hide what
                    # the connections take.
                    stop_pochta(pochta)
                    pochta = launch_pochta(a, binary, work / "pochta" / "pochta.toml")
                    ps["root"] = pochta.pid
                    log("  (pochta restarted for the idle workload: same data, a fresh process)")
                res = workload_idle(a, ps, ds, boxes, dovecot)
                report += [""] + report_idle(a, res)
    except BenchError as e:
        failed = str(e)
    finally:
        stop_pochta(pochta)
        if dovecot is not None or (work / "dovecot").exists():
            subprocess.run([a.reference_stack, "stop", str(work / "dovecot")], capture_output=True, env=rs_env(), timeout=300)
        # The results first: removing 100 000 Maildir files can take minutes.
        for line in report:
            print(line, flush=True)
        if not a.keep:
            shutil.rmtree(work / "pochta" / "data", ignore_errors=True)
            shutil.rmtree(work / "dovecot" / "mail", ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    busy = [b for b in BUSY if b[1] > 0.1]
    if busy:
        print("warning: other processes on this machine used CPU during the measurements ("
              + ", ".join(f"{w}: {c:.2f} CPUs" for w, c in busy) + "); the numbers are disturbed, rerun on a quiet machine")
    if failed:
        print(f"imap-load: error: {failed}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"imap-load: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
