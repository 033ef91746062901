#!/usr/bin/env python3
"""IMAP client side of pochta's end-to-end tests, built on Python's imaplib
(plus a small raw client for commands imaplib cannot send).

Each subcommand prints one JSON object on its last line."""
import argparse
import base64
import json
import os
import re
import socket
import ssl
import time
import zlib
import imaplib


def ctx():
    return ssl._create_unverified_context()


def connect(args):
    if args.security == "tls":
        m = imaplib.IMAP4_SSL("127.0.0.1", args.port, ssl_context=ctx(), timeout=30)
    else:
        m = imaplib.IMAP4("127.0.0.1", args.port, timeout=30)
        if args.security == "starttls":
            m.starttls(ssl_context=ctx())
    return m


def b64(data):
    return base64.b64encode(data).decode()


def cmd_flow(args):
    """What a mail program does all day."""
    m = connect(args)
    out = {"caps_before": list(m.capabilities)}
    m.login(args.user, args.password)
    out["caps_after"] = m.capability()[1][0].decode().upper().split()
    typ, boxes = m.list()
    out["list"] = [b.decode() for b in boxes]
    typ, data = m.select("INBOX")
    out["exists"] = int(data[0])
    typ, data = m.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    out["headers"] = [b64(d[1]) for d in data if isinstance(d, tuple)]
    typ, data = m.uid("FETCH", "1:*", "(BODY[])")
    out["bodies"] = [b64(d[1]) for d in data if isinstance(d, tuple)]
    typ, data = m.fetch("1", "(FLAGS)")
    out["flags_after_read"] = data[0].decode()
    out["store"] = m.store("1", "+FLAGS", "(\\Flagged $Forwarded)")[1][0].decode()
    out["search_flagged"] = m.search(None, "FLAGGED")[1][0].decode()
    out["search_subject"] = m.uid("SEARCH", "SUBJECT", "second")[1][0].decode()
    out["copy"] = m.copy("1", "Archive")[1][0].decode()
    typ, data = m._simple_command("MOVE", "2", "Trash")
    out["move"] = [typ, data[0].decode() if data and data[0] else ""]
    msg = b"From: " + args.user.encode() + b"\r\nSubject: my sent copy\r\n\r\nsent body\r\n"
    out["append"] = m.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(time.time()), msg)[1][0].decode()
    out["status_sent"] = m.status("Sent", "(MESSAGES UNSEEN)")[1][0].decode()
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    out["expunge"] = [d.decode() for d in data if d]
    typ, data = m.select("INBOX")
    out["exists_after"] = int(data[0])
    out["logout"] = m.logout()[0]
    print(json.dumps(out))


def cmd_idle(args):
    """IDLE until an EXISTS arrives; reports how long after `--ready-file`."""
    m = connect(args)
    m.login(args.user, args.password)
    m.select("INBOX")
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    cont = m.readline()
    assert cont.startswith(b"+"), cont
    open(args.ready_file, "w").close()
    start = time.time()
    m.sock.settimeout(args.timeout)
    line = b""
    try:
        while b"EXISTS" not in line:
            line = m.readline()
    except socket.timeout:
        line = b"timeout"
    elapsed = time.time() - start
    m.send(b"DONE\r\n")
    done = m.readline()
    m.logout()
    print(json.dumps({"line": line.decode().strip(), "elapsed": elapsed, "done": done.decode().strip()}))


class Raw:
    """A minimal IMAP client: sends tagged commands, collects responses
    (literals included) up to the tagged completion."""

    def __init__(self, args):
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=30)
        self.sock = ctx().wrap_socket(raw) if args.security == "tls" else raw
        self.buf = b""
        self.n = 0
        self.inflate = None
        self.deflate = None
        self.greeting = self.line()
        if args.security == "starttls":
            self.cmd("STARTTLS")
            self.sock = ctx().wrap_socket(self.sock)

    def recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        if self.inflate:
            data = self.inflate.decompress(data)
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.recv()
        line, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", line)
        if m:
            n = int(m.group(1))
            while len(self.buf) < n:
                self.recv()
            line += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            line += self.line()
        return line

    def send(self, data):
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def cmd(self, text, raw=None):
        self.n += 1
        tag = "r%d" % self.n
        self.send((tag + " " + text + "\r\n").encode() if raw is None else raw.replace(b"TAG", tag.encode()))
        lines = []
        while True:
            l = self.line()
            lines.append(l.decode(errors="replace"))
            if l.startswith(tag.encode() + b" ") or l.startswith(b"* BYE"):
                return lines


def cmd_raw(args):
    r = Raw(args)
    out = {"greeting": r.greeting.decode(), "responses": []}
    if args.user:
        out["responses"].append(r.cmd('LOGIN "%s" "%s"' % (args.user, args.password)))
    for text in args.line:
        if text == "WAIT":
            # Tell the test we are here, then pause until it says go (bounded),
            # so that another protocol can change the mailbox mid-session.
            deadline = time.time() + 30
            open(args.ready_file, "w").close()
            while not os.path.exists(args.wait_file) and time.time() < deadline:
                time.sleep(0.01)
            if os.path.exists(args.wait_file):
                os.remove(args.wait_file)
            continue
        if text == "COMPRESS":
            resp = r.cmd("COMPRESS DEFLATE")
            out["responses"].append(resp)
            if resp[-1].split()[1] == "OK":
                r.inflate = zlib.decompressobj(-15)
                r.deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
            continue
        try:
            out["responses"].append(r.cmd(text))
        except EOFError as e:
            out["responses"].append(["closed: %s" % e])
            break
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in [("flow", cmd_flow), ("idle", cmd_idle), ("raw", cmd_raw)]:
        sp = sub.add_parser(name)
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--security", choices=["plain", "starttls", "tls"], default="starttls")
        sp.add_argument("--user", default="")
        sp.add_argument("--password", default="")
        sp.set_defaults(fn=fn)
        if name == "idle":
            sp.add_argument("--ready-file", required=True)
            sp.add_argument("--timeout", type=float, default=10)
        if name == "raw":
            sp.add_argument("--line", action="append", default=[])
            sp.add_argument("--ready-file", help="created at each WAIT line")
            sp.add_argument("--wait-file", help="each WAIT line waits for it (and removes it)")
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
