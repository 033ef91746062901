#!/usr/bin/env python3
"""Checks the copies a POP3 client (fetchmail, getmail) delivered locally, for run.sh.

A client that downloads a message changes it in known ways: it converts CRLF to
the local LF, and it adds header fields of its own on top (fetchmail a Received
line, getmail Delivered-To/Return-Path/Received). Nothing else may differ: the
body must be byte-identical and every header line pochta stored must still be
there, in the same order.

Subcommands:

  compare FETCHED_DIR EXPECTED_DIR
        EXPECTED_DIR holds one file per message, named TOKEN.eml, with the bytes
        pochta stored (store.py blob). FETCHED_DIR (searched recursively, e.g. a
        Maildir) must hold exactly one message per token and nothing else; each
        must be intact in the sense above. Prints one line per message (and the
        header fields the client added).
  attachment FILE ORIGINAL
        the message in FILE carries an attachment whose decoded bytes equal the
        bytes of ORIGINAL.
  lines FILE BODY
        the lines of BODY (a text file) appear in FILE's body as consecutive
        lines, exactly (line ends aside): for dot-stuffing checks.

Exit status 0 when everything matches, 1 with a one-line reason on stdout when
not, 2 on usage errors.
"""

import email
import email.policy
import os
import sys


class Mismatch(Exception):
    pass


def lf(data):
    return data.replace(b"\r\n", b"\n")


def split(data):
    """(header lines unfolded, body) of LF-normalised message bytes."""
    data = lf(data)
    end = data.find(b"\n\n")
    if end < 0:
        head, body = data, b""
    else:
        head, body = data[: end + 1], data[end + 2 :]
    fields = []
    for line in head.split(b"\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + line.strip()
        else:
            fields.append(line.rstrip())
    return fields, body


def files_under(top):
    out = []
    for dirpath, _, names in os.walk(top):
        for name in names:
            out.append(os.path.join(dirpath, name))
    return sorted(out)


def short(field, n=70):
    text = field.decode("utf-8", "replace")
    return text if len(text) <= n else text[: n - 3] + "..."


def compare_one(token, stored, fetched, path):
    s_fields, s_body = split(stored)
    f_fields, f_body = split(fetched)
    if s_body != f_body:
        # Find the first differing line for the reason.
        s_lines, f_lines = s_body.split(b"\n"), f_body.split(b"\n")
        for i, (a, b) in enumerate(zip(s_lines, f_lines)):
            if a != b:
                raise Mismatch(
                    f"{token}: body differs in {path} at body line {i + 1}:"
                    f" stored {a[:60]!r}, fetched {b[:60]!r}"
                )
        raise Mismatch(
            f"{token}: body differs in {path}: stored {len(s_lines)} lines,"
            f" fetched {len(f_lines)} lines"
        )
    # Every stored header field, in order, as a subsequence of the fetched ones.
    added = []
    i = 0
    for field in f_fields:
        if i < len(s_fields) and field == s_fields[i]:
            i += 1
        else:
            added.append(field)
    if i < len(s_fields):
        raise Mismatch(
            f"{token}: stored header line missing or changed in {path}:"
            f" {short(s_fields[i])!r}"
        )
    names = sorted({f.split(b":", 1)[0].decode("ascii", "replace") for f in added})
    return f"{len(s_body)} body bytes identical, client added: {', '.join(names) or 'nothing'}"


def cmd_compare(fetched_dir, expected_dir):
    expected = {}
    for name in sorted(os.listdir(expected_dir)):
        if name.endswith(".eml"):
            with open(os.path.join(expected_dir, name), "rb") as f:
                expected[name[: -len(".eml")]] = f.read()
    if not expected:
        raise Mismatch(f"no TOKEN.eml files in {expected_dir}")
    fetched = {}
    for path in files_under(fetched_dir):
        with open(path, "rb") as f:
            fetched[path] = f.read()
    if len(fetched) != len(expected):
        raise Mismatch(
            f"{len(fetched)} message file(s) in {fetched_dir}, expected {len(expected)}"
        )
    for token, stored in expected.items():
        needle = os.fsencode(token)
        holders = [p for p, data in fetched.items() if needle in data]
        if len(holders) != 1:
            raise Mismatch(f"{token}: in {len(holders)} fetched message(s), expected 1")
        result = compare_one(token, stored, fetched[holders[0]], holders[0])
        print(f"{token}: {os.path.basename(holders[0])}: {result}")


def cmd_attachment(path, original):
    with open(path, "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    with open(original, "rb") as f:
        want = f.read()
    seen = []
    for part in msg.walk():
        if part.is_multipart() or part.get_filename() is None:
            continue
        data = part.get_payload(decode=True) or b""
        seen.append(f"{part.get_filename()!r} {len(data)} bytes")
        if data == want:
            print(f"attachment {part.get_filename()!r}: {len(data)} bytes, identical")
            return
    raise Mismatch(
        f"no attachment of {path} equals {original} ({len(want)} bytes);"
        f" attachments seen: {'; '.join(seen) or 'none'}"
    )


def cmd_lines(path, body_path):
    with open(path, "rb") as f:
        _, body = split(f.read())
    with open(body_path, "rb") as f:
        want = lf(f.read()).rstrip(b"\n").split(b"\n")
    have = body.split(b"\n")
    for i in range(len(have) - len(want) + 1):
        if have[i : i + len(want)] == want:
            print(f"{len(want)} lines intact, from body line {i + 1}")
            return
    raise Mismatch(
        f"the {len(want)} lines of {body_path} are not in {path}'s body verbatim;"
        f" lines starting with '.' there: {[l for l in have if l.startswith(b'.')]!r}"
    )


def main(argv):
    try:
        cmd, args = argv[1], argv[2:]
        if cmd == "compare" and len(args) == 2:
            cmd_compare(*args)
        elif cmd == "attachment" and len(args) == 2:
            cmd_attachment(*args)
        elif cmd == "lines" and len(args) == 2:
            cmd_lines(*args)
        else:
            raise IndexError
    except IndexError:
        print(__doc__, file=sys.stderr)
        return 2
    except (Mismatch, OSError) as e:
        print(e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
