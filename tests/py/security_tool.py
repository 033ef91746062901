#!/usr/bin/env python3
"""Probes for pochta's security tests (tests/security.rs): TLS protocol
versions and clear text smuggled behind STARTTLS.

Each subcommand prints one JSON object on its last line."""
import argparse
import json
import socket
import ssl
import warnings

# TLS 1.0/1.1 are deprecated in Python: asking for them is the point here.
warnings.simplefilter("ignore", DeprecationWarning)

VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def read_line(sock):
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError("closed after %r" % data)
        data += chunk
    return data.decode(errors="replace").rstrip("\r\n")


def smtp_reply(sock):
    lines = []
    while True:
        line = read_line(sock)
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def clear_text_until_tls(sock, proto, injected=None):
    """Speaks the protocol in clear up to the TLS upgrade; `injected` is sent
    in the same write as the STARTTLS command. Returns the upgrade's reply."""
    extra = (injected + "\r\n").encode() if injected else b""
    if proto == "smtp":
        smtp_reply(sock)
        sock.sendall(b"EHLO probe.test\r\n")
        smtp_reply(sock)
        sock.sendall(b"STARTTLS\r\n" + extra)
        return smtp_reply(sock)[-1]
    if proto == "pop3":
        read_line(sock)
        sock.sendall(b"STLS\r\n" + extra)
        return read_line(sock)
    if proto == "imap":
        read_line(sock)
        sock.sendall(b"t1 STARTTLS\r\n" + extra)
        while True:
            line = read_line(sock)
            if line.startswith("t1 "):
                return line
    raise ValueError(proto)


def unverified():
    return ssl._create_unverified_context()


def cmd_tls_version(args):
    """A handshake offering exactly one TLS version, driven through memory BIOs
    so that we can see whether a ClientHello left at all and what the server
    answered on the wire."""
    out = {"version": args.version}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        if args.version in ("1.0", "1.1"):
            # OpenSSL 3 refuses old versions at its default security level.
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = VERSIONS[args.version]
        ctx.maximum_version = VERSIONS[args.version]
    except (ValueError, ssl.SSLError) as e:
        out.update({"tried": False, "error": "client cannot offer TLS %s: %s" % (args.version, e)})
        print(json.dumps(out))
        return
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
    if args.starttls:
        out["upgrade"] = clear_text_until_tls(sock, args.starttls)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    first_server_bytes = None
    try:
        while True:
            try:
                tls.do_handshake()
                out.update({"tried": True, "ok": True, "negotiated": tls.version()})
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    if "client_hello" not in out:
                        # Record layer 5 bytes, handshake header 4, then the
                        # ClientHello's legacy_version.
                        out["client_hello"] = pending[0] == 0x16 and pending[5] == 0x01
                        out["client_hello_version"] = "0x%02x%02x" % (pending[9], pending[10])
                    sock.sendall(pending)
                data = sock.recv(65536)
                if not data:
                    out.update({"tried": "client_hello" in out, "ok": False, "error": "server closed"})
                    break
                if first_server_bytes is None:
                    first_server_bytes = data
                incoming.write(data)
    except ssl.SSLError as e:
        out.update({"tried": "client_hello" in out, "ok": False, "error": str(e)})
    except (ConnectionResetError, BrokenPipeError) as e:
        out.update({"tried": "client_hello" in out, "ok": False, "error": str(e)})
    if first_server_bytes and first_server_bytes[0] == 0x15 and len(first_server_bytes) >= 7:
        # An alert record: level, description.
        out["alert"] = first_server_bytes[6]
    try:
        sock.close()
    except Exception:
        pass
    print(json.dumps(out))


def cmd_smtp(args):
    """Raw SMTP command lines in UTF-8 (smtplib sends ASCII only before it
    has negotiated SMTPUTF8 itself); every reply as [code, text]."""
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=30)
    if args.security == "tls":
        sock = unverified().wrap_socket(sock, server_hostname="localhost")
        smtp_reply(sock)
    elif args.security == "starttls":
        clear_text_until_tls(sock, "smtp")
        sock = unverified().wrap_socket(sock, server_hostname="localhost")
    else:
        smtp_reply(sock)
    replies = []
    for line in args.line:
        sock.sendall(line.encode() + b"\r\n")
        try:
            lines = smtp_reply(sock)
        except EOFError:
            replies.append([0, "closed"])
            break
        code = int(lines[0][:3])
        replies.append([code, "\n".join(l[4:] for l in lines)])
        if code == 421:
            break
    sock.close()
    print(json.dumps({"replies": replies}))


NOOP = {"smtp": b"NOOP\r\n", "pop3": b"NOOP\r\n", "imap": b"t2 NOOP\r\n"}


def cmd_starttls_inject(args):
    """Sends a command right behind STARTTLS in the same packet, completes the
    handshake, and reports anything the server says before we speak again
    (it must say nothing: the smuggled command is not run)."""
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
    out = {"upgrade": clear_text_until_tls(sock, args.proto, args.inject)}
    tls = unverified().wrap_socket(sock, server_hostname="localhost")
    tls.settimeout(args.wait)
    unsolicited = b""
    try:
        while True:
            data = tls.recv(4096)
            if not data:
                out["closed"] = True
                break
            unsolicited += data
    except (socket.timeout, TimeoutError):
        pass
    out["unsolicited"] = unsolicited.decode(errors="replace")
    if not out.get("closed"):
        tls.settimeout(10)
        tls.sendall(NOOP[args.proto])
        if args.proto == "smtp":
            out["after"] = smtp_reply(tls)[-1]
        else:
            out["after"] = read_line(tls)
    tls.close()
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("tls-version")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--version", choices=sorted(VERSIONS), required=True)
    sp.add_argument("--starttls", choices=["smtp", "pop3", "imap"])
    sp.set_defaults(fn=cmd_tls_version)
    sp = sub.add_parser("smtp")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--security", choices=["plain", "starttls", "tls"], default="plain")
    sp.add_argument("--line", action="append", default=[])
    sp.set_defaults(fn=cmd_smtp)
    sp = sub.add_parser("starttls-inject")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--proto", choices=["smtp", "pop3", "imap"], required=True)
    sp.add_argument("--inject", required=True)
    sp.add_argument("--wait", type=float, default=1.0)
    sp.set_defaults(fn=cmd_starttls_inject)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
