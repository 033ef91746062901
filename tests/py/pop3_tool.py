#!/usr/bin/env python3
"""POP3 client side of pochta's end-to-end tests, built on Python's poplib.

Each subcommand prints one JSON object on its last line."""
import argparse
import base64
import json
import poplib
import ssl


def connect(args):
    ctx = ssl._create_unverified_context()
    if args.security == "tls":
        p = poplib.POP3_SSL("127.0.0.1", args.port, context=ctx, timeout=30)
    else:
        p = poplib.POP3("127.0.0.1", args.port, timeout=30)
        if args.security == "stls":
            p.stls(context=ctx)
    return p


def login(p, args):
    p.user(args.user)
    p.pass_(args.password)


def cmd_fetch(args):
    """The flow of a mail program: CAPA, login, STAT, LIST, UIDL, RETR and TOP of
    everything, optionally DELE everything, QUIT."""
    p = connect(args)
    out = {"greeting": p.getwelcome().decode(), "capa": {k: v for k, v in p.capa().items()}}
    login(p, args)
    count, size = p.stat()
    out["stat"] = [count, size]
    resp, listing, _ = p.list()
    out["list"] = [l.decode() for l in listing]
    resp, uidls, _ = p.uidl()
    out["uidl"] = [l.decode() for l in uidls]
    out["messages"] = []
    out["retr_octets"] = []
    for i in range(1, count + 1):
        resp, lines, octets = p.retr(i)
        # poplib strips CRLF and undoes dot-stuffing: put the line ends back.
        out["messages"].append(base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode())
        out["retr_octets"].append(resp.decode())
        if args.top is not None:
            resp, lines, _ = p.top(i, args.top)
            out.setdefault("tops", []).append(base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode())
    if args.delete:
        for i in range(1, count + 1):
            p.dele(i)
    out["quit"] = p.quit().decode()
    print(json.dumps(out))


def cmd_script(args):
    """Logs in (unless --no-login), sends raw commands, records single-line replies."""
    p = connect(args)
    replies = []
    if not args.no_login:
        login(p, args)
    if args.ready_file:
        open(args.ready_file, "w").close()
    for line in args.line:
        if line == "WAIT":
            # Pause until the test says go (bounded), to interleave with other clients.
            import os, time
            deadline = time.time() + 30
            while not os.path.exists(args.wait_file) and time.time() < deadline:
                time.sleep(0.02)
            continue
        try:
            replies.append(p._shortcmd(line).decode())
        except poplib.error_proto as e:
            replies.append(e.args[0].decode() if isinstance(e.args[0], bytes) else str(e.args[0]))
    if args.drop:
        p.sock.close()
    else:
        try:
            replies.append(p.quit().decode())
        except poplib.error_proto as e:
            replies.append(str(e))
    print(json.dumps({"replies": replies}))


def cmd_in_use(args):
    """A second session for the same user while the first holds the maildrop."""
    first = connect(args)
    login(first, args)
    second = connect(args)
    second.user(args.user)
    try:
        second.pass_(args.password)
        result = "+OK"
    except poplib.error_proto as e:
        result = e.args[0].decode()
    first.quit()
    # After the first session ends, the maildrop is free again.
    third = connect(args)
    login(third, args)
    third.quit()
    print(json.dumps({"second": result, "third": "+OK"}))


def cmd_login(args):
    p = connect(args)
    try:
        login(p, args)
        r = "+OK"
    except poplib.error_proto as e:
        r = e.args[0].decode()
    try:
        p.quit()
    except Exception:
        pass
    print(json.dumps({"result": r}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in [("fetch", cmd_fetch), ("script", cmd_script), ("in-use", cmd_in_use), ("login", cmd_login)]:
        sp = sub.add_parser(name)
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--security", choices=["plain", "stls", "tls"], default="stls")
        sp.add_argument("--user", default="")
        sp.add_argument("--password", default="")
        sp.set_defaults(fn=fn)
        if name == "fetch":
            sp.add_argument("--delete", action="store_true")
            sp.add_argument("--top", type=int)
        if name == "script":
            sp.add_argument("--line", action="append", default=[])
            sp.add_argument("--no-login", action="store_true")
            sp.add_argument("--drop", action="store_true", help="close the socket without QUIT")
            sp.add_argument("--wait-file", help="a WAIT line pauses until this file exists")
            sp.add_argument("--ready-file", help="created once logged in")
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
