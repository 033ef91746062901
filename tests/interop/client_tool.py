#!/usr/bin/env python3
"""Helpers of the user agent interop checks (client.sh).

Subcommands:

  show FILE
        Prints what the checks compare of the message in FILE, one item a line:
          header NAME: VALUE   every header field, unfolded and decoded (RFC 2047)
          raw NAME: VALUE      every header field, unfolded, as it is on disk
          attachment NAME<TAB>CONTENT-TYPE<TAB>SIZE
                               each attachment (the name decoded, RFC 2231/2047;
                               the size of the decoded content)
          text LINE            each line of the text/plain body, decoded

  pick JSON TEXT
        Prints each entry of JSON (the output of `pochta mail list --json` or
        `search --json`) whose subject contains TEXT as
        "ID<TAB>FOLDER<TAB>FLAGS" (flags separated by spaces).

  count JSON
        Prints how many entries JSON has.

Failures print a one-line reason and exit with status 1 (2 for usage errors).
The email module is imported only where it is needed: it is slow to load, and
pick/count run after every listing.
"""

import json
import sys


def read_message(path, compat=False):
    import email
    import email.policy

    policy = email.policy.compat32 if compat else email.policy.default
    with open(path, "rb") as f:
        return email.message_from_binary_file(f, policy=policy)


def one_line(value):
    return " ".join(str(value).split())


def attachments(msg):
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename():
            yield part


def cmd_show(path):
    msg = read_message(path)
    for name, value in msg.items():
        print("header %s: %s" % (name, one_line(value)))
    for name, value in read_message(path, compat=True).items():
        print("raw %s: %s" % (name, one_line(value)))
    for part in attachments(msg):
        data = part.get_payload(decode=True) or b""
        print("attachment %s\t%s\t%d" % (part.get_filename(), part.get_content_type(), len(data)))
    body = msg.get_body(("plain",))
    if body is not None:
        for line in body.get_content().splitlines():
            print("text %s" % line)
    return 0


def load_list(path):
    with open(path, encoding="utf-8") as f:
        items = json.load(f)
    if not isinstance(items, list):
        raise ValueError("not a JSON array")
    return items


def cmd_pick(path, text):
    for item in load_list(path):
        if text in item.get("subject", ""):
            print("%s\t%s\t%s" % (item["id"], item.get("folder", ""), " ".join(item.get("flags", []))))
    return 0


def cmd_count(path):
    print(len(load_list(path)))
    return 0


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "show":
            return cmd_show(argv[2])
        if len(argv) == 4 and argv[1] == "pick":
            return cmd_pick(argv[2], argv[3])
        if len(argv) == 3 and argv[1] == "count":
            return cmd_count(argv[2])
    except (OSError, ValueError, KeyError) as e:
        print("%s: %s" % (argv[1], e))
        return 1
    print(__doc__.strip().split("\n\n", 1)[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
