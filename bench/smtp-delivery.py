#!/usr/bin/env python3
"""SMTP delivery benchmark: pochta's MX against Postfix (virtual Maildir delivery).

The same load -- N messages of 4 KiB payload from 20 concurrent SMTP sessions, made by
Postfix's own load generator `smtp-source` -- is sent to

  * pochta (`target/release/pochta serve`, SQLite store, synchronous=FULL), and
  * Postfix from the reference stack (virtual(8) delivery into Maildir, which fsyncs
    every message file; its queue files are fsynced too),

on this machine, in the same run. For each system the clock runs from the start of
smtp-source until every message is in the store: pochta's `messages` table
(polled read-only with sqlite3) or files in the users' Maildir new/ and cur/
directories. It prints messages/s for each system and the ratio pochta/postfix.

Run from anywhere inside the repository, as root (the reference stack installs
Debian packages and starts Postfix and Dovecot on 127.0.0.2):

    python3 bench/smtp-delivery.py                 # N=20000, 2 runs per system
    N=5000 RUNS=1 python3 bench/smtp-delivery.py   # a quicker look

Settings (environment variable, or the option of the same name in lower case):
  N=20000           messages per measured run
  SESSIONS=20       concurrent SMTP sessions
  USERS=20          recipients user1..userUSERS@example.test, spread over the sessions
  SIZE=4096         payload octets per message (smtp-source -l)
  RUNS=2            measured runs per system (the best is compared; all are printed)
  WARMUP=500        messages sent (and delivered) before each measured run
  REUSE=0           1: keep each session's connection for its next message (smtp-source -d)
  TIMEOUT=900       seconds to wait for one run's messages to arrive
  REFERENCE_STACK   path of the reference-stack script
                    (default: ../shared/peers/reference-stack next to the repository)
  BENCH_DIR         work directory (default: target/bench-smtp-delivery; must be on the
                    same real disk for both systems, not tmpfs)
  POCHTA_BIN        a pochta binary to use instead of building target/release/pochta
  POCHTA_PORT=12525 pochta's MX port (on 127.0.0.1)
  KEEP=0            1: keep the last run's mail (pochta's data dir, Postfix's Maildirs) in BENCH_DIR
  PROFILE=          strace: count system calls (fsyncs per message) of both systems during
                    the measured runs with `strace -c -f`; perf: `perf record -g` of pochta
                    (report with `perf report -i BENCH_DIR/perf-pochta-runK.data`).
                    Either slows the servers: the timings of such a run are not results.
"""

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402  (the helpers the benchmarks share)
    REPO, BenchError, MemorySampler, die, env, kib_field, log, machine_cpu, pochta_binary, split, start_profiler,
    stop_pochta, stop_profiler, tree_cpu, wait_port,
)
from benchlib import rs_cmd  # noqa: E402  (the reference stack on its default ports, or RS_* from the environment)

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="See the module docstring (head -40 bench/smtp-delivery.py) and bench/README.md.",
    )
    p.add_argument("--n", type=int, default=int(env("N", "20000")))
    p.add_argument("--sessions", type=int, default=int(env("SESSIONS", "20")))
    p.add_argument("--users", type=int, default=int(env("USERS", "20")))
    p.add_argument("--size", type=int, default=int(env("SIZE", "4096")))
    p.add_argument("--runs", type=int, default=int(env("RUNS", "2")))
    p.add_argument("--warmup", type=int, default=int(env("WARMUP", "500")))
    p.add_argument("--reuse", type=int, default=int(env("REUSE", "0")))
    p.add_argument("--timeout", type=float, default=float(env("TIMEOUT", "900")))
    p.add_argument(
        "--reference-stack",
        default=env("REFERENCE_STACK", str(REPO.parent / "shared" / "peers" / "reference-stack")),
    )
    p.add_argument("--bench-dir", default=env("BENCH_DIR", str(REPO / "target" / "bench-smtp-delivery")))
    p.add_argument("--pochta-bin", default=env("POCHTA_BIN", ""))
    p.add_argument("--pochta-port", type=int, default=int(env("POCHTA_PORT", "12525")))
    p.add_argument("--keep", type=int, default=int(env("KEEP", "0")))
    p.add_argument("--profile", choices=["", "strace", "perf"], default=env("PROFILE", ""))
    a = p.parse_args()
    if a.users < 1 or a.users > 100:
        p.error("USERS must be 1..100 (the reference stack has user1..user100)")
    if a.sessions < 1 or a.n < a.sessions:
        p.error("need SESSIONS >= 1 and N >= SESSIONS")
    return a


# ---------------------------------------------------------------- the load


def start_load(a, host, port, n, tag):
    """Starts smtp-source processes: one per recipient group, SESSIONS sessions in all."""
    groups = min(a.users, a.sessions)
    sessions = split(a.sessions, groups)
    messages = split(n, groups)
    procs = []
    for g in range(groups):
        if messages[g] == 0:
            continue
        cmd = [
            "smtp-source",
            "-s", str(sessions[g]),
            "-m", str(messages[g]),
            "-l", str(a.size),
            "-f", "sender@remote.example",
            "-t", f"user{g % a.users + 1}@example.test",
            "-M", "client.remote.example",
            "-S", f"benchmark {tag}",
        ]
        if a.reuse:
            cmd.insert(1, "-d")
        cmd.append(f"inet:{host}:{port}")
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    # With more recipient users than sessions, the rest get their share through extra
    # smtp-source runs (see the README); the default 20/20 maps one user per session.
    return procs


def load_and_count(a, host, port, n, count, target, tag):
    """Runs the load and polls `count()` until it reaches `target`.

    Returns (seconds until all in the store, seconds until smtp-source finished).
    """
    start = time.monotonic()
    procs = start_load(a, host, port, n, tag)
    sent_at = None
    deadline = start + a.timeout
    last = -1
    while True:
        c = count()
        if procs and sent_at is None and all(p.poll() is not None for p in procs):
            sent_at = time.monotonic() - start
        if c >= target:
            done = time.monotonic() - start
            break
        if time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            die(f"{tag}: only {c} of {target} messages arrived within {a.timeout:.0f} s")
        if sent_at is not None and c == last and time.monotonic() - start - sent_at > 60:
            die(f"{tag}: smtp-source finished but the count is stuck at {c} of {target}")
        last = c
        time.sleep(0.02)
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            die(f"{tag}: smtp-source failed (status {p.returncode}): {out.strip()[-2000:]}")
    if sent_at is None:
        sent_at = time.monotonic() - start
    return done, sent_at


# ---------------------------------------------------------------- pochta


def run_pochta(a, binary, work, run_no):
    d = work / "pochta"
    shutil.rmtree(d, ignore_errors=True)
    (d / "data").mkdir(parents=True)
    cfg = d / "pochta.toml"
    # Listen only on the MX port; the default limit of 20 connections per IP would
    # refuse a client that reconnects faster than the server closes its side.
    cfg.write_text(
        f"""hostname = "mx.bench.example"
data_dir = "{d / 'data'}"
domains = ["example.test"]

[listen]
smtp = "127.0.0.1:{a.pochta_port}"
submission = ""
submissions = ""
imap = ""
imaps = ""
pop3 = ""
pop3s = ""
http = ""

[limits]
connections_per_ip = 1000

[log]
level = "info"
"""
    )
    for i in range(1, a.users + 1):
        r = subprocess.run(
            [str(binary), "--config", str(cfg), "user", "add", f"user{i}@example.test", "--password-stdin"],
            input="bench-password-1\n", capture_output=True, text=True,
        )
        if r.returncode != 0:
            die(f"pochta user add failed: {r.stderr.strip()}")
    logf = open(d / "server.log", "w")
    server = subprocess.Popen(
        [str(binary), "--config", str(cfg), "serve"], stdout=logf, stderr=subprocess.STDOUT,
        # Logging as shipped (one line per delivery), as Postfix logs each message too.
        env={**os.environ, "RUST_LOG": "info"},
    )
    server.logfile = logf
    try:
        wait_port("127.0.0.1", a.pochta_port, proc=server)
        db = d / "data" / "store.sqlite3"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)

        def count():
            return conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

        if a.warmup:
            load_and_count(a, "127.0.0.1", a.pochta_port, a.warmup, count, a.warmup, "pochta warm-up")
        base = count()
        return measure(a, "pochta", run_no, server.pid, "127.0.0.1", a.pochta_port, count, base,
                       hwm=lambda: kib_field(f"/proc/{server.pid}/status", "VmHWM"))
    finally:
        stop_pochta(server)


# ---------------------------------------------------------------- postfix


def run_postfix(a, work, run_no):
    d = work / "postfix"
    rs_cmd(a, "stop", str(d))
    shutil.rmtree(d, ignore_errors=True)
    ports = dict(
        line.split("=", 1) for line in rs_cmd(a, "start", str(d)).splitlines() if "=" in line
    )
    host, port = ports["host"], int(ports["smtp"])
    try:
        wait_port(host, port)
        pidfile = d / "pf" / "spool" / "pid" / "master.pid"
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.1)
        master = int(pidfile.read_text().strip())
        maildirs = [
            d / "mail" / "example.test" / f"user{i}" / sub
            for i in range(1, a.users + 1)
            for sub in ("new", "cur")
        ]

        def count():
            n = 0
            for m in maildirs:
                try:
                    n += len(os.listdir(m))
                except FileNotFoundError:
                    pass
            return n

        if a.warmup:
            load_and_count(a, host, port, a.warmup, count, a.warmup, "postfix warm-up")
        base = count()
        return measure(a, "postfix", run_no, master, host, port, count, base, hwm=None)
    finally:
        rs_cmd(a, "stop", str(d))


# ---------------------------------------------------------------- one measured run


def report_profile(prof, messages):
    """Stops the profiler; for strace, prints the fsyncs and system calls per message
    (without strace's own "total" line, which earlier versions added in, doubling it)."""
    calls = stop_profiler(prof, timeout=120, kill=False)
    if calls is not None:
        sync = calls.get("fsync", 0) + calls.get("fdatasync", 0)
        log(
            f"    strace: {sync} fsync/fdatasync = {sync / messages:.2f} per message; "
            f"{sum(calls.values()) / messages:.1f} system calls per message ({prof[1]})"
        )


def measure(a, system, run_no, root, host, port, count, base, hwm):
    load1 = os.getloadavg()[0]
    work = Path(a.bench_dir).resolve()
    prof = start_profiler(a.profile, root, work / f"strace-{system}-run{run_no}.txt",
                          work / f"perf-{system}-run{run_no}.data" if system == "pochta" else None, perf_args=("-g",))
    sampler = MemorySampler(root)
    sampler.start()
    # Our own CPU includes the smtp-source children once they are reaped.
    cpu0, m0, self0 = tree_cpu(root), machine_cpu(), sum(os.times()[:4])
    secs, sent = load_and_count(a, host, port, a.n, count, base + a.n, f"{system} run {run_no}")
    cpu1, m1, self1 = tree_cpu(root), machine_cpu(), sum(os.times()[:4])
    sampler.stop()
    report_profile(prof, a.n)
    r = {
        "system": system,
        "run": run_no,
        "messages": a.n,
        "seconds": secs,
        "accepted_s": sent,
        "rate": a.n / secs,
        "cpu": cpu1 - cpu0,
        "bench_cpu": self1 - self0,  # smtp-source processes + this script's polling
        "other_cpu": max(0.0, (m1[0] - m0[0]) - (cpu1 - cpu0) - (self1 - self0)),
        "irq_cpu": m1[1] - m0[1],
        "steal": m1[2] - m0[2],
        "pss_peak_mib": sampler.peak_pss / 1024,
        "procs": sampler.pss_procs,
        "hwm_mib": hwm() / 1024 if hwm else None,
        "load1": load1,
    }
    hw = f", VmHWM {r['hwm_mib']:.0f} MiB" if r["hwm_mib"] is not None else ""
    log(
        f"  {system:<8} run {run_no}: {a.n} messages in {secs:7.2f} s = {r['rate']:7.0f} msg/s "
        f"(smtp-source done at {sent:.2f} s); CPU {r['cpu']:.1f} s = {1e3 * r['cpu'] / a.n:.2f} ms/msg; "
        f"peak PSS {r['pss_peak_mib']:.0f} MiB over {r['procs']} processes{hw}; "
        f"smtp-source+poller CPU {r['bench_cpu']:.1f} s, interrupts {r['irq_cpu']:.1f} s, "
        f"other processes {r['other_cpu']:.1f} s, steal {r['steal']:.1f} s"
    )
    return r


# ---------------------------------------------------------------- main


def main():
    a = parse_args()
    rs = Path(a.reference_stack)
    if not rs.is_file():
        die(
            f"the reference-stack script was not found at {rs}.\n"
            "  It starts Postfix and Dovecot from Debian's packages for comparisons; set REFERENCE_STACK=/path/to/reference-stack\n"
            "  (in the project's workplace it is shared/peers/reference-stack beside the repository)."
        )
    a.reference_stack = str(rs.resolve())
    if os.geteuid() != 0:
        die("run as root: the reference stack installs Debian packages and starts Postfix")
    work = Path(a.bench_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout.split("\n")[1:2]
    if fs and "tmpfs" in fs[0]:
        die(f"{work} is on tmpfs, where fsync costs nothing: set BENCH_DIR to a directory on a disk")

    binary = pochta_binary(a)
    # Postfix (and smtp-source) come with the reference stack's packages: start it once
    # so that they are installed before anything is measured.
    if shutil.which("smtp-source") is None:
        log("installing the reference stack's packages (postfix, dovecot) ...")
        rs_cmd(a, "start", str(work / "postfix"))
        rs_cmd(a, "stop", str(work / "postfix"))
    if shutil.which("smtp-source") is None:
        die("smtp-source not found: it comes with Debian's postfix package (apt-get install postfix)")

    log(
        f"smtp-delivery: {a.n} messages of {a.size} octets of payload from {a.sessions} concurrent sessions "
        f"to {a.users} users, {'reusing connections' if a.reuse else 'a new connection per message'}, "
        f"{a.runs} run(s) per system after {a.warmup} warm-up messages; work dir {work}; {os.cpu_count()} CPUs"
    )
    log(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if a.profile:
        log(f"  PROFILE={a.profile}: the servers run under a profiler, so these timings are NOT results")
    results = []
    for run in range(1, a.runs + 1):
        order = ("pochta", "postfix") if run % 2 else ("postfix", "pochta")
        for system in order:
            if system == "pochta":
                results.append(run_pochta(a, binary, work, run))
            else:
                results.append(run_postfix(a, work, run))

    if not a.keep:
        shutil.rmtree(work / "pochta" / "data", ignore_errors=True)
        shutil.rmtree(work / "postfix", ignore_errors=True)

    best = {s: max((r for r in results if r["system"] == s), key=lambda r: r["rate"]) for s in ("pochta", "postfix")}
    print()
    print(f"{'system':<10} {'messages':>9} {'seconds':>9} {'msg/s':>9} {'CPU ms/msg':>11} {'peak PSS MiB':>13}  (best of {a.runs})")
    for s in ("pochta", "postfix"):
        r = best[s]
        print(
            f"{s:<10} {r['messages']:>9} {r['seconds']:>9.2f} {r['rate']:>9.0f} "
            f"{1e3 * r['cpu'] / r['messages']:>11.2f} {r['pss_peak_mib']:>13.0f}"
        )
    ratio = best["pochta"]["rate"] / best["postfix"]["rate"]
    cpu_ratio = (best["postfix"]["cpu"] / best["postfix"]["messages"]) / max(
        1e-9, best["pochta"]["cpu"] / best["pochta"]["messages"]
    )
    print(f"ratio pochta/postfix = {ratio:.2f}  (messages/s; target >= 3)")
    print(f"CPU per message, postfix/pochta = {cpu_ratio:.2f}")
    if best["pochta"]["hwm_mib"] is not None:
        print(f"pochta peak RSS (VmHWM) {best['pochta']['hwm_mib']:.0f} MiB")
    print(
        "durability: both fsync before a message counts as delivered -- pochta's SQLite store commits "
        "with synchronous=FULL (one fsync per group commit); Postfix fsyncs its queue file before "
        "250 and virtual(8) fsyncs each Maildir file before the rename into new/."
    )
    busy = max(r["other_cpu"] / r["seconds"] for r in results)
    if busy > 0.1:
        print(
            f"warning: other processes on this machine used up to {busy:.2f} CPUs during a run; "
            "the numbers are disturbed, rerun on a quiet machine"
        )


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"smtp-delivery: error: {e}", file=sys.stderr)
        sys.exit(1)
