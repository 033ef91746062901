#!/usr/bin/env python3
"""SMTP client side of pochta's end-to-end tests, built on Python's smtplib.

Every subcommand prints one JSON object on its last line of output, so the Rust
tests can assert on what a real client saw.
"""
import argparse
import hashlib
import json
import smtplib
import socket
import ssl
import sys
import threading
import time


def unverified():
    return ssl._create_unverified_context()


def connect(args):
    if args.security == "tls":
        s = smtplib.SMTP_SSL("127.0.0.1", args.port, context=unverified(), timeout=60)
    else:
        s = smtplib.SMTP("127.0.0.1", args.port, timeout=60)
    s.ehlo(args.helo)
    if args.security == "starttls":
        s.starttls(context=unverified())
        s.ehlo(args.helo)
    return s


def login(s, args):
    if not args.user:
        return
    if args.auth_mech == "LOGIN":
        s.user, s.password = args.user, args.password
        code, resp = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    else:
        code, resp = s.login(args.user, args.password)
    return code


def cmd_send(args):
    with open(args.file, "rb") as f:
        msg = f.read()
    s = connect(args)
    features = sorted(s.esmtp_features.keys())
    try:
        login(s, args)
        opts = []
        if args.smtputf8:
            opts.append("SMTPUTF8")
        if args.eightbit:
            opts.append("BODY=8BITMIME")
        if args.bdat:
            code, text = bdat_send(s, args, msg, opts)
            out = {"ok": code == 250, "code": code, "message": text, "features": features}
        else:
            refused = s.sendmail(args.mail_from, args.to, msg, mail_options=opts)
            out = {"ok": True, "refused": {k: [v[0], v[1].decode()] for k, v in refused.items()},
                   "features": features}
    except smtplib.SMTPResponseException as e:
        out = {"ok": False, "code": e.smtp_code, "message": e.smtp_error.decode(errors="replace"),
               "features": features}
    except smtplib.SMTPRecipientsRefused as e:
        out = {"ok": False, "refused": {k: [v[0], v[1].decode()] for k, v in e.recipients.items()},
               "features": features}
    try:
        s.quit()
    except Exception:
        pass
    print(json.dumps(out))


def bdat_send(s, args, msg, opts):
    """smtplib has no BDAT: send MAIL/RCPT with it, then the chunks by hand."""
    code, text = s.mail(args.mail_from, opts)
    if code != 250:
        return code, text.decode()
    for r in args.to:
        code, text = s.rcpt(r)
        if code != 250:
            return code, text.decode()
    size = args.bdat
    chunks = [msg[i:i + size] for i in range(0, len(msg), size)] or [b""]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        s.send(("BDAT %d%s\r\n" % (len(chunk), " LAST" if last else "")).encode() + chunk)
        code, text = s.getreply()
        if code != 250:
            return code, text.decode()
    return code, text.decode()


def cmd_script(args):
    """Sends raw command lines and records every reply."""
    s = connect(args)
    replies = []
    for line in args.line:
        s.putcmd(line)
        code, text = s.getreply()
        replies.append([code, text.decode(errors="replace")])
        if code == 421:
            break
    try:
        s.close()
    except Exception:
        pass
    print(json.dumps({"replies": replies}))


def cmd_crash_sender(args):
    """Sends numbered messages on several connections until the server dies.

    Prints `SENT id sha256` before a message's DATA and `ACK id` after its 250,
    flushing each line, so the test knows exactly what was acknowledged."""
    lock = threading.Lock()

    def out(line):
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def worker(t):
        try:
            s = smtplib.SMTP("127.0.0.1", args.port, timeout=30)
            s.ehlo("crash-sender")
            for i in range(args.count):
                mid = "t%d-%d-%s@crash.test" % (t, i, args.tag)
                body = "".join("line %d of message %s, some filler text to make it longer\r\n" % (k, mid)
                               for k in range(40 + (i % 7) * 10))
                msg = ("Message-ID: <%s>\r\nSubject: crash %s\r\nFrom: s@remote.example\r\n\r\n%s" % (mid, mid, body)).encode()
                out("SENT %s %s" % (mid, hashlib.sha256(msg).hexdigest()))
                s.sendmail("s@remote.example", [args.to], msg)
                out("ACK %s" % mid)
        except Exception as e:
            out("ERR %d %s" % (t, type(e).__name__))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out(json.dumps({"done": True}))


def cmd_verify_cert(args):
    """Connects with certificate verification against the server's own certificate."""
    ctx = ssl.create_default_context(cafile=args.cafile)
    try:
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname=args.host) as tls:
            banner = tls.recv(200).decode()
        print(json.dumps({"ok": True, "banner": banner}))
    except ssl.SSLError as e:
        print(json.dumps({"ok": False, "error": str(e)}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--security", choices=["plain", "starttls", "tls"], default="plain")
        sp.add_argument("--helo", default="client.test")
        sp.add_argument("--user")
        sp.add_argument("--password")
        sp.add_argument("--auth-mech", default="PLAIN")

    sp = sub.add_parser("send")
    common(sp)
    sp.add_argument("--from", dest="mail_from", required=True)
    sp.add_argument("--to", action="append", required=True)
    sp.add_argument("--file", required=True)
    sp.add_argument("--smtputf8", action="store_true")
    sp.add_argument("--eightbit", action="store_true")
    sp.add_argument("--bdat", type=int, default=0, help="send with BDAT in chunks of this size")
    sp.set_defaults(fn=cmd_send)

    sp = sub.add_parser("script")
    common(sp)
    sp.add_argument("--line", action="append", default=[])
    sp.set_defaults(fn=cmd_script)

    sp = sub.add_parser("crash-sender")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--to", required=True)
    sp.add_argument("--threads", type=int, default=4)
    sp.add_argument("--count", type=int, default=1000)
    sp.add_argument("--tag", default="0")
    sp.set_defaults(fn=cmd_crash_sender)

    sp = sub.add_parser("verify-cert")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--cafile", required=True)
    sp.add_argument("--host", required=True)
    sp.set_defaults(fn=cmd_verify_cert)

    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
