#!/usr/bin/env python3
"""Which of pochta's own code a fuzz corpus reaches, and what its newest inputs added.

libFuzzer's `cov:` count mixes pochta's code with every dependency it calls
(serde_json, mail-parser, tokio, ...), so a count that still grows says little
about whether the corpus still finds new *pochta* code, and a count that stops
says nothing about code no input ever reached (a method no seed names, say).
This script answers both from the fuzz binary itself, without a coverage
build: it runs the corpus once through libFuzzer's merge (`-merge=1
-merge_control_file`), whose control file lists the PC-table entries each
input reached first, maps those entries to addresses through the binary's
`__sancov_pcs` table (its R_X86_64_RELATIVE relocations, since the binary is
position-independent) and the addresses to source lines with `addr2line`
(binutils). x86-64 Linux only.

    fuzz/coverage.py TARGET CORPUS_DIR [--since 'YYYY-MM-DD HH:MM' | --baseline SNAPSHOT]
                     [--min-pcs N] [--unreached PATH_PART]

prints, for the pochta source files the target reaches, the instrumented
points covered out of all, and the pochta functions of which no point was
reached (the seed corpus wants an input for them, or they are unreachable
from the target, like drop code of a cancelled future). With `--since`, the
inputs written after that time run last, and the points they alone reached
are listed (by crate, and pochta's by line): new coverage of pochta's own
code in a run's last stretch means the run has not reached its plateau.
`--since` has a flaw on a corpus a fuzzer keeps reducing: libFuzzer deletes
an input when it writes a smaller one with the same coverage, so what the
deleted file reached shows up as new in its successor. `--baseline
SNAPSHOT` avoids it: take `cp -al CORPUS SNAPSHOT` (hard links, so the files
the fuzzer deletes afterwards stay) at the start of the stretch to judge;
the inputs in SNAPSHOT are the old ones, those of CORPUS not in it and newer
than its newest file the new. Each new pochta line is listed with an input
that reached it, the pochta line it was inlined into (a cursor's `peek` is
a new branch of the parser that calls it) and, when the point lies in std
code inlined into pochta's, that std function: a `RawVec::reserve` under an
`extend_from_slice` is a buffer that had to grow at that call, which comes
from sizes, not from a branch of pochta's own that had not run. New points
outside pochta's lines are counted by the function they were compiled into
(std's `quicksort` meeting a longer list is not a new path through a parser).
With `--unreached`, the source lines of the pochta files whose path contains
PATH_PART that have instrumented points but none reached are printed: where
a seed is missing, or what the target cannot reach at all. Most such lines
are error branches (the `Err` side of a `?`: the success side's points sit
in the inlined callee, attributed to the callee's lines), and a point's
line is that of one instruction of its block, so a line that ran may still
be listed: like the function list, a lead to read, not a proof.

Build the target first (`cargo +nightly fuzz build -O -a -s none TARGET`); a
merge runs every input once, so a large corpus of a slow target takes minutes.
"""

import argparse
import collections
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pc_table(binary):
    """Addresses of the binary's PC-table entries, by entry index."""
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True,
                              text=True, check=True).stdout
    m = re.search(r"__sancov_pcs\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", sections)
    if not m:
        sys.exit(f"{binary}: no __sancov_pcs section (not a libFuzzer build?)")
    base, size = int(m.group(1), 16), int(m.group(2), 16)
    table = {}
    relocs = subprocess.run(["readelf", "-rW", binary], capture_output=True,
                            text=True, check=True).stdout
    for line in relocs.splitlines():
        w = line.split()
        if len(w) >= 4 and w[2] == "R_X86_64_RELATIVE":
            offset = int(w[0], 16)
            # An entry is (pc, flags), 16 octets; only the pc is relocated.
            if base <= offset < base + size:
                table[(offset - base) // 16] = int(w[3], 16)
    return table


def symbolize(binary, addresses):
    """(function, innermost non-std source line, outermost pochta source line,
    innermost function when the point's source is std's) of each address:
    what the judged-stretch listing in the module doc prints."""
    raw = subprocess.run(["addr2line", "-a", "-f", "-C", "-i", "-e", binary],
                         input="\n".join(hex(a) for a in addresses),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    out, frames = [], []
    for line in raw + ["0x"]:
        if line.startswith("0x"):
            if frames:
                # Frames come innermost first as (function, file:line) pairs; a
                # point inside inlined std code counts for the code that called it.
                pairs = list(zip(frames[0::2], frames[1::2]))
                mine = [p for p in pairs if "/rustc/" not in p[1] and "hashbrown" not in p[1]]
                func = pairs[-1][0]
                ours = [p[1] for p in pairs if p[1].startswith(ROOT + "/crates/")]
                inner = pairs[0][0] if "/rustc/" in pairs[0][1] else None
                out.append((re.sub(r"::h[0-9a-f]{16}$", "", func), (mine or pairs)[0][1],
                            ours[-1] if ours else None, inner))
            frames = []
        else:
            frames.append(line)
    return out


def short(func):
    """A std function's path without its generic arguments, shortened to its
    last two segments (`raw_vec::RawVec::grow_one` -> `RawVec::grow_one`)."""
    depth, plain = 0, []
    for ch in func:
        depth += ch == "<"
        if depth == 0:
            plain.append(ch)
        depth -= ch == ">" and depth > 0
    return "::".join("".join(plain).split("::")[-2:])


def area(location):
    m = re.search(r"/registry/src/[^/]+/([^/]+)/", location)
    if m:
        return re.sub(r"-\d[\w.+-]*$", "", m.group(1))
    m = re.search(r"/(crates/[^/]+|src|fuzz)/", location)
    if m and location.startswith(ROOT):
        return "pochta " + m.group(1)
    return "std" if "/rustc/" in location else "other"


def merge(binary, work, first, rest):
    """Runs the merge; returns {path: set of PC-table indices first reached}.

    libFuzzer runs the inputs of the first directory (the merge's output, to
    which it copies inputs that add coverage) before those of the others, and
    the others all together in order of size; so "first reached" by an input
    of `rest` means reached by no input of `first`.
    """
    control = os.path.join(work, "control")
    cmd = [binary, "-merge=1", f"-merge_control_file={control}", "-timeout=60",
           "-rss_limit_mb=4096", first, *rest]
    with open(os.path.join(work, "merge.log"), "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    lines = open(control).read().splitlines()
    n = int(lines[0])
    files = lines[2:2 + n]
    reached = collections.defaultdict(set)
    for line in lines[2 + n:]:
        if line.startswith("COV "):
            w = line.split()
            reached[files[int(w[1])]].update(int(x) for x in w[2:])
    return reached


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("target")
    p.add_argument("corpus", nargs="+")
    p.add_argument("--since", help="inputs written after this local time are 'new'")
    p.add_argument("--baseline", metavar="SNAPSHOT",
                   help="a hard-linked copy of the corpus taken earlier: inputs not in it are 'new'")
    p.add_argument("--min-pcs", type=int, default=8,
                   help="list unreached functions with at least this many points (default 8)")
    p.add_argument("--unreached", metavar="PATH_PART",
                   help="print the unreached lines of the pochta files whose path contains this")
    p.add_argument("--binary", help="the fuzz binary (default: fuzz/target/.../release/TARGET)")
    a = p.parse_args()
    binary = a.binary or os.path.join(HERE, "target", "x86_64-unknown-linux-gnu", "release", a.target)
    if not os.path.exists(binary):
        sys.exit(f"no {binary}; build it with cargo +nightly fuzz build -O -a -s none {a.target}")

    work = tempfile.mkdtemp(prefix=f"pochta-coverage-{a.target}-")
    try:
        # Hard links to every input, taken before the merge: a running
        # fuzzer replaces inputs by smaller ones (REDUCE), and a file that
        # vanishes mid-merge makes libFuzzer's merge start over forever.
        cut = (datetime.datetime.strptime(a.since, "%Y-%m-%d %H:%M").timestamp()
               if a.since else None)
        known = set(os.listdir(a.baseline)) if a.baseline else None
        if known:
            # Inputs not in the snapshot but older than its newest one (the
            # seed directory, say) were there before the stretch too.
            cut = max(os.path.getmtime(os.path.join(a.baseline, n)) for n in known)
        judged = a.since or a.baseline
        first = os.path.join(work, "out")
        old_dir = os.path.join(work, "old")
        new_dir = os.path.join(work, "new") if judged else None
        for d in (old_dir, new_dir):
            if d:
                os.mkdir(d)
        sources = list(a.corpus) + ([a.baseline] if a.baseline else [])
        for d in sources:
            for name in os.listdir(d):
                src = os.path.join(d, name)
                try:
                    late = cut is not None and os.path.getmtime(src) > cut
                    if known is not None:
                        late = late and name not in known
                    dst = os.path.join(new_dir if late else old_dir, name)
                    if not os.path.exists(dst):
                        os.link(src, dst)
                except FileNotFoundError:
                    continue
                except OSError:
                    shutil.copyfile(src, dst)
        if judged:
            # The old inputs are merged into `first`, so they run first.
            print(f"{len(os.listdir(old_dir))} inputs before {judged}, "
                  f"{len(os.listdir(new_dir))} after (merged last)")
            first, rest = old_dir, [new_dir]
        else:
            os.mkdir(first)
            rest = [old_dir]
        reached = merge(binary, work, first, rest)
        table = pc_table(binary)
        indices = sorted(table)
        where = dict(zip(indices, symbolize(binary, [table[i] for i in indices])))
        covered = set().union(*reached.values()) if reached else set()

        files_all, files_hit = collections.Counter(), collections.Counter()
        funcs_all, funcs_hit, func_at = collections.Counter(), collections.Counter(), {}
        for i, (func, loc, _, _) in where.items():
            if not loc.startswith(ROOT + "/crates/"):
                continue
            path = loc.split(" ")[0].rsplit(":", 1)[0][len(ROOT) + 1:]
            files_all[path] += 1
            files_hit[path] += i in covered
            funcs_all[func] += 1
            funcs_hit[func] += i in covered
            func_at.setdefault(func, loc.split(" ")[0][len(ROOT) + 1:])
        total = sum(files_all.values())
        hit = sum(files_hit.values())
        print(f"\n{len(covered)} points reached in all; in pochta's crates {hit} of {total} "
              f"instrumented points ({100 * hit / max(total, 1):.1f} %)")
        print("\npochta files reached (points covered / instrumented):")
        for f in sorted(files_all):
            if files_hit[f]:
                print(f"  {files_hit[f]:6} / {files_all[f]:<6} {f}")
        print(f"\npochta functions never reached (at least {a.min_pcs} points; "
              "drop code of futures left out):")
        for func in sorted(funcs_all, key=lambda f: func_at[f]):
            if funcs_hit[func] == 0 and funcs_all[func] >= a.min_pcs and "drop_glue" not in func:
                print(f"  {funcs_all[func]:5}  {func_at[func]}  {func[:100]}")

        if a.unreached:
            lines_all, lines_hit = collections.Counter(), collections.Counter()
            for i, (_, loc, _, _) in where.items():
                loc = loc.split(" ")[0]
                if loc.startswith(ROOT + "/crates/") and a.unreached in loc:
                    lines_all[loc] += 1
                    lines_hit[loc] += i in covered
            by_file = collections.defaultdict(list)
            for loc in lines_all:
                path, _, line = loc.rpartition(":")
                if lines_hit[loc] == 0 and line.isdigit():
                    by_file[path].append(int(line))
            for path in sorted(by_file):
                text = open(path, errors="replace").read().splitlines()
                print(f"\nunreached lines of {path[len(ROOT) + 1:]} ({len(by_file[path])}):")
                for n in sorted(by_file[path]):
                    src = text[n - 1].strip() if 0 < n <= len(text) else ""
                    print(f"  {n:5}  {src[:110]}")

        if new_dir:
            fresh = set()
            for path, pcs in reached.items():
                if path.startswith(new_dir + os.sep):
                    fresh |= pcs
            print(f"\npoints first reached by the inputs after {judged}: {len(fresh)}")
            for name, n in collections.Counter(area(where[i][1]) for i in fresh if i in where).most_common():
                print(f"  {n:6} {name}")
            # Points outside pochta's lines, by the function they were
            # compiled into: tells a grown buffer or hash table in a long-lived
            # process from a new path through a dependency's parser.
            others = collections.Counter(
                f"{area(where[i][1])}: {short(where[i][0])}" for i in fresh
                if i in where and not where[i][1].startswith(ROOT + "/crates/"))
            if others:
                print("  outside pochta's lines, by the function they are compiled into:")
                for name, n in sorted(others.items(), key=lambda kv: (-kv[1], kv[0])):
                    print(f"    {n:4}  {name}")
            first_input = {}
            for path, pcs in sorted(reached.items()):
                if path.startswith(new_dir + os.sep):
                    for i in pcs:
                        first_input.setdefault(i, os.path.basename(path))
            lines = collections.defaultdict(set)
            for i in fresh:
                if i in where and where[i][1].startswith(ROOT + "/crates/"):
                    line = where[i][1].split(" ")[0][len(ROOT) + 1:]
                    outer = (where[i][2] or "").split(" ")[0][len(ROOT) + 1:]
                    via = f"  (inlined into {outer})" if outer and outer != line else ""
                    if where[i][3] and where[i][3].startswith("pochta"):
                        # std's source, but the debug info kept no frame for
                        # the inlined std function (a macro's expansion, an
                        # iterator adapter): the enclosing function is named.
                        via += f"  in std's code within {short(where[i][3])}"
                    elif where[i][3]:
                        via += f"  in std's {short(where[i][3])}"
                    lines[line + via].add(first_input.get(i, "?"))
            if lines:
                in_std = sum(1 for k in lines if "in std's" in k)
                print(f"  pochta lines among them (and an input that reached each; {in_std}"
                      " only in std code inlined there):")
                for line in sorted(lines):
                    print(f"    {line}  [{sorted(lines[line])[0]}]")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
