#!/usr/bin/env python3
"""POP3 retrieval benchmark: pochta's POP3 server against Dovecot's (Maildir).

Both servers hold the same messages, byte for byte:

  * the "4 KiB" workload: SMALL_USERS users with SMALL_PER_USER messages of about 4 KiB
    each (10 x 1000 by default), and
  * the "1 MiB" workload: LARGE_USERS users with LARGE_PER_USER messages of about 1 MiB
    (4 x 50 by default),

all distinct. They are delivered to pochta (`target/release/pochta serve`, SQLite
store) through its MX with smtplib; then they are read back from pochta over POP3 and
written as Maildir files (LF line ends, `,S=`/`,W=` sizes in the name, as Dovecot's own
delivery writes them) into the users' Maildirs of Dovecot from the reference stack, so
both serve exactly the same octets. Loading is not measured.

A measured run of a workload opens one POP3 session per user, all at once (one client
process per session, so the client is not held back by Python's GIL): connect, STLS
(TLS=implicit: the POP3S port), USER/PASS, STAT, LIST, RETR of every message in turn,
QUIT. Nothing is deleted, so runs are repeatable. The clock runs from the release of the
sessions until the last one has its QUIT reply. Every message's size is checked against
LIST; a sample is checked against the message generated for it and compared between the
two servers. After one warm-up pass per server, RUNS runs per server alternate; the best
and the median are printed with the ratio pochta/dovecot in messages/s.

Run from anywhere inside the repository, as root (the reference stack installs Debian
packages and starts Postfix and Dovecot on 127.0.0.2):

    python3 bench/pop3-retrieval.py                  # both workloads, 3 runs per server
    RUNS=1 SMALL_PER_USER=200 LARGE_PER_USER=10 python3 bench/pop3-retrieval.py   # a quick look

Settings (environment variable, or the option of the same name in lower case):
  WORKLOADS=4k,1m      which workloads to run
  SMALL_USERS=10       users (sessions) of the 4 KiB workload: user1..
  SMALL_PER_USER=1000  messages per user
  SMALL_SIZE=4096      octets per message as generated (pochta adds its Received header)
  LARGE_USERS=4        users of the 1 MiB workload (they follow the small ones)
  LARGE_PER_USER=50
  LARGE_SIZE=1048576
  RUNS=3               measured runs per server and workload (best and median printed)
  TLS=stls             stls: STLS on the POP3 port; implicit: the POP3S port
  PIPELINE=1           RETR commands in flight per session (1: wait for each reply, as
                       common clients do; more uses RFC 2449 PIPELINING)
  SAMPLE=10            messages 1, 1+SAMPLE, 1+2*SAMPLE... of each user are compared
                       byte for byte with the generated ones and between the servers
  TIMEOUT=600          socket timeout of the client, seconds
  REFERENCE_STACK      path of the reference-stack script
                       (default: ../shared/peers/reference-stack next to the repository)
  RS_POP3=11110 ...    the reference stack's ports; this benchmark moves them all (RS_SMTP
                       11525, RS_SUBMISSION 11587, RS_SUBMISSIONS 11465, RS_IMAP 11143,
                       RS_IMAPS 11993, RS_POP3 11110, RS_POP3S 11995) off the stack's
                       defaults, so that it does not collide with another stack
  BENCH_DIR            work directory (default: target/bench-pop3-retrieval, on a disk)
  POCHTA_BIN           a pochta binary to use instead of building target/release/pochta
  POCHTA_PORTS=13525,13110,13995   pochta's MX, POP3 and POP3S ports on 127.0.0.1
  KEEP=0               1: keep both servers' mail in BENCH_DIR afterwards
  DOVECOT_PASSWORDS=plain   plain: Dovecot's passwords as the reference stack writes them
                       ({PLAIN}, nothing to compute at login); argon2id: Dovecot gets the
                       very argon2id hashes pochta stores (same parameters, same work per login)
  PIN=0                1: the clients on the last CPU, the servers on the others (with 2
                       CPUs: one each), so that the client does not take the servers' CPU
  PROFILE=             strace: `strace -c -f` of both servers during the measured runs;
                       perf: `perf record --call-graph dwarf` of pochta (perf report -i
                       BENCH_DIR/perf-pochta-WORKLOAD-runK.data). The timings of such a
                       run are not results.
"""

import argparse
import base64
import hashlib
import multiprocessing
import os
import queue
import random
import shutil
import signal
import smtplib
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
    REPO, BenchError, MemorySampler, client_context, cpu_now, die, env, kib_field, log, machine_cpu,
    pochta_binary, start_profiler, stop_pochta, stop_profiler, tree, tree_cpu, wait_port,
)

PASSWORD = "secret-pass-1"  # the reference stack's password for every user
RS_PORTS = {
    "RS_SMTP": "11525", "RS_SUBMISSION": "11587", "RS_SUBMISSIONS": "11465",
    "RS_IMAP": "11143", "RS_IMAPS": "11993", "RS_POP3": "11110", "RS_POP3S": "11995",
}
rs_env = partial(benchlib.rs_env, RS_PORTS)
rs_cmd = partial(benchlib.rs_cmd, ports=RS_PORTS)


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="See the module docstring (head -66 bench/pop3-retrieval.py) and bench/README.md.",
    )
    p.add_argument("--workloads", default=env("WORKLOADS", "4k,1m"))
    p.add_argument("--small-users", type=int, default=int(env("SMALL_USERS", "10")))
    p.add_argument("--small-per-user", type=int, default=int(env("SMALL_PER_USER", "1000")))
    p.add_argument("--small-size", type=int, default=int(env("SMALL_SIZE", "4096")))
    p.add_argument("--large-users", type=int, default=int(env("LARGE_USERS", "4")))
    p.add_argument("--large-per-user", type=int, default=int(env("LARGE_PER_USER", "50")))
    p.add_argument("--large-size", type=int, default=int(env("LARGE_SIZE", str(1 << 20))))
    p.add_argument("--runs", type=int, default=int(env("RUNS", "3")))
    p.add_argument("--tls", choices=["stls", "implicit"], default=env("TLS", "stls"))
    p.add_argument("--pipeline", type=int, default=int(env("PIPELINE", "1")))
    p.add_argument("--sample", type=int, default=int(env("SAMPLE", "10")))
    p.add_argument("--timeout", type=float, default=float(env("TIMEOUT", "600")))
    p.add_argument(
        "--reference-stack",
        default=env("REFERENCE_STACK", str(REPO.parent / "shared" / "peers" / "reference-stack")),
    )
    p.add_argument("--bench-dir", default=env("BENCH_DIR", str(REPO / "target" / "bench-pop3-retrieval")))
    p.add_argument("--pochta-bin", default=env("POCHTA_BIN", ""))
    p.add_argument("--pochta-ports", default=env("POCHTA_PORTS", "13525,13110,13995"))
    p.add_argument("--keep", type=int, default=int(env("KEEP", "0")))
    p.add_argument("--profile", choices=["", "strace", "perf"], default=env("PROFILE", ""))
    p.add_argument("--pin", type=int, default=int(env("PIN", "0")))
    p.add_argument("--dovecot-passwords", choices=["plain", "argon2id"], default=env("DOVECOT_PASSWORDS", "plain"))
    a = p.parse_args()
    a.workloads = [w.strip().lower() for w in a.workloads.split(",") if w.strip()]
    if not a.workloads or any(w not in ("4k", "1m") for w in a.workloads):
        p.error("WORKLOADS is a comma-separated list of 4k and 1m")
    if a.small_users + a.large_users > 100 or a.small_users < 1 or a.large_users < 1:
        p.error("SMALL_USERS + LARGE_USERS must be 2..100 (the reference stack has user1..user100)")
    if min(a.small_per_user, a.large_per_user, a.runs, a.pipeline, a.sample) < 1:
        p.error("message counts, RUNS, PIPELINE and SAMPLE must be at least 1")
    if min(a.small_size, a.large_size) < 1024:
        p.error("message sizes must be at least 1024")
    try:
        a.smtp_port, a.pop3_port, a.pop3s_port = (int(x) for x in a.pochta_ports.split(","))
    except ValueError:
        p.error("POCHTA_PORTS is MX,POP3,POP3S, e.g. 13525,13110,13995")
    return a


# ---------------------------------------------------------------- the messages


def bench_id(kind, user, seq):
    return f"{kind}-user{user}-{seq}"


def make_message(kind, user, seq, size):
    """The message `seq` of `user` in workload `kind` ("s" or "l"): about `size` octets,
    CRLF line ends, distinct pseudo-random 76-character lines, one of them starting with
    a dot (so both servers byte-stuff it). Deterministic: the checker regenerates it."""
    bid = bench_id(kind, user, seq)
    head = (
        "From: Benchmark Sender <sender@remote.example>\r\n"
        f"To: user{user}@example.test\r\n"
        f"Subject: POP3 retrieval benchmark, message {seq} of user{user}\r\n"
        "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
        f"Message-ID: <{bid}@remote.example>\r\n"
        f"X-Bench-Id: {bid}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    lines = max(2, (size - len(head)) // 78)
    seed = int.from_bytes(hashlib.sha256(bid.encode()).digest()[:8], "big")
    raw = base64.b64encode(random.Random(seed).randbytes(lines * 57))
    body = [raw[i * 76 : (i + 1) * 76] for i in range(lines)]
    body[1] = b"." + body[1][1:]
    return head + b"\r\n".join(body) + b"\r\n"


# ---------------------------------------------------------------- the POP3 client


class Pop3Error(Exception):
    pass


class Reader:
    """Buffered reading of POP3 replies from a (TLS) socket into one reused buffer,
    so that a message is not copied unless it is kept."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(1 << 20)
        self.view = memoryview(self.buf)
        self.pos = self.end = 0  # unread octets: buf[pos:end]
        self.reads = 0

    def fill(self, need=0):
        """Reads what the socket has, after making room for `need` octets from pos."""
        if self.pos == self.end:
            self.pos = self.end = 0
        want = max(need, self.end - self.pos) + (256 << 10)
        if len(self.buf) - self.pos < want:
            unread = bytes(self.view[self.pos : self.end])
            if len(self.buf) < want:
                self.view.release()
                self.buf = bytearray(2 * want)
                self.view = memoryview(self.buf)
            self.buf[: len(unread)] = unread
            self.pos, self.end = 0, len(unread)
        n = self.sock.recv_into(self.view[self.end :])
        self.reads += 1
        if n == 0:
            raise Pop3Error("the server closed the connection")
        self.end += n

    def line(self):
        seen = 0  # octets after pos already searched (fill() may move pos)
        while True:
            i = self.buf.find(b"\r\n", self.pos + seen, self.end)
            if i >= 0:
                out = bytes(self.view[self.pos : i])
                self.pos = i + 2
                return out
            seen = max(0, self.end - self.pos - 1)
            self.fill()

    def multiline(self, size=0):
        """The data of a multi-line reply (its status line already read) as positions
        (start, stop, dots) in self.buf, valid until the next read: still byte-stuffed,
        with the final CRLF and without the terminating ".\\r\\n"; `dots` is how many
        dots byte-stuffing added. `size` (the expected size) is a hint for the buffer.

        One pass over the data with memchr for "." (rare in the generated bodies,
        which are base64 lines): each dot at the start of a line is either a stuffed
        one ("..") or the terminator (".\\r\\n")."""
        rel, dots = 0, 0  # next octet to look at, relative to start (fill() may move start)
        while True:
            start, end, buf = self.pos, self.end, self.buf
            k = buf.find(b".", start + rel, end)
            while k >= 0:
                if k == start or buf[k - 1] == 10:  # a dot at the start of a line
                    if k + 2 >= end:
                        break  # need the next two octets
                    if buf[k + 1] == 13 and buf[k + 2] == 10:
                        self.pos = k + 3
                        return start, k, dots
                    if buf[k + 1] != 46:
                        raise Pop3Error("a line of the reply starts with a dot that is not doubled (RFC 1939 byte-stuffing)")
                    dots += 1
                    k = buf.find(b".", k + 2, end)
                    continue
                k = buf.find(b".", k + 1, end)
            rel = (k if k >= 0 else end) - start
            self.fill(size + 1024)


def unstuff(data):
    if data.startswith(b".."):
        data = data[1:]
    if b"\r\n.." in data:
        data = data.replace(b"\r\n..", b"\r\n.")
    return data


def ok(line, what):
    if not line.startswith(b"+OK"):
        raise Pop3Error(f"{what}: {line[:200].decode('latin-1')}")
    return line


def pop3_session(spec):
    """One POP3 session as described in the module docstring. Returns a result dict."""
    t0, c0 = time.monotonic(), cpu_now()
    ctx = client_context()  # unverified, without the system's CA certificates (their CPU)
    sock = socket.create_connection((spec["host"], spec["port"]), timeout=spec["timeout"])
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if spec["tls"] == "implicit":
        sock = ctx.wrap_socket(sock)
    r = Reader(sock)
    ok(r.line(), "greeting")
    if spec["tls"] == "stls":
        sock.sendall(b"STLS\r\n")
        ok(r.line(), "STLS")
        sock = ctx.wrap_socket(sock)
        r = Reader(sock)
    cipher = f"{sock.version()} {sock.cipher()[0]}"
    sock.sendall(f"USER {spec['user']}\r\n".encode())
    ok(r.line(), "USER")
    sock.sendall(f"PASS {PASSWORD}\r\n".encode())
    ok(r.line(), "PASS")
    t_login = time.monotonic()
    sock.sendall(b"STAT\r\n")
    st = ok(r.line(), "STAT").split()
    count, octets = int(st[1]), int(st[2])
    sock.sendall(b"LIST\r\n")
    ok(r.line(), "LIST")
    sizes = [0] * (count + 1)
    start, stop, _ = r.multiline()
    for ln in bytes(r.view[start:stop]).split(b"\r\n")[:-1]:
        n, s = ln.split()
        sizes[int(n)] = int(s)
    if sum(sizes) != octets:
        raise Pop3Error(f"LIST sizes sum to {sum(sizes)}, STAT says {octets}")

    dump = spec.get("dump")
    if dump:
        dump_seq, dump_uid, dump_gid = 0, dump["uid"], dump["gid"]
        dtmp, dnew = os.path.join(dump["dir"], "tmp"), os.path.join(dump["dir"], "new")
    sample = spec["sample"]
    marker = b"\r\nX-Bench-Id: "
    kept, bad_sizes, total = [], [], 0
    window = spec["pipeline"]
    sent = min(window, count)
    if sent:
        sock.sendall(b"".join(b"RETR %d\r\n" % k for k in range(1, sent + 1)))
    for i in range(1, count + 1):
        ok(r.line(), f"RETR {i}")
        start, stop, dots = r.multiline(sizes[i])
        if sent < count:
            sent += 1
            sock.sendall(b"RETR %d\r\n" % sent)
        size = stop - start - dots
        if size != sizes[i]:
            bad_sizes.append((i, sizes[i], size))
        total += size
        msg = None
        h = r.buf.find(marker, start, min(stop, start + 16384))
        if h >= 0:
            e = r.buf.find(b"\r\n", h + 2, stop)
            bid = r.buf[h + len(marker) : e].decode()
            if (int(bid.rsplit("-", 1)[1]) - 1) % sample == 0:
                msg = unstuff(bytes(r.view[start:stop]))
                kept.append((bid, msg))
        else:
            bad_sizes.append((i, "no X-Bench-Id", size))
        if dump:
            if msg is None:
                msg = unstuff(bytes(r.view[start:stop]))
            lf = msg.replace(b"\r\n", b"\n")
            if b"\r" in lf:
                raise Pop3Error(f"message {i} has a bare CR: cannot store it in Maildir with LF line ends")
            now = time.time()
            dump_seq += 1
            name = (
                f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{dump_seq}.pochta-bench"
                f",S={len(lf)},W={len(msg)}"
            )
            tmp = os.path.join(dtmp, name)
            with open(tmp, "wb") as f:
                f.write(lf)
            os.chown(tmp, dump_uid, dump_gid)
            os.chmod(tmp, 0o600)
            os.rename(tmp, os.path.join(dnew, name))
    sock.sendall(b"QUIT\r\n")
    ok(r.line(), "QUIT")
    t_end, c_end = time.monotonic(), cpu_now()
    try:
        sock.close()
    except OSError:
        pass

    # Outside the clock: the sample against the generated messages.
    content_errors, hashes = [], {}
    for bid, msg in kept:
        kind, user, seq = bid.split("-")
        size = spec["sizes"][kind]
        expect = make_message(kind, int(user[4:]), int(seq), size)
        if not msg.endswith(expect):
            content_errors.append(bid)
        hashes[bid] = hashlib.sha256(msg).hexdigest()
    return {
        "cpu_all": cpu_now() - c0,
        "user": spec["user"], "count": count, "octets": octets, "bytes": total, "reads": r.reads,
        "bad_sizes": bad_sizes, "content_errors": content_errors, "hashes": hashes,
        "t0": t0, "t_login": t_login, "t_end": t_end, "cpu": c_end - c0, "cipher": cipher,
    }


def client_main(conn, barrier, spec):
    try:
        if spec.get("cpus"):
            os.sched_setaffinity(0, spec["cpus"])
        barrier.wait()
        res = pop3_session(spec)
    except Exception as e:  # reported by the parent
        res = {"user": spec["user"], "error": f"{type(e).__name__}: {e}"}
    conn.send(res)
    conn.close()


# ---------------------------------------------------------------- pochta


def start_pochta(a, binary, work, users):
    d = work / "pochta"
    shutil.rmtree(d, ignore_errors=True)
    (d / "data").mkdir(parents=True)
    cfg = d / "pochta.toml"
    cfg.write_text(
        f"""hostname = "mail.bench.example"
data_dir = "{d / 'data'}"
domains = ["example.test"]

[listen]
smtp = "127.0.0.1:{a.smtp_port}"
submission = ""
submissions = ""
imap = ""
imaps = ""
pop3 = "127.0.0.1:{a.pop3_port}"
pop3s = "127.0.0.1:{a.pop3s_port}"
http = ""

[limits]
connections_per_ip = 1000

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
    logf = open(d / "server.log", "w")
    server = subprocess.Popen(
        [str(binary), "--config", str(cfg), "serve"], stdout=logf, stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": "info"},
    )
    server.logfile = logf
    wait_port("127.0.0.1", a.pop3_port, proc=server)
    wait_port("127.0.0.1", a.smtp_port, proc=server)
    return server


def deliver(a, workloads, connections=8):
    """Sends every message of the workloads through pochta's MX (not measured)."""
    jobs = queue.Queue()
    for w in workloads:
        for u in w["users"]:
            for s in range(1, w["per_user"] + 1):
                jobs.put((w["kind"], u, s, w["size"]))
    total = jobs.qsize()
    errors = []

    def worker():
        try:
            with smtplib.SMTP("127.0.0.1", a.smtp_port, "client.remote.example", timeout=300) as c:
                while True:
                    try:
                        kind, u, s, size = jobs.get_nowait()
                    except queue.Empty:
                        return
                    c.sendmail("sender@remote.example", [f"user{u}@example.test"], make_message(kind, u, s, size))
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        die(f"delivery to pochta failed: {errors[0]}")
    log(f"  delivered {total} messages to pochta's MX in {time.monotonic() - t0:.1f} s (not measured)")


# ---------------------------------------------------------------- dovecot


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
    if a.dovecot_passwords == "argon2id":
        # The argon2id PHC strings of pochta's accounts, for Dovecot's passwd-file (Dovecot
        # verifies them with libsodium; it re-reads the file when it changes).
        db = sqlite3.connect(f"file:{work / 'pochta' / 'data' / 'store.sqlite3'}?mode=ro", uri=True)
        hashes = dict(db.execute("SELECT address, password_hash FROM accounts"))
        db.close()
        users_file = d / "dc" / "users"
        lines = []
        for line in users_file.read_text().splitlines(keepends=True):
            user = line.split(":", 1)[0]
            if user in hashes:
                line = line.replace("{PLAIN}" + PASSWORD, "{ARGON2ID}" + hashes[user], 1)
            lines.append(line)
        users_file.write_text("".join(lines))
    wait_port(host, int(ports["pop3"]))
    return {
        "dir": d, "host": host, "pop3": int(ports["pop3"]), "pop3s": int(ports["pop3s"]),
        "master": master, "uid": uid, "gid": gid, "maildirs": maildirs,
    }


# ---------------------------------------------------------------- one pass of sessions


def report_profile(prof, messages):
    """Stops the profiler; for strace, prints the system calls per message."""
    calls = stop_profiler(prof, kill=False)
    if calls is not None:
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
        log(
            f"    strace: {sum(calls.values()) / messages:.1f} system calls per message; "
            + ", ".join(f"{k} {v / messages:.1f}" for k, v in top)
            + f" ({prof[1]})"
        )


def pin_server(a, root):
    """PIN=1: every process and thread of the server on a.server_cpus (children and
    threads created later inherit it)."""
    if not a.server_cpus:
        return
    for pid in tree(root):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), a.server_cpus)
        except OSError:
            pass


def run_sessions(a, srv, w, tag, measure=False, dump=None):
    """Runs one session per user of workload `w` against server `srv`, all at once.

    Returns the per-session results and, when `measure`, the run's figures."""
    users = w["users"]
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(users) + 1)
    procs, pipes = [], []
    for u in users:
        spec = {
            "host": srv["host"], "port": srv["pop3s"] if a.tls == "implicit" else srv["pop3"],
            "tls": a.tls, "user": f"user{u}@example.test", "timeout": a.timeout,
            "pipeline": a.pipeline, "sample": a.sample, "sizes": {"s": a.small_size, "l": a.large_size},
            "cpus": a.client_cpus,
        }
        if dump:
            spec["dump"] = {"dir": dump["maildirs"][u], "uid": dump["uid"], "gid": dump["gid"]}
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=client_main, args=(tx, barrier, spec), daemon=True)
        p.start()
        tx.close()
        procs.append(p)
        pipes.append(rx)

    root = srv["root"]
    pin_server(a, root)
    work = Path(a.bench_dir).resolve()
    prof = start_profiler(a.profile, root, work / f"strace-{tag}.txt",
                          work / f"perf-{tag}.data" if srv["name"] == "pochta" else None) if measure else None
    sampler = None
    if measure:
        if srv["name"] == "pochta":
            try:  # reset VmHWM to the current RSS (Linux: clear_refs 5)
                Path(f"/proc/{root}/clear_refs").write_text("5")
            except OSError:
                pass
        sampler = MemorySampler(root, rss=True, names=None if srv["name"] == "pochta" else {"pop3", "pop3-login"})
        sampler.start()
    load1 = os.getloadavg()[0]
    cpu0, m0, self0 = tree_cpu(root), machine_cpu(), cpu_now()
    t0 = time.monotonic()
    barrier.wait(timeout=60)
    results = []
    for rx in pipes:
        try:
            results.append(rx.recv())
        except EOFError:
            results.append({"error": "a client process died"})
    for p in procs:
        p.join(timeout=30)
    t_done = time.monotonic()
    errs = [r for r in results if "error" in r]
    if errs:
        die(f"{tag}: {errs[0].get('user', '')}: {errs[0]['error']}")
    time.sleep(0.3)  # let the server finish its side (Dovecot's post-QUIT exits)
    cpu1, m1, self1 = tree_cpu(root), machine_cpu(), cpu_now()
    window = time.monotonic() - t0
    if not measure:
        return results, None
    sampler.stop()
    msgs = sum(r["count"] for r in results)
    report_profile(prof, msgs)
    secs = max(r["t_end"] for r in results) - t0
    client_cpu = sum(r["cpu"] for r in results)
    server_cpu = cpu1 - cpu0
    octets = sum(r["bytes"] for r in results)
    logins = sorted(r["t_login"] - r["t0"] for r in results)
    hwm = kib_field(f"/proc/{root}/status", "VmHWM") / 1024 if srv["name"] == "pochta" else None
    fig = {
        "server": srv["name"], "workload": w["name"], "messages": msgs, "octets": octets,
        "seconds": secs, "rate": msgs / secs, "mbps": octets / 1e6 / secs,
        "server_cpu": server_cpu, "client_cpu": client_cpu,
        "bench_cpu": self1 - self0,
        "other_cpu": max(0.0, (m1[0] - m0[0]) - server_cpu - sum(r["cpu_all"] for r in results) - (self1 - self0)),
        "window": window,  # the span over which other_cpu and the interrupts are counted
        "irq_cpu": m1[1] - m0[1], "steal": m1[2] - m0[2],
        "pss_mib": sampler.peak_pss / 1024, "rss_mib": sampler.peak_rss / 1024,
        "rss_procs": sampler.rss_procs, "hwm_mib": hwm, "load1": load1,
        "login_ms": 1e3 * statistics.median(logins), "login_max_ms": 1e3 * logins[-1],
        "first_end": min(r["t_end"] for r in results) - t0,
        "cipher": results[0]["cipher"], "reads": sum(r["reads"] for r in results) / msgs,
    }
    return results, fig


def check(results, w, tag, expect_stat):
    """Sizes, counts and the sample; returns {bench id: sha256} of the sample."""
    hashes, problems = {}, []
    for r in results:
        if r["bad_sizes"]:
            problems.append(f"{r['user']}: {len(r['bad_sizes'])} messages differ from LIST, e.g. {r['bad_sizes'][0]}")
        if r["content_errors"]:
            problems.append(f"{r['user']}: {len(r['content_errors'])} sampled messages differ from the generated ones, e.g. {r['content_errors'][0]}")
        if r["count"] != w["per_user"]:
            problems.append(f"{r['user']}: STAT says {r['count']} messages, {w['per_user']} were delivered")
        if expect_stat is not None and expect_stat.get(r["user"]) != (r["count"], r["octets"]):
            problems.append(f"{r['user']}: STAT {r['count']} {r['octets']}, pochta's STAT {expect_stat.get(r['user'])}")
        hashes.update(r["hashes"])
    if problems:
        die(f"{tag}: " + "; ".join(problems[:5]))
    return hashes


def compare_samples(ref, got, tag):
    common = set(ref) & set(got)
    diff = [k for k in common if ref[k] != got[k]]
    if diff or not common:
        die(f"{tag}: {len(diff)} of {len(common)} sampled messages differ between pochta and Dovecot, e.g. {diff[:3]}")
    return len(common)


def print_run(f):
    mem = (
        f"pochta VmHWM {f['hwm_mib']:.0f} MiB, PSS {f['pss_mib']:.0f} MiB"
        if f["hwm_mib"] is not None
        else f"pop3+pop3-login RSS {f['rss_mib']:.0f} MiB over {f['rss_procs']} processes, Dovecot PSS {f['pss_mib']:.0f} MiB"
    )
    log(
        f"  {f['server']:<8} {f['workload']:<6} run {f['run']}: {f['messages']} messages, {f['octets'] / 1e6:.1f} MB in "
        f"{f['seconds']:6.2f} s = {f['rate']:7.0f} msg/s {f['mbps']:7.1f} MB/s; login median {f['login_ms']:.0f} ms "
        f"(max {f['login_max_ms']:.0f}), first session done at {f['first_end']:.2f} s; server CPU {f['server_cpu']:.2f} s = {1e3 * f['server_cpu'] / f['messages']:.3f} ms/msg; "
        f"client CPU {f['client_cpu']:.2f} s ({f['client_cpu'] / f['seconds']:.2f} CPUs, {f['reads']:.1f} reads/msg); {mem}; "
        f"interrupts {f['irq_cpu']:.1f} s, other processes {f['other_cpu']:.1f} s, steal {f['steal']:.1f} s (over {f['window']:.1f} s); "
        f"load {f['load1']:.2f}"
    )


# ---------------------------------------------------------------- main


def main():
    a = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rs = Path(a.reference_stack)
    if not rs.is_file():
        die(
            f"the reference-stack script was not found at {rs}.\n"
            "  It starts Postfix and Dovecot from Debian's packages for comparisons; set REFERENCE_STACK=/path/to/reference-stack\n"
            "  (in the project's workplace it is shared/peers/reference-stack beside the repository)."
        )
    a.reference_stack = str(rs.resolve())
    if os.geteuid() != 0:
        die("run as root: the reference stack installs Debian packages and starts Dovecot")
    work = Path(a.bench_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cpus = sorted(os.sched_getaffinity(0))
    a.client_cpus = a.server_cpus = None
    if a.pin:
        if len(cpus) < 2:
            die("PIN=1 needs at least 2 CPUs")
        a.client_cpus, a.server_cpus = cpus[-1:], cpus[:-1]
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout.split("\n")[1:2]
    if fs and "tmpfs" in fs[0]:
        die(f"{work} is on tmpfs: set BENCH_DIR to a directory on a disk, like the servers' data in production")

    small = {"key": "4k", "name": "4 KiB", "kind": "s", "size": a.small_size, "per_user": a.small_per_user,
             "users": list(range(1, a.small_users + 1))}
    large = {"key": "1m", "name": "1 MiB", "kind": "l", "size": a.large_size, "per_user": a.large_per_user,
             "users": list(range(a.small_users + 1, a.small_users + a.large_users + 1))}
    workloads = [w for w in (small, large) if w["key"] in a.workloads]
    all_users = [u for w in workloads for u in w["users"]]

    binary = pochta_binary(a)
    log(
        f"pop3-retrieval: " + "; ".join(f"{w['name']}: {len(w['users'])} users x {w['per_user']} messages" for w in workloads)
        + f"; one session per user, all at once, {'STLS' if a.tls == 'stls' else 'POP3S'}, "
        f"{'one RETR at a time' if a.pipeline == 1 else f'{a.pipeline} RETRs in flight'}; "
        f"{a.runs} run(s) per server after a warm-up; work dir {work}; {os.cpu_count()} CPUs"
        + (f"; servers pinned to CPU {a.server_cpus}, clients to CPU {a.client_cpus}" if a.pin else "")
        + f"; Dovecot's passwords: {'{PLAIN} (as the reference stack writes them)' if a.dovecot_passwords == 'plain' else 'the argon2id hashes pochta stores'}"
    )
    log(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if a.profile:
        log(f"  PROFILE={a.profile}: the servers run under a profiler, so these timings are NOT results")

    pochta = dovecot = None
    try:
        log("loading: pochta ...")
        pochta = start_pochta(a, binary, work, all_users)
        ps = {"name": "pochta", "host": "127.0.0.1", "pop3": a.pop3_port, "pop3s": a.pop3s_port, "root": pochta.pid}
        deliver(a, workloads)
        log("loading: Dovecot (reference stack) ...")
        dovecot = start_dovecot(a, work, all_users)
        ds = {"name": "dovecot", "host": dovecot["host"], "pop3": dovecot["pop3"], "pop3s": dovecot["pop3s"],
              "root": dovecot["master"]}

        stat, ref = {}, {}
        for w in workloads:
            # Pochta's warm-up pass also copies every message, as retrieved, into Dovecot's Maildirs.
            t = time.monotonic()
            res, _ = run_sessions(a, ps, w, f"pochta {w['name']} warm-up", dump=dovecot)
            ref[w["key"]] = check(res, w, f"pochta {w['name']} warm-up", None)
            stat[w["key"]] = {r["user"]: (r["count"], r["octets"]) for r in res}
            octets = sum(r["octets"] for r in res)
            log(f"  {w['name']}: pochta holds {sum(r['count'] for r in res)} messages, {octets} octets; "
                f"copied into Dovecot's Maildirs ({time.monotonic() - t:.1f} s)")
            t = time.monotonic()
            res, _ = run_sessions(a, ds, w, f"dovecot {w['name']} warm-up")
            n = compare_samples(ref[w["key"]], check(res, w, f"dovecot {w['name']} warm-up", stat[w["key"]]),
                                f"{w['name']} warm-up")
            log(f"  {w['name']}: Dovecot's STAT equals pochta's for every user; {n} sampled messages identical "
                f"(Dovecot warm-up {time.monotonic() - t:.1f} s)")

        results = []
        for run in range(1, a.runs + 1):
            order = (ps, ds) if run % 2 else (ds, ps)
            for w in workloads:
                for srv in order:
                    tag = f"{srv['name']}-{w['key']}-run{run}"
                    res, fig = run_sessions(a, srv, w, tag, measure=True)
                    compare_samples(ref[w["key"]], check(res, w, tag, stat[w["key"]]), tag)
                    fig["run"] = run
                    print_run(fig)
                    results.append(fig)
    finally:
        stop_pochta(pochta)
        if dovecot is not None or (work / "dovecot").exists():
            subprocess.run([a.reference_stack, "stop", str(work / "dovecot")], capture_output=True, env=rs_env())
        if not a.keep:
            shutil.rmtree(work / "pochta" / "data", ignore_errors=True)
            shutil.rmtree(work / "dovecot" / "mail", ignore_errors=True)

    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'server':<8} {'workload':<8} {'messages':>8} {'MB':>7} {'seconds':>8} {'msg/s':>7} {'MB/s':>7}"
        f" {'median msg/s':>13} {'CPU ms/msg':>11} {'client CPUs':>12}  (best of {a.runs})"
    )
    ciphers = {}
    for w in workloads:
        best, med = {}, {}
        for s in ("pochta", "dovecot"):
            rs_ = [f for f in results if f["server"] == s and f["workload"] == w["name"]]
            b = max(rs_, key=lambda f: f["rate"])
            best[s], med[s] = b, statistics.median(f["rate"] for f in rs_)
            ciphers[s] = b["cipher"]
            print(
                f"{s:<8} {w['name']:<8} {b['messages']:>8} {b['octets'] / 1e6:>7.1f} {b['seconds']:>8.2f} "
                f"{b['rate']:>7.0f} {b['mbps']:>7.1f} {med[s]:>13.0f} {1e3 * b['server_cpu'] / b['messages']:>11.3f} "
                f"{b['client_cpu'] / b['seconds']:>12.2f}"
            )
        w["ratio"] = best["pochta"]["rate"] / best["dovecot"]["rate"]
        w["ratio_med"] = med["pochta"] / med["dovecot"]
        w["cpu_ratio"] = (best["dovecot"]["server_cpu"] / best["dovecot"]["messages"]) / max(
            1e-9, best["pochta"]["server_cpu"] / best["pochta"]["messages"])
        w["mem"] = best
    for w in workloads:
        print(f"ratio pochta/dovecot, {w['name']}: {w['ratio']:.2f} best, {w['ratio_med']:.2f} median "
              f"(messages/s; target >= 2); server CPU per message dovecot/pochta {w['cpu_ratio']:.2f}")
    for w in workloads:
        p, d = w["mem"]["pochta"], w["mem"]["dovecot"]
        print(f"peak memory, {w['name']}: pochta VmHWM {p['hwm_mib']:.0f} MiB (PSS {p['pss_mib']:.0f}); "
              f"Dovecot pop3+pop3-login RSS {d['rss_mib']:.0f} MiB over {d['rss_procs']} processes "
              f"(PSS of all Dovecot processes {d['pss_mib']:.0f})")
    print(f"TLS: pochta {ciphers['pochta']}, Dovecot {ciphers['dovecot']}")
    busy = max(f["other_cpu"] / f["window"] for f in results)
    if busy > 0.1:
        print(f"warning: other processes on this machine used up to {busy:.2f} CPUs during a run; "
              "the numbers are disturbed, rerun on a quiet machine")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"pop3-retrieval: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
