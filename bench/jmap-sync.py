#!/usr/bin/env python3
"""JMAP benchmark: what a mail client's JMAP requests cost on pochta, beside the same
work over IMAP on pochta and on Dovecot, in one 100 000-message mailbox.

The mailbox is the one of bench/imap-load.py's `big` workload (its generator and its
loader are imported from there): user100's INBOX holds BIG_COUNT generated messages,
APPENDed into pochta and written as the very same octets into Dovecot's Maildir
(reference stack). Loading is not measured. Three operations, each done three ways in
the same run (pochta JMAP, pochta IMAP, Dovecot IMAP), RUNS times after a warm-up,
rotating which goes first; median per operation and ratios:

  newest   JMAP: one request, Email/query (inMailbox INBOX, sort receivedAt
           descending, limit 50) + Email/get of those ids by back-reference with the
           properties from, subject, receivedAt, preview, keywords, threadId.
           IMAP: UID SORT (REVERSE ARRIVAL) UTF-8 ALL, then UID FETCH of the first 50
           UIDs (FLAGS ENVELOPE). (IMAP has no preview without the PREVIEW extension.)
  search   JMAP: one request, Email/query (inMailbox INBOX, subject SUBJECT_TERM and
           from FROM_TERM, sort receivedAt descending) + Email/get of every result
           (same properties). IMAP: UID SEARCH SUBJECT .. FROM .., then UID FETCH of the
           hits (FLAGS ENVELOPE).
  sync     a client's first synchronisation. JMAP: Email/query of all ids of INBOX (in
           pages of QUERY_PAGE if the server caps `limit`), then Email/get of all of them,
           GET_PAGE ids per call (maxObjectsInGet), CALLS calls per request, properties
           threadId, mailboxIds, keywords, receivedAt, size, from, subject, sentAt.
           IMAP: UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE INTERNALDATE).

Replies are checked against the generated messages: the 50 newest are the right ones
in the right order (receivedAt/INTERNALDATE are distinct per message), the search hits
are exactly the expected messages, and the sync lists every message once; any
difference stops the benchmark.

    python3 bench/jmap-sync.py                           # 100 000 messages, 5 runs
    BIG_COUNT=5000 RUNS=2 python3 bench/jmap-sync.py     # a quick look

Settings (environment variable, or the option of the same name in lower case):
  BIG_COUNT=100000   messages in the mailbox
  RUNS=5             measured runs per operation and client (median compared)
  OPS=newest,search,sync
  GET_PAGE=1000      ids per Email/get call in `sync` (pochta's maxObjectsInGet)
  CALLS=10           Email/get calls per JMAP request in `sync`
  QUERY_PAGE=0       `limit` of each Email/query page in `sync` (0: none, all at once)
  HTTP_PORT=14080    pochta's http listener (JMAP) on 127.0.0.1
  LOAD_CONNS, TIMEOUT, REFERENCE_STACK, BENCH_DIR (default target/bench-jmap),
  POCHTA_BIN, POCHTA_PORTS, KEEP, CERT: as for bench/imap-load.py.
"""

import argparse
import base64
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from benchlib import (  # noqa: E402  (the helpers the benchmarks share)
    BenchError, client_context, cpu_now, die, env, kib_field, log, machine_cpu, pochta_binary, stop_pochta,
    tree_cpu, wait_port,
)

_spec = importlib.util.spec_from_file_location("imap_load", HERE / "imap-load.py")
il = importlib.util.module_from_spec(_spec)
sys.modules["imap_load"] = il  # the loader's worker processes find load_job by module name
_spec.loader.exec_module(il)

REPO = il.REPO
USER = il.BIG_USER
ADDRESS = f"user{USER}@example.test"
OPS = ("newest", "search", "sync")
CLIENTS = ("pochta JMAP", "pochta IMAP", "dovecot IMAP")
JMAP_PROPS = ["from", "subject", "receivedAt", "preview", "keywords", "threadId"]
SYNC_PROPS = ["threadId", "mailboxIds", "keywords", "receivedAt", "size", "from", "subject", "sentAt"]
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="See the module docstring (head -50 bench/jmap-sync.py) and bench/README.md.")
    p.add_argument("--big-count", type=int, default=int(env("BIG_COUNT", "100000")))
    p.add_argument("--runs", type=int, default=int(env("RUNS", "5")))
    p.add_argument("--ops", default=env("OPS", ",".join(OPS)))
    p.add_argument("--get-page", type=int, default=int(env("GET_PAGE", "1000")))
    p.add_argument("--calls", type=int, default=int(env("CALLS", "10")))
    p.add_argument("--query-page", type=int, default=int(env("QUERY_PAGE", "0")))
    p.add_argument("--http-port", type=int, default=int(env("HTTP_PORT", "14080")))
    p.add_argument("--load-conns", type=int, default=int(env("LOAD_CONNS", "8")))
    p.add_argument("--timeout", type=float, default=float(env("TIMEOUT", "600")))
    p.add_argument("--reference-stack",
                   default=env("REFERENCE_STACK", str(REPO.parent / "shared" / "peers" / "reference-stack")))
    p.add_argument("--bench-dir", default=env("BENCH_DIR", str(REPO / "target" / "bench-jmap")))
    p.add_argument("--pochta-bin", default=env("POCHTA_BIN", ""))
    p.add_argument("--pochta-ports", default=env("POCHTA_PORTS", "14143,14993"))
    p.add_argument("--keep", type=int, default=int(env("KEEP", "0")))
    p.add_argument("--cert", choices=["stack", "own"], default=env("CERT", "stack"))
    a = p.parse_args()
    a.ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    if not a.ops or any(o not in OPS for o in a.ops):
        p.error("OPS is a comma-separated list of newest, search and sync")
    if a.big_count < 100 or a.runs < 1 or a.get_page < 1 or a.calls < 1 or a.query_page < 0:
        p.error("BIG_COUNT >= 100, RUNS, GET_PAGE and CALLS >= 1, QUERY_PAGE >= 0")
    a.imap_port, a.imaps_port = (int(x) for x in a.pochta_ports.split(","))
    a.idle_count = 0  # what imap-load's start_pochta sizes its connection limits from
    return a


# ---------------------------------------------------------------- a JMAP client


class Jmap:
    """JMAP over one kept-alive HTTPS connection, Basic auth."""

    def __init__(self, host, port, user, timeout):
        self.conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=client_context())
        self.auth = "Basic " + base64.b64encode(f"{user}:{il.PASSWORD}".encode()).decode()
        self.host = f"{host}:{port}"
        session = self.get("/.well-known/jmap")
        self.api = re.sub(r"^https?://[^/]+", "", session["apiUrl"])
        self.account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        self.limits = session["capabilities"]["urn:ietf:params:jmap:core"]
        self.requests = 0
        self.bytes = 0

    def _request(self, method, path, body=None):
        headers = {"Authorization": self.auth, "Host": self.host}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            die(f"JMAP {method} {path}: HTTP {r.status}: {data[:300]!r}")
        self.requests += 1
        self.bytes += len(data)
        return json.loads(data)

    def get(self, path):
        # A redirect (/.well-known/jmap -> the session URL) is followed once.
        headers = {"Authorization": self.auth, "Host": self.host}
        self.conn.request("GET", path, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status in (301, 302, 307, 308):
            return self.get(re.sub(r"^https?://[^/]+", "", r.getheader("Location")))
        if r.status != 200:
            die(f"JMAP GET {path}: HTTP {r.status}: {data[:300]!r}")
        return json.loads(data)

    def call(self, calls):
        """One API request; returns the method responses, failing on any error."""
        resp = self._request("POST", self.api, json.dumps({"using": USING, "methodCalls": calls}).encode())
        out = resp.get("methodResponses")
        if not isinstance(out, list):
            die(f"JMAP: no methodResponses: {str(resp)[:300]}")
        for name, args, cid in out:
            if name == "error":
                die(f"JMAP {cid}: error {json.dumps(args)[:300]}")
        return out

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------- expectations


class Expect:
    """What each operation must return, from the generated messages."""

    def __init__(self, box):
        self.box = box
        n = len(box["uids"])
        self.n = n
        order = sorted(range(n), key=lambda i: -box["idates"][i])
        self.newest = order[:50]  # indexes into the box, newest first
        self.newest_uids = [box["uids"][i] for i in self.newest]
        self.newest_dates = [box["idates"][i] for i in self.newest]
        hits = [i for i in range(n)
                if il.SUBJECT_TERM in box["subjects"][i].lower() and il.FROM_TERM in box["froms"][i].lower()]
        self.search_uids = sorted(box["uids"][i] for i in hits)
        self.search_dates = sorted((box["idates"][i] for i in hits), reverse=True)
        self.all_dates = sorted(box["idates"])


def utc_of(jmap_date):
    """An RFC 3339 UTC date ("2019-01-01T00:10:30Z") as a Unix time."""
    import calendar
    t = time.strptime(jmap_date.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t)


# ---------------------------------------------------------------- the operations


def inbox_id(jm):
    r = jm.call([["Mailbox/query", {"accountId": jm.account, "filter": {"role": "inbox"}}, "m"]])
    ids = r[0][1]["ids"]
    if len(ids) != 1:
        die(f"JMAP: Mailbox/query role inbox gave {ids}")
    return ids[0]


def jmap_newest(jm, ex, ctx):
    r = jm.call([
        ["Email/query", {"accountId": jm.account, "filter": {"inMailbox": ctx["inbox"]},
                         "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 50}, "q"],
        ["Email/get", {"accountId": jm.account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": JMAP_PROPS}, "g"],
    ])
    ids = r[0][1]["ids"]
    got = r[1][1]["list"]
    if len(ids) != 50 or [e["id"] for e in got] != ids:
        die(f"JMAP newest: {len(ids)} ids, {len(got)} emails")
    dates = [utc_of(e["receivedAt"]) for e in got]
    if dates != ex.newest_dates:
        die(f"JMAP newest: receivedAt {dates[:3]}... instead of {ex.newest_dates[:3]}...")
    if any(not e.get("subject") or not e.get("from") or "preview" not in e for e in got):
        die("JMAP newest: an email without subject, from or preview")
    return len(got)


def imap_newest(im, ex, ctx):
    _, data = im.command("UID SORT (REVERSE ARRIVAL) UTF-8 ALL")
    uids = il.numbers(data, b"SORT")
    if uids[:50] != ex.newest_uids:
        die(f"{ctx['label']} newest: UID SORT (REVERSE ARRIVAL) starts {uids[:3]}, not {ex.newest_uids[:3]}")
    _, data = im.command("UID FETCH " + ",".join(map(str, uids[:50])) + " (FLAGS ENVELOPE)")
    if len(il.FETCH_RE.findall(data)) != 50 or data.count(b"ENVELOPE (") != 50:
        die(f"{ctx['label']} newest: not 50 FETCH responses with ENVELOPE: {data[:300]!r}")
    return 50


def jmap_search(jm, ex, ctx):
    r = jm.call([
        ["Email/query", {"accountId": jm.account,
                         "filter": {"operator": "AND", "conditions": [
                             {"inMailbox": ctx["inbox"]}, {"subject": il.SUBJECT_TERM}, {"from": il.FROM_TERM}]},
                         "sort": [{"property": "receivedAt", "isAscending": False}]}, "q"],
        ["Email/get", {"accountId": jm.account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": JMAP_PROPS}, "g"],
    ])
    got = r[1][1]["list"]
    dates = [utc_of(e["receivedAt"]) for e in got]
    if dates != ex.search_dates:
        die(f"JMAP search: {len(got)} emails, {len(ex.search_dates)} expected "
            f"(first differences: {sorted(set(dates) ^ set(ex.search_dates))[:5]})")
    return len(got)


def imap_search(im, ex, ctx):
    _, data = im.command(f'UID SEARCH SUBJECT "{il.SUBJECT_TERM}" FROM "{il.FROM_TERM}"')
    uids = sorted(il.numbers(data, b"SEARCH"))
    if uids != ex.search_uids:
        die(f"{ctx['label']} search: {len(uids)} UIDs, {len(ex.search_uids)} expected "
            f"(first differences: {sorted(set(uids) ^ set(ex.search_uids))[:5]})")
    if not uids:
        return 0
    _, data = im.command("UID FETCH " + il_set(uids) + " (FLAGS ENVELOPE)")
    if len(il.FETCH_RE.findall(data)) != len(uids):
        die(f"{ctx['label']} search: {len(il.FETCH_RE.findall(data))} FETCH responses for {len(uids)} UIDs")
    return len(uids)


def il_set(uids):
    """A compact UID set: 1:3,7,9:10."""
    out, start, prev = [], None, None
    for u in uids:
        if start is None:
            start = prev = u
        elif u == prev + 1:
            prev = u
        else:
            out.append(f"{start}:{prev}" if prev != start else str(start))
            start = prev = u
    if start is not None:
        out.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(out)


def jmap_sync(jm, ex, ctx, a):
    ids = []
    position = 0
    while True:
        q = {"accountId": jm.account, "filter": {"inMailbox": ctx["inbox"]},
             "sort": [{"property": "receivedAt", "isAscending": False}], "position": position,
             "calculateTotal": True}
        if a.query_page:
            q["limit"] = a.query_page
        res = jm.call([["Email/query", q, "q"]])[0][1]
        ids += res["ids"]
        position += len(res["ids"])
        if not res["ids"] or position >= res.get("total", position):
            break
    if len(ids) != ex.n or len(set(ids)) != ex.n:
        die(f"JMAP sync: Email/query listed {len(ids)} ids ({len(set(ids))} distinct), not {ex.n}")
    page = min(a.get_page, int(jm.limits.get("maxObjectsInGet", a.get_page)))
    calls = min(a.calls, int(jm.limits.get("maxCallsInRequest", a.calls)))
    chunks = [ids[i:i + page] for i in range(0, len(ids), page)]
    dates = []
    for k in range(0, len(chunks), calls):
        req = [["Email/get", {"accountId": jm.account, "ids": c, "properties": SYNC_PROPS}, f"g{k + j}"]
               for j, c in enumerate(chunks[k:k + calls])]
        for _, args, _ in jm.call(req):
            for e in args["list"]:
                dates.append(utc_of(e["receivedAt"]))
            if args.get("notFound"):
                die(f"JMAP sync: Email/get notFound {args['notFound'][:5]}")
    if sorted(dates) != ex.all_dates:
        die(f"JMAP sync: Email/get returned {len(dates)} emails whose receivedAt differ from the loaded ones")
    return len(dates)


def imap_sync(im, ex, ctx):
    _, data = im.command("UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE INTERNALDATE)")
    dates = sorted(il.parse_idate(m) for m in il.IDATE_RE.findall(data))
    if len(il.FETCH_RE.findall(data)) != ex.n or dates != ex.all_dates:
        die(f"{ctx['label']} sync: {len(il.FETCH_RE.findall(data))} FETCH responses, INTERNALDATEs "
            f"{'as loaded' if dates == ex.all_dates else 'not as loaded'}")
    return ex.n


# ---------------------------------------------------------------- main


def run(a):
    work = Path(a.bench_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    il.raise_fd_limit(argparse.Namespace(idle_count=0, workloads=[]))
    binary = pochta_binary(a)
    log(f"jmap-sync: {a.big_count} messages, operations {', '.join(a.ops)}, {a.runs} runs; work dir {work}; "
        f"{os.cpu_count()} CPUs; pochta {binary}")
    log(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    pochta = dovecot = None
    conns = {}
    try:
        log("starting Dovecot (reference stack) and pochta ...")
        dovecot = il.start_dovecot(a, work, [USER])
        pochta = il.start_pochta(a, binary, work, [USER], dovecot, http=f"127.0.0.1:{a.http_port}")
        wait_port("127.0.0.1", a.http_port, proc=pochta)
        ps = {"name": "pochta", "host": "127.0.0.1", "imap": a.imap_port, "imaps": a.imaps_port, "root": pochta.pid}
        ds = {"name": "dovecot", "host": dovecot["host"], "imap": dovecot["imap"], "imaps": dovecot["imaps"],
              "root": dovecot["master"]}
        log("loading ...")
        box = il.load_mailboxes(a, dovecot, [("b", USER, a.big_count)])[USER]
        for srv in (ps, ds):
            il.verify_mailbox(srv, USER, box, a, f"{srv['name']}")
        log(f"  user{USER}'s INBOX: {a.big_count} messages ({sum(box['sizes']) / 1e6:.0f} MB), identical in both servers")
        os.sync()
        ex = Expect(box)
        jm = Jmap("127.0.0.1", a.http_port, ADDRESS, a.timeout)
        ctx = {"inbox": inbox_id(jm)}
        log(f"  JMAP: apiUrl path {jm.api}, maxObjectsInGet {jm.limits.get('maxObjectsInGet')}, "
            f"maxCallsInRequest {jm.limits.get('maxCallsInRequest')}; search: subject \"{il.SUBJECT_TERM}\" and "
            f"from \"{il.FROM_TERM}\" match {len(ex.search_uids)} messages")
        for srv in (ps, ds):
            im = il.Imap(srv["host"], srv["imaps"], "implicit", a.timeout)
            im.login(ADDRESS)
            _, data = im.command("SELECT INBOX")
            if b"* %d EXISTS" % a.big_count not in data:
                die(f"{srv['name']}: SELECT INBOX does not say {a.big_count} EXISTS")
            conns[srv["name"]] = im
        doers = {
            "pochta JMAP": lambda op: {"newest": jmap_newest, "search": jmap_search,
                                       "sync": lambda j, e, c: jmap_sync(j, e, c, a)}[op](jm, ex, ctx),
            "pochta IMAP": lambda op: {"newest": imap_newest, "search": imap_search, "sync": imap_sync}[op](
                conns["pochta"], ex, {**ctx, "label": "pochta IMAP"}),
            "dovecot IMAP": lambda op: {"newest": imap_newest, "search": imap_search, "sync": imap_sync}[op](
                conns["dovecot"], ex, {**ctx, "label": "dovecot IMAP"}),
        }
        times = {(op, c): [] for op in a.ops for c in CLIENTS}
        counts = {}
        m0, c0 = machine_cpu(), tree_cpu(ps["root"]) + tree_cpu(ds["root"]) + cpu_now()
        t_start = time.monotonic()
        for rep in range(a.runs + 1):
            for op in a.ops:
                order = CLIENTS[rep % 3:] + CLIENTS[:rep % 3]
                for c in order:
                    t0 = time.monotonic()
                    counts[op] = doers[c](op)
                    dt = time.monotonic() - t0
                    if rep == 0:
                        log(f"  warm-up {op:<7} {c:<13} {1e3 * dt:9.1f} ms")
                    else:
                        times[(op, c)].append(dt)
        m1, c1 = machine_cpu(), tree_cpu(ps["root"]) + tree_cpu(ds["root"]) + cpu_now()
        elapsed = time.monotonic() - t_start
        other = max(0.0, (m1[0] - m0[0]) - (c1 - c0))
        hwm = kib_field(f"/proc/{ps['root']}/status", "VmHWM")
        log(f"  measured: {elapsed:.0f} s; other processes used {other:.1f} s of CPU ({other / elapsed:.2f} CPUs); "
            f"pochta VmHWM {hwm / 1024:.0f} MiB; JMAP {jm.requests} requests, {jm.bytes / 1e6:.0f} MB of responses")
        # Printed here: removing 100 000 Maildir files below can take minutes.
        for line in report(a, times, counts, other / elapsed):
            print(line, flush=True)
    finally:
        for im in conns.values():
            try:
                im.command("LOGOUT")
            except Exception:
                pass
            im.close()
        stop_pochta(pochta)
        subprocess.run([a.reference_stack, "stop", str(work / "dovecot")], capture_output=True, env=il.rs_env(),
                       timeout=300)
        if not a.keep:
            shutil.rmtree(work / "pochta" / "data", ignore_errors=True)
            shutil.rmtree(work / "dovecot" / "mail", ignore_errors=True)


def report(a, times, counts, busy):
    what = {"newest": "50 newest: query+get / SORT+FETCH", "search": "search + get / SEARCH+FETCH",
            "sync": "first sync of all / FETCH 1:*"}
    out = ["", f"{'operation':<36} {'emails':>7} {'pochta JMAP':>12} {'pochta IMAP':>12} {'dovecot IMAP':>13} "
               f"{'JMAP/dovecot':>13} {'IMAP/dovecot':>13} {'JMAP/IMAP':>10}  (ms, median of {a.runs})"]
    for op in a.ops:
        med = {c: statistics.median(times[(op, c)]) for c in CLIENTS}
        out.append(f"{what[op]:<36} {counts[op]:>7} {1e3 * med['pochta JMAP']:>12.1f} {1e3 * med['pochta IMAP']:>12.1f} "
                   f"{1e3 * med['dovecot IMAP']:>13.1f} {med['pochta JMAP'] / med['dovecot IMAP']:>13.2f} "
                   f"{med['pochta IMAP'] / med['dovecot IMAP']:>13.2f} {med['pochta JMAP'] / med['pochta IMAP']:>10.2f}")
    out.append("ratios are times (lower is better for pochta; < 1: faster than Dovecot's IMAP)")
    out.append("  min..max, ms: " + "; ".join(
        f"{op} " + ", ".join(f"{c} {1e3 * min(times[(op, c)]):.0f}..{1e3 * max(times[(op, c)]):.0f}" for c in CLIENTS)
        for op in a.ops))
    if busy > 0.1:
        out.append(f"warning: other processes used {busy:.2f} CPUs during the measurements; the numbers are disturbed")
    return out


def main():
    a = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if not Path(a.reference_stack).is_file():
        print(f"jmap-sync: error: the reference-stack script was not found at {a.reference_stack} "
              "(set REFERENCE_STACK)", file=sys.stderr)
        sys.exit(1)
    a.reference_stack = str(Path(a.reference_stack).resolve())
    if os.geteuid() != 0:
        print("jmap-sync: error: run as root (the reference stack starts Dovecot)", file=sys.stderr)
        sys.exit(1)
    try:
        run(a)
    except BenchError as e:
        print(f"jmap-sync: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
