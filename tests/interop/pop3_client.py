#!/usr/bin/env python3
"""Scripted POP3 sessions (python's poplib) for the refusals and the maildrop lock.

Real clients will not send a password in clear text when the server offers no
login before STLS, and will not open two sessions at once; these dialogues do.

  pop3_client.py cleartext PORT CAFILE USER PASSWORD
        on the STLS port: CAPA before TLS offers STLS but neither USER nor SASL;
        USER, PASS and AUTH PLAIN before STLS get "-ERR [AUTH]"; then STLS (the
        certificate verified against CAFILE for 127.0.0.1), CAPA offers USER and
        SASL PLAIN LOGIN, and USER/PASS logs in.
  pop3_client.py in-use PORT CAFILE USER PASSWORD
        on the implicit-TLS port: a first session logs in; a second one gets
        "-ERR [IN-USE]"; the first marks message 1 deleted and drops the
        connection without QUIT; then a third session logs in (within 10 s)
        and finds every message still there.
  pop3_client.py hold PORT CAFILE USER PASSWORD RELEASE-FILE
        logs in over implicit TLS, prints "holding N" and keeps the session (and
        so the maildrop lock) until RELEASE-FILE exists (at most 60 s), then QUITs.

The transcript goes to stdout ("-> " client, "<- " server). Exit status 0 when
every expectation held, 1 otherwise (the last line says why), 2 on usage errors.
"""

import base64
import poplib
import socket
import ssl
import sys
import time


class Failed(Exception):
    pass


def log(prefix, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    print(f"{prefix} {text}", flush=True)


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def cmd(p, line, shown=None):
    """Sends one command; returns the first reply line, +OK or -ERR (no raise)."""
    log("->", shown or line)
    try:
        resp = p._shortcmd(line)
    except poplib.error_proto as e:
        resp = e.args[0] if e.args else b"-ERR"
    log("<-", resp)
    return resp if isinstance(resp, bytes) else str(resp).encode()


def capa(p):
    log("->", "CAPA")
    caps = p.capa()
    for k, v in caps.items():
        log("<-", " ".join([k, *v]))
    return caps


def login(p, user, password):
    """USER/PASS; returns the reply to PASS (+OK or -ERR)."""
    resp = cmd(p, f"USER {user}")
    if not resp.startswith(b"+OK"):
        return resp
    return cmd(p, f"PASS {password}", shown="PASS ****")


def expect(cond, why):
    if not cond:
        raise Failed(why)


def ssl_session(port, cafile, label):
    p = poplib.POP3_SSL("127.0.0.1", port, context=context(cafile), timeout=20)
    log("<-", f"[{label}] {p.getwelcome().decode('utf-8', 'replace')}")
    return p


def run_cleartext(port, cafile, user, password):
    p = poplib.POP3("127.0.0.1", port, timeout=20)
    log("<-", p.getwelcome())
    caps = capa(p)
    expect("STLS" in caps, "CAPA before TLS does not offer STLS")
    expect("USER" not in caps, "CAPA before TLS offers USER")
    expect("SASL" not in caps, "CAPA before TLS offers SASL")
    resp = cmd(p, f"USER {user}")
    expect(resp.startswith(b"-ERR [AUTH]"), f"USER before STLS answered {resp!r}, not -ERR [AUTH]")
    resp = cmd(p, f"PASS {password}", shown="PASS ****")
    expect(resp.startswith(b"-ERR [AUTH]"), f"PASS before STLS answered {resp!r}, not -ERR [AUTH]")
    cred = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    resp = cmd(p, f"AUTH PLAIN {cred}", shown="AUTH PLAIN ****")
    expect(resp.startswith(b"-ERR [AUTH]"), f"AUTH PLAIN before STLS answered {resp!r}, not -ERR [AUTH]")
    resp = cmd(p, "STAT")
    expect(resp.startswith(b"-ERR"), f"STAT before login answered {resp!r}")
    log("->", "STLS")
    try:
        resp = p.stls(context(cafile))
    except (poplib.error_proto, ssl.SSLError, OSError) as e:
        raise Failed(f"STLS failed: {e}") from e
    log("<-", resp)
    log("==", f"TLS: {p.sock.version()}, certificate verified for 127.0.0.1")
    caps = capa(p)
    expect("USER" in caps, "CAPA under TLS does not offer USER")
    expect("PLAIN" in caps.get("SASL", []), "CAPA under TLS does not offer SASL PLAIN")
    expect("STLS" not in caps, "CAPA under TLS still offers STLS")
    resp = login(p, user, password)
    expect(resp.startswith(b"+OK"), f"USER/PASS under TLS answered {resp!r}")
    resp = cmd(p, "STAT")
    expect(resp.startswith(b"+OK"), f"STAT answered {resp!r}")
    log("->", "QUIT")
    log("<-", p.quit())


def stat_count(resp):
    return int(resp.split()[1])


def run_in_use(port, cafile, user, password):
    first = ssl_session(port, cafile, "session 1")
    resp = login(first, user, password)
    expect(resp.startswith(b"+OK"), f"session 1: login answered {resp!r}")
    count = stat_count(cmd(first, "STAT"))
    expect(count >= 1, "session 1: the maildrop is empty; the check needs a message")

    second = ssl_session(port, cafile, "session 2")
    resp = login(second, user, password)
    expect(
        resp.startswith(b"-ERR [IN-USE]"),
        f"session 2 (concurrent): login answered {resp!r}, not -ERR [IN-USE]",
    )
    resp = cmd(second, "STAT")
    expect(resp.startswith(b"-ERR"), f"session 2: STAT after [IN-USE] answered {resp!r}")

    resp = cmd(first, "DELE 1")
    expect(resp.startswith(b"+OK"), f"session 1: DELE 1 answered {resp!r}")
    log("==", "session 1: connection dropped without QUIT")
    first.sock.shutdown(socket.SHUT_RDWR)  # TCP FIN, no TLS close_notify, no QUIT
    first.file.close()
    first.sock.close()

    log("->", "QUIT")
    log("<-", second.quit())

    # The server notices the closed connection and unlocks; until then a new
    # session still gets [IN-USE] (each try on a fresh connection, so that the
    # errors do not add up to the per-session limit).
    deadline = time.monotonic() + 10
    while True:
        third = ssl_session(port, cafile, "session 3")
        resp = login(third, user, password)
        if not resp.startswith(b"-ERR [IN-USE]"):
            break
        log("->", "QUIT")
        log("<-", third.quit())
        expect(time.monotonic() < deadline, "still [IN-USE] 10 s after session 1 dropped")
        time.sleep(0.2)
    expect(resp.startswith(b"+OK"), f"session 3: login after session 1 ended answered {resp!r}")
    after = stat_count(cmd(third, "STAT"))
    expect(
        after == count,
        f"{after} messages after session 1 dropped with message 1 marked deleted, expected {count}",
    )
    log("->", "QUIT")
    log("<-", third.quit())


def run_hold(port, cafile, user, password, release):
    import os

    p = ssl_session(port, cafile, "holder")
    resp = login(p, user, password)
    expect(resp.startswith(b"+OK"), f"login answered {resp!r}")
    count = stat_count(cmd(p, "STAT"))
    print(f"holding {count}", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    log("->", "QUIT")
    log("<-", p.quit())


def main(argv):
    try:
        mode, port, cafile, user, password = argv[1], int(argv[2]), argv[3], argv[4], argv[5]
    except (IndexError, ValueError):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if mode == "cleartext":
            run_cleartext(port, cafile, user, password)
        elif mode == "in-use":
            run_in_use(port, cafile, user, password)
        elif mode == "hold" and len(argv) == 7:
            run_hold(port, cafile, user, password, argv[6])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Failed as e:
        print(f"*** {e}", flush=True)
        return 1
    except (OSError, poplib.error_proto, ssl.SSLError) as e:
        print(f"*** session broke off: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
