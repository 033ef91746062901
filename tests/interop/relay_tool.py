#!/usr/bin/env python3
"""Helpers of the relay interop checks (relay.sh).

Subcommands:

  dns PORTFILE LOGFILE NAME=TEXT...
        A tiny authoritative DNS server on 127.0.0.1 (UDP, a free port written
        to PORTFILE once it listens), for pochta's `relay.resolver`: it answers
        TXT queries for the NAMEs given (several NAME=TEXT for one name give
        several records), "no records" for other types of those names and
        their subdomains' parents, and NXDOMAIN for everything else. Every
        query is logged to LOGFILE. Runs until killed.

  dsn FILE
        Parses the delivery status notification in FILE (RFC 3464) and prints
        what the checks compare, one item a line:
          header NAME: VALUE      From, To, Subject, Auto-Submitted
          type: TYPE              the top-level content type, with
          report-type: VALUE      its report-type parameter
          part: TYPE              each MIME part, in order
          message FIELD: VALUE    the per-message fields (Reporting-MTA ...)
          recipient N FIELD: VALUE  the fields of the N-th recipient (from 1)
          returned NAME: VALUE    Subject and Message-ID of the returned
                                  message (or of its returned header)

  header FILE NAME
        Prints every value of header NAME of the message in FILE (CRLF or LF
        line ends), unfolded, one a line, in order (top first).

  body FILE
        Prints the body of the message in FILE (what follows the first empty
        line) with LF line ends, for comparing with what was sent.

  dkim FILE RECORDS
        Verifies every DKIM-Signature of the message in FILE with dkimpy (the
        Debian package python3-dkim: run this with /usr/bin/python3), taking
        the public keys from RECORDS, the output of `pochta dkim generate`
        (lines "NAME. IN TXT "..."" or "NAME. IN TXT ( "..." "..." )"),
        instead of DNS. Prints "d=DOMAIN s=SELECTOR a=ALGORITHM pass|fail"
        per signature; exits 1 if there is none or one fails.

Failures print a one-line reason and exit with status 1 (2 for usage errors).
"""

import email
import email.policy
import os
import re
import socket
import struct
import sys
import time

# ---------------------------------------------------------------- dns


def dns_name(packet, offset):
    """The (lower-case, dotted) name at offset, and the offset after it."""
    labels = []
    jumped_end = None
    for _ in range(128):
        n = packet[offset]
        if n == 0:
            offset += 1
            break
        if n & 0xC0 == 0xC0:
            ptr = struct.unpack_from("!H", packet, offset)[0] & 0x3FFF
            if jumped_end is None:
                jumped_end = offset + 2
            offset = ptr
            continue
        labels.append(packet[offset + 1 : offset + 1 + n].decode("ascii", "replace"))
        offset += 1 + n
    return ".".join(labels).lower(), (jumped_end if jumped_end is not None else offset)


def txt_rdata(text):
    data = text.encode()
    out = b""
    for i in range(0, max(len(data), 1), 255):
        chunk = data[i : i + 255]
        out += bytes([len(chunk)]) + chunk
    return out


def dns_answer(query, zone):
    """The response to one query packet, or None to ignore it."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack_from("!HHH", query, 0)
    if flags & 0x8000 or qdcount != 1:
        return None
    name, off = dns_name(query, 12)
    qtype, qclass = struct.unpack_from("!HH", query, off)
    question = query[12 : off + 4]
    known = name in zone or any(k.endswith("." + name) for k in zone)
    answers = []
    if name in zone and qtype in (16, 255):  # TXT, ANY
        for text in zone[name]:
            rdata = txt_rdata(text)
            answers.append(struct.pack("!HHHIH", 0xC00C, 16, 1, 60, len(rdata)) + rdata)
    rcode = 0 if known else 3  # NOERROR / NXDOMAIN
    # QR, opcode from the query, AA, RD copied; RA.
    rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
    header = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0)
    return header + question + b"".join(answers), name, qtype, rcode, len(answers)


def cmd_dns(portfile, logfile, records):
    zone = {}
    for r in records:
        name, sep, text = r.partition("=")
        if not sep:
            print(f"bad record {r!r} (expected NAME=TEXT)")
            return 2
        zone.setdefault(name.lower().rstrip("."), []).append(text)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    with open(portfile + ".tmp", "w") as f:
        f.write(f"{sock.getsockname()[1]}\n")
    os.rename(portfile + ".tmp", portfile)
    types = {1: "A", 15: "MX", 16: "TXT", 28: "AAAA", 255: "ANY"}
    with open(logfile, "a", buffering=1) as log:
        log.write(f"listening on 127.0.0.1:{sock.getsockname()[1]}; zone {zone}\n")
        while True:
            data, peer = sock.recvfrom(4096)
            try:
                res = dns_answer(data, zone)
            except (IndexError, struct.error) as e:
                log.write(f"{time.strftime('%H:%M:%S')} bad query from {peer}: {e}\n")
                continue
            if res is None:
                continue
            packet, name, qtype, rcode, n = res
            sock.sendto(packet, peer)
            log.write(
                f"{time.strftime('%H:%M:%S')} {name} {types.get(qtype, qtype)} -> "
                f"{'NXDOMAIN' if rcode == 3 else f'{n} answer(s)'}\n"
            )


# ---------------------------------------------------------------- dsn


def fields(block):
    """(name, value) of a delivery-status block, whatever form email gave it."""
    if isinstance(block, email.message.Message):
        return [(k, " ".join(str(v).split())) for k, v in block.items()]
    out = []
    for line in str(block).replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif ":" in line:
            k, v = line.split(":", 1)
            out.append((k.strip(), v.strip()))
    return out


def status_blocks(part):
    """The blocks of a message/delivery-status part: per-message, per-recipient..."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [fields(b) for b in payload]
    text = payload if isinstance(payload, str) else part.get_payload(decode=True).decode()
    text = text.replace("\r\n", "\n").strip("\n")
    return [fields(b) for b in re.split(r"\n\s*\n", text) if b.strip()]


def cmd_dsn(path):
    msg = read_message(path)
    for name in ("From", "To", "Subject", "Auto-Submitted"):
        for v in msg.get_all(name, []):
            print(f"header {name}: {' '.join(str(v).split())}")
    print(f"type: {msg.get_content_type()}")
    print(f"report-type: {msg.get_param('report-type', '')}")
    if not msg.is_multipart():
        print("not a multipart message")
        return 1
    for part in msg.get_payload():
        ctype = part.get_content_type()
        print(f"part: {ctype}")
        if ctype == "message/delivery-status":
            blocks = status_blocks(part)
            for k, v in blocks[0] if blocks else []:
                print(f"message {k}: {v}")
            for i, block in enumerate(blocks[1:], 1):
                for k, v in block:
                    print(f"recipient {i} {k}: {v}")
        elif ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) else inner
            for name in ("Subject", "Message-ID"):
                for v in inner.get_all(name, []):
                    print(f"returned {name}: {' '.join(str(v).split())}")
        elif ctype in ("text/rfc822-headers", "message/global-headers"):
            raw = part.get_payload(decode=True) or b""
            inner = email.message_from_bytes(raw, policy=email.policy.compat32)
            for name in ("Subject", "Message-ID"):
                for v in inner.get_all(name, []):
                    print(f"returned {name}: {' '.join(str(v).split())}")
    return 0


# ---------------------------------------------------------------- header, body


def read_message(path):
    with open(path, "rb") as f:
        return email.message_from_binary_file(f, policy=email.policy.compat32)


def cmd_header(path, name):
    for v in read_message(path).get_all(name, []):
        print(" ".join(str(v).split()))
    return 0


def cmd_body(path):
    with open(path, "rb") as f:
        raw = f.read().replace(b"\r\n", b"\n")
    _, sep, body = raw.partition(b"\n\n")
    if not sep:
        print("no empty line after the header")
        return 1
    sys.stdout.buffer.write(body)
    return 0


# ---------------------------------------------------------------- dkim


def parse_records(path):
    """{dns name: TXT value} from `pochta dkim generate` output."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    records = {}
    for m in re.finditer(r"^(\S+)\.\s+IN\s+TXT\s+(\([^)]*\)|\"[^\n]*\")", text, re.M):
        value = "".join(re.findall(r'"([^"]*)"', m.group(2)))
        records[m.group(1).lower()] = value
    return records


def cmd_dkim(path, records_path):
    try:
        import dkim  # Debian: python3-dkim (dkimpy), for /usr/bin/python3
    except ImportError as e:
        print(f"cannot import dkim ({e}): install python3-dkim and run with /usr/bin/python3")
        return 1
    records = parse_records(records_path)
    if not records:
        print(f"no TXT records in {records_path}")
        return 1
    with open(path, "rb") as f:
        raw = f.read()

    def lookup(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        value = records.get(key.lower().rstrip("."))
        return value.encode() if value is not None else None

    d = dkim.DKIM(raw)
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    if not sigs:
        print("no DKIM-Signature header")
        return 1
    bad = 0
    for i, sig in enumerate(sigs):
        tags = dict(
            (t.split("=", 1)[0].strip(), t.split("=", 1)[1].strip())
            for t in re.sub(rb"\s+", b"", sig).decode().split(";")
            if "=" in t
        )
        try:
            ok = d.verify(idx=i, dnsfunc=lookup)
        except dkim.DKIMException as e:
            ok = False
            print(f"signature {i}: {e}")
        bad += not ok
        print(f"d={tags.get('d')} s={tags.get('s')} a={tags.get('a')} {'pass' if ok else 'fail'}")
        if not ok and re.search(rb"\r?\n[ \t]+;\s*$", sig):
            # A line break between the b= value and the closing ";": dkimpy
            # blanks b= but keeps that white space. Does the signature pass
            # without it?
            plain = re.sub(rb"\r?\n[ \t]+;(\s*)$", rb";\1", sig)
            unfolded = raw.replace(sig.replace(b"\r\n", b"\n"), plain.replace(b"\r\n", b"\n"))
            unfolded = unfolded.replace(sig, plain)
            try:
                ok2 = dkim.DKIM(unfolded).verify(idx=i, dnsfunc=lookup)
            except dkim.DKIMException:
                ok2 = False
            if ok2:
                print(
                    "  (this signature's header ends with a line break before the final"
                    " ';'; without that line break it passes)"
                )
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "dns":
        return cmd_dns(argv[2], argv[3], argv[4:])
    if len(argv) == 3 and argv[1] == "dsn":
        return cmd_dsn(argv[2])
    if len(argv) == 4 and argv[1] == "header":
        return cmd_header(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "body":
        return cmd_body(argv[2])
    if len(argv) == 4 and argv[1] == "dkim":
        return cmd_dkim(argv[2], argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
