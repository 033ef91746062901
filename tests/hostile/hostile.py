#!/usr/bin/env python3
"""Hostile clients against the real pochta binary (issue 8, item 4).

Starts `pochta serve` on loopback with a temporary data directory, then runs
one attack after another while an honest client (another process, from
127.0.0.1) logs in over IMAPS and fetches a message in a loop:

  slowloris    thousands of connections (--connections, 2000) spread over
               SMTP, POP3, IMAP and the HTTP listener, each sending one byte a
               second, from 127.0.0.2.. (40 per source address, under
               connections_per_ip)
  never-read   logged-in IMAP and POP3 clients that ask for large messages
               (FETCH BODY[], RETR) again and again and never read; SMTP and
               JMAP clients that pipeline requests without reading
  huge         an SMTP line over 1000 octets, an IMAP literal {999999999}
               (before and after login), a POP3 line over 255 octets, a JMAP
               request over maxSizeRequest and a 100 KiB HTTP header
  flood        pipelined floods: 100 000 SMTP NOOPs (read back), invalid
               SMTP/POP3/IMAP commands until the error limit closes the session
  storm        500 connections at once from one address to each of SMTP,
               POP3 and IMAP (connections_per_ip = 50)
  bruteforce   wrong passwords for one user over SMTP AUTH, POP3, IMAP and
               JMAP at once, from one address: the shared login throttle locks
               the address and the user out (the right password is refused
               too), while the honest user is not affected

For every attack it checks the protocol answers, reports the honest client's
login+fetch latency (p50/p99, before and during), the server's VmRSS/VmHWM
(peak during the attack, per connection for slow-loris) from /proc, and greps
the server's log for the attack's trace. Exits non-zero when a check fails.

  python3 tests/hostile/hostile.py --binary target/release/pochta
  python3 tests/hostile/hostile.py --short      # the CI form: ~300 connections, a few s per attack

Only loopback is used. Raises its own RLIMIT_NOFILE (the server inherits it).
"""

import argparse
import base64
import concurrent.futures
import http.client
import imaplib
import json
import os
import poplib
import resource
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

USER = "alice@localhost"        # the honest client
VICTIM = "victim@localhost"     # brute-force target
BIG = "bob@localhost"           # owns large messages for the never-read clients
PASSWORD = "correct horse battery"

FAILURES = []


def check(cond, what):
    """Records a failed check (the run goes on, the exit status says it)."""
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL: {what}", flush=True)
    return cond


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def src(n):
    """The n-th attacker source address (127.0.0.2 ...); 127.0.0.1 is the honest client's."""
    n += 2
    return f"127.0.{n // 250}.{n % 250 + 1}" if n >= 250 else f"127.0.0.{n}"


def connect(port, source=None, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def recv_until(s, marker, limit=1 << 20, timeout=10.0):
    s.settimeout(timeout)
    data = b""
    while marker not in data and len(data) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------- server


class Server:
    def __init__(self, binary, extra=""):
        self.binary = os.path.abspath(binary)
        self.dir = tempfile.mkdtemp(prefix="pochta-hostile-")
        self.config = os.path.join(self.dir, "pochta.toml")
        names = ["smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http"]
        listen = "\n".join(f'{n} = "127.0.0.1:0"' for n in names)
        with open(self.config, "w") as f:
            f.write(f'hostname = "mx.test.example"\ndomains = ["localhost"]\ndata_dir = "data"\n\n'
                    f"[listen]\n{listen}\n\n{extra}\n")
        self.log_path = os.path.join(self.dir, "server.log")
        out_path = os.path.join(self.dir, "stdout.txt")
        env = dict(os.environ, RUST_LOG="info")
        self.proc = subprocess.Popen([self.binary, "--config", self.config, "serve"],
                                     stdout=open(out_path, "w"), stderr=open(self.log_path, "w"),
                                     env=env)
        deadline = time.time() + 30
        banner = ""
        while "Stop with Ctrl-C." not in banner:
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"pochta did not start:\n{self.log()}")
            time.sleep(0.05)
            banner = open(out_path).read()
        self.ports = {}
        for line in banner.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in names and ":" in words[1]:
                self.ports[words[0]] = int(words[1].rsplit(":", 1)[1])
        missing = [n for n in names if n not in self.ports]
        if missing:
            raise SystemExit(f"no {missing} in the banner:\n{banner}")

    def cli(self, *args, stdin=None):
        return subprocess.run([self.binary, "--config", self.config, *args], input=stdin,
                              capture_output=True, text=True, timeout=60)

    def add_user(self, address):
        r = self.cli("user", "add", address, "--password-stdin", stdin=PASSWORD + "\n")
        if r.returncode != 0:
            raise SystemExit(f"user add {address}: {r.stderr}")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def memory(self):
        """(VmRSS, VmHWM) in KiB."""
        rss = hwm = 0
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return rss, hwm

    def cpu(self):
        """CPU seconds (user + system) the server has used."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Sampler(threading.Thread):
    """Samples the server's VmRSS every 100 ms; keeps the peak."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.peak = 0
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.peak = max(self.peak, self.server.memory()[0])
            except OSError:
                return
            time.sleep(0.1)

    def stop(self):
        self.stop_flag.set()
        self.join()
        return self.peak


# --------------------------------------------------------------------------- honest client


def probe(args):
    """The honest client, run as its own process: IMAPS LOGIN, SELECT, FETCH, LOGOUT in a loop."""
    end = time.time() + args.duration
    times, errors = [], []
    while time.time() < end:
        t0 = time.time()
        try:
            m = imaplib.IMAP4_SSL("127.0.0.1", args.port, ssl_context=tls_ctx(), timeout=30)
            m.login(USER, PASSWORD)
            m.select("INBOX", readonly=True)
            typ, data = m.fetch("1", "(BODY.PEEK[])")
            assert typ == "OK" and len(data[0][1]) > 1000, (typ, data[:1])
            m.logout()
            times.append(time.time() - t0)
        except Exception as e:  # noqa: BLE001 - every failure counts
            errors.append(f"{type(e).__name__}: {e}")
        time.sleep(0.05)
    print(json.dumps({"times": times, "errors": errors[:5], "failed": len(errors)}))


class Honest:
    """Runs the honest probe for `duration` seconds in another process."""

    def __init__(self, server, duration):
        self.proc = subprocess.Popen([sys.executable, __file__, "probe", "--port",
                                      str(server.ports["imaps"]), "--duration", str(duration)],
                                     stdout=subprocess.PIPE, text=True)

    def result(self):
        out, _ = self.proc.communicate(timeout=300)
        r = json.loads(out.strip().splitlines()[-1])
        t = sorted(r["times"])
        pct = (lambda p: t[min(len(t) - 1, int(len(t) * p))] * 1000 if t else float("nan"))
        r["n"], r["p50"], r["p99"] = len(t), pct(0.50), pct(0.99)
        return r


# --------------------------------------------------------------------------- attacks


def slowloris(server, n, duration):
    """n connections, 40 per source address, each sending a byte a second."""
    targets = [
        ("smtp", b"EHLO " + b"a" * 5000),
        ("pop3", b"USER " + b"a" * 5000),
        ("imap", b"a1 LOGIN " + b"a" * 5000),
        ("http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 5000),
    ]
    socks, failed = [], 0
    for i in range(n):
        name, payload = targets[i % len(targets)]
        try:
            s = connect(server.ports[name], source=src(i // 40), timeout=5)
            s.setblocking(False)
            socks.append([s, payload, 0])
        except OSError:
            failed += 1
    check(failed == 0, f"slowloris: {failed} of {n} connections could not be opened")
    end = time.time() + duration
    closed = 0
    while time.time() < end:
        tick = time.time()
        for entry in socks:
            s, payload, pos = entry
            if s is None:
                continue
            try:
                s.send(payload[pos:pos + 1])
                entry[2] = pos + 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                closed += 1
                s.close()
                entry[0] = None
        time.sleep(max(0.0, 1.0 - (time.time() - tick)))
    open_now = sum(1 for e in socks if e[0] is not None)
    for e in socks:
        if e[0] is not None:
            e[0].close()
    return {"opened": len(socks), "still_open": open_now, "closed_by_server": closed}


def imap_login(port, user, source=None):
    s = ssl.create_default_context()
    s = tls_ctx().wrap_socket(connect(port, source), server_hostname="localhost")
    recv_until(s, b"\r\n")
    s.sendall(f'l LOGIN {user} "{PASSWORD}"\r\n'.encode())
    r = recv_until(s, b"l OK")
    if b"l OK" not in r:
        raise OSError(f"login failed: {r[-200:]!r}")
    return s


def never_read(server, conns, duration, jmap_blob, kinds):
    """Clients that ask for big output and never read it."""
    socks = []
    opened = 0
    for i in range(conns):
        kind = kinds[i % len(kinds)]
        if kind == 1 and i >= len(kinds):
            continue  # one POP3 session per maildrop
        try:
            if kind == 0:  # IMAP: FETCH of every big message, 20 times, pipelined
                s = imap_login(server.ports["imaps"], BIG, src(200 + i % 10))
                s.sendall(b"s SELECT INBOX\r\n")
                s.settimeout(2)
                try:
                    for k in range(20):
                        s.sendall(f"f{k} FETCH 1:* BODY.PEEK[]\r\n".encode())
                except (socket.timeout, ssl.SSLError, OSError):
                    pass
            elif kind == 1:  # POP3: RETR of every big message, again and again
                s = tls_ctx().wrap_socket(connect(server.ports["pop3s"], src(210 + i % 10)),
                                          server_hostname="localhost")
                recv_until(s, b"\r\n")
                s.sendall(f"USER {BIG}\r\n".encode())
                recv_until(s, b"\r\n")
                s.sendall(f"PASS {PASSWORD}\r\n".encode())
                r = recv_until(s, b"\r\n")
                if not r.startswith(b"+OK"):
                    raise OSError(f"POP3 login: {r!r}")
                s.settimeout(2)
                try:
                    for k in range(100):
                        s.sendall(f"RETR {k % 4 + 1}\r\n".encode())
                except (socket.timeout, ssl.SSLError, OSError):
                    pass
            elif kind == 2:  # SMTP: pipelined EHLOs (multi-line replies), never read
                s = connect(server.ports["smtp"], src(220 + i % 10))
                s.settimeout(2)
                try:
                    s.sendall(b"EHLO flood.example\r\n" * 50000)
                except (socket.timeout, OSError):
                    pass
            else:  # JMAP: pipelined downloads of a big blob, never read
                s = tls_ctx().wrap_socket(connect(server.ports["http"], src(230 + i % 10)),
                                          server_hostname="localhost")
                auth = base64.b64encode(f"{BIG}:{PASSWORD}".encode()).decode()
                req = (f"GET {jmap_blob} HTTP/1.1\r\nHost: localhost\r\n"
                       f"Authorization: Basic {auth}\r\n\r\n").encode()
                s.settimeout(2)
                try:
                    for _ in range(20):
                        s.sendall(req)
                except (socket.timeout, ssl.SSLError, OSError):
                    pass
            socks.append(s)
            opened += 1
        except OSError as e:
            check(False, f"never-read: client {i} (kind {kind}) failed to start: {e}")
    time.sleep(duration)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    return {"clients": opened}


def huge(server, jmap_limit):
    out = {}
    # SMTP: a command line over 1000 octets.
    s = connect(server.ports["smtp"], src(300))
    recv_until(s, b"\r\n")
    s.sendall(b"EHLO " + b"x" * 2000 + b"\r\n")
    r = recv_until(s, b"\r\n").decode(errors="replace")
    out["smtp_long_line"] = r.strip()[:80]
    check(r.startswith("500"), f"SMTP line > 1000: {r!r}")
    s.sendall(b"NOOP\r\n")
    r = recv_until(s, b"\r\n").decode(errors="replace")
    check(r.startswith("250"), f"SMTP after a long line, NOOP: {r!r}")
    s.close()
    # SMTP: a message line over 1000 octets inside DATA.
    s = connect(server.ports["smtp"], src(300))
    recv_until(s, b"\r\n")
    s.sendall(f"EHLO x\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<{USER}>\r\nDATA\r\n".encode())
    recv_until(s, b"354")
    s.sendall(b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\n")
    r = recv_until(s, b"\r\n").decode(errors="replace")
    out["smtp_long_data_line"] = r.strip()[:80]
    check(r[:1] == "5", f"SMTP DATA line > 1000: {r!r}")
    s.close()
    # IMAP: a huge literal before login (plain port) and in APPEND after login.
    s = connect(server.ports["imap"], src(301))
    recv_until(s, b"\r\n")
    s.sendall(b"a LOGIN {999999999}\r\n")
    r = recv_until(s, b"\r\n").decode(errors="replace")
    out["imap_literal_preauth"] = r.strip()[:80]
    check(not r.startswith("+") and ("BAD" in r or "NO" in r), f"IMAP LOGIN {{999999999}}: {r!r}")
    s.close()
    s = imap_login(server.ports["imaps"], USER, src(301))
    s.sendall(b"b APPEND INBOX {999999999}\r\n")
    r = recv_until(s, b"\r\n").decode(errors="replace")
    out["imap_literal_append"] = r.strip()[:80]
    check(not r.startswith("+") and ("BAD" in r or "NO" in r), f"IMAP APPEND {{999999999}}: {r!r}")
    s.sendall(b"c NOOP\r\n")
    r = recv_until(s, b"c OK").decode(errors="replace")
    check("c OK" in r, f"IMAP after a refused literal, NOOP: {r!r}")
    s.close()
    # IMAP: a 100 KiB command line.
    s = connect(server.ports["imap"], src(301))
    recv_until(s, b"\r\n")
    try:
        s.sendall(b"a NOOP " + b"x" * 100000 + b"\r\n")
    except OSError:
        pass
    r = recv_until(s, b"\r\n").decode(errors="replace")
    out["imap_long_line"] = r.strip()[:80]
    check("BAD" in r or "BYE" in r, f"IMAP 100 KiB line: {r!r}")
    s.close()
    # POP3: a line over 255 octets.
    s = connect(server.ports["pop3"], src(302))
    recv_until(s, b"\r\n")
    s.sendall(b"USER " + b"u" * 400 + b"\r\n")
    r = recv_until(s, b"\r\n").decode(errors="replace")
    out["pop3_long_line"] = r.strip()[:80]
    check(r.startswith("-ERR"), f"POP3 line > 255: {r!r}")
    s.close()
    # JMAP: a request over maxSizeRequest, announced by Content-Length and
    # chunked (the server must stop reading at the limit).
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for how in ("length", "chunked"):
        s = tls_ctx().wrap_socket(connect(server.ports["http"], src(303)), server_hostname="localhost")
        head = (f"POST /jmap/api/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\n"
                f"Content-Type: application/json\r\n")
        if how == "length":
            s.sendall((head + f"Content-Length: {jmap_limit + 1000}\r\n\r\n").encode())
        else:
            s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            chunk = b"z" * 65536
            sent = 0
            try:
                while sent <= jmap_limit + 65536:
                    s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
            except OSError:
                pass
        try:
            r = recv_until(s, b"}", timeout=20).decode(errors="replace")
        except OSError as e:
            r = f"connection error: {e}"
        out[f"jmap_too_large_{how}"] = r.split("\r\n")[0] + " " + ("limit" if "maxSizeRequest" in r else "")
        check(r.startswith("HTTP/1.1 400") and "maxSizeRequest" in r, f"JMAP > maxSizeRequest ({how}): {r[:300]!r}")
        s.close()
    # HTTP: a 1 MiB header: refused (431) or cut off, never buffered.
    s = tls_ctx().wrap_socket(connect(server.ports["http"], src(303)), server_hostname="localhost")
    try:
        s.sendall(b"GET /jmap/session HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"h" * (1 << 20) + b"\r\n\r\n")
        r = recv_until(s, b"\r\n", timeout=20).decode(errors="replace")
    except OSError as e:
        r = f"closed ({type(e).__name__})"
    out["http_big_header"] = r.strip()[:60] or "closed"
    check(not r.startswith("HTTP/1.1 2") and not r.startswith("HTTP/1.1 401"), f"HTTP 1 MiB header: {r!r}")
    s.close()
    return out


def flood(server):
    out = {}
    # SMTP: 100 000 pipelined NOOPs, read back concurrently: all answered.
    n = 100000
    s = connect(server.ports["smtp"], src(400), timeout=60)
    recv_until(s, b"\r\n")
    s.sendall(b"EHLO flood.example\r\n")
    recv_until(s, b"250 ")
    got = [0]

    def reader():
        buf = b""
        s.settimeout(60)
        while got[0] < n:
            chunk = s.recv(1 << 16)
            if not chunk:
                return
            buf += chunk
            lines = buf.split(b"\r\n")
            buf = lines.pop()
            got[0] += sum(1 for l in lines if l.startswith(b"250"))

    t = threading.Thread(target=reader)
    t.start()
    t0 = time.time()
    s.sendall(b"NOOP\r\n" * n)
    t.join(timeout=120)
    out["smtp_noop_flood"] = f"{got[0]}/{n} answered in {time.time() - t0:.1f}s"
    check(got[0] == n, f"SMTP NOOP flood: {got[0]} of {n} answered")
    s.close()
    # Invalid commands until the error limit closes the session.
    for name, cmd, expect in [("smtp", b"XYZZY\r\n", b"421"), ("pop3", b"XYZZY\r\n", b"-ERR"),
                              ("imap", b"a XYZZY\r\n", b"BYE")]:
        s = connect(server.ports[name], src(401), timeout=20)
        recv_until(s, b"\r\n")
        try:
            s.sendall(cmd * 10000)
        except OSError:
            pass
        data = b""
        closed = False
        try:
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except OSError as e:
            closed = isinstance(e, ConnectionResetError)
        last = data.strip().splitlines()[-1].decode(errors="replace") if data.strip() else ""
        out[f"{name}_error_flood"] = f"closed={closed} after {data.count(expect if name != 'imap' else b'BAD')} errors: {last[:70]}"
        check(closed, f"{name}: invalid-command flood did not close the session ({last!r})")
        if name == "smtp":
            check(last.startswith("421"), f"SMTP error flood: last reply {last!r}")
        s.close()
    return out


def storm(server, n):
    out = {}
    for name, ok_prefix in [("smtp", b"220"), ("pop3", b"+OK"), ("imap", b"* OK")]:
        socks = []
        for _ in range(n):
            try:
                socks.append(connect(server.ports[name], src(500), timeout=10))
            except OSError:
                pass
        served = refused = 0
        for s in socks:
            try:
                r = recv_until(s, b"\r\n", timeout=10)
            except OSError:
                r = b""
            if r.startswith(ok_prefix) and not r.startswith(b"* OK [ALERT]"):
                served += 1
            else:
                refused += 1
        for s in socks:
            s.close()
        out[name] = f"{served} served, {refused} refused of {len(socks)}"
        check(served <= 50, f"storm {name}: {served} connections served from one address (limit 50)")
        check(refused >= len(socks) - 50, f"storm {name}: only {refused} refused")
        time.sleep(0.5)
    return out


def bruteforce(server, attempts):
    """Wrong passwords for VICTIM over four protocols at once, from one address."""
    source = src(600)
    results = {"smtp": [], "pop3": [], "imap": [], "jmap": []}

    def smtp_try():
        try:
            c = smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30,
                             source_address=(source, 0))
            c.starttls(context=tls_ctx())
            c.ehlo()
            try:
                c.login(VICTIM, "wrong")
                return "accepted"
            except smtplib.SMTPAuthenticationError as e:
                return f"{e.smtp_code}"
            except smtplib.SMTPException as e:
                return f"error {e}"
            finally:
                c.close()
        except OSError as e:
            return f"io {e}"

    def pop3_try():
        try:
            s = tls_ctx().wrap_socket(connect(server.ports["pop3s"], source, timeout=30),
                                      server_hostname="localhost")
            recv_until(s, b"\r\n", timeout=30)
            s.sendall(f"USER {VICTIM}\r\n".encode())
            recv_until(s, b"\r\n", timeout=30)
            s.sendall(b"PASS wrong\r\n")
            r = recv_until(s, b"\r\n", timeout=30).decode(errors="replace").strip()
            s.close()
            return "accepted" if r.startswith("+OK") else r[:40]
        except OSError as e:
            return f"io {e}"

    def imap_try():
        try:
            s = tls_ctx().wrap_socket(connect(server.ports["imaps"], source, timeout=30),
                                      server_hostname="localhost")
            recv_until(s, b"\r\n", timeout=30)
            s.sendall(f'l LOGIN {VICTIM} "wrong"\r\n'.encode())
            r = recv_until(s, b"l ", timeout=30)
            r = recv_until(s, b"\r\n", timeout=30) if not r.endswith(b"\r\n") else r
            s.close()
            return r.decode(errors="replace").strip().split("\r\n")[-1][:60]
        except OSError as e:
            return f"io {e}"

    def jmap_try():
        try:
            c = http.client.HTTPSConnection("127.0.0.1", server.ports["http"], context=tls_ctx(),
                                            timeout=30, source_address=(source, 0))
            auth = base64.b64encode(f"{VICTIM}:wrong".encode()).decode()
            c.request("GET", "/jmap/session", headers={"Authorization": f"Basic {auth}"})
            r = c.getresponse()
            r.read()
            c.close()
            return str(r.status)
        except OSError as e:
            return f"io {e}"

    fns = {"smtp": smtp_try, "pop3": pop3_try, "imap": imap_try, "jmap": jmap_try}
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futs = {}
        for i in range(attempts):
            for name, fn in fns.items():
                futs[pool.submit(fn)] = name
        for f in concurrent.futures.as_completed(futs, timeout=300):
            results[futs[f]].append(f.result())
    out = {k: summarize(v) for k, v in results.items()}
    for k, v in results.items():
        check("accepted" not in v, f"bruteforce {k}: a wrong password was accepted")
    # The right password for the victim, from another address: refused, the user is locked out.
    c = smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30,
                     source_address=(src(601), 0))
    c.starttls(context=tls_ctx())
    c.ehlo()
    try:
        c.login(VICTIM, PASSWORD)
        locked = "accepted"
    except smtplib.SMTPException as e:
        locked = f"refused: {getattr(e, 'smtp_code', '')} {getattr(e, 'smtp_error', b'')!r}"[:80]
    c.close()
    out["right_password_after"] = locked
    check(locked.startswith("refused"), "bruteforce: the locked-out user could still log in")
    return out


def summarize(values):
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def seed(server):
    """The users and messages the attacks and the honest client use."""
    for u in (USER, VICTIM, BIG):
        server.add_user(u)
    c = smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=60)
    for i in range(5):
        body = f"Subject: hello {i}\r\nMessage-ID: <h{i}@example.org>\r\n\r\n" + ("honest text\r\n" * 800)
        c.sendmail("sender@remote.example", [USER], body.encode())
    line = "0123456789abcdef" * 4 + "\r\n"
    for i in range(4):
        body = f"Subject: big {i}\r\nMessage-ID: <b{i}@example.org>\r\n\r\n" + line * (2 * 1024 * 1024 // len(line))
        c.sendmail("sender@remote.example", [BIG], body.encode())
    c.quit()
    # A JMAP download URL of one big message, and the request limit.
    auth = base64.b64encode(f"{BIG}:{PASSWORD}".encode()).decode()
    h = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    c = http.client.HTTPSConnection("127.0.0.1", server.ports["http"], context=tls_ctx(), timeout=30)
    c.request("GET", "/jmap/session", headers=h)
    session = json.loads(c.getresponse().read())
    account = list(session["accounts"])[0]
    limit = session["capabilities"]["urn:ietf:params:jmap:core"]["maxSizeRequest"]
    req = {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
           "methodCalls": [["Email/query", {"accountId": account}, "q"],
                           ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                                          "properties": ["blobId"]}, "g"]]}
    c.request("POST", "/jmap/api/", body=json.dumps(req), headers=h)
    r = json.loads(c.getresponse().read())
    blob = r["methodResponses"][1][1]["list"][0]["blobId"]
    c.close()
    url = session["downloadUrl"].replace("{accountId}", account).replace("{blobId}", blob) \
        .replace("{name}", "m.eml").replace("{type}", "message/rfc822")
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    return path, limit


def run_attack(server, name, duration, fn, log_patterns, per_conn=None):
    print(f"\n== {name}", flush=True)
    rss0, _ = server.memory()
    cpu0 = server.cpu()
    log_start = len(server.log())
    sampler = Sampler(server)
    sampler.start()
    honest = Honest(server, duration)
    t0 = time.time()
    result = fn()
    took = time.time() - t0
    h = honest.result()
    peak = sampler.stop()
    rss1, hwm = server.memory()
    log = server.log()[log_start:]
    found = {p: sum(1 for l in log.splitlines() if p in l) for p in log_patterns}
    row = {
        "attack": name, "seconds": round(took, 1), "server_cpu_s": round(server.cpu() - cpu0, 1),
        "result": result,
        "rss_before_kib": rss0, "rss_peak_kib": peak, "rss_after_kib": rss1, "hwm_kib": hwm,
        "honest": {"n": h["n"], "failed": h["failed"], "p50_ms": round(h["p50"], 1),
                   "p99_ms": round(h["p99"], 1), "errors": h["errors"]},
        "log": found,
    }
    if per_conn:
        row["kib_per_connection"] = round((peak - rss0) / per_conn, 1)
    print(json.dumps(row, indent=1), flush=True)
    check(server.alive(), f"{name}: the server died")
    check(h["failed"] == 0, f"{name}: the honest client failed {h['failed']} times: {h['errors']}")
    check(h["n"] > 0, f"{name}: the honest client never completed")
    for p, count in found.items():
        check(count > 0, f"{name}: nothing in the log matches {p!r}")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    p = sub.add_parser("probe")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    ap.add_argument("--binary", default=None, help="pochta binary (default: target/release, else target/debug)")
    ap.add_argument("--connections", type=int, default=2000, help="slow-loris connections")
    ap.add_argument("--duration", type=float, default=20, help="seconds per attack")
    ap.add_argument("--short", action="store_true", help="CI form: 300 connections, 4 s per attack")
    ap.add_argument("--only", default="", help="comma-separated attacks to run")
    ap.add_argument("--never-read", default="imap,pop3,smtp,jmap", help="never-read client kinds")
    ap.add_argument("--json", default="", help="write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the server's directory")
    args = ap.parse_args()
    if args.cmd == "probe":
        return probe(args)
    if args.short:
        args.connections, args.duration = min(args.connections, 300), 4
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = args.binary or next((b for b in (os.path.join(root, "target/release/pochta"),
                                              os.path.join(root, "target/debug/pochta"))
                                  if os.path.exists(b)), None)
    if not binary:
        raise SystemExit("no pochta binary: cargo build --release, or --binary PATH")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(4096, args.connections * 2 + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < args.connections + 200:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is too low for {args.connections} connections")

    server = Server(binary, extra="[limits]\nconnections_per_ip = 50\n")
    print(f"pochta {binary} pid {server.proc.pid}, dir {server.dir}", flush=True)
    rows = []
    try:
        blob_path, jmap_limit = seed(server)
        only = set(filter(None, args.only.split(",")))
        kinds = [["imap", "pop3", "smtp", "jmap"].index(k) for k in args.never_read.split(",")]
        want_attack = (lambda n: not only or n in only)
        print("\n== baseline (no attack)", flush=True)
        rows.append(run_attack(server, "baseline", args.duration, lambda: time.sleep(args.duration), []))
        if want_attack("slowloris"):
            rows.append(run_attack(server, "slowloris", args.duration,
                                   lambda: slowloris(server, args.connections, args.duration),
                                   ["connection closed", "TLS handshake"], per_conn=args.connections))
        if want_attack("never-read"):
            rows.append(run_attack(server, "never-read", args.duration,
                                   lambda: never_read(server, 40, args.duration, blob_path, kinds),
                                   ["cannot write to the client"] if 2 in kinds else []))
        if want_attack("huge"):
            rows.append(run_attack(server, "huge", args.duration,
                                   lambda: (huge(server, jmap_limit), time.sleep(1))[0], ["errors=1 "]))
        if want_attack("flood"):
            rows.append(run_attack(server, "flood", args.duration, lambda: flood(server), ["errors=20 "]))
        if want_attack("storm"):
            rows.append(run_attack(server, "storm", args.duration,
                                   lambda: storm(server, 500 if not args.short else 200),
                                   ["connection refused"]))
        if want_attack("bruteforce"):
            rows.append(run_attack(server, "bruteforce", args.duration,
                                   lambda: bruteforce(server, 8),
                                   ["authentication failed", "locked out"]))
    finally:
        server.stop()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rows": rows, "failures": FAILURES}, f, indent=1)
        if args.keep or FAILURES:
            print(f"server directory kept: {server.dir}")
        else:
            shutil.rmtree(server.dir, ignore_errors=True)
    print("\n== summary")
    for r in rows:
        extra = f", {r['kib_per_connection']} KiB/conn" if "kib_per_connection" in r else ""
        print(f"  {r['attack']:<11} honest p50 {r['honest']['p50_ms']:>7} ms p99 {r['honest']['p99_ms']:>7} ms "
              f"(n={r['honest']['n']}, failed {r['honest']['failed']}); RSS {r['rss_before_kib'] // 1024} -> "
              f"peak {r['rss_peak_kib'] // 1024} MiB{extra}")
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed:")
        for f in FAILURES:
            print(f"  - {f}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main() or 0)
