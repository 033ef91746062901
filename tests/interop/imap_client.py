#!/usr/bin/env python3
"""Scripted IMAP sessions for the IMAP interop checks (tests/interop/imap.sh).

The real clients (mbsync, curl, neomutt) are checked against what pochta stored
(store.py) and against these sessions, which also do what no client can be made
to do on purpose: log in without TLS, time an IDLE wake-up, compress by hand.

  imap_client.py ops PORT CAFILE USER PASSWORD OP...
        one session over implicit TLS that changes the account, OP by OP:
          create:NAME                  CREATE NAME
          append:BOX:FLAGS:SUBJECT     APPEND a small message with this Subject
                                       (and a Message-ID made from it) to BOX with
                                       FLAGS (e.g. "\\Seen \\Flagged", or empty)
          store:BOX:SUBJECT:+FLAGS     UID STORE +FLAGS (or -FLAGS with "-") on
                                       the one message of BOX with this Subject
          expunge:BOX:SUBJECT          \\Deleted and UID EXPUNGE of that message
  imap_client.py state PORT CAFILE USER PASSWORD OUTFILE
        writes every mailbox (LIST) and message (EXAMINE, FETCH FLAGS and
        Subject) to OUTFILE as store.py state prints them:
        "box<TAB>NAME<TAB>COUNT" and "msg<TAB>NAME<TAB>SUBJECT<TAB>FLAGS"
        (Maildir letters), sorted.
  imap_client.py maildir DIR
        the same for a tree of Maildirs (mbsync's "SubFolders Verbatim": a
        folder is a directory with cur/ and new/; its name is its path under
        DIR); flags come from the ":2,FLAGS" suffix of each file name.
  imap_client.py cleartext PORT CAFILE USER PASSWORD
        on the STARTTLS port: the greeting and CAPABILITY advertise STARTTLS and
        LOGINDISABLED and no AUTH=; LOGIN and AUTHENTICATE PLAIN get
        NO [PRIVACYREQUIRED]; SELECT gets BAD; then STARTTLS with a LOGIN
        pipelined behind it in the same packet (which must be dropped), TLS
        (certificate verified for 127.0.0.1), CAPABILITY now offers AUTH=PLAIN
        and neither LOGINDISABLED nor STARTTLS, and LOGIN works.
  imap_client.py idle PORT CAFILE USER PASSWORD MX_PORT SUBJECT
        SELECT INBOX, IDLE; then delivers a message with SUBJECT through the MX
        (smtplib) and waits for "* N EXISTS" (at most 1 s after the 250); then
        flags it and expunges it from a second session and waits for the
        FETCH FLAGS and EXPUNGE updates (1 s each); DONE.
  imap_client.py compress PORT CAFILE USER PASSWORD SUBJECT FILE
        COMPRESS DEFLATE, then every command and response through raw deflate
        (RFC 4978): CAPABILITY no longer offers COMPRESS=DEFLATE, a second
        COMPRESS gets NO [COMPRESSIONACTIVE], LIST, SELECT, UID FETCH BODY.PEEK[]
        of the INBOX message with SUBJECT equals FILE byte for byte, LOGOUT.

The transcript goes to stdout ("-> " client, "<- " server, "== " notes; for
literals only their size). Exit status 0 when every expectation held, 1
otherwise (the last line says why), 2 on usage errors.
"""

import base64
import imaplib
import os
import re
import smtplib
import socket
import ssl
import sys
import time
import zlib


class Failed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Failed(why)


def log(prefix, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    print(f"{prefix} {text}", flush=True)


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


# Maildir info letters of the IMAP system flags.
LETTERS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}


def letters(flags):
    return "".join(sorted(LETTERS[f.lower()] for f in flags if f.lower() in LETTERS)) or "-"


def subject_line(header_bytes):
    """The Subject of a header block, unfolded, whitespace-normalised."""
    text = header_bytes.decode("utf-8", "replace").replace("\r\n", "\n")
    text = re.sub(r"\n[ \t]+", " ", text)
    for line in text.split("\n"):
        if line.lower().startswith("subject:"):
            return " ".join(line[8:].split()) or "-"
    return "-"


# ---------------------------------------------------------------- imaplib sessions


class Session:
    """An imaplib session over implicit TLS that logs what it does."""

    def __init__(self, port, cafile, user, password):
        self.m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context(cafile), timeout=20)
        log("<-", self.m.welcome)
        self.check("LOGIN", self.m.login(user, password), shown=f"LOGIN {user} ****")

    def check(self, what, result, shown=None):
        typ, data = result
        log("->", shown or what)
        for d in data:
            if isinstance(d, tuple):
                log("<-", d[0] + b" ...")
            elif d is not None:
                log("<-", d)
        log("<-", typ)
        expect(typ == "OK", f"{shown or what} answered {typ} {data!r}")
        return data

    def call(self, what, fn, *args):
        try:
            return self.check(what, fn(*args))
        except imaplib.IMAP4.error as e:
            raise Failed(f"{what}: {e}") from e

    def boxes(self):
        names = []
        for line in self.call('LIST "" "*"', self.m.list, '""', '"*"'):
            m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
            expect(m is not None, f"cannot parse LIST response {line!r}")
            attrs, name = m.group(1).decode().lower().split(), m.group(2).decode()
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            if "\\noselect" not in attrs and "\\nonexistent" not in attrs:
                names.append(name)
        return names

    def select(self, box, readonly=False):
        return int(self.call(f"{'EXAMINE' if readonly else 'SELECT'} {box}", self.m.select, quote(box), readonly)[0])

    def messages(self):
        """[(uid, [flags], subject)] of the selected mailbox."""
        typ, data = self.m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        log("->", "UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        expect(typ == "OK", f"UID FETCH answered {typ} {data!r}")
        out = []
        for d in data:
            if not isinstance(d, tuple):
                continue
            head = d[0].decode("utf-8", "replace")
            uid = re.search(r"UID (\d+)", head)
            flags = re.search(r"FLAGS \(([^)]*)\)", head)
            expect(uid and flags, f"cannot parse FETCH response {head!r}")
            out.append((int(uid.group(1)), flags.group(1).split(), subject_line(d[1])))
            log("<-", f"UID {uid.group(1)} FLAGS ({flags.group(1)}) Subject: {out[-1][2]}")
        return out

    def uid_of(self, box, subject):
        self.select(box)
        found = [uid for uid, _, subj in self.messages() if subj == subject]
        expect(len(found) == 1, f"{len(found)} messages in {box} have the Subject {subject!r}, expected 1")
        return found[0]

    def logout(self):
        log("->", "LOGOUT")
        log("<-", self.m.logout()[0])


def quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_message(subject):
    mid = re.sub(r"[^A-Za-z0-9.-]", "-", subject)
    return (
        f"From: Interop <sender@remote.example>\r\n"
        f"To: someone@localhost\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n"
        f"Message-ID: <{mid}@interop.test>\r\n"
        f"\r\n"
        f"Body of {subject}.\r\n"
    ).encode()


def run_ops(port, cafile, user, password, ops):
    s = Session(port, cafile, user, password)
    for op in ops:
        kind, _, rest = op.partition(":")
        if kind == "create":
            s.call(f"CREATE {rest}", s.m.create, quote(rest))
        elif kind == "append":
            box, flags, subject = rest.split(":", 2)
            s.call(
                f"APPEND {box} ({flags}) {{...}} Subject: {subject}",
                s.m.append,
                quote(box),
                f"({flags})",
                None,
                make_message(subject),
            )
        elif kind == "store":
            box, subject, change = rest.split(":", 2)
            uid = s.uid_of(box, subject)
            sign, flags = change[0], change[1:]
            expect(sign in "+-", f"bad store op {op!r}")
            s.call(f"UID STORE {uid} {sign}FLAGS ({flags})", s.m.uid, "STORE", str(uid), f"{sign}FLAGS", f"({flags})")
        elif kind == "expunge":
            box, subject = rest.split(":", 1)
            uid = s.uid_of(box, subject)
            s.call(f"UID STORE {uid} +FLAGS (\\Deleted)", s.m.uid, "STORE", str(uid), "+FLAGS", "(\\Deleted)")
            s.call(f"UID EXPUNGE {uid}", s.m.uid, "EXPUNGE", str(uid))
        else:
            raise Failed(f"unknown op {op!r}")
    s.logout()


def run_state(port, cafile, user, password):
    s = Session(port, cafile, user, password)
    lines = []
    for box in s.boxes():
        n = s.select(box, readonly=True)
        msgs = s.messages() if n else []
        expect(len(msgs) == n, f"EXAMINE {box} said {n} EXISTS, FETCH 1:* returned {len(msgs)} messages")
        lines.append(f"box\t{box}\t{n}")
        lines += [f"msg\t{box}\t{subj}\t{letters(flags)}" for _, flags, subj in msgs]
    s.logout()
    return sorted(lines)


def maildir_state(top):
    lines = []
    for dirpath, dirnames, _ in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if not ("cur" in dirnames and "new" in dirnames):
            continue
        box = os.path.relpath(dirpath, top).replace(os.sep, "/")
        n = 0
        for sub in ("cur", "new"):
            for name in sorted(os.listdir(os.path.join(dirpath, sub))):
                if name.startswith("."):
                    continue
                n += 1
                info = name.split(":2,", 1)[1] if ":2," in name else ""
                flags = "".join(sorted(c for c in info if c in "DFRST")) or "-"
                with open(os.path.join(dirpath, sub, name), "rb") as f:
                    head = f.read(65536).replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
                lines.append(f"msg\t{box}\t{subject_line(head)}\t{flags}")
        lines.append(f"box\t{box}\t{n}")
        # cur/new/tmp are not folders of their own.
        dirnames[:] = [d for d in dirnames if d not in ("cur", "new", "tmp")]
    return sorted(lines)


# ---------------------------------------------------------------- raw sessions


class Raw:
    """A line-level IMAP connection (optionally TLS, optionally deflated)."""

    def __init__(self, port, cafile=None, tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.cafile = cafile
        if tls:
            self.starttls()
        self.buf = b""
        self.inflate = None
        self.deflate = None

    def starttls(self):
        self.sock = context(self.cafile).wrap_socket(self.sock, server_hostname="127.0.0.1")
        log("==", f"TLS: {self.sock.version()}, certificate verified for 127.0.0.1")

    def compress(self):
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        # Anything already read past the OK is compressed data.
        pending, self.buf = self.buf, b""
        if pending:
            self.buf = self.inflate.decompress(pending)

    def send(self, line, shown=None):
        log("->", shown or line)
        data = line.encode() + b"\r\n"
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def fill(self, deadline=None):
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline")
            self.sock.settimeout(left)
        else:
            self.sock.settimeout(20)
        data = self.sock.recv(65536)
        if not data:
            raise Failed("the server closed the connection")
        if self.inflate:
            data = self.inflate.decompress(data)
        self.buf += data

    def line(self, deadline=None):
        """One response line; a literal is returned as (line, bytes)."""
        while b"\r\n" not in self.buf:
            self.fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", line)
        if not m:
            log("<-", line)
            return line
        n = int(m.group(1))
        while len(self.buf) < n:
            self.fill(deadline)
        lit, self.buf = self.buf[:n], self.buf[n:]
        log("<-", line + f" ({n} bytes)".encode())
        rest = self.line(deadline)
        return (line, lit, rest)

    def command(self, tag, cmd, shown=None):
        """Sends TAG CMD; returns (untagged lines, tagged line)."""
        self.send(f"{tag} {cmd}", shown and f"{tag} {shown}")
        untagged = []
        while True:
            l = self.line()
            first = l[0] if isinstance(l, tuple) else l
            if first.startswith(tag.encode() + b" "):
                return untagged, first
            untagged.append(l)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def sasl_plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def caps_of(line):
    m = re.search(rb"CAPABILITY ([^\]\r\n]*)", line)
    return set(m.group(1).decode().upper().split()) if m else set()


def run_cleartext(port, cafile, user, password):
    r = Raw(port, cafile)
    greeting = r.line()
    expect(greeting.startswith(b"* OK"), f"greeting is {greeting!r}")
    caps = caps_of(greeting)
    expect({"STARTTLS", "LOGINDISABLED"} <= caps, f"the greeting's capabilities lack STARTTLS or LOGINDISABLED: {sorted(caps)}")
    untagged, done = r.command("a1", "CAPABILITY")
    caps = caps_of(untagged[0] if untagged else b"")
    expect(done.startswith(b"a1 OK"), f"CAPABILITY answered {done!r}")
    expect({"STARTTLS", "LOGINDISABLED"} <= caps, f"CAPABILITY lacks STARTTLS or LOGINDISABLED: {sorted(caps)}")
    expect(not any(c.startswith("AUTH=") for c in caps), f"CAPABILITY offers AUTH= before TLS: {sorted(caps)}")
    _, done = r.command("a2", f"LOGIN {quote(user)} {quote(password)}", shown=f"LOGIN {quote(user)} ****")
    expect(done.startswith(b"a2 NO [PRIVACYREQUIRED]"), f"LOGIN before STARTTLS answered {done!r}, not NO [PRIVACYREQUIRED]")
    _, done = r.command("a3", f"AUTHENTICATE PLAIN {sasl_plain(user, password)}", shown="AUTHENTICATE PLAIN ****")
    expect(
        done.startswith(b"a3 NO [PRIVACYREQUIRED]"),
        f"AUTHENTICATE PLAIN before STARTTLS answered {done!r}, not NO [PRIVACYREQUIRED]",
    )
    _, done = r.command("a4", "SELECT INBOX")
    expect(done.startswith(b"a4 BAD") or done.startswith(b"a4 NO"), f"SELECT before login answered {done!r}")
    # STARTTLS and a LOGIN in one packet: the LOGIN is clear text sent before the
    # handshake and must not be executed after it (RFC 9051 §11.1).
    log("->", "a5 STARTTLS + x1 LOGIN ... (one packet)")
    r.sock.sendall(f"a5 STARTTLS\r\nx1 LOGIN {quote(user)} {quote(password)}\r\n".encode())
    done = r.line()
    expect(done.startswith(b"a5 OK"), f"STARTTLS answered {done!r}")
    expect(r.buf == b"", f"clear-text bytes after the STARTTLS OK: {r.buf!r}")
    try:
        r.starttls()
    except (ssl.SSLError, OSError) as e:
        raise Failed(f"TLS handshake after STARTTLS failed: {e}") from e
    untagged, done = r.command("a6", "CAPABILITY")
    expect(done.startswith(b"a6 OK"), f"CAPABILITY under TLS answered {done!r}")
    expect(
        not any((u[0] if isinstance(u, tuple) else u).startswith(b"x1 ") for u in untagged),
        "the LOGIN pipelined behind STARTTLS in clear text was executed after the handshake",
    )
    caps = caps_of(untagged[-1] if untagged else b"")
    expect("AUTH=PLAIN" in caps, f"CAPABILITY under TLS does not offer AUTH=PLAIN: {sorted(caps)}")
    expect("LOGINDISABLED" not in caps, "CAPABILITY under TLS still says LOGINDISABLED")
    expect("STARTTLS" not in caps, "CAPABILITY under TLS still offers STARTTLS")
    _, done = r.command("a7", f"LOGIN {quote(user)} {quote(password)}", shown=f"LOGIN {quote(user)} ****")
    expect(done.startswith(b"a7 OK"), f"LOGIN under TLS answered {done!r}")
    untagged, done = r.command("a8", "SELECT INBOX")
    expect(done.startswith(b"a8 OK"), f"SELECT under TLS answered {done!r}")
    _, done = r.command("a9", "LOGOUT")
    expect(done.startswith(b"a9 OK"), f"LOGOUT answered {done!r}")
    r.close()


def wait_for(r, pattern, deadline, what):
    """Reads untagged lines until one matches PATTERN; returns it."""
    while True:
        try:
            l = r.line(deadline)
        except (socket.timeout, TimeoutError):
            raise Failed(f"no {what} before the deadline") from None
        first = l[0] if isinstance(l, tuple) else l
        if re.match(pattern, first):
            return first


def run_idle(port, cafile, user, password, mx_port, subject):
    r = Raw(port, cafile, tls=True)
    r.line()
    _, done = r.command("i1", f"AUTHENTICATE PLAIN {sasl_plain(user, password)}", shown="AUTHENTICATE PLAIN ****")
    expect(done.startswith(b"i1 OK"), f"AUTHENTICATE answered {done!r}")
    untagged, done = r.command("i2", "SELECT INBOX")
    expect(done.startswith(b"i2 OK"), f"SELECT answered {done!r}")
    exists = [int(re.match(rb"\* (\d+) EXISTS", u).group(1)) for u in untagged if isinstance(u, bytes) and re.match(rb"\* \d+ EXISTS", u)]
    expect(exists, "SELECT gave no EXISTS")
    n = exists[-1]
    r.send("i3 IDLE")
    cont = r.line()
    expect(cont.startswith(b"+"), f"IDLE answered {cont!r}, not a continuation")

    # 1. a delivery through the MX
    t0 = time.monotonic()
    log("==", f"SMTP: delivering {subject!r} to {user} through the MX (127.0.0.1:{mx_port})")
    with smtplib.SMTP("127.0.0.1", mx_port, timeout=20) as smtp:
        refused = smtp.sendmail("sender@remote.example", [user], make_message(subject))
        expect(not refused, f"the MX refused {refused}")
    t1 = time.monotonic()
    log("==", f"SMTP: 250 after {1000 * (t1 - t0):.0f} ms")
    line = wait_for(r, rb"\* \d+ EXISTS", t1 + 5, "EXISTS")
    t2 = time.monotonic()
    log("==", f"EXISTS {1000 * (t2 - t1):.0f} ms after the 250")
    expect(int(line.split()[1]) == n + 1, f"IDLE said {line!r}, expected * {n + 1} EXISTS")
    expect(t2 - t1 <= 1.0, f"IDLE woke {t2 - t1:.2f} s after the delivery, more than 1 s")

    # 2. flag and expunge from another session
    other = Session(port, cafile, user, password)
    uid = other.uid_of("INBOX", subject)
    t1 = time.monotonic()
    other.call(f"UID STORE {uid} +FLAGS (\\Flagged)", other.m.uid, "STORE", str(uid), "+FLAGS", "(\\Flagged)")
    line = wait_for(r, rb"\* \d+ FETCH ", time.monotonic() + 5, "FETCH (FLAGS ...) for the flag change")
    t2 = time.monotonic()
    expect(rb"\Flagged" in line, f"the FETCH update {line!r} lacks \\Flagged")
    expect(t2 - t1 <= 1.0, f"the flag change reached IDLE after {t2 - t1:.2f} s, more than 1 s")
    t1 = time.monotonic()
    other.call(f"UID STORE {uid} +FLAGS (\\Deleted)", other.m.uid, "STORE", str(uid), "+FLAGS", "(\\Deleted)")
    other.call(f"UID EXPUNGE {uid}", other.m.uid, "EXPUNGE", str(uid))
    line = wait_for(r, rb"\* \d+ EXPUNGE", time.monotonic() + 5, "EXPUNGE")
    t2 = time.monotonic()
    expect(int(line.split()[1]) == n + 1, f"IDLE said {line!r}, expected * {n + 1} EXPUNGE")
    expect(t2 - t1 <= 1.5, f"the expunge reached IDLE after {t2 - t1:.2f} s")
    other.logout()

    r.send("DONE")
    while True:
        l = r.line()
        first = l[0] if isinstance(l, tuple) else l
        if first.startswith(b"i3 "):
            break
    expect(first.startswith(b"i3 OK"), f"IDLE ended with {first!r}")
    _, done = r.command("i4", "LOGOUT")
    expect(done.startswith(b"i4 OK"), f"LOGOUT answered {done!r}")
    r.close()


def run_compress(port, cafile, user, password, subject, path):
    with open(path, "rb") as f:
        expected = f.read()
    r = Raw(port, cafile, tls=True)
    r.line()
    _, done = r.command("c1", f"AUTHENTICATE PLAIN {sasl_plain(user, password)}", shown="AUTHENTICATE PLAIN ****")
    expect(done.startswith(b"c1 OK"), f"AUTHENTICATE answered {done!r}")
    expect("COMPRESS=DEFLATE" in caps_of(done), f"COMPRESS=DEFLATE not offered after login: {done!r}")
    _, done = r.command("c2", "COMPRESS DEFLATE")
    expect(done.startswith(b"c2 OK"), f"COMPRESS DEFLATE answered {done!r}")
    r.compress()
    log("==", "deflate on in both directions")
    untagged, done = r.command("c3", "CAPABILITY")
    expect(done.startswith(b"c3 OK"), f"CAPABILITY (compressed) answered {done!r}")
    caps = caps_of(untagged[-1] if untagged else b"")
    expect("IMAP4REV2" in caps, f"CAPABILITY (compressed) is garbled: {sorted(caps)}")
    expect("COMPRESS=DEFLATE" not in caps, "CAPABILITY still offers COMPRESS=DEFLATE under compression")
    _, done = r.command("c4", "COMPRESS DEFLATE")
    expect(done.startswith(b"c4 NO [COMPRESSIONACTIVE]"), f"a second COMPRESS answered {done!r}")
    untagged, done = r.command("c5", 'LIST "" "*"')
    expect(done.startswith(b"c5 OK"), f"LIST answered {done!r}")
    expect(any(u.endswith(b" INBOX") for u in untagged if isinstance(u, bytes)), "LIST (compressed) has no INBOX")
    untagged, done = r.command("c6", "SELECT INBOX")
    expect(done.startswith(b"c6 OK"), f"SELECT answered {done!r}")
    untagged, done = r.command("c7", f"UID SEARCH SUBJECT {quote(subject)}")
    expect(done.startswith(b"c7 OK"), f"UID SEARCH answered {done!r}")
    uids = [w for u in untagged if isinstance(u, bytes) and u.startswith(b"* SEARCH") for w in u.split()[2:]]
    expect(len(uids) == 1, f"UID SEARCH SUBJECT found {uids}, expected one message")
    uid = uids[0].decode()
    untagged, done = r.command("c8", f"UID FETCH {uid} BODY.PEEK[]")
    expect(done.startswith(b"c8 OK"), f"UID FETCH answered {done!r}")
    lits = [u[1] for u in untagged if isinstance(u, tuple)]
    expect(len(lits) == 1, f"UID FETCH returned {len(lits)} literals, expected 1")
    got = lits[0]
    expect(
        got == expected,
        f"BODY[] over COMPRESS ({len(got)} bytes) differs from the stored message ({len(expected)} bytes)",
    )
    log("==", f"BODY[] of UID {uid}: {len(got)} bytes, identical to {path}")
    _, done = r.command("c9", "NOOP")
    expect(done.startswith(b"c9 OK"), f"NOOP answered {done!r}")
    _, done = r.command("c10", "LOGOUT")
    expect(done.startswith(b"c10 OK"), f"LOGOUT answered {done!r}")
    r.close()


def main(argv):
    try:
        mode = argv[1]
        if mode == "maildir":
            print("\n".join(maildir_state(argv[2])))
            return 0
        port, cafile, user, password = int(argv[2]), argv[3], argv[4], argv[5]
        rest = argv[6:]
    except (IndexError, ValueError):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if mode == "ops":
            run_ops(port, cafile, user, password, rest)
        elif mode == "state" and len(rest) == 1:
            lines = run_state(port, cafile, user, password)
            with open(rest[0], "w") as f:
                f.write("".join(line + "\n" for line in lines))
        elif mode == "cleartext" and not rest:
            run_cleartext(port, cafile, user, password)
        elif mode == "idle" and len(rest) == 2:
            run_idle(port, cafile, user, password, int(rest[0]), rest[1])
        elif mode == "compress" and len(rest) == 2:
            run_compress(port, cafile, user, password, rest[0], rest[1])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Failed as e:
        print(f"*** {e}", flush=True)
        return 1
    except (OSError, imaplib.IMAP4.error, ssl.SSLError, smtplib.SMTPException) as e:
        print(f"*** session broke off: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
