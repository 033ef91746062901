#!/usr/bin/env python3
"""Reads what pochta stored, straight from its SQLite database, for run.sh.

The interop checks must not trust the server's own word (the 250 reply) alone:
they look into `<data_dir>/store.sqlite3` for the message a client sent. The
database is opened read-only while the server keeps running (SQLite WAL allows
readers beside the writer).

Subcommands (DB is the path of store.sqlite3, ADDRESS an account address):

  count DB ADDRESS           messages in the account's INBOX
  find DB ADDRESS TOKEN      messages in the INBOX whose raw bytes contain TOKEN
  show DB ADDRESS TOKEN      prints the first such message (for failure reports)
  header DB ADDRESS TOKEN NAME
                             prints every value of header NAME of that message
  attachment DB ADDRESS TOKEN FILE
                             checks that the message holding TOKEN carries an
                             attachment whose decoded bytes equal FILE's bytes
  blob DB ADDRESS TOKEN|#N   writes the raw bytes of the first message holding
                             TOKEN (or of the N-th INBOX message, from 1, with
                             "#N") to stdout, unchanged
  save DB ADDRESS DIR TOKEN...
                             the INBOX holds exactly one message per TOKEN and
                             nothing else; writes each one's raw bytes to
                             DIR/TOKEN.eml (the copies POP3 clients must match)
  list DB ADDRESS            one line per INBOX message, oldest first, as POP3
                             numbers them: "N SIZE UIDL" (the stored size, the
                             message id as 12 hex digits, like pochta's UIDL)
  state DB ADDRESS           every mailbox of the account and every message in
                             it, sorted, in the format imap_client.py prints
                             for an IMAP account or a local Maildir:
                               "box<TAB>PATH<TAB>COUNT" per mailbox (PATH with
                               "/" between levels), then
                               "msg<TAB>PATH<TAB>SUBJECT<TAB>FLAGS" per message,
                             FLAGS as Maildir letters (D F R S T for \Draft
                             \Flagged \Answered \Seen \Deleted) or "-"
  modseq DB ADDRESS          the account's change counter (every write to its
                             mail raises it; IMAP HIGHESTMODSEQ)

Every subcommand prints its result on stdout; failures print a one-line reason
and exit with status 1 (2 for usage or database errors).
"""

import email
import email.policy
import os
import sqlite3
import sys
import time


def connect(path):
    # mode=ro: never write, never create. The WAL reader needs the -shm file the
    # running server already keeps; busy timeout covers a checkpoint in progress.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def inbox_rows(conn, address):
    """(id, size, raw bytes) of every message in ADDRESS's INBOX, oldest first."""
    row = conn.execute(
        "SELECT id FROM accounts WHERE address = ?", (address.lower(),)
    ).fetchone()
    if row is None:
        raise LookupError(f"no account {address!r} in the store")
    account_id = row[0]
    row = conn.execute(
        "SELECT id FROM mailboxes WHERE account_id = ? AND name = 'INBOX'",
        (account_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"account {address!r} has no INBOX")
    inbox_id = row[0]
    rows = conn.execute(
        "SELECT m.id, m.size, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id"
        " WHERE m.account_id = ? AND m.mailbox_id = ? ORDER BY m.uid",
        (account_id, inbox_id),
    ).fetchall()
    return [(r[0], r[1], bytes(r[2])) for r in rows]


def inbox_blobs(conn, address):
    """The raw bytes of every message in ADDRESS's INBOX, oldest first."""
    return [data for _, _, data in inbox_rows(conn, address)]


def with_token(blobs, token):
    # The bytes as given on the command line, whatever the locale.
    needle = os.fsencode(token)
    return [b for b in blobs if needle in b]


def one_with_token(conn, address, token):
    found = with_token(inbox_blobs(conn, address), token)
    if not found:
        raise LookupError(f"no message containing {token!r} in {address}'s INBOX")
    return found[0]


def account_id(conn, address):
    row = conn.execute(
        "SELECT id FROM accounts WHERE address = ?", (address.lower(),)
    ).fetchone()
    if row is None:
        raise LookupError(f"no account {address!r} in the store")
    return row[0]


# The stored system-flag bits (pochta_store::Flags) as Maildir info letters, in
# the alphabetical order Maildir uses.
FLAG_BITS = ((16, "D"), (4, "F"), (2, "R"), (1, "S"), (8, "T"))


def flag_letters(bits):
    return "".join(letter for bit, letter in FLAG_BITS if bits & bit) or "-"


def subject_of(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return " ".join(str(msg.get("Subject", "")).split()) or "-"


def cmd_state(conn, address):
    acc = account_id(conn, address)
    boxes = conn.execute(
        "SELECT id, parent_id, name FROM mailboxes WHERE account_id = ?", (acc,)
    ).fetchall()
    by_id = {b[0]: b for b in boxes}

    def path(box_id):
        parts = []
        while box_id in by_id:
            _, parent, name = by_id[box_id]
            parts.append(name)
            box_id = parent
        return "/".join(reversed(parts))

    lines = []
    counts = {b[0]: 0 for b in boxes}
    for box_id, flags, data in conn.execute(
        "SELECT m.mailbox_id, m.flags, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id"
        " WHERE m.account_id = ?",
        (acc,),
    ):
        counts[box_id] = counts.get(box_id, 0) + 1
        lines.append(f"msg\t{path(box_id)}\t{subject_of(bytes(data))}\t{flag_letters(flags)}")
    lines += [f"box\t{path(b)}\t{n}" for b, n in counts.items()]
    for line in sorted(lines):
        print(line)


def cmd_attachment(conn, address, token, path):
    raw = one_with_token(conn, address, token)
    with open(path, "rb") as f:
        expected = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if not msg.is_multipart():
        return f"message is not multipart (Content-Type: {msg.get_content_type()})"
    seen = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if filename is None and part.get_content_type() == "text/plain":
            continue
        data = part.get_payload(decode=True) or b""
        seen.append(f"{part.get_content_type()} {filename!r} {len(data)} bytes")
        if data == expected:
            print(
                f"attachment {filename!r} ({part.get_content_type()},"
                f" {part.get('Content-Transfer-Encoding', '7bit')}):"
                f" {len(data)} bytes, identical"
            )
            return None
    return (
        f"no attachment equals {path} ({len(expected)} bytes); parts seen: "
        + ("; ".join(seen) or "none")
    )


def cmd_save(conn, address, directory, tokens):
    blobs = inbox_blobs(conn, address)
    if len(blobs) != len(tokens):
        return f"{address}'s INBOX has {len(blobs)} messages, expected {len(tokens)}"
    for token in tokens:
        found = with_token(blobs, token)
        if len(found) != 1:
            return f"{len(found)} messages in {address}'s INBOX contain {token!r}, expected 1"
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"{token}.eml"), "wb") as f:
            f.write(found[0])
    print(f"{address}: {len(tokens)} messages saved in {directory}")
    return None


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, db, address = argv[1], argv[2], argv[3]
    rest = argv[4:]
    # A freshly started server may still be creating the schema when the first
    # query arrives; retry briefly on "database is locked"/"no such table".
    deadline = time.monotonic() + 10
    while True:
        try:
            conn = connect(db)
            try:
                if cmd == "count":
                    print(len(inbox_blobs(conn, address)))
                elif cmd == "find":
                    print(len(with_token(inbox_blobs(conn, address), rest[0])))
                elif cmd == "show":
                    sys.stdout.write(
                        one_with_token(conn, address, rest[0]).decode("utf-8", "replace")
                    )
                elif cmd == "header":
                    raw = one_with_token(conn, address, rest[0])
                    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
                    for value in msg.get_all(rest[1]) or []:
                        print(" ".join(str(value).split()))
                elif cmd == "blob":
                    if rest[0].startswith("#"):
                        blobs = inbox_blobs(conn, address)
                        n = int(rest[0][1:])
                        if not 1 <= n <= len(blobs):
                            raise LookupError(
                                f"{address}'s INBOX has {len(blobs)} messages, no #{n}"
                            )
                        raw = blobs[n - 1]
                    else:
                        raw = one_with_token(conn, address, rest[0])
                    sys.stdout.buffer.write(raw)
                    sys.stdout.buffer.flush()
                elif cmd == "save":
                    reason = cmd_save(conn, address, rest[0], rest[1:])
                    if reason:
                        print(reason)
                        return 1
                elif cmd == "list":
                    for n, (mid, size, data) in enumerate(inbox_rows(conn, address), 1):
                        if size != len(data):
                            print(
                                f"message {n} (id {mid}): size column {size},"
                                f" blob has {len(data)} bytes"
                            )
                            return 1
                        print(f"{n} {size} {mid:012x}")
                elif cmd == "state":
                    cmd_state(conn, address)
                elif cmd == "modseq":
                    row = conn.execute(
                        "SELECT modseq FROM accounts WHERE id = ?",
                        (account_id(conn, address),),
                    ).fetchone()
                    print(row[0])
                elif cmd == "attachment":
                    reason = cmd_attachment(conn, address, rest[0], rest[1])
                    if reason:
                        print(reason)
                        return 1
                else:
                    print(f"unknown subcommand {cmd!r}", file=sys.stderr)
                    return 2
                return 0
            finally:
                conn.close()
        except LookupError as e:
            print(e)
            return 1
        except IndexError:
            print(f"{cmd}: missing argument", file=sys.stderr)
            return 2
        except sqlite3.OperationalError as e:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            print(f"sqlite error on {db}: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
