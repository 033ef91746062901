#!/usr/bin/env bash
# Interop tests: the real `pochta` binary against real third-party clients (swaks
# for SMTP; fetchmail, getmail6, curl and python's poplib for POP3; mbsync, curl,
# neomutt, offlineimap3 and python for IMAP) and, for the relay, real servers
# (a private Postfix instance and Postfix's smtp-sink); and pochta's user agent
# (`pochta mail`) as a client of Dovecot and Postfix.
#
#   tests/interop/run.sh [PATH-TO-POCHTA]        (default: target/release/pochta)
#
# Starts `pochta serve` on free loopback ports with a temporary config and data
# directory, creates accounts with the `pochta user`/`pochta alias` CLI, then runs
# swaks against the MX, submission (STARTTLS) and submissions (implicit TLS)
# listeners, then the POP3 clients against the pop3 (STLS) and pop3s (implicit
# TLS) listeners (pop3.sh), then the IMAP clients against the imap (STARTTLS) and
# imaps (implicit TLS) listeners (imap.sh), then the relay: mail to and from
# Postfix, smtp-sink refusing and accepting, the queue commands (relay.sh), then
# `pochta mail` against a private Dovecot and Postfix (client.sh). Every
# check prints PASS or FAIL with a reason; a
# failing check also prints the client's transcript. What was delivered is
# verified in the store itself (store.sqlite3, read with python3's sqlite3 and
# email modules: store.py), not only from the server's replies, and what a POP3
# or IMAP client downloaded is compared with the stored bytes (fetched.py); the
# folders and flags an IMAP client synchronised are compared with the store's.
#
# Needs: swaks (with Net::SSLeay / IO::Socket::SSL for TLS, Authen::SASL is
# optional), python3, openssl, coreutils `timeout`, fetchmail, getmail (Debian:
# getmail6), curl, mbsync (Debian: isync), neomutt, offlineimap (Debian:
# offlineimap3), script (util-linux, Debian: bsdutils); postfix and smtp-sink
# (Debian: postfix), dkimpy for /usr/bin/python3 (Debian: python3-dkim), dovecot
# and doveadm (Debian: dovecot-imapd dovecot-pop3d); as root also `runuser` and
# a user `nobody` (getmail will not deliver as root, nor Postfix). Without root
# the Postfix and Dovecot checks are skipped (an error under CI=true).
# Exit status: 0 when every check passed, 1 when one failed, 2 on a setup error.
# KEEP_WORKDIR=1 keeps the temporary directory (config, data, logs, transcripts)
# even on success; it is always kept after a failure. ONLY=client runs only the
# user agent checks (client.sh: no `pochta serve`; of the clients above only
# python3, openssl, timeout and script are needed, with Dovecot and Postfix).

# The check functions are called through `check`, cleanup through the trap:
# shellcheck disable=SC2317
set -uo pipefail

ONLY=${ONLY:-}
case $ONLY in
"" | client) ;;
*)
    printf 'SETUP ERROR: ONLY=%s: the only value known is ONLY=client\n' "$ONLY" >&2
    exit 2
    ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-"$ROOT/target/release/pochta"}

STORE_PY="$HERE/store.py"
DIALOG_PY="$HERE/smtp_dialog.py"

PASSED=0
FAILED=0
FAILED_NAMES=()
SERVER_PID=""
WORK=""

# ---------------------------------------------------------------- utilities

say() { printf '%s\n' "$*"; }
setup_error() {
    say "SETUP ERROR: $*" >&2
    exit 2
}
now_ms() { date +%s%3N; }
fmt_ms() { printf '%d.%03ds' $(($1 / 1000)) $(($1 % 1000)); }

cleanup() {
    local rc=$?
    stop_server
    declare -F relay_cleanup >/dev/null && relay_cleanup
    declare -F client_cleanup >/dev/null && client_cleanup
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ] || [ "${KEEP_WORKDIR:-}" = 1 ]; then
            say "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# Stops the server (SIGTERM, then SIGKILL after 15 s). Safe to call twice.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        local i
        for ((i = 0; i < 150; i++)); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            say "server did not stop within 15 s of SIGTERM; killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}

# Prints a file indented, for failure reports (bounded, transcripts can be long).
show_file() {
    local title=$1 file=$2 max=${3:-200}
    [ -f "$file" ] || return 0
    say "      --- $title"
    local lines
    lines=$(wc -l <"$file")
    if [ "$lines" -gt "$max" ]; then
        head -n $((max / 2)) "$file" | sed 's/^/      | /'
        say "      | ... ($((lines - max)) lines left out) ..."
        tail -n $((max / 2)) "$file" | sed 's/^/      | /'
    else
        sed 's/^/      | /' "$file"
    fi
}

# ---------------------------------------------------------------- checks

REASON=""
TRANSCRIPTS=()

# check "description" function [args...]: runs one check and reports it.
check() {
    local desc=$1
    shift
    REASON=""
    TRANSCRIPTS=()
    local t0 t1
    t0=$(now_ms)
    "$@"
    local ok=$?
    t1=$(now_ms)
    if [ "$ok" -eq 0 ]; then
        PASSED=$((PASSED + 1))
        printf 'PASS  %s  (%s)\n' "$desc" "$(fmt_ms $((t1 - t0)))"
    else
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$desc")
        printf 'FAIL  %s  (%s)\n' "$desc" "$(fmt_ms $((t1 - t0)))"
        say "      reason: ${REASON:-check function returned $ok}"
        local t
        for t in "${TRANSCRIPTS[@]}"; do
            show_file "$(basename "$t")" "$t"
        done
    fi
}

fail() {
    REASON=$*
    return 1
}

swaks_meaning() {
    case $1 in
    0) say "no errors" ;;
    2) say "error connecting to the server" ;;
    6) say "connection closed unexpectedly" ;;
    21) say "error reading the banner" ;;
    22) say "error in HELO/EHLO" ;;
    23) say "error in MAIL" ;;
    24) say "no RCPT accepted" ;;
    25) say "error to DATA" ;;
    26) say "message refused after DATA" ;;
    28) say "error in AUTH" ;;
    29) say "error in TLS" ;;
    32) say "error in EHLO after TLS" ;;
    124) say "killed by timeout" ;;
    *) say "see EXIT CODES in man swaks" ;;
    esac
}

# sw NAME SWAKS-ARGS...: runs swaks, transcript in $SW_OUT, exit status in $SW_RC.
SWAKS_COMMON=(--timeout 30 --helo client.interop.test --suppress-data)
sw() {
    local name=$1
    shift
    SW_OUT="$WORK/swaks-$name.txt"
    TRANSCRIPTS+=("$SW_OUT")
    {
        printf '$ swaks'
        printf ' %q' "${SWAKS_COMMON[@]}" "$@"
        printf '\n'
    } >"$SW_OUT"
    timeout 90 swaks "${SWAKS_COMMON[@]}" "$@" >>"$SW_OUT" 2>&1
    SW_RC=$?
}

# expect_rc N: swaks exited with N.
expect_rc() {
    [ "$SW_RC" -eq "$1" ] ||
        fail "swaks exited $SW_RC ($(swaks_meaning "$SW_RC")), expected $1 ($(swaks_meaning "$1"))"
}

# expect_out REGEX WHAT: the transcript has a line matching REGEX (grep -E).
expect_out() {
    grep -Eq -- "$1" "$SW_OUT" || fail "transcript lacks $2 (/$1/)"
}

# expect_no_out REGEX WHAT: no transcript line matches REGEX.
expect_no_out() {
    ! grep -Eq -- "$1" "$SW_OUT" || fail "transcript unexpectedly has $2 (/$1/)"
}

# stored ADDRESS TOKEN: prints how many INBOX messages of ADDRESS contain TOKEN.
stored() {
    python3 "$STORE_PY" find "$DB" "$1" "$2"
}

# expect_stored ADDRESS TOKEN N: exactly N messages of ADDRESS contain TOKEN.
expect_stored() {
    local n
    n=$(stored "$1" "$2" 2>&1) || fail "store query failed: $n" || return 1
    [ "$n" = "$3" ] || fail "$1 has $n message(s) containing $2 in INBOX, expected $3"
}

# expect_header ADDRESS TOKEN HEADER REGEX: a HEADER of the stored message matches.
expect_header() {
    local values
    values=$(python3 "$STORE_PY" header "$DB" "$1" "$2" "$3" 2>&1) ||
        fail "store query failed: $values" || return 1
    grep -Eq -- "$4" <<<"$values" ||
        fail "stored $3 header of $1's message does not match /$4/; it is: ${values:-<none>}"
}

# A token unique to one check, put in the subject and body of its message.
token() { printf 'interop-%s-%s-%s' "$1" "$$" "$RANDOM$RANDOM"; }

# ---------------------------------------------------------------- preflight

[ -x "$BIN" ] || setup_error "pochta binary not found or not executable: $BIN (build it with: cargo build --release)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
if [ "$ONLY" = client ]; then
    TOOLS=(python3 openssl timeout script)
else
    TOOLS=(swaks python3 openssl timeout fetchmail getmail curl mbsync neomutt offlineimap script)
fi
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || setup_error "$tool is not installed"
done
if [ "$ONLY" != client ]; then
    SUPPORT=$(swaks --support 2>&1)
    grep -q '^=== TLS supported' <<<"$SUPPORT" ||
        setup_error "swaks has no TLS support (install libnet-ssleay-perl libio-socket-ssl-perl): $SUPPORT"
    grep -q '^=== Basic AUTH supported' <<<"$SUPPORT" ||
        setup_error "swaks has no AUTH support: $SUPPORT"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pochta-interop.XXXXXX") || setup_error "mktemp failed"
CONF="$WORK/pochta.toml"
DATA="$WORK/data"
DB="$DATA/store.sqlite3"
CERT="$DATA/tls/cert.pem"
SERVER_OUT="$WORK/server.out"
SERVER_LOG="$WORK/server.log"

say "pochta interop tests"
say "  binary   $BIN ($("$BIN" --version 2>&1))"
if [ "$ONLY" != client ]; then
    say "  swaks    $(swaks --version 2>&1 | head -n 1)"
    say "  pop3     $(fetchmail --version 2>/dev/null | grep -m1 -o 'fetchmail release [^ +]*'); $(getmail --version 2>&1 | head -n 1); $(curl --version | head -n 1 | cut -d' ' -f1-2)"
    say "  imap     $(mbsync --version 2>&1 | head -n 1); $(neomutt -v 2>/dev/null | head -n 1); offlineimap $(offlineimap --version 2>/dev/null | head -n 1)"
fi
say "  servers  Dovecot $(dovecot --version 2>/dev/null || echo missing); Postfix $(postconf -d -h mail_version 2>/dev/null || echo missing)"
say "  python3  $(python3 --version 2>&1)"
say "  work dir $WORK"

# ---------------------------------------------------------------- server

free_ports() {
    python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
'
}

write_config() {
    cat >"$CONF" <<EOF
# Written by tests/interop/run.sh
hostname = "mx.interop.test"
data_dir = "data"
domains = ["localhost", "interop.test"]

[listen]
smtp = "127.0.0.1:$MX_PORT"
submission = "127.0.0.1:$SUB_PORT"
submissions = "127.0.0.1:$SUBS_PORT"
imap = "127.0.0.1:$IMAP_PORT"
imaps = "127.0.0.1:$IMAPS_PORT"
pop3 = "127.0.0.1:$POP3_PORT"
pop3s = "127.0.0.1:$POP3S_PORT"
http = ""

[limits]
shutdown_grace = "5s"

[log]
level = "info"
EOF
    relay_config >>"$CONF"
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Starts the server; retries with new ports if one was taken meanwhile.
start_server() {
    local attempt i
    for attempt in 1 2 3; do
        read -r MX_PORT SUB_PORT SUBS_PORT POP3_PORT POP3S_PORT IMAP_PORT IMAPS_PORT < <(free_ports) ||
            setup_error "cannot pick free ports"
        write_config
        RUST_LOG=info "$BIN" --config "$CONF" serve >"$SERVER_OUT" 2>"$SERVER_LOG" &
        SERVER_PID=$!
        for ((i = 0; i < 300; i++)); do
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then
                wait "$SERVER_PID"
                say "server exited early with status $? (attempt $attempt):"
                show_file server.log "$SERVER_LOG" 40
                SERVER_PID=""
                grep -q 'cannot listen' "$SERVER_LOG" && continue 2
                setup_error "pochta serve failed to start"
            fi
            if port_open "$MX_PORT" && port_open "$SUB_PORT" && port_open "$SUBS_PORT" &&
                port_open "$POP3_PORT" && port_open "$POP3S_PORT" &&
                port_open "$IMAP_PORT" && port_open "$IMAPS_PORT"; then
                say "  server   pid $SERVER_PID; smtp 127.0.0.1:$MX_PORT, submission :$SUB_PORT, submissions :$SUBS_PORT"
                say "           pop3 :$POP3_PORT, pop3s :$POP3S_PORT, imap :$IMAP_PORT, imaps :$IMAPS_PORT"
                return 0
            fi
            sleep 0.1
        done
        show_file server.log "$SERVER_LOG" 40
        setup_error "pochta serve did not listen within 30 s"
    done
    setup_error "pochta serve could not bind its ports after 3 attempts"
}

cli() {
    timeout 60 "$BIN" --config "$CONF" "$@"
}

ALICE=alice@localhost
BOB=bob@localhost
CAROL=carol@localhost
ALICE_PW='alice: correct horse battery staple'
BOB_PW='Bob-pässword/with+base64=chars'
CAROL_PW='carol 12345 !@#$%^&*()'

# The relay checks (Postfix, smtp-sink, queue commands): relay_prepare,
# relay_config (in write_config), relay_checks, relay_cleanup (in cleanup).
# shellcheck source=tests/interop/relay.sh
. "$HERE/relay.sh"

# The user agent checks (pochta mail against Dovecot and Postfix):
# client_checks, client_cleanup (in cleanup).
# shellcheck source=tests/interop/client.sh
. "$HERE/client.sh"

T_START=$(now_ms)
if [ "$ONLY" != client ]; then
    relay_prepare
    start_server
fi
say ""

# ---------------------------------------------------------------- the checks

# The POP3 checks (fetchmail, getmail6, curl, poplib): pop3_checks.
# shellcheck source=tests/interop/pop3.sh
. "$HERE/pop3.sh"
# The IMAP checks (mbsync, curl, neomutt, offlineimap3, python): imap_checks.
# shellcheck source=tests/interop/imap.sh
. "$HERE/imap.sh"

check_started() {
    [ -s "$CERT" ] || fail "no certificate at $CERT" || return 1
    openssl x509 -in "$CERT" -noout 2>/dev/null || fail "$CERT is not a PEM certificate" || return 1
    grep -q 'is running' "$SERVER_OUT" || fail "no banner on stdout" || return 1
    TRANSCRIPTS+=("$SERVER_OUT")
}

check_cli_users() {
    local out="$WORK/cli.txt" u pw
    TRANSCRIPTS+=("$out")
    : >"$out"
    for u in "$ALICE:$ALICE_PW" "$BOB:$BOB_PW" "$CAROL:$CAROL_PW"; do
        pw=${u#*:}
        u=${u%%:*}
        {
            say "\$ pochta user add $u --password-stdin"
            printf '%s\n' "$pw" | cli user add "$u" --password-stdin
        } >>"$out" 2>&1 || fail "user add $u failed" || return 1
    done
    if { say "\$ pochta user add $ALICE (again)"; printf 'x\n' | cli user add "$ALICE" --password-stdin; } >>"$out" 2>&1; then
        fail "adding $ALICE a second time succeeded"
        return 1
    fi
    if { say "\$ pochta user add eve@remote.example"; printf 'x\n' | cli user add eve@remote.example --password-stdin; } >>"$out" 2>&1; then
        fail "adding an account in a non-local domain succeeded"
        return 1
    fi
    { say "\$ pochta alias add team@localhost $BOB $CAROL"; cli alias add team@localhost "$BOB" "$CAROL"; } >>"$out" 2>&1 ||
        fail "alias add failed" || return 1
    local list
    list=$(cli user list 2>&1)
    say "$list" >>"$out"
    for u in "$ALICE" "$BOB" "$CAROL"; do
        grep -Eq "^$u +0 " <<<"$list" || fail "user list does not show $u with 0 messages" || return 1
    done
    cli alias list 2>&1 | tee -a "$out" | grep -q "team@localhost -> $BOB, $CAROL" ||
        fail "alias list does not show team@localhost -> $BOB, $CAROL"
}

check_submission_starttls_plain() {
    local tok
    tok=$(token sub-plain)
    sw sub-plain --server "127.0.0.1:$SUB_PORT" --tls \
        --auth PLAIN --auth-user "$ALICE" --auth-password "$ALICE_PW" \
        --from "$ALICE" --to "$BOB" --header "Subject: STARTTLS PLAIN $tok" --body "body $tok"
    expect_rc 0 || return 1
    expect_out '^<- +250[- ]STARTTLS' "STARTTLS advertised before TLS" || return 1
    expect_no_out '^<- +250[- ]AUTH' "AUTH advertised before TLS" || return 1
    expect_out '^<~ +250[- ]AUTH .*PLAIN' "AUTH PLAIN advertised under TLS" || return 1
    expect_out '^<~ +235 ' "235 under TLS" || return 1
    expect_stored "$BOB" "$tok" 1 || return 1
    expect_stored "$ALICE" "$tok" 0 || return 1
    expect_header "$BOB" "$tok" Received \
        'from client\.interop\.test \(\[127\.0\.0\.1\]\) by mx\.interop\.test \(pochta\) with ESMTPSA .*authenticated as alice@localhost' || return 1
    expect_header "$BOB" "$tok" Return-Path "^<$ALICE>$"
}

check_submissions_login() {
    local tok
    tok=$(token subs-login)
    sw subs-login --server "127.0.0.1:$SUBS_PORT" --tls-on-connect \
        --auth LOGIN --auth-user "$ALICE" --auth-password "$ALICE_PW" \
        --from "$ALICE" --to "$BOB" --header "Subject: implicit TLS LOGIN $tok" --body "body $tok"
    expect_rc 0 || return 1
    expect_out '^<~ +220 ' "the greeting under TLS" || return 1
    expect_no_out '^<- ' "a clear-text server line" || return 1
    expect_out '^<~ +334 ' "the LOGIN challenges (334)" || return 1
    expect_out '^<~ +235 ' "235" || return 1
    expect_stored "$BOB" "$tok" 1 || return 1
    expect_header "$BOB" "$tok" Received 'with ESMTPSA '
}

check_submissions_plain_unicode_password() {
    local tok
    tok=$(token subs-plain-utf8)
    sw subs-plain-utf8 --server "127.0.0.1:$SUBS_PORT" --tls-on-connect \
        --auth PLAIN --auth-user "$BOB" --auth-password "$BOB_PW" \
        --from "$BOB" --to "$CAROL" --header "Subject: UTF-8 password $tok" --body "body $tok"
    expect_rc 0 || return 1
    expect_stored "$CAROL" "$tok" 1
}

check_tls_certificate() {
    # The generated certificate names 127.0.0.1; swaks verifies the chain against it.
    sw tls-verify --server "127.0.0.1:$SUB_PORT" --tls --tls-verify --tls-ca-path "$CERT" \
        --tls-get-peer-cert "$WORK/peer.pem" --quit-after TLS --from "$ALICE" --to "$BOB"
    expect_rc 0 || return 1
    expect_out '^=== TLS started with cipher' "TLS started" || return 1
    expect_no_out 'verification failed|peer certificate .* not verified|Certificate verification failed' "a verification failure" || return 1
    [ -s "$WORK/peer.pem" ] || fail "swaks did not save the peer certificate" || return 1
    local a b
    a=$(openssl x509 -in "$CERT" -noout -fingerprint -sha256 2>&1)
    b=$(openssl x509 -in "$WORK/peer.pem" -noout -fingerprint -sha256 2>&1)
    [ "$a" = "$b" ] || fail "the server presents another certificate than $CERT ($b vs $a)"
}

check_attachment() {
    local tok file="$WORK/attachment.bin"
    tok=$(token attach)
    python3 -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(50 * 1024))' "$file" ||
        fail "cannot write $file" || return 1
    sw attach --server "127.0.0.1:$SUB_PORT" --tls \
        --auth PLAIN --auth-user "$ALICE" --auth-password "$ALICE_PW" \
        --from "$ALICE" --to "$BOB" --header "Subject: attachment $tok" --body "see attached, $tok" \
        --attach-type application/octet-stream --attach-name random.bin --attach "@$file"
    expect_rc 0 || return 1
    expect_stored "$BOB" "$tok" 1 || return 1
    local out
    out=$(python3 "$STORE_PY" attachment "$DB" "$BOB" "$tok" "$file" 2>&1) || fail "$out"
}

check_pipelining() {
    local tok
    tok=$(token pipeline)
    sw pipeline --server "127.0.0.1:$SUB_PORT" --tls --pipeline \
        --auth PLAIN --auth-user "$ALICE" --auth-password "$ALICE_PW" \
        --from "$ALICE" --to "$BOB,nobody@localhost,$CAROL" \
        --header "Subject: pipelined $tok" --body "body $tok"
    expect_rc 0 || return 1
    expect_out '^<~ +250[- ]PIPELINING' "PIPELINING advertised" || return 1
    # swaks sends MAIL, every RCPT and DATA in one go, then reads the replies.
    expect_out '^ ~> DATA' "DATA sent" || return 1
    expect_out '^<~\* +550 5\.1\.1 .*nobody@localhost' "550 5.1.1 for nobody@localhost" || return 1
    [ "$(grep -Ec '^<~ +250 2\.1\.5' "$SW_OUT")" = 2 ] || fail "expected exactly 2 accepted recipients (250 2.1.5)" || return 1
    expect_stored "$BOB" "$tok" 1 || return 1
    expect_stored "$CAROL" "$tok" 1 || return 1
    expect_stored "$ALICE" "$tok" 0
}

check_mx_plain() {
    local tok
    tok=$(token mx-plain)
    sw mx-plain --server "127.0.0.1:$MX_PORT" \
        --from x@remote.example --to "$BOB" --header "Subject: from afar $tok" --body "body $tok"
    expect_rc 0 || return 1
    expect_no_out '^<~' "a TLS line" || return 1
    expect_out '^<- +250[- ]STARTTLS' "STARTTLS offered on the MX" || return 1
    expect_no_out '^<- +250[- ]AUTH' "AUTH offered on the MX" || return 1
    expect_stored "$BOB" "$tok" 1 || return 1
    expect_header "$BOB" "$tok" Received 'from client\.interop\.test \(\[127\.0\.0\.1\]\) by mx\.interop\.test \(pochta\) with ESMTP id .*for <bob@localhost>' || return 1
    expect_header "$BOB" "$tok" Return-Path '^<x@remote\.example>$'
}

check_mx_starttls() {
    local tok
    tok=$(token mx-tls)
    sw mx-tls --server "127.0.0.1:$MX_PORT" --tls \
        --from x@remote.example --to "$BOB" --header "Subject: from afar, encrypted $tok" --body "body $tok"
    expect_rc 0 || return 1
    expect_out '^<~ +250 ' "replies under TLS" || return 1
    expect_stored "$BOB" "$tok" 1 || return 1
    expect_header "$BOB" "$tok" Received 'with ESMTPS id'
}

check_mx_alias_and_plus() {
    local tok
    tok=$(token mx-alias)
    sw mx-alias --server "127.0.0.1:$MX_PORT" --tls \
        --from x@remote.example --to "team@localhost,bob+lists@localhost" \
        --header "Subject: to the team $tok" --body "body $tok"
    expect_rc 0 || return 1
    # bob is reached twice (via the alias and via bob+lists) but gets one copy.
    expect_stored "$BOB" "$tok" 1 || return 1
    expect_stored "$CAROL" "$tok" 1
}

check_mx_8bit() {
    local tok
    tok=$(token mx-8bit)
    sw mx-8bit --server "127.0.0.1:$MX_PORT" \
        --from x@remote.example --to "$CAROL" \
        --header "Subject: =?UTF-8?B?0J/RgNC40LLQtdGC?= $tok" \
        --add-header "Content-Type: text/plain; charset=utf-8" \
        --add-header "Content-Transfer-Encoding: 8bit" \
        --body "Привет, мир! $tok"
    expect_rc 0 || return 1
    expect_stored "$CAROL" "Привет, мир! $tok" 1
}

check_auth_before_starttls() {
    sw auth-cleartext --server "127.0.0.1:$SUB_PORT" \
        --auth PLAIN --auth-user "$ALICE" --auth-password "$ALICE_PW" \
        --from "$ALICE" --to "$BOB"
    expect_rc 28 || return 1
    expect_no_out '^<- +250[- ]AUTH' "AUTH advertised before STARTTLS" || return 1
    # swaks will not send AUTH that is not advertised; send it by hand.
    local out="$WORK/dialog-auth-cleartext.txt" cred
    TRANSCRIPTS+=("$out")
    cred=$(printf '\0%s\0%s' "$ALICE" "$ALICE_PW" | base64 -w0)
    python3 "$DIALOG_PY" "$SUB_PORT" "EHLO client.interop.test" "AUTH PLAIN $cred" \
        "MAIL FROM:<$ALICE>" QUIT >"$out" 2>&1 || fail "the dialogue broke off" || return 1
    grep -Eq '^<- 538 5\.7\.11' "$out" || fail "AUTH PLAIN before STARTTLS was not answered 538 5.7.11" || return 1
    grep -Eq '^<- 530 5\.7\.0' "$out" || fail "MAIL before STARTTLS was not answered 530 5.7.0"
}

check_submission_requires_auth() {
    sw no-auth --server "127.0.0.1:$SUB_PORT" --tls --from "$ALICE" --to "$BOB"
    expect_rc 23 || return 1
    expect_out '^<~\* +530 5\.7\.0' "530 5.7.0 to MAIL without AUTH"
}

check_wrong_password() {
    local tok
    tok=$(token bad-pw)
    sw bad-pw --server "127.0.0.1:$SUB_PORT" --tls \
        --auth PLAIN --auth-user "$ALICE" --auth-password "not the password" \
        --from "$ALICE" --to "$BOB" --header "Subject: $tok"
    expect_rc 28 || return 1
    expect_out '^<~\* +535 5\.7\.8' "535 5.7.8" || return 1
    expect_stored "$BOB" "$tok" 0
}

check_mx_relay_refused() {
    sw relay --server "127.0.0.1:$MX_PORT" --from x@remote.example --to victim@elsewhere.example
    expect_rc 24 || return 1
    expect_out '^<\*\* +550 5\.7\.1 ' "550 5.7.1 (relaying denied)"
}

check_mx_relay_refused_tls() {
    # Neither STARTTLS nor a local domain in the sender opens the relay.
    sw relay-tls --server "127.0.0.1:$MX_PORT" --tls --from "$ALICE" --to victim@elsewhere.example
    expect_rc 24 || return 1
    expect_out '^<~\* +550 5\.7\.1 ' "550 5.7.1 (relaying denied)"
}

check_mx_no_auth() {
    sw mx-auth --server "127.0.0.1:$MX_PORT" --tls \
        --auth PLAIN --auth-user "$ALICE" --auth-password "$ALICE_PW" --from "$ALICE" --to "$BOB"
    expect_rc 28 || return 1
    expect_no_out '^<~ +250[- ]AUTH' "AUTH advertised on the MX"
}

check_mx_unknown_user() {
    sw mx-unknown --server "127.0.0.1:$MX_PORT" --from x@remote.example --to nobody@localhost
    expect_rc 24 || return 1
    expect_out '^<\*\* +550 5\.1\.1 ' "550 5.1.1 (no such user)"
}

check_sender_not_owned() {
    local tok
    tok=$(token spoof)
    sw spoof --server "127.0.0.1:$SUB_PORT" --tls \
        --auth PLAIN --auth-user "$ALICE" --auth-password "$ALICE_PW" \
        --from "$BOB" --to "$CAROL" --header "Subject: $tok"
    expect_rc 23 || return 1
    expect_out '^<~\* +553 5\.7\.1 ' "553 5.7.1 (sender not owned)" || return 1
    expect_stored "$CAROL" "$tok" 0
}

check_user_list_counts() {
    local out="$WORK/user-list.txt" list u n_db n_cli
    TRANSCRIPTS+=("$out")
    list=$(cli user list 2>&1) || fail "user list failed: $list" || return 1
    say "$list" >"$out"
    for u in "$ALICE" "$BOB" "$CAROL"; do
        n_db=$(python3 "$STORE_PY" count "$DB" "$u" 2>&1) || fail "store query failed: $n_db" || return 1
        n_cli=$(awk -v u="$u" '$1 == u { print $2 }' <<<"$list")
        [ "$n_db" = "$n_cli" ] || fail "user list says $u has ${n_cli:-?} messages, the store has $n_db" || return 1
    done
    n_db=$(python3 "$STORE_PY" count "$DB" "$BOB")
    [ "$n_db" -ge 7 ] || fail "bob has only $n_db messages; the checks above delivered at least 7"
}

check_graceful_shutdown() {
    local i rc
    TRANSCRIPTS+=("$SERVER_LOG")
    kill -TERM "$SERVER_PID" 2>/dev/null || fail "server not running" || return 1
    for ((i = 0; i < 200; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        fail "still running 20 s after SIGTERM"
        return 1
    fi
    wait "$SERVER_PID"
    rc=$?
    SERVER_PID=""
    [ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
}

if [ "$ONLY" = client ]; then
    client_checks
else
    check "server started, TLS certificate generated in data/tls/cert.pem" check_started
    check "CLI: user add (x3, duplicate and foreign domain refused), alias add, user/alias list" check_cli_users
    check "submission: STARTTLS + AUTH PLAIN, delivered to bob (Received: ESMTPSA)" check_submission_starttls_plain
    check "submissions: implicit TLS + AUTH LOGIN, delivered to bob" check_submissions_login
    check "submissions: AUTH PLAIN with a non-ASCII password" check_submissions_plain_unicode_password
    check "TLS: certificate verifies against data/tls/cert.pem for 127.0.0.1" check_tls_certificate
    check "submission: 50 KiB binary attachment stored byte-exact" check_attachment
    check "submission: PIPELINING, 3 recipients, unknown one refused 550 5.1.1" check_pipelining
    check "MX: plain delivery from another server without AUTH" check_mx_plain
    check "MX: delivery over STARTTLS (Received: ESMTPS)" check_mx_starttls
    check "MX: alias and plus address, one copy per account" check_mx_alias_and_plus
    check "MX: 8-bit UTF-8 body stored verbatim" check_mx_8bit
    check "refused: AUTH before STARTTLS on submission (not advertised, 538)" check_auth_before_starttls
    check "refused: MAIL without AUTH on submission (530)" check_submission_requires_auth
    check "refused: wrong password (535)" check_wrong_password
    check "refused: relaying from the MX to a foreign domain (550 5.7.1)" check_mx_relay_refused
    check "refused: relaying from the MX under STARTTLS with a local sender (550 5.7.1)" check_mx_relay_refused_tls
    check "refused: AUTH on the MX port, even under TLS" check_mx_no_auth
    check "refused: unknown local user on the MX (550 5.1.1)" check_mx_unknown_user
    check "refused: sending as another user's address (553 5.7.1)" check_sender_not_owned
    pop3_checks
    imap_checks
    relay_checks
    client_checks
    check "CLI: user list message counts match the store" check_user_list_counts
    check "server exits 0 on SIGTERM" check_graceful_shutdown
fi

T_END=$(now_ms)
say ""
say "interop: $PASSED passed, $FAILED failed in $(fmt_ms $((T_END - T_START)))"
if [ "$FAILED" -gt 0 ]; then
    for n in "${FAILED_NAMES[@]}"; do
        say "  FAILED: $n"
    done
    if [ -f "$SERVER_LOG" ]; then
        say ""
        say "      --- server log (last 60 lines)"
        tail -n 60 "$SERVER_LOG" | sed 's/^/      | /'
    fi
    exit 1
fi
exit 0
