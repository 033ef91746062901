#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30), one after
# the other, at the lowest CPU priority. Exits non-zero on the first crash;
# the crashing input is in fuzz/artifacts/<target>/ and libFuzzer prints how
# to reproduce it.
#
#   fuzz/run.sh [SECONDS]          all targets
#   TARGETS="smtp_session config" fuzz/run.sh 600
#
# Needs the nightly toolchain and cargo-fuzz (see fuzz/README.md). The
# checked-in seed corpus (fuzz/corpus/<target>) is only read: what the run
# finds goes to a scratch directory, unless FUZZ_KEEP_CORPUS=1, when new
# inputs are added to fuzz/corpus/<target> (for long runs, then minimise with
# `cargo fuzz cmin`). FUZZ_WORK=DIR keeps what the run finds in DIR/<target>
# instead (outside the repository), and the logs in DIR/<target>.log, so that
# long runs resume from where the last one stopped.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
SECONDS_EACH=${1:-30}
ALL_TARGETS=(smtp_session smtp_client_replies mta_sts_policy pop3_session imap_command
    imap_session imap_thread_sort jmap_request jmap_service mime_delivery config)
read -r -a TARGETS <<<"${TARGETS:-${ALL_TARGETS[*]}}"

# Safe Rust: no sanitizer (libFuzzer still catches panics, aborts, overflows of
# the stack and leaks of time/memory); debug assertions and overflow checks on.
BUILD_FLAGS=(-O -a -s none)

declare -A DICT=(
    [smtp_session]=dict/smtp.dict
    [smtp_client_replies]=dict/smtp-replies.dict
    [pop3_session]=dict/pop3.dict
    [imap_command]=dict/imap.dict
    [imap_session]=dict/imap.dict
    [imap_thread_sort]=dict/thread.dict
    [jmap_request]=dict/jmap.dict
    [jmap_service]=dict/jmap.dict
)

nice -n 19 cargo +nightly fuzz build "${BUILD_FLAGS[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# jmap_service keeps its store under TMPDIR: let the trap remove it too.
export TMPDIR=$scratch

for target in "${TARGETS[@]}"; do
    seeds=corpus/$target
    mkdir -p "$seeds"
    if [ "${FUZZ_KEEP_CORPUS:-}" = 1 ]; then
        dirs=("$seeds")
    elif [ -n "${FUZZ_WORK:-}" ]; then
        mkdir -p "$FUZZ_WORK/$target"
        dirs=("$FUZZ_WORK/$target" "$seeds")
    else
        mkdir -p "$scratch/$target"
        dirs=("$scratch/$target" "$seeds")
    fi
    args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -print_final_stats=1)
    if [ -n "${DICT[$target]:-}" ]; then
        args+=(-dict="${DICT[$target]}")
    fi
    echo "== fuzz $target for ${SECONDS_EACH}s"
    log=${FUZZ_WORK:-$scratch}/$target.log
    status=0
    nice -n 19 cargo +nightly fuzz run "${BUILD_FLAGS[@]}" "$target" "${dirs[@]}" -- "${args[@]}" \
        >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log"
        echo "== fuzz $target FAILED (exit $status); the input is in fuzz/artifacts/$target/"
        exit "$status"
    fi
done
echo "== fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH}s each, no crash"
