# shellcheck shell=bash
# Relay interop checks: pochta's outbound queue against a real Postfix and
# Postfix's smtp-sink. Sourced by run.sh, which provides the server (SUB_PORT,
# MX_PORT), $WORK, $DB, $STORE_PY, `check`, `fail`, `say`, `setup_error`,
# `sw`, `expect_rc`, `expect_stored`, `expect_header`, `stored`, `cli`,
# `port_open`, `show_file` and `token`. run.sh calls, in this order:
#
#   relay_prepare   before the server starts: picks the ports of the remotes,
#                   starts the DNS server pochta is pointed at
#   relay_config    while it writes pochta.toml: [relay], [relay.routes],
#                   [queue] and [checks] for these checks
#   relay_checks    the checks, after the IMAP ones
#   relay_cleanup   on exit: stops Postfix, smtp-sink and the DNS server
#
# The remotes, all on loopback:
#
#   Postfix   a private instance (postfix -c DIR, its own config, queue and
#             data directories under the work directory; the system's Postfix
#             configuration is neither read nor changed) on 127.0.0.1:PF_PORT,
#             STARTTLS offered. It accepts mail for pf.test (someone@pf.test, a
#             Maildir written by the virtual delivery agent as user nobody) and
#             relays mail for interop.test to pochta's MX (transport_maps, from
#             127.0.0.2 with STARTTLS when offered).
#   sink      smtp-sink on 127.0.0.1:SINK_PORT, started per check: refusing
#             RCPT with 5xx or 4xx, or accepting and dumping each message.
#   dead      a port nothing listens on (connection refused).
#   DNS       relay_tool.py dns: SPF and DMARC records of pf.test, so that the
#             MX's checks of Postfix's mail (from 127.0.0.2; only 127.0.0.1 is
#             in checks.skip) have an answer.
#
# pochta routes pf.test, sink.test and dead.test to them ([relay.routes]). Its
# users: ray@interop.test sends (and gets the reports), pat@interop.test
# receives from Postfix. Mail for interop.test is signed with the keys
# `pochta dkim generate interop.test` makes; dkimpy verifies the signatures
# Postfix received.
#
# Postfix must be started as root; without root the Postfix checks are skipped
# (under CI=true that is a setup error). Needs: postfix, smtp-sink (Debian
# package postfix), /usr/bin/python3 with dkimpy (python3-dkim), openssl.

# The check functions are called through `check`, cleanup through the trap:
# shellcheck disable=SC2317

RELAY_TOOL="$HERE/relay_tool.py"
# dkimpy is a Debian package: it is importable by Debian's python3 only, which
# may not be the first python3 on PATH.
DKIM_PY=/usr/bin/python3

RL="$WORK/relay"
PF="$RL/postfix"
PF_LOG="$PF/postfix.log"
PF_MAIL="$PF/mail"
SINK="$RL/sink"
DNS_LOG="$RL/dns.log"
DKIM_RECORDS="$RL/dkim-generate.txt"

RAY=ray@interop.test
PAT=pat@interop.test
RAY_PW='ray: relay "pass" #1'
PAT_PW='pat relay/pass+word'

PF_RCPT=someone@pf.test
PF_UNKNOWN=nosuch@pf.test
PF_SENDER=sender@pf.test
SINK_RCPT_HARD=nobody@sink.test
SINK_RCPT_SOFT=later@sink.test
DEAD_RCPT=x@dead.test

PF_PORT="" SINK_PORT="" DEAD_PORT="" DNS_PORT=""
DNS_PID="" SINK_PID=""
PF_STARTED=0
# 1 when Postfix can run here (as root).
RELAY_POSTFIX=1

# ---------------------------------------------------------------- hooks

relay_prepare() {
    local tool
    for tool in postfix postconf smtp-sink openssl; do
        command -v "$tool" >/dev/null || setup_error "$tool is not installed (Debian package postfix)"
    done
    if ! "$DKIM_PY" -c 'import dkim, nacl' 2>/dev/null; then
        setup_error "$DKIM_PY cannot import dkim and nacl (install python3-dkim python3-nacl)"
    fi
    if [ "$(id -u)" -ne 0 ]; then
        [ "${CI:-}" = true ] && setup_error "the relay checks start Postfix, which needs root"
        RELAY_POSTFIX=0
    fi
    mkdir -p "$RL" "$SINK" || setup_error "cannot create $RL"
    # Postfix's daemons (user postfix) and its delivery agent and smtp-sink (user
    # nobody) must reach their directories under the work directory (0700).
    chmod 711 "$WORK" || setup_error "chmod $WORK failed"
    read -r PF_PORT SINK_PORT DEAD_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
') || setup_error "cannot pick free ports for the relay remotes"
    python3 "$RELAY_TOOL" dns "$RL/dns.port" "$DNS_LOG" \
        "pf.test=v=spf1 ip4:127.0.0.2 -all" \
        "_dmarc.pf.test=v=DMARC1; p=reject" >"$RL/dns.out" 2>&1 &
    DNS_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$RL/dns.port" ] && break
        kill -0 "$DNS_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -s "$RL/dns.port" ] || {
        show_file dns.out "$RL/dns.out" 20
        setup_error "the DNS server (relay_tool.py dns) did not start"
    }
    DNS_PORT=$(cat "$RL/dns.port")
}

relay_config() {
    cat <<EOF

# Written by tests/interop/relay.sh: the relay checks' remotes on loopback.
[relay]
resolver = ["127.0.0.1:$DNS_PORT"]
dns_timeout = "2s"
connect_timeout = "5s"

[relay.routes]
"pf.test" = "127.0.0.1:$PF_PORT"
"sink.test" = "127.0.0.1:$SINK_PORT"
"dead.test" = "127.0.0.1:$DEAD_PORT"

# A deferred message stays put during a check; the checks make it due at once
# with pochta queue flush/retry.
[queue]
retry = "30s"
max_retry = "1m"

# Postfix delivers from 127.0.0.2, which is checked; every other client of the
# interop tests connects from 127.0.0.1.
[checks]
skip = ["127.0.0.1"]
EOF
}

relay_cleanup() {
    sink_stop
    pf_stop
    if [ -n "$DNS_PID" ]; then
        kill "$DNS_PID" 2>/dev/null
        wait "$DNS_PID" 2>/dev/null
        DNS_PID=""
    fi
}

# ---------------------------------------------------------------- helpers

# wait_until SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds;
# fails when it has not within SECONDS.
wait_until() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    while :; do
        "$@" && return 0
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# has_stored ADDRESS TOKEN N: exactly N INBOX messages of ADDRESS hold TOKEN.
has_stored() {
    [ "$(stored "$1" "$2" 2>&1)" = "$3" ]
}

# dumped DIR TOKEN: a file under DIR holds TOKEN.
dumped() {
    grep -rqF -- "$2" "$1" 2>/dev/null
}

add_transcript() {
    local t
    for t in "${TRANSCRIPTS[@]}"; do
        [ "$t" = "$1" ] && return 0
    done
    TRANSCRIPTS+=("$1")
}

# mask FILE: replaces the relay users' passwords in FILE with ********, as
# they are and shell-quoted (sw prints the swaks command line with %q).
mask() {
    local text pw quoted
    text=$(<"$1")
    for pw in "$RAY_PW" "$PAT_PW"; do
        quoted=$(printf '%q' "$pw")
        text=${text//"$quoted"/********}
        text=${text//"$pw"/********}
    done
    printf '%s\n' "$text" >"$1"
}

# submit NAME RCPTS SWAKS-ARGS...: ray submits a message (submission, STARTTLS,
# AUTH PLAIN); expects swaks to succeed.
submit() {
    local name=$1 rcpts=$2
    shift 2
    sw "relay-$name" --server "127.0.0.1:$SUB_PORT" --tls \
        --auth PLAIN --auth-user "$RAY" --auth-password "$RAY_PW" --auth-hide-password \
        --from "$RAY" --to "$rcpts" "$@"
    mask "$SW_OUT"
    expect_rc 0
}

# q NAME ARGS...: `pochta queue ARGS`; the output (with the command) in
# $RL/queue-NAME.txt = $Q_OUT, a transcript; exit status in $Q_RC.
q() {
    local name=$1
    shift
    Q_OUT="$RL/queue-$name.txt"
    add_transcript "$Q_OUT"
    {
        printf '$ pochta queue'
        printf ' %q' "$@"
        printf '\n'
    } >"$Q_OUT"
    cli queue "$@" >>"$Q_OUT" 2>&1
    Q_RC=$?
}

queue_is_empty() {
    q empty list
    [ "$Q_RC" -eq 0 ] && grep -qx 'The queue is empty.' "$Q_OUT"
}

expect_queue_empty() {
    wait_until 5 queue_is_empty ||
        fail "the queue is not empty: $(tr -s ' \n' ' ' <"$Q_OUT" | cut -c1-300)"
}

# queue_id RCPT FILE: the id of the message with RCPT in a `queue list` output.
queue_id() {
    awk -v r="<$1>" '/^[0-9]+ / { id = $1 } index($0, r) && id != "" { print id; exit }' "$2"
}

# attempts RCPT FILE: the attempts of RCPT in a `queue list` output.
attempts() {
    awk -v r="<$1>" 'index($0, r) { for (i = 1; i < NF; i++) if ($i == "attempts") { print $(i + 1); exit } }' "$2"
}

# queued_with RCPT MIN-ATTEMPTS REGEX: `queue list` shows RCPT queued after at
# least MIN attempts, the line after it (the last error) matching REGEX.
queued_with() {
    q "list-${1%@*}" list
    [ "$Q_RC" -eq 0 ] || return 1
    local n
    n=$(attempts "$1" "$Q_OUT")
    [ -n "$n" ] && [ "$n" -ge "$2" ] || return 1
    grep -A1 -F "<$1>" "$Q_OUT" | grep -Eq -- "$3"
}

# dsn_of NAME ADDRESS TOKEN: saves the message of ADDRESS holding TOKEN (the
# report) to $RL/NAME.eml and its parsed form to $RL/NAME.dsn (= $DSN).
dsn_of() {
    local raw="$RL/$1.eml"
    DSN="$RL/$1.dsn"
    add_transcript "$DSN"
    python3 "$STORE_PY" blob "$DB" "$2" "$3" >"$raw" 2>&1 || fail "store.py blob: $(head -c 300 "$raw")" || return 1
    python3 "$RELAY_TOOL" dsn "$raw" >"$DSN" 2>&1 || fail "relay_tool.py dsn: $(tail -n 1 "$DSN")"
}

# expect_dsn_line REGEX WHAT: a line of $DSN matches (grep -E).
expect_dsn_line() {
    grep -Eq -- "$1" "$DSN" || fail "the report lacks $2 (/$1/)"
}

# expect_failure_dsn RCPT STATUS DIAGNOSTIC-REGEX TOKEN: $DSN is a failure
# report for RCPT alone, from MAILER-DAEMON, returning the message of TOKEN.
expect_failure_dsn() {
    local rcpt=$1 status=$2 diag=$3 tok=$4 rcpt_re
    rcpt_re=${rcpt//./\\.}
    expect_dsn_line '^header From: .*MAILER-DAEMON@mx\.interop\.test' "From MAILER-DAEMON@mx.interop.test" || return 1
    expect_dsn_line "^header To: .*$RAY" "To $RAY" || return 1
    expect_dsn_line '^type: multipart/report$' "Content-Type multipart/report" || return 1
    expect_dsn_line '^report-type: delivery-status$' "report-type=delivery-status" || return 1
    expect_dsn_line '^part: message/delivery-status$' "a message/delivery-status part" || return 1
    expect_dsn_line '^message Reporting-MTA: dns; ?mx\.interop\.test$' "Reporting-MTA: dns; mx.interop.test" || return 1
    expect_dsn_line "^recipient 1 Final-Recipient: rfc822; ?$rcpt_re\$" "Final-Recipient: rfc822; $rcpt" || return 1
    expect_dsn_line '^recipient 1 Action: failed$' "Action: failed" || return 1
    expect_dsn_line "^recipient 1 Status: ${status//./\\.}\$" "Status: $status" || return 1
    expect_dsn_line "^recipient 1 Diagnostic-Code: smtp; ?$diag" "Diagnostic-Code: smtp; <the remote reply>" || return 1
    ! grep -q '^recipient 2 ' "$DSN" || fail "the report names more than one recipient" || return 1
    expect_dsn_line "^returned Subject: .*$tok" "the returned message's Subject" || return 1
}

# ---------------------------------------------------------------- Postfix

pf_write_config() {
    local uid gid
    uid=$(id -u nobody) && gid=$(id -g nobody) || fail "no user nobody" || return 1
    mkdir -p "$PF/conf" "$PF/spool" "$PF/data" "$PF_MAIL" || return 1
    chown postfix "$PF/data" && chown "$uid:$gid" "$PF_MAIL" || fail "chown for Postfix failed" || return 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.pf.test \
        -keyout "$PF/conf/key.pem" -out "$PF/conf/cert.pem" >"$PF/openssl.txt" 2>&1 ||
        fail "openssl req failed: $(tail -n 1 "$PF/openssl.txt")" || return 1
    cat >"$PF/conf/main.cf" <<EOF
# Written by tests/interop/relay.sh: a private Postfix instance on loopback.
compatibility_level = 3.6
config_directory = $PF/conf
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $PF_LOG
maillog_file_prefixes = $PF
myhostname = mx.pf.test
mydomain = pf.test
myorigin = pf.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
default_transport = error:this test instance sends mail to interop.test only
biff = no

# Mail for pf.test: one mailbox, a Maildir owned by nobody.
virtual_mailbox_domains = pf.test
virtual_mailbox_base = $PF_MAIL
virtual_mailbox_maps = inline:{ $PF_RCPT=someone/ }
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 100

# Mail for interop.test goes to pochta's MX, from 127.0.0.2.
relay_domains = interop.test
transport_maps = inline:{ interop.test=smtp:[127.0.0.1]:$MX_PORT }
smtp_bind_address = 127.0.0.2
smtp_dns_support_level = disabled
smtp_tls_security_level = may
smtp_tls_loglevel = 1
minimal_backoff_time = 2s
maximal_backoff_time = 4s
queue_run_delay = 2s

smtpd_tls_security_level = may
smtpd_tls_cert_file = $PF/conf/cert.pem
smtpd_tls_key_file = $PF/conf/key.pem
smtpd_tls_loglevel = 1
EOF
    {
        echo "127.0.0.1:$PF_PORT inet n - n - - smtpd"
        local svc
        for svc in "pickup unix n - n 60 1 pickup" "cleanup unix n - n - 0 cleanup" \
            "qmgr unix n - n 300 1 qmgr" "tlsmgr unix - - n 1000? 1 tlsmgr" \
            "rewrite unix - - n - - trivial-rewrite" "bounce unix - - n - 0 bounce" \
            "defer unix - - n - 0 bounce" "trace unix - - n - 0 bounce" \
            "verify unix - - n - 1 verify" "flush unix n - n 1000? 0 flush" \
            "proxymap unix - - n - - proxymap" "proxywrite unix - - n - 1 proxymap" \
            "smtp unix - - n - - smtp" "relay unix - - n - - smtp" \
            "showq unix n - n - - showq" "error unix - - n - - error" \
            "retry unix - - n - - error" "discard unix - - n - - discard" \
            "local unix - n n - - local" "virtual unix - n n - - virtual" \
            "anvil unix - - n - 1 anvil" "scache unix - - n - 1 scache" \
            "postlog unix-dgram n - n - 1 postlogd"; do
            echo "$svc"
        done
    } >"$PF/conf/master.cf"
}

pf_start() {
    local out="$PF/start.txt"
    add_transcript "$out"
    add_transcript "$PF_LOG"
    pf_write_config || return 1
    {
        say "\$ postfix -c $PF/conf start"
        postfix -c "$PF/conf" start </dev/null 2>&1
    } >"$out"
    local rc=$?
    PF_STARTED=1
    if [ "$rc" -ne 0 ]; then
        # Postfix tells why on a terminal only; `check` does not detach.
        say "\$ postfix -c $PF/conf check (under script(1))" >>"$out"
        script -qec "postfix -c '$PF/conf' check" /dev/null </dev/null >>"$out" 2>&1
        fail "postfix start exited $rc: $(grep -m1 -E 'fatal|error' "$out")"
        return 1
    fi
    wait_until 15 port_open "$PF_PORT" || fail "Postfix does not listen on 127.0.0.1:$PF_PORT within 15 s"
}

pf_stop() {
    [ "$PF_STARTED" = 1 ] || return 0
    PF_STARTED=0
    local pid="" i
    pid=$(tr -dc 0-9 <"$PF/spool/pid/master.pid" 2>/dev/null)
    postfix -c "$PF/conf" stop </dev/null >/dev/null 2>&1
    [ -n "$pid" ] || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "Postfix (master pid $pid) did not stop within 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null
}

# pf_file TOKEN: the Maildir file of someone@pf.test holding TOKEN.
pf_file() {
    grep -rlF -- "$1" "$PF_MAIL/someone/new" 2>/dev/null | head -n 1
}

# pf_has TOKEN: someone@pf.test's Maildir has a message holding TOKEN.
pf_has() {
    [ -n "$(pf_file "$1")" ]
}

# pf_log REGEX: Postfix's log has a line matching REGEX (grep -E).
pf_log() {
    grep -Eq -- "$1" "$PF_LOG"
}

need_postfix() {
    [ "$PF_STARTED" = 1 ] || fail "Postfix is not running (see the relay setup check)"
}

# ---------------------------------------------------------------- smtp-sink

# sink_start NAME SINK-OPTIONS...: smtp-sink on 127.0.0.1:SINK_PORT; its output
# (counters with -c) in $SINK/NAME.out.
sink_start() {
    local name=$1
    shift
    sink_stop
    local user=()
    # As root smtp-sink must be told whom to run as.
    [ "$(id -u)" -eq 0 ] && user=(-u nobody)
    SINK_OUT="$SINK/$name.out"
    add_transcript "$SINK_OUT"
    printf '$ smtp-sink %s\n' "$* 127.0.0.1:$SINK_PORT 16" >"$SINK_OUT"
    smtp-sink "${user[@]}" -h sink.test "$@" "127.0.0.1:$SINK_PORT" 16 >>"$SINK_OUT" 2>&1 &
    SINK_PID=$!
    wait_until 5 port_open "$SINK_PORT" || fail "smtp-sink does not listen on 127.0.0.1:$SINK_PORT"
}

sink_stop() {
    [ -n "$SINK_PID" ] || return 0
    kill "$SINK_PID" 2>/dev/null
    wait "$SINK_PID" 2>/dev/null
    SINK_PID=""
}

# ---------------------------------------------------------------- checks

check_relay_setup() {
    local out="$RL/setup.txt"
    TRANSCRIPTS+=("$out")
    {
        say "\$ pochta user add $RAY --password-stdin"
        printf '%s\n' "$RAY_PW" | cli user add "$RAY" --password-stdin
        say "\$ pochta user add $PAT --password-stdin"
        printf '%s\n' "$PAT_PW" | cli user add "$PAT" --password-stdin
    } >"$out" 2>&1 || fail "user add failed" || return 1
    say "\$ pochta dkim generate interop.test" >>"$out"
    cli dkim generate interop.test >"$DKIM_RECORDS" 2>&1
    local rc=$?
    cat "$DKIM_RECORDS" >>"$out"
    [ "$rc" -eq 0 ] || fail "dkim generate exited $rc" || return 1
    [ "$(grep -c '\._domainkey\.interop\.test\. IN TXT ' "$DKIM_RECORDS")" = 2 ] ||
        fail "dkim generate did not print 2 records for *._domainkey.interop.test" || return 1
    grep -q 'k=ed25519' "$DKIM_RECORDS" && grep -q 'k=rsa' "$DKIM_RECORDS" ||
        fail "dkim generate did not print an ed25519 and an rsa key" || return 1
    say "\$ pochta dkim list" >>"$out"
    cli dkim list 2>&1 | tee -a "$out" | grep -Eq '^interop\.test: ed[0-9]+, rsa[0-9]+$|^interop\.test: rsa[0-9]+, ed[0-9]+$' ||
        fail "dkim list does not show interop.test with both selectors" || return 1
    queue_is_empty || fail "the queue is not empty at the start" || return 1
    [ "$RELAY_POSTFIX" = 1 ] || return 0
    pf_start
}

check_relay_to_postfix() {
    need_postfix || return 1
    local tok body="$RL/body-postfix.txt" msg="$RL/message-postfix.eml" f
    tok=$(token relay-pf)
    # Dots at line starts (stuffed on both hops), trailing white space, a
    # 900-octet line: what a relay must pass on unchanged.
    {
        printf 'Hello Postfix, %s\n' "$tok"
        printf '.a line starting with a dot\n..two dots\n.\n'
        printf 'trailing white space \t \n'
        printf '%0900d\n' 0
        printf '\nlast line\n'
    } >"$body"
    # The whole message as DATA; swaks ends it with a line break of its own,
    # so the file has none after its last line.
    {
        printf 'From: Ray <%s>\nTo: <%s>\nSubject: to Postfix %s\n' "$RAY" "$PF_RCPT" "$tok"
        printf 'Date: %s\nMessage-ID: <%s@interop.test>\n' "$(date -R)" "$tok"
        printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n'
        head -c -1 "$body"
    } >"$msg"
    submit to-postfix "$PF_RCPT" --data "@$msg" || return 1
    wait_until 15 pf_has "$tok" ||
        fail "no message with $tok in Postfix's Maildir within 15 s" || return 1
    f=$(pf_file "$tok")
    add_transcript "$f"
    local got="$RL/body-postfix.got"
    python3 "$RELAY_TOOL" body "$f" >"$got" 2>&1 || fail "relay_tool.py body: $(tail -n 1 "$got")" || return 1
    if ! cmp -s "$body" "$got"; then
        TRANSCRIPTS+=("$body" "$got")
        fail "the body Postfix delivered differs from the body sent (diff: $(diff "$body" "$got" | head -n 4 | tr '\n' ' '))"
        return 1
    fi
    local rcvd="$RL/postfix-received.txt"
    python3 "$RELAY_TOOL" header "$f" Received >"$rcvd" 2>&1
    add_transcript "$rcvd"
    grep -Eq '^from mx\.interop\.test \(.*\[127\.0\.0\.1\]\) by mx\.pf\.test \(Postfix\) with ESMTPS id ' "$rcvd" ||
        fail "no Received header of Postfix's saying pochta came over STARTTLS (with ESMTPS)" || return 1
    grep -Eq '^from client\.interop\.test \(\[127\.0\.0\.1\]\) by mx\.interop\.test \(pochta\) with ESMTPSA .*authenticated as ray@interop\.test' "$rcvd" ||
        fail "no Received header of pochta's (ESMTPSA, authenticated as $RAY)" || return 1
    # One Return-Path, Postfix's: pochta does not pass its own on.
    [ "$(python3 "$RELAY_TOOL" header "$f" Return-Path)" = "<$RAY>" ] ||
        fail "the message does not have exactly one Return-Path, <$RAY>" || return 1
    pf_log "to=<$PF_RCPT>, relay=virtual, .*status=sent \(delivered to maildir\)" ||
        fail "Postfix's log has no virtual delivery to $PF_RCPT" || return 1
    pf_log 'TLS connection established from' ||
        fail "Postfix's log has no TLS connection from pochta" || return 1
    expect_queue_empty || return 1
    expect_stored "$RAY" "$tok" 0 || return 1
    # Last, as its failure says most about pochta alone.
    local dk="$RL/dkim-postfix.txt"
    add_transcript "$dk"
    "$DKIM_PY" "$RELAY_TOOL" dkim "$f" "$DKIM_RECORDS" >"$dk" 2>&1 ||
        fail "dkimpy does not verify the signatures: $(tr '\n' ' ' <"$dk")" || return 1
    grep -Eq '^d=interop\.test s=ed[0-9]+ a=ed25519-sha256 pass$' "$dk" ||
        fail "no passing ed25519-sha256 signature by interop.test" || return 1
    grep -Eq '^d=interop\.test s=rsa[0-9]+ a=rsa-sha256 pass$' "$dk" ||
        fail "no passing rsa-sha256 signature by interop.test"
}

check_relay_to_postfix_unknown() {
    need_postfix || return 1
    local tok
    tok=$(token relay-pf-unknown)
    submit to-postfix-unknown "$PF_RCPT,$PF_UNKNOWN" --header "Subject: half to Postfix $tok" --body "body $tok" || return 1
    wait_until 15 pf_has "$tok" ||
        fail "no message with $tok in Postfix's Maildir within 15 s" || return 1
    wait_until 15 has_stored "$RAY" "$tok" 1 ||
        fail "no report for $PF_UNKNOWN in $RAY's INBOX within 15 s" || return 1
    dsn_of dsn-postfix "$RAY" "$tok" || return 1
    expect_failure_dsn "$PF_UNKNOWN" 5.1.1 \
        "550 5\.1\.1 <$PF_UNKNOWN>: Recipient address rejected: User unknown in virtual mailbox table" "$tok" || return 1
    pf_log "reject: RCPT from .*: 550 5\.1\.1 <$PF_UNKNOWN>: Recipient address rejected" ||
        fail "Postfix's log does not show the RCPT it rejected" || return 1
    expect_queue_empty
}

check_relay_from_postfix() {
    need_postfix || return 1
    local tok
    tok=$(token relay-from-pf)
    sw relay-from-postfix --server "127.0.0.1:$PF_PORT" \
        --from "$PF_SENDER" --to "$PAT" --header "Subject: from Postfix $tok" --body "body $tok"
    expect_rc 0 || return 1
    expect_out '^<- +250 2\.0\.0 Ok: queued as ' "Postfix queuing the message" || return 1
    wait_until 20 has_stored "$PAT" "$tok" 1 ||
        fail "no message with $tok in $PAT's INBOX within 20 s" || return 1
    expect_header "$PAT" "$tok" Received \
        'from mx\.pf\.test \(\[127\.0\.0\.2\]\) by mx\.interop\.test \(pochta\) with ESMTPS id .*for <pat@interop\.test>' || return 1
    expect_header "$PAT" "$tok" Received 'by mx\.pf\.test \(Postfix\) with ESMTP id ' || return 1
    expect_header "$PAT" "$tok" Return-Path "^<$PF_SENDER>\$" || return 1
    expect_header "$PAT" "$tok" Authentication-Results '^mx\.interop\.test;.*spf=pass' || return 1
    expect_header "$PAT" "$tok" Authentication-Results 'dmarc=pass' || return 1
    pf_log "to=<$PAT>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$MX_PORT, .*status=sent \(250 " ||
        fail "Postfix's log does not show the delivery to pochta" || return 1
    pf_log "TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:$MX_PORT" ||
        fail "Postfix's log shows no STARTTLS to pochta's MX" || return 1
    grep -q ' pf\.test TXT ' "$DNS_LOG" || fail "pochta did not look up pf.test's SPF record"
}

check_relay_sink_hard() {
    local tok
    tok=$(token relay-sink-5xx)
    sink_start hard -c -f RCPT -B "550 5.1.1 <$SINK_RCPT_HARD>: no such user here ($tok)" || return 1
    submit sink-hard "$SINK_RCPT_HARD" --header "Subject: to the sink $tok" --body "body $tok" || return 1
    wait_until 15 has_stored "$RAY" "$tok" 1 ||
        fail "no report in $RAY's INBOX within 15 s" || return 1
    dsn_of dsn-sink "$RAY" "$tok" || return 1
    expect_failure_dsn "$SINK_RCPT_HARD" 5.1.1 "550 5\.1\.1 <$SINK_RCPT_HARD>: no such user here \($tok\)" "$tok" || return 1
    expect_queue_empty || return 1
    sink_stop
    # -c prints its counters as "sess=N quit=N mesg=N", each update after a CR.
    tr '\r' '\n' <"$SINK_OUT" | grep -q 'mesg=[1-9]' && { fail "the sink received a message (DATA after the refused RCPT)" || return 1; }
    tr '\r' '\n' <"$SINK_OUT" | grep -q 'quit=1' || fail "pochta did not end the session with QUIT"
}

check_relay_sink_soft() {
    local tok dumps="$SINK/dump"
    tok=$(token relay-sink-4xx)
    sink_start soft -r RCPT -b "451 4.3.2 sink busy, try later ($tok)" || return 1
    submit sink-soft "$SINK_RCPT_SOFT" --header "Subject: to the busy sink $tok" --body "body $tok" || return 1
    wait_until 10 queued_with "$SINK_RCPT_SOFT" 1 "451 4\.3\.2 sink busy, try later \($tok\)" ||
        fail "queue list does not show $SINK_RCPT_SOFT queued after an attempt with the sink's 451 reply" || return 1
    grep -Eq "^ +queued +<$SINK_RCPT_SOFT> +attempts [0-9]+ +next in " "$Q_OUT" ||
        fail "queue list does not show the next attempt of $SINK_RCPT_SOFT" || return 1
    grep -Eq "^[0-9]+ .*<$RAY>\$" "$Q_OUT" || fail "queue list does not show the sender <$RAY>" || return 1
    [ "$(stored "$RAY" "$tok")" = 0 ] || fail "a report was sent for a temporary failure" || return 1
    # Now the sink accepts and keeps each message.
    mkdir -p "$dumps" && { [ "$(id -u)" -ne 0 ] || chown nobody "$dumps"; } || fail "cannot create $dumps" || return 1
    sink_start accept -c -d "$dumps/%H%M%S." || return 1
    q flush flush
    [ "$Q_RC" -eq 0 ] && grep -qx '1 recipient(s) due now.' "$Q_OUT" ||
        fail "queue flush did not make 1 recipient due" || return 1
    # The runner sees another process's change within its poll interval (5 s).
    wait_until 15 dumped "$dumps" "$tok" ||
        fail "smtp-sink received no message with $tok within 15 s of queue flush" || return 1
    local f
    f=$(grep -rlF -- "$tok" "$dumps" | head -n 1)
    add_transcript "$f"
    grep -qx "X-Mail-Args: <$RAY>.*" "$f" || fail "the sink got MAIL FROM other than <$RAY>" || return 1
    grep -qx "X-Rcpt-Args: <$SINK_RCPT_SOFT>.*" "$f" || fail "the sink got RCPT TO other than <$SINK_RCPT_SOFT>" || return 1
    grep -qx "body $tok" "$f" || fail "the body is not in the sink's dump" || return 1
    expect_queue_empty || return 1
    [ "$(stored "$RAY" "$tok")" = 0 ] || fail "a report was sent for a delivered message" || return 1
    sink_stop
}

check_relay_queue_admin() {
    local tok body_tok id
    tok=$(token relay-dead)
    body_tok=$(token relay-dead-body)
    submit dead "$DEAD_RCPT" --header "Subject: to nowhere $tok" --body "body $body_tok" || return 1
    wait_until 10 queued_with "$DEAD_RCPT" 1 '.' ||
        fail "queue list does not show $DEAD_RCPT queued with an error after an attempt" || return 1
    id=$(queue_id "$DEAD_RCPT" "$Q_OUT")
    [ -n "$id" ] || fail "no queue id for $DEAD_RCPT in queue list" || return 1
    q show show "$id"
    [ "$Q_RC" -eq 0 ] || fail "queue show $id exited $Q_RC" || return 1
    grep -Eq "^$id .*<$RAY>\$" "$Q_OUT" || fail "queue show does not print the sender <$RAY>" || return 1
    grep -Eq "^ +queued +<$DEAD_RCPT> +attempts 1 " "$Q_OUT" || fail "queue show does not print <$DEAD_RCPT> queued after 1 attempt" || return 1
    grep -Eq '^ +expires in ' "$Q_OUT" || fail "queue show does not print the expiry" || return 1
    grep -q "^Subject: to nowhere $tok" "$Q_OUT" || fail "queue show does not print the Subject header" || return 1
    ! grep -qF -- "$body_tok" "$Q_OUT" || fail "queue show prints the body, not only the header" || return 1
    q retry retry "$id"
    [ "$Q_RC" -eq 0 ] && grep -qx '1 recipient(s) due now.' "$Q_OUT" ||
        fail "queue retry $id did not make 1 recipient due" || return 1
    wait_until 15 queued_with "$DEAD_RCPT" 2 '.' ||
        fail "no second attempt within 15 s of queue retry" || return 1
    q delete delete "$id"
    [ "$Q_RC" -eq 0 ] && grep -qx "Deleted queued message $id." "$Q_OUT" ||
        fail "queue delete $id failed" || return 1
    queue_is_empty || fail "the queue is not empty after queue delete" || return 1
    q show-deleted show "$id"
    [ "$Q_RC" -ne 0 ] || fail "queue show $id succeeds after the delete" || return 1
    q retry-all retry --all
    [ "$Q_RC" -eq 0 ] && grep -qx '0 recipient(s) due now.' "$Q_OUT" ||
        fail "queue retry --all on an empty queue did not say 0 recipients" || return 1
    # No report, now or a moment later.
    sleep 2
    [ "$(stored "$RAY" "$tok")" = 0 ] || fail "a report was sent for the deleted message" || return 1
    ! grep -E "queue_id=${id}[^0-9].*(failed|expired)" "$SERVER_LOG" >/dev/null ||
        fail "the server log shows the deleted message failing"
}

skip_check() {
    printf 'SKIP  %s  (%s)\n' "$1" "$2"
}

relay_checks() {
    check "relay setup: ray/pat@interop.test, dkim generate interop.test (ed25519 + rsa), private Postfix" check_relay_setup
    if [ "$RELAY_POSTFIX" = 1 ]; then
        check "relay pochta -> Postfix (STARTTLS): Maildir has the body intact, both Received, 2 DKIM signatures dkimpy verifies; queue empty" check_relay_to_postfix
        check "relay pochta -> Postfix, one unknown recipient: delivered to the other, DSN with Postfix's 550 5.1.1" check_relay_to_postfix_unknown
        check "relay Postfix -> pochta MX (STARTTLS, from 127.0.0.2): in pat's INBOX, Received of both, SPF/DMARC pass" check_relay_from_postfix
    else
        local c
        for c in "relay pochta -> Postfix" "relay pochta -> Postfix, unknown recipient" "relay Postfix -> pochta MX"; do
            skip_check "$c" "Postfix needs root"
        done
    fi
    check "relay smtp-sink 550 at RCPT: DSN in ray's INBOX (Action: failed, Diagnostic-Code: the sink's reply); queue empty" check_relay_sink_hard
    check "relay smtp-sink 451 at RCPT: stays queued (attempts, error in queue list); sink accepts + queue flush: delivered" check_relay_sink_soft
    check "relay queue show/retry/delete on a route to a closed port: envelope and header shown, retried, deleted without DSN" check_relay_queue_admin
}
