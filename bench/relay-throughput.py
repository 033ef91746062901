#!/usr/bin/env python3
"""Relay throughput benchmark: pochta against Postfix, both relaying to one smtp-sink.

The same load -- COUNT messages of about SIZE octets, each to someone@remote.test,
submitted with STARTTLS and AUTH PLAIN by CLIENTS concurrent client processes -- goes
to the submission port of

  * pochta (`target/release/pochta serve`, SQLite store and queue, synchronous=FULL,
    `[relay.routes] "remote.test" = "127.0.0.1:SINK_PORT"`), and
  * Postfix from the reference stack (submission with SASL through Dovecot,
    `transport_maps` sending remote.test to `smtp:[127.0.0.1]:SINK_PORT`),

on this machine, in the same run. Both relay it to the same Postfix `smtp-sink` on
loopback, which throws the mail away and counts it (`smtp-sink -c`). For each system
the clock runs from the release of the clients until the sink has received all COUNT
messages and the server's queue is empty (pochta: the `queue` table of its store, read
only; Postfix: no file left in its queue directories). The sink must receive exactly
COUNT messages per run, no fewer and no more. It prints messages/s for each system,
best and median of RUNS alternating runs, and the ratio pochta/postfix, once for each
per-destination concurrency setting in PER_DEST.

Run from anywhere inside the repository, as root (the reference stack installs
Debian packages and starts Postfix and Dovecot on 127.0.0.2):

    python3 bench/relay-throughput.py                        # COUNT=10000, 3 runs, PER_DEST=20,default
    COUNT=2000 RUNS=1 PER_DEST=20 python3 bench/relay-throughput.py   # a quicker look

Settings (environment variable, or the option of the same name in lower case):
  COUNT=10000       messages per measured run
  SIZE=4096         octets per message as submitted (headers and body, CRLF line ends)
  CLIENTS=10        concurrent submission client processes, one session at a time each
  PER_SESSION=0     messages per SMTP session before the client logs out and reconnects
                    (0: one session per client for all its messages). pochta verifies an
                    argon2id hash at every login (25-30 ms of CPU), Dovecot a {PLAIN}
                    password: small values measure logins more than relaying.
  RCPTS=1           recipients per message: someone@remote.test, or someone1..N@remote.test
  PIPELINING=1      1: the client sends MAIL, RCPT and DATA together (RFC 2920; both
                    servers offer it); 0: one command at a time
  PER_DEST=20,default   per-destination concurrency settings to measure, each in turn:
                    a number N sets pochta's [queue] per_domain = N and Postfix's
                    default_destination_concurrency_limit = N; "default" leaves both at
                    their defaults (pochta per_domain 5, concurrency 50; Postfix 20, with
                    initial_destination_concurrency 5 and slow start)
  RUNS=3            measured runs per system and setting (alternating; best and median)
  WARMUP=1000       messages relayed by each server before its first measured run
  TIMEOUT=600       seconds one run may take before the benchmark gives up
  REFERENCE_STACK   path of the reference-stack script
                    (default: ../shared/peers/reference-stack next to the repository)
  RS_SUBMISSION=15587 ...  the reference stack's ports; this benchmark moves them all
                    (RS_SMTP 15525, RS_SUBMISSION 15587, RS_SUBMISSIONS 15465, RS_IMAP 15143,
                    RS_IMAPS 15993, RS_POP3 15110, RS_POP3S 15995) off the other benchmarks'
  BENCH_DIR         work directory (default: target/bench-relay-throughput; on a disk, not tmpfs)
  POCHTA_BIN        a pochta binary to use instead of building target/release/pochta
  POCHTA_PORT=16587 pochta's submission port (on 127.0.0.1)
  SINK_PORT=16025   smtp-sink's port (on 127.0.0.1)
  KEEP=0            1: keep the work files (pochta's data, the stack, logs) in BENCH_DIR
  PROFILE=          strace: `strace -c -f` of both servers during the measured runs;
                    perf: `perf record --call-graph dwarf` of pochta (perf report -i
                    BENCH_DIR/perf-pochta-SETTING-runK.data, SETTING perdestN or default).
                    The timings of such a run are not results.
"""

import argparse
import base64
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (the helpers the benchmarks share)
from benchlib import (  # noqa: E402
    REPO, BenchError, MemorySampler, client_context, die, env, kib_field, log, machine_cpu, pochta_binary,
    proc_stat, split, start_profiler, stop_process, stop_profiler, tree_cpu, wait_port,
)

USER = "user1@example.test"
PASSWORD = "secret-pass-1"  # the reference stack's password for every user
RS_PORTS = {
    "RS_SMTP": "15525", "RS_SUBMISSION": "15587", "RS_SUBMISSIONS": "15465",
    "RS_IMAP": "15143", "RS_IMAPS": "15993", "RS_POP3": "15110", "RS_POP3S": "15995",
}
rs_cmd = partial(benchlib.rs_cmd, ports=RS_PORTS, timeout=600)
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="See the module docstring (head -61 bench/relay-throughput.py) and bench/README.md.",
    )
    p.add_argument("--count", type=int, default=int(env("COUNT", "10000")))
    p.add_argument("--size", type=int, default=int(env("SIZE", "4096")))
    p.add_argument("--clients", type=int, default=int(env("CLIENTS", "10")))
    p.add_argument("--per-session", type=int, default=int(env("PER_SESSION", "0")))
    p.add_argument("--rcpts", type=int, default=int(env("RCPTS", "1")))
    p.add_argument("--pipelining", type=int, default=int(env("PIPELINING", "1")))
    p.add_argument("--per-dest", default=env("PER_DEST", "20,default"))
    p.add_argument("--runs", type=int, default=int(env("RUNS", "3")))
    p.add_argument("--warmup", type=int, default=int(env("WARMUP", "1000")))
    p.add_argument("--timeout", type=float, default=float(env("TIMEOUT", "600")))
    p.add_argument(
        "--reference-stack",
        default=env("REFERENCE_STACK", str(REPO.parent / "shared" / "peers" / "reference-stack")),
    )
    p.add_argument("--bench-dir", default=env("BENCH_DIR", str(REPO / "target" / "bench-relay-throughput")))
    p.add_argument("--pochta-bin", default=env("POCHTA_BIN", ""))
    p.add_argument("--pochta-port", type=int, default=int(env("POCHTA_PORT", "16587")))
    p.add_argument("--sink-port", type=int, default=int(env("SINK_PORT", "16025")))
    p.add_argument("--keep", type=int, default=int(env("KEEP", "0")))
    p.add_argument("--profile", choices=["", "strace", "perf"], default=env("PROFILE", ""))
    a = p.parse_args()
    if a.clients < 1 or a.count < a.clients:
        p.error("need CLIENTS >= 1 and COUNT >= CLIENTS")
    if a.size < 1024:
        p.error("SIZE must be at least 1024")
    if not 1 <= a.rcpts <= 50:
        p.error("RCPTS must be 1..50")
    if a.runs < 1:
        p.error("RUNS must be at least 1")
    a.settings = []
    for s in a.per_dest.split(","):
        s = s.strip()
        if s == "default":
            a.settings.append(None)
        elif s.isdigit() and 1 <= int(s) <= 100:
            a.settings.append(int(s))
        else:
            p.error(f"PER_DEST: {s!r} is neither a number 1..100 nor 'default'")
    return a


# ---------------------------------------------------------------- the sink


class Sink:
    """Postfix's smtp-sink on loopback, counting the messages it has received.

    `-c` makes it write `sess=N quit=N mesg=N` followed by CR whenever a session
    ends or a message has arrived ("." received); the counters go to a file, whose
    last complete record is the current count.
    """

    def __init__(self, a, work):
        binary = shutil.which("smtp-sink") or next(
            (p for p in ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink") if os.path.exists(p)), None
        )
        if binary is None:
            die("smtp-sink not found: it comes with Debian's postfix package (apt-get install postfix)")
        self.port = a.sink_port
        self.out_path = work / "sink.out"
        self.out = open(self.out_path, "wb")
        # ESMTP and PIPELINING announced (the defaults), up to 1000 connections, a
        # backlog of 1000, no dump files: it costs next to nothing per message.
        self.proc = subprocess.Popen(
            [binary, "-c", "-u", "nobody", "-m", "1000", f"127.0.0.1:{self.port}", "1000"],
            stdout=self.out, stderr=subprocess.STDOUT,
        )
        self.reader = open(self.out_path, "rb")
        wait_port("127.0.0.1", self.port, proc=self.proc)
        # The probe connection above is one session, without a message.

    def counters(self):
        """(sessions, messages) so far."""
        if self.proc.poll() is not None:
            die(f"smtp-sink exited with status {self.proc.returncode}")
        self.reader.seek(0, os.SEEK_END)
        end = self.reader.tell()
        self.reader.seek(max(0, end - 160))
        records = self.reader.read().split(b"\r")[:-1]  # the last one may be incomplete
        for rec in reversed(records):
            m = re.search(rb"sess=(\d+) quit=\d+ mesg=(\d+)", rec)
            if m:
                return int(m.group(1)), int(m.group(2))
        return 0, 0

    def count(self):
        return self.counters()[1]

    def cpu(self):
        st = proc_stat(self.proc.pid)
        return st[1] if st else 0.0

    def stop(self):
        stop_process(self.proc, timeout=10, kill_wait=10)
        self.out.close()
        self.reader.close()


# ---------------------------------------------------------------- the client


def make_message(tag, client, seq, size, rcpts):
    """The message, the same octets for both servers: headers, then base64 lines."""
    rng = random.Random(f"{tag}-{client}-{seq}")
    to = ", ".join(f"<{r}>" for r in rcpts)
    head = (
        f"From: Bench User <{USER}>\r\n"
        f"To: {to}\r\n"
        f"Subject: relay benchmark {tag} {client}-{seq}\r\n"
        "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
        f"Message-ID: <relay-{tag}-{client}-{seq}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    need = max(0, size - len(head))
    lines, have = [], 0
    while have < need:
        n = min(76, max(1, need - have - 2))
        line = base64.b64encode(rng.randbytes(57))[:n] + b"\r\n"
        lines.append(line)
        have += len(line)
    return head + b"".join(lines)


def recipients(a):
    if a.rcpts == 1:
        return ["someone@remote.test"]
    return [f"someone{i}@remote.test" for i in range(1, a.rcpts + 1)]


class SmtpError(Exception):
    pass


class Conn:
    """A tiny SMTP client over a socket, reading replies from one buffer."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self, what):
        lines = []
        while True:
            i = self.buf.find(b"\r\n")
            while i < 0:
                data = self.sock.recv(65536)
                if not data:
                    raise SmtpError(f"{what}: connection closed")
                self.buf += data
                i = self.buf.find(b"\r\n")
            line, self.buf = self.buf[:i], self.buf[i + 2 :]
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def expect(self, code, what):
        got, lines = self.reply(what)
        if got != code:
            raise SmtpError(f"{what}: {b' / '.join(lines).decode('latin-1')[:300]}")
        return lines


def session_open(spec):
    c = Conn(spec["host"], spec["port"], spec["timeout"])
    c.expect(220, "greeting")
    c.sock.sendall(b"EHLO client.bench.test\r\n")
    caps = c.expect(250, "EHLO")
    if not any(b"STARTTLS" in ln.upper() for ln in caps):
        raise SmtpError("the server does not offer STARTTLS")
    c.sock.sendall(b"STARTTLS\r\n")
    c.expect(220, "STARTTLS")
    c.sock = client_context().wrap_socket(c.sock)
    c.buf = b""
    c.sock.sendall(b"EHLO client.bench.test\r\n")
    caps = c.expect(250, "EHLO after STARTTLS")
    c.pipelining = any(ln[4:].upper().startswith(b"PIPELINING") for ln in caps)
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    c.sock.sendall(f"AUTH PLAIN {token}\r\n".encode())
    c.expect(235, "AUTH")
    c.cipher = f"{c.sock.version()} {c.sock.cipher()[0]}"
    return c


def send_message(c, spec, msg):
    env = [f"MAIL FROM:<{USER}>\r\n".encode()] + [f"RCPT TO:<{r}>\r\n".encode() for r in spec["rcpts"]]
    env.append(b"DATA\r\n")
    if spec["pipelining"] and c.pipelining:
        c.sock.sendall(b"".join(env))
        for cmd in env[:-1]:
            c.expect(250, cmd.decode().strip())
    else:
        for cmd in env[:-1]:
            c.sock.sendall(cmd)
            c.expect(250, cmd.decode().strip())
        c.sock.sendall(env[-1])
    c.expect(354, "DATA")
    c.sock.sendall(msg + b".\r\n")
    c.expect(250, "end of data")


def client_run(spec, messages):
    sent, sessions, cipher = 0, 0, ""
    per = spec["per_session"] or len(messages)
    while sent < len(messages):
        c = session_open(spec)
        sessions += 1
        cipher = c.cipher
        for msg in messages[sent : sent + per]:
            send_message(c, spec, msg)
            sent += 1
        c.sock.sendall(b"QUIT\r\n")
        c.expect(221, "QUIT")
        c.sock.close()
    return sent, sessions, cipher


def client_main(conn, barrier, spec):
    try:
        messages = [
            make_message(spec["tag"], spec["client"], s, spec["size"], spec["rcpts"])
            for s in range(spec["first"], spec["first"] + spec["n"])
        ]
        for m in messages:  # the client does not dot-stuff
            if m.startswith(b".") or b"\r\n." in m:
                raise SmtpError("a generated line starts with a dot")
        barrier.wait(timeout=120)
        c0 = os.times()
        sent, sessions, cipher = client_run(spec, messages)
        c1 = os.times()
        res = {"sent": sent, "sessions": sessions, "cipher": cipher, "end": time.monotonic(),
               "cpu": (c1.user + c1.system) - (c0.user + c0.system)}
    except Exception as e:  # reported by the parent
        res = {"error": f"client {spec['client']}: {type(e).__name__}: {e}"}
        barrier.abort()  # a parent still waiting for the start hears of it at once
    conn.send(res)
    conn.close()


# ---------------------------------------------------------------- pochta


class Pochta:
    name = "pochta"

    def __init__(self, a, binary, work, per_dest, sink_port):
        self.dir = work / "pochta"
        self.setting = "default" if per_dest is None else f"perdest{per_dest}"
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "data").mkdir(parents=True)
        self.host, self.port = "127.0.0.1", a.pochta_port
        cfg = self.dir / "pochta.toml"
        queue = "" if per_dest is None else f"\n[queue]\nper_domain = {per_dest}\n"
        # Only the submission listener; no DKIM key exists in the fresh data directory,
        # so nothing is signed. The route goes to smtp-sink, which offers no STARTTLS,
        # so relay.tls = "opportunistic" (the default) sends in clear text.
        cfg.write_text(
            f"""hostname = "relay.bench.example"
data_dir = "{self.dir / 'data'}"
domains = ["example.test"]

[listen]
smtp = ""
submission = "{self.host}:{self.port}"
submissions = ""
imap = ""
imaps = ""
pop3 = ""
pop3s = ""
http = ""

[limits]
connections_per_ip = 1000

[relay.routes]
"remote.test" = "127.0.0.1:{sink_port}"
{queue}
[log]
level = "info"
"""
        )
        r = subprocess.run(
            [str(binary), "--config", str(cfg), "user", "add", USER, "--password-stdin"],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            die(f"pochta user add failed: {r.stderr.strip()}")
        self.logf = open(self.dir / "server.log", "w")
        self.proc = subprocess.Popen(
            [str(binary), "--config", str(cfg), "serve"], stdout=self.logf, stderr=subprocess.STDOUT,
            # Logging as shipped: a line per submission and per relayed message, as
            # Postfix logs each message too.
            env={**os.environ, "RUST_LOG": "info"},
        )
        self.root = self.proc.pid
        try:
            wait_port(self.host, self.port, proc=self.proc)
            self.db = sqlite3.connect(f"file:{self.dir / 'data' / 'store.sqlite3'}?mode=ro", uri=True)
        except BaseException:
            self.stop()
            raise
        self.describe = (
            f"pochta: [queue] per_domain = {per_dest if per_dest is not None else '5 (default)'}, "
            "concurrency = 50 (default), 100 messages per connection at most; no DKIM key, so no signing; "
            "no STARTTLS to the sink (it offers none)"
        )

    def queued(self):
        if self.proc.poll() is not None:
            die(f"pochta exited with status {self.proc.returncode} (see {self.dir / 'server.log'})")
        return self.db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]

    def deferred(self):
        return self.db.execute("SELECT COUNT(*) FROM queue_rcpt WHERE attempts > 0 AND state = 0").fetchone()[0]

    def diagnose(self):
        rows = self.db.execute(
            "SELECT state, attempts, COUNT(*), MAX(last_error) FROM queue_rcpt GROUP BY state, attempts"
        ).fetchall()
        return f"pochta queue_rcpt (state, attempts, count, an error): {rows}; log {self.dir / 'server.log'}"

    def reset_peak(self):
        try:  # VmHWM back to the current RSS (Linux: clear_refs 5)
            Path(f"/proc/{self.root}/clear_refs").write_text("5")
        except OSError:
            pass

    def hwm_mib(self):
        return kib_field(f"/proc/{self.root}/status", "VmHWM") / 1024

    def extra_cpu(self):
        return 0.0

    def stop(self):
        if getattr(self, "db", None) is not None:
            self.db.close()
            self.db = None
        stop_process(self.proc, kill_wait=10)
        self.logf.close()


# ---------------------------------------------------------------- postfix


def read_pid(path, what):
    for _ in range(100):
        try:
            text = path.read_text().strip()
            if text:
                return int(text)
        except OSError:
            pass
        time.sleep(0.1)
    die(f"{what} did not start: no pid in {path}")


class Postfix:
    name = "postfix"

    def __init__(self, a, work, per_dest, sink_port):
        self.a = a
        self.dir = work / "postfix"
        self.setting = "default" if per_dest is None else f"perdest{per_dest}"
        rs_cmd(a, "stop", str(self.dir))
        shutil.rmtree(self.dir, ignore_errors=True)
        self.started = True
        try:
            self._start(a, per_dest, sink_port)
        except BaseException:
            self.stop()
            raise

    def _start(self, a, per_dest, sink_port):
        ports = dict(line.split("=", 1) for line in rs_cmd(a, "start", str(self.dir)).splitlines() if "=" in line)
        self.host, self.port = ports["host"], int(ports["submission"])
        conf = self.dir / "pf" / "conf"
        # The stack refuses all outbound mail (default_transport = error:...); send
        # remote.test to the sink. Submission relays for SASL-authenticated clients.
        settings = [f"transport_maps = inline:{{ remote.test=smtp:[127.0.0.1]:{sink_port} }}"]
        if per_dest is not None:
            settings.append(f"default_destination_concurrency_limit = {per_dest}")
        r = subprocess.run(["postconf", "-c", str(conf), "-e", *settings], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            die(f"postconf -e failed: {r.stderr.strip()}")
        r = subprocess.run(["postfix", "-c", str(conf), "reload"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            die(f"postfix reload failed: {r.stderr.strip()}")
        self.spool = self.dir / "pf" / "spool"
        self.root = read_pid(self.spool / "pid" / "master.pid", "Postfix")
        self.dovecot = read_pid(self.dir / "dc" / "run" / "master.pid", "Dovecot")
        wait_port(self.host, self.port)
        time.sleep(1.0)  # let the reload finish (qmgr and friends restart)

        def pc(name):
            return subprocess.run(["postconf", "-c", str(conf), "-h", name], capture_output=True, text=True,
                                  timeout=60).stdout.strip()

        self.describe = (
            f"postfix: default_destination_concurrency_limit = {pc('default_destination_concurrency_limit')}"
            f"{'' if per_dest is not None else ' (default)'}, initial_destination_concurrency = "
            f"{pc('initial_destination_concurrency')}, default_process_limit = {pc('default_process_limit')}, "
            f"smtp_tls_security_level = '{pc('smtp_tls_security_level')}' (no TLS to the sink), "
            f"connection cache on demand = {pc('smtp_connection_cache_on_demand')}; "
            "SASL through Dovecot ({PLAIN} passwords)"
        )

    def queued(self):
        n = 0
        for q in POSTFIX_QUEUES:
            for _, _, files in os.walk(self.spool / q):
                n += len(files)
        return n

    def deferred(self):
        return sum(len(f) for _, _, f in os.walk(self.spool / "deferred"))

    def diagnose(self):
        r = subprocess.run(["postqueue", "-c", str(self.dir / "pf" / "conf"), "-p"], capture_output=True,
                           text=True, timeout=60)
        return f"postqueue -p: {r.stdout[-1500:]}; log {self.dir / 'pf' / 'postfix.log'}"

    def reset_peak(self):
        pass

    def hwm_mib(self):
        return None

    def extra_cpu(self):
        """CPU of Dovecot (Postfix's SASL authentication goes to its auth service)."""
        return tree_cpu(self.dovecot)

    def stop(self):
        if self.started:
            self.started = False
            rs_cmd(self.a, "stop", str(self.dir))


# ---------------------------------------------------------------- one run


def report_profile(prof, messages):
    """Stops the profiler; for strace, prints the fsyncs and system calls per message."""
    calls = stop_profiler(prof)
    if calls is not None:
        sync = calls.get("fsync", 0) + calls.get("fdatasync", 0)
        top = ", ".join(f"{k} {v / messages:.1f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:8])
        log(f"    strace: {sync / messages:.2f} fsync/fdatasync and {sum(calls.values()) / messages:.1f} "
            f"system calls per message ({top}) ({prof[1]})")


def run_load(a, srv, sink, n, tag, measure):
    """Submits n messages through srv and waits until the sink has them all and the
    server's queue is empty. Returns a result dict (with CPU figures when measure)."""
    parts = split(n, a.clients)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(a.clients + 1)
    clients, first = [], 0
    for i, k in enumerate(parts):
        spec = {
            "host": srv.host, "port": srv.port, "timeout": 120.0, "client": i + 1, "first": first, "n": k,
            "size": a.size, "rcpts": recipients(a), "tag": tag, "per_session": a.per_session,
            "pipelining": a.pipelining,
        }
        first += k
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=client_main, args=(tx, barrier, spec), daemon=True)
        p.start()
        tx.close()
        clients.append((p, rx))
    results = [None] * len(clients)
    prof = None
    try:
        sess0, base = sink.counters()
        target = base + n
        if measure:
            work, ptag = Path(a.bench_dir).resolve(), f"{srv.setting}-{tag.replace(' ', '')}"
            prof = start_profiler(a.profile, srv.root, work / f"strace-{srv.name}-{ptag}.txt",
                                  work / f"perf-pochta-{ptag}.data" if srv.name == "pochta" else None,
                                  install_hint=False)
            srv.reset_peak()
            sampler = MemorySampler(srv.root)
            sampler.start()
            load1 = os.getloadavg()[0]
            cpu0, extra0, sink0 = tree_cpu(srv.root), srv.extra_cpu(), sink.cpu()
            m0, self0 = machine_cpu(), sum(os.times()[:2])
        try:
            barrier.wait(timeout=300)  # the clients have built their messages
        except threading.BrokenBarrierError:
            errors = [rx.recv().get("error") for _, rx in clients if rx.poll(5)]
            die(f"{srv.name} {tag}: the clients did not start: {errors[:1]}")
        start = time.monotonic()
        deadline = start + a.timeout
        accepted_at = delivered_at = None
        last_count, last_change = base, start
        peak_queue, next_queue_look = 0, start
        while True:
            now = time.monotonic()
            for i, (p, rx) in enumerate(clients):
                if results[i] is None and rx.poll():
                    results[i] = rx.recv()
                    if "error" in results[i]:
                        die(f"{srv.name} {tag}: {results[i]['error']}")
            if accepted_at is None and all(r is not None for r in results):
                accepted_at = max(r["end"] for r in results) - start
            c = sink.count()
            if c != last_count:
                last_count, last_change = c, now
            if now >= next_queue_look:  # the queue's depth, now and then (cheap)
                peak_queue = max(peak_queue, srv.queued())
                next_queue_look = now + 0.25
            if c >= target and delivered_at is None:
                delivered_at = now - start
            if delivered_at is not None and accepted_at is not None and srv.queued() == 0:
                done = time.monotonic() - start
                break
            if now > deadline:
                die(f"{srv.name} {tag}: after {a.timeout:.0f} s the sink has {c - base} of {n} messages; "
                    f"{srv.diagnose()}")
            if now - last_change > 60:
                die(f"{srv.name} {tag}: no message reached the sink for 60 s ({c - base} of {n}); "
                    f"{srv.deferred()} deferred; {srv.diagnose()}")
            time.sleep(0.01)
        if measure:
            cpu1, extra1, sink1 = tree_cpu(srv.root), srv.extra_cpu(), sink.cpu()
            m1, self1 = machine_cpu(), sum(os.times()[:2])
            sampler.stop()
            report_profile(prof, n)
            prof = None
        # Exactly n: nothing lost, nothing sent twice (wait a moment for stragglers).
        time.sleep(0.5)
        sess1, got = sink.counters()
        got -= base
        if got != n:
            die(f"{srv.name} {tag}: the sink received {got} messages, {n} were submitted")
        for p, _ in clients:
            p.join(timeout=30)
        sent = sum(r["sent"] for r in results)
        if sent != n:
            die(f"{srv.name} {tag}: the clients sent {sent} messages, not {n}")
        r = {"system": srv.name, "tag": tag, "messages": n, "seconds": done, "rate": n / done,
             "accepted_s": accepted_at, "delivered_s": delivered_at, "peak_queue": peak_queue,
             "sessions": sum(x["sessions"] for x in results), "cipher": results[0]["cipher"],
             "sink_sessions": sess1 - sess0}
        if measure:
            client_cpu = sum(x["cpu"] for x in results)
            r.update({
                "cpu": cpu1 - cpu0, "extra_cpu": extra1 - extra0, "sink_cpu": sink1 - sink0,
                "client_cpu": client_cpu, "irq_cpu": m1[1] - m0[1], "steal": m1[2] - m0[2],
                "other_cpu": max(0.0, (m1[0] - m0[0]) - (cpu1 - cpu0) - (extra1 - extra0) - (sink1 - sink0)
                                 - client_cpu - (self1 - self0)),
                "pss_mib": sampler.peak_pss / 1024, "procs": sampler.pss_procs, "hwm_mib": srv.hwm_mib(),
                "load1": load1,
            })
        return r
    finally:
        if prof is not None:
            report_profile(prof, n)
        for p, _ in clients:
            if p.is_alive():
                p.kill()
            p.join(timeout=10)


def print_run(r):
    extra = f" + Dovecot (SASL) {r['extra_cpu']:.1f} s" if r["system"] == "postfix" else ""
    hwm = f", VmHWM {r['hwm_mib']:.0f} MiB" if r["hwm_mib"] is not None else ""
    log(
        f"  {r['system']:<8} {r['tag']}: {r['messages']} messages in {r['seconds']:6.2f} s = {r['rate']:6.0f} msg/s "
        f"(all accepted at {r['accepted_s']:.2f} s, at the sink at {r['delivered_s']:.2f} s, queue peak "
        f"{r['peak_queue']}, {r['sink_sessions']} sink sessions closed); server CPU {r['cpu']:.1f} s{extra} = {1e3 * (r['cpu'] + r['extra_cpu']) / r['messages']:.2f} "
        f"ms/msg; peak PSS {r['pss_mib']:.0f} MiB over {r['procs']} processes{hwm}; clients {r['client_cpu']:.1f} s, "
        f"sink {r['sink_cpu']:.1f} s, interrupts {r['irq_cpu']:.1f} s, other processes {r['other_cpu']:.1f} s, "
        f"steal {r['steal']:.1f} s; load {r['load1']:.1f}"
    )


def summary(a, label, results):
    by = {s: [r for r in results if r["system"] == s] for s in ("pochta", "postfix")}
    print()
    print(f"per-destination concurrency: {label}  ({a.count} messages of {a.size} octets, {a.clients} clients, "
          f"best and median of {a.runs})")
    print(f"{'system':<9} {'best msg/s':>10} {'median':>8} {'seconds':>8} {'accepted s':>10} {'CPU s':>7} "
          f"{'CPU ms/msg':>10} {'peak PSS MiB':>12} {'VmHWM MiB':>9}")
    best, med = {}, {}
    for s, rs in by.items():
        b = max(rs, key=lambda r: r["rate"])
        best[s], med[s] = b["rate"], statistics.median(r["rate"] for r in rs)
        cpu = statistics.median(r["cpu"] + r["extra_cpu"] for r in rs)
        hwm = max((r["hwm_mib"] for r in rs if r["hwm_mib"] is not None), default=None)
        print(f"{s:<9} {b['rate']:>10.0f} {med[s]:>8.0f} {b['seconds']:>8.2f} {b['accepted_s']:>10.2f} "
              f"{cpu:>7.1f} {1e3 * cpu / a.count:>10.2f} {max(r['pss_mib'] for r in rs):>12.0f} "
              f"{'-' if hwm is None else f'{hwm:.0f}':>9}")
    print(f"ratio pochta/postfix = {best['pochta'] / best['postfix']:.2f} best, {med['pochta'] / med['postfix']:.2f} "
          f"median  (messages/s; target >= 2)")
    cpu = {s: statistics.median(r["cpu"] + r["extra_cpu"] for r in rs) for s, rs in by.items()}
    print(f"server CPU (median; Postfix's includes Dovecot's SASL), postfix/pochta = {cpu['postfix'] / max(cpu['pochta'], 1e-9):.2f}")
    return best["pochta"] / best["postfix"], med["pochta"] / med["postfix"]


# ---------------------------------------------------------------- main


def main():
    a = parse_args()
    rs = Path(a.reference_stack)
    if not rs.is_file():
        die(
            f"the reference-stack script was not found at {rs}.\n"
            "  It starts Postfix and Dovecot from Debian's packages for comparisons; set REFERENCE_STACK=/path/to/reference-stack\n"
            "  (in the project's workplace it is shared/peers/reference-stack beside the repository)."
        )
    a.reference_stack = str(rs.resolve())
    if os.geteuid() != 0:
        die("run as root: the reference stack installs Debian packages and starts Postfix")
    work = Path(a.bench_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout.split("\n")[1:2]
    if fs and "tmpfs" in fs[0]:
        die(f"{work} is on tmpfs, where fsync costs nothing: set BENCH_DIR to a directory on a disk")
    binary = pochta_binary(a)
    if shutil.which("postconf") is None or shutil.which("smtp-sink") is None:
        log("installing the reference stack's packages (postfix, dovecot) ...")
        rs_cmd(a, "start", str(work / "postfix"))
        rs_cmd(a, "stop", str(work / "postfix"))

    log(
        f"relay-throughput: {a.count} messages of {a.size} octets to {a.rcpts} recipient(s) at remote.test, "
        f"submitted (STARTTLS + AUTH PLAIN, {'pipelined' if a.pipelining else 'one command at a time'}) by "
        f"{a.clients} client processes, "
        f"{'one session each' if a.per_session == 0 else f'{a.per_session} messages per session'}; "
        f"relayed to smtp-sink on 127.0.0.1:{a.sink_port}; {a.runs} run(s) per system and setting after "
        f"{a.warmup} warm-up messages; work dir {work}; {os.cpu_count()} CPUs"
    )
    log(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if a.profile:
        log(f"  PROFILE={a.profile}: the servers run under a profiler, so these timings are NOT results")

    sink, servers, ratios, all_results = None, [], [], []
    try:
        sink = Sink(a, work)
        for setting in a.settings:
            label = "each server's default" if setting is None else f"{setting} for both"
            pochta = Pochta(a, binary, work, setting, a.sink_port)
            servers.append(pochta)
            postfix = Postfix(a, work, setting, a.sink_port)
            servers.append(postfix)
            log(f"\n[{label}]\n  {pochta.describe}\n  {postfix.describe}")
            for srv in (pochta, postfix):
                if a.warmup:
                    w = run_load(a, srv, sink, a.warmup, "warm-up", measure=False)
                    log(f"  {srv.name:<8} warm-up: {a.warmup} messages in {w['seconds']:.2f} s; "
                        f"TLS {w['cipher']}")
            results = []
            for run in range(1, a.runs + 1):
                order = (pochta, postfix) if run % 2 else (postfix, pochta)
                for srv in order:
                    r = run_load(a, srv, sink, a.count, f"run {run}", measure=True)
                    r["setting"] = label
                    print_run(r)
                    results.append(r)
            all_results += results
            ratios.append((label, summary(a, label, results)))
            for srv in (pochta, postfix):
                srv.stop()
            servers.clear()
            log("")
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception as e:
                print(f"relay-throughput: stopping {srv.name}: {e}", file=sys.stderr)
        if sink is not None:
            sink.stop()
        if not a.keep:
            shutil.rmtree(work / "pochta", ignore_errors=True)
            shutil.rmtree(work / "postfix", ignore_errors=True)
            (work / "sink.out").unlink(missing_ok=True)

    print()
    for label, (best, med) in ratios:
        print(f"ratio pochta/postfix, per-destination concurrency {label}: {best:.2f} best, {med:.2f} median")
    print(
        "durability: both fsync before the 250 to the client -- pochta commits the queued message with "
        "synchronous=FULL (group commit), Postfix fsyncs its queue file. Neither server signs (no DKIM "
        "key in pochta, no milter in Postfix); both relay to the sink in clear text."
    )
    busy = max((r["other_cpu"] / r["seconds"] for r in all_results), default=0)
    if busy > 0.1:
        print(f"warning: other processes on this machine used up to {busy:.2f} CPUs during a run; "
              "the numbers are disturbed, rerun on a quiet machine")


def on_sigterm(signum, frame):
    raise SystemExit(f"relay-throughput: stopped by signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        main()
    except BenchError as e:
        print(f"relay-throughput: error: {e}", file=sys.stderr)
        sys.exit(1)
