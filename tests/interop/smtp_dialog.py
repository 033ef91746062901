#!/usr/bin/env python3
"""A scripted plain-text SMTP dialogue, for the refusals swaks cannot provoke.

swaks will not send AUTH when the server does not advertise it, so "AUTH before
STARTTLS gets 538" needs a client that sends exactly what it is told:

  smtp_dialog.py PORT "EHLO client.example" "AUTH PLAIN AGFsaWNl..." QUIT

It connects to 127.0.0.1:PORT, reads the greeting, then sends each argument as one
command line and reads the complete (possibly multi-line) reply before the next.
The transcript goes to stdout: "<- " for server lines, "-> " for client lines.
Exit status 0 when the dialogue ran to the end (whatever the replies were), 1 when
the connection failed or closed early; the caller greps the reply codes.
"""

import socket
import sys


def read_reply(f):
    lines = []
    while True:
        line = f.readline(4096)
        if not line:
            raise ConnectionError("connection closed by the server")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(text)
        print(f"<- {text}", flush=True)
        if len(text) < 4 or text[3] != "-":
            return lines


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    port = int(argv[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            f = s.makefile("rb")
            read_reply(f)
            for command in argv[2:]:
                print(f"-> {command}", flush=True)
                s.sendall(command.encode() + b"\r\n")
                read_reply(f)
    except (OSError, ConnectionError) as e:
        print(f"*** {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
