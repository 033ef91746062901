"""Helpers shared by the benchmarks in bench/ (not a benchmark itself).

The scripts are run as `python3 bench/NAME.py`; each puts this directory on sys.path and
imports what it needs from here: settings from the environment, errors, CPU and memory
figures of process trees from /proc, starting and stopping pochta and the reference
stack, profilers, TLS client contexts. What differs between the benchmarks is a
parameter here, so that each one measures and prints what it did when it had its own copy.
"""

import collections
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")


def env(name, default):
    """A setting from the environment (the scripts' options default to these)."""
    return os.environ.get(name, default)


class BenchError(Exception):
    """A benchmark cannot go on; each script's main prints it and exits non-zero."""


def die(msg):
    """Stops the benchmark with `msg`, through the caller's cleanup (finally blocks)."""
    raise BenchError(msg)


def log(msg=""):
    """Prints a progress or result line at once (output may go to a pipe or a file)."""
    print(msg, flush=True)


def cpu_now():
    """CPU seconds (user + system) of this process so far: the client's share of the machine's CPU."""
    t = os.times()
    return t.user + t.system


def split(total, parts):
    """`total` split into `parts` near-equal counts (larger first), to spread a load over clients."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# ---------------------------------------------------------------- /proc helpers


def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None if gone: the base of the CPU figures."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime is field 14, stime 15, cutime 16, cstime 17.
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK, (int(rest[13]) + int(rest[14])) / CLK


def tree(root):
    """PIDs of root and all its descendants (one pass over /proc): Dovecot and Postfix are many processes."""
    children = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                children[st[0]].append(int(d))
    out, frontier = {root}, [root]
    while frontier:
        for c in children.get(frontier.pop(), ()):
            if c not in out:
                out.add(c)
                frontier.append(c)
    return out


def kib_field(path, field):
    """The KiB figure of `field` (VmRSS, VmHWM, Pss) in a /proc status-like file, 0 if gone: memory figures."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def comm(pid):
    """A process's command name ("" if gone), to tell Dovecot's processes apart."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def tree_cpu(root):
    """CPU seconds used by root's tree, live processes plus the children they reaped: a server's CPU cost."""
    total = 0.0
    for pid in tree(root):
        st = proc_stat(pid)
        if st:
            total += st[1] + st[2]
    return total


def machine_cpu():
    """(process, interrupt, steal) CPU seconds of the whole machine so far: what other processes took."""
    # Process CPU is user+nice+system, where every process's own time is counted;
    # interrupts (irq+softirq: much of the loopback network stack) and steal (the
    # hypervisor running someone else) are apart.
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    return (v[0] + v[1] + v[2]) / CLK, (v[5] + v[6]) / CLK, v[7] / CLK


class MemorySampler(threading.Thread):
    """A thread keeping the peak memory of a server's process tree during a run, read every 0.2 s."""

    def __init__(self, root, rss=False, names=None):
        super().__init__(daemon=True)
        # peak_pss: the summed PSS of the tree, pss_procs: its processes then. With rss=True
        # also peak_rss, the summed VmRSS of the processes named in `names` (all when None),
        # and rss_procs. A peak between two reads is missed.
        self.root, self.rss, self.names = root, rss, names
        self.peak_pss = self.pss_procs = self.peak_rss = self.rss_procs = 0
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            pids = tree(self.root)
            pss = sum(kib_field(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
            if pss > self.peak_pss:
                self.peak_pss, self.pss_procs = pss, len(pids)
            if self.rss:
                sel = [p for p in pids if self.names is None or comm(p) in self.names]
                rss = sum(kib_field(f"/proc/{p}/status", "VmRSS") for p in sel)
                if rss > self.peak_rss:
                    self.peak_rss, self.rss_procs = rss, len(sel)
            self.stop_flag.wait(0.2)

    def stop(self):
        self.stop_flag.set()
        self.join()


# ---------------------------------------------------------------- processes and ports


def wait_port(host, port, timeout=30.0, proc=None, what="the server"):
    """Waits until a server accepts connections on host:port; fails if `proc` (`what`) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            die(f"{what} exited early with status {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    die(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def stop_process(proc, timeout=60, kill_wait=None):
    """Stops a server: SIGTERM, SIGKILL after `timeout` s (then waits `kill_wait` s, None: for good)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=kill_wait)


def stop_pochta(server, timeout=60):
    """Stops pochta (None: not started) and closes its log file, `server.logfile`."""
    if server is None:
        return
    stop_process(server, timeout)
    server.logfile.close()


def pochta_binary(a, reuse_built=False):
    """The pochta to measure: POCHTA_BIN, or target/release/pochta built by cargo (reuse_built: if missing)."""
    if a.pochta_bin:
        b = Path(a.pochta_bin)
        if not b.is_file():
            die(f"POCHTA_BIN={b} does not exist")
        return b
    b = REPO / "target" / "release" / "pochta"
    if reuse_built and b.is_file():
        return b
    log("building pochta (cargo build --release --bin pochta) ...")
    r = subprocess.run(["cargo", "build", "--release", "--bin", "pochta"], cwd=REPO)
    if r.returncode != 0:
        die("cargo build --release failed")
    return b


def raise_fd_limit(need, explain=None):
    """Raises the open-file limit, which the servers and clients inherit, to `need`; fails if it cannot."""
    # Past the hard limit if allowed (root), else to the hard limit; `explain` says why `need`.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft, hard), max(need, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if explain:
            die(f"the open-file limit is {soft} (hard {hard}) and cannot be raised: {explain}")
        die(f"the open-file limit is {soft} and cannot be raised to {need} (ulimit -Hn)")
    return soft


def client_context():
    """A TLS client context that neither verifies nor loads the CA certificates (0.1 s of CPU each)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------- the reference stack


def rs_env(ports):
    """The environment of the reference stack with a benchmark's own `ports` ({"RS_SMTP": "12525", ...})."""
    # Each port only where the environment does not set that variable already.
    return {**os.environ, **{k: os.environ.get(k, v) for k, v in ports.items()}}


def rs_cmd(a, *args, ports=None, timeout=None):
    """Runs `reference-stack ARGS` (Postfix and Dovecot to compare with) and returns its output."""
    # `ports` as for rs_env; None: the stack's defaults, or RS_* from the environment.
    r = subprocess.run([a.reference_stack, *args], capture_output=True, text=True,
                       env=None if ports is None else rs_env(ports), timeout=timeout)
    if r.returncode != 0:
        die(f"reference-stack {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


# ---------------------------------------------------------------- profilers


PERF_DWARF = ("--call-graph", "dwarf,16384")  # the release binary has debug info but no frame pointers


def start_profiler(profile, root, strace_out, perf_out, perf_args=PERF_DWARF, install_hint=True):
    """Attaches PROFILE's profiler to a server, to see where its time goes; None if none applies."""
    # strace: `strace -c -f` of root's tree into strace_out; perf: `perf record` of root
    # into perf_out. An output of None: nothing to profile for this server.
    if profile == "strace" and strace_out is not None:
        out = strace_out
        pids = sorted(tree(root))
        cmd = ["strace", "-c", "-f", "-q", "-o", str(out)] + [x for p in pids for x in ("-p", str(p))]
    elif profile == "perf" and perf_out is not None:
        out = perf_out
        cmd = ["perf", "record", *perf_args, "-F", "499", "-q", "-o", str(out), "-p", str(root)]
    else:
        return None
    if shutil.which(cmd[0]) is None:
        hint = f" (apt-get install {cmd[0] if cmd[0] == 'strace' else 'linux-perf'})" if install_hint else ""
        die(f"PROFILE={profile}: {cmd[0]} is not installed{hint}")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach
    return proc, out, profile


def stop_profiler(prof, timeout=300, kill=True):
    """Stops a profiler from start_profiler; returns strace's {system call: calls}, or None for perf."""
    # SIGINT makes it write its output; after `timeout` s it is killed (kill=False:
    # TimeoutExpired). strace's own "total" line is not a system call and is left out.
    # For perf (or no strace output) it prints where the data is.
    if prof is None:
        return None
    proc, out, profile = prof
    proc.send_signal(signal.SIGINT)
    if kill:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    else:
        proc.wait(timeout=timeout)
    if profile == "strace" and out.exists():
        calls = {}
        for line in out.read_text().splitlines():
            f = line.split()
            if len(f) >= 5 and f[-1].isidentifier() and f[-1] != "total" and f[3].isdigit():
                calls[f[-1]] = int(f[3])
        return calls
    log(f"    perf data: {out}  (perf report -i {out} --no-children)")
    return None
