# shellcheck shell=bash
# POP3 interop checks: sourced by run.sh, which provides the server (POP3_PORT for
# STLS, POP3S_PORT for implicit TLS, MX_PORT), $WORK, $CERT, $DB, $STORE_PY,
# `check`, `fail`, `say`, `setup_error`, `sw`,
# `expect_rc`, `expect_stored`, `cli` and `token`. run.sh calls pop3_checks.
#
# Four accounts, so that the checks do not disturb one another:
#
#   dave   fetchmail over the pop3 port (STLS, certificate verified), fetchall,
#          no keep: downloads 5 messages and deletes them
#   erin   fetchmail over pop3s (implicit TLS), keep + uidl: leaves the mail on
#          the server and fetches each message only once; [IN-USE] -> lock busy
#   frank  getmail6 (SimplePOP3SSLRetriever, ca_certs) into a Maildir, delete
#   grace  curl (LIST, UIDL, RETR over pop3s and over STLS, DELE), the clear-text
#          refusals and the maildrop lock (python poplib: pop3_client.py)
#
# Every message is delivered through the MX (swaks) first; what pochta stored is
# saved with store.py (save) and compared with what each client hands over
# (fetched.py): body byte-identical, every stored header line kept.
#
# Needs: fetchmail, getmail (Debian package getmail6), curl, python3.

# The check functions are called through `check`:
# shellcheck disable=SC2317

FETCHED_PY="$HERE/fetched.py"
POP3_CLIENT_PY="$HERE/pop3_client.py"

DAVE=dave@localhost
ERIN=erin@localhost
FRANK=frank@localhost
GRACE=grace@localhost
# Spaces, quotes, '#', ':', '%' and ';': each client's config syntax must carry
# them. (fetchmail: in '...' strings; a "..." string cannot hold a '"'.)
DAVE_PW='dave: "pop3" password #1'
ERIN_PW='erin s3cret/with+base64=chars'
FRANK_PW='frank%pct;semi #hash "q"'
GRACE_PW='grace:colon pass'

P3="$WORK/pop3"
P3_EXPECT="$P3/expected"  # per account: TOKEN.eml = the bytes pochta stored
P3_DOTS="$P3/dots.txt"
P3_ATTACH="$P3/attachment.bin"
P3_BIG="$P3/big.txt"

# Tokens of the messages, by purpose (set by check_pop3_setup).
TOK_PLAIN="" TOK_DOTS="" TOK_ATTACH="" TOK_8BIT="" TOK_BIG="" TOK_ERIN="" TOK_GRACE=""

# ---------------------------------------------------------------- helpers

fetchmail_meaning() {
    case $1 in
    0) say "mail retrieved" ;;
    1) say "no mail" ;;
    2) say "socket or TLS error" ;;
    3) say "authentication failed" ;;
    4) say "fatal protocol error" ;;
    5) say "syntax error in the arguments or the rc file" ;;
    6) say "bad permissions on the rc file" ;;
    7) say "error reported by the server" ;;
    8) say "client-side exclusion (another fetchmail running)" ;;
    9) say "lock busy on the server" ;;
    124) say "killed by timeout" ;;
    *) say "see EXIT CODES in man fetchmail" ;;
    esac
}

# count ADDRESS: messages in the INBOX, from the store.
inbox_count() {
    python3 "$STORE_PY" count "$DB" "$1"
}

# expect_count ADDRESS N
expect_count() {
    local n
    n=$(inbox_count "$1" 2>&1) || fail "store query failed: $n" || return 1
    [ "$n" = "$2" ] || fail "$1 has $n message(s) in INBOX on the server, expected $2"
}

# deliver NAME TOKEN RCPTS SWAKS-ARGS...: one message through the MX to the
# comma-separated RCPTS, with TOKEN in the subject. (What was stored is checked
# and saved by save_expected.)
deliver() {
    local name=$1 tok=$2 rcpts=$3
    shift 3
    sw "pop3-$name" --server "127.0.0.1:$MX_PORT" \
        --from sender@remote.example --to "$rcpts" --header "Subject: $name $tok" "$@"
    expect_rc 0
}

# save_expected ADDRESS TOKEN...: the INBOX holds exactly these messages, one
# each; their stored bytes go to $P3_EXPECT/<local part>/TOKEN.eml.
save_expected() {
    local addr=$1 res
    shift
    res=$(python3 "$STORE_PY" save "$DB" "$addr" "$P3_EXPECT/${addr%@*}" "$@" 2>&1) || fail "$res"
}

# The one file under DIR that contains TOKEN (for the attachment/dots checks).
file_with() {
    grep -rlF -- "$2" "$1" | head -n 1
}

# fm_rc FILE PORT ssl|stls|none ADDRESS PASSWORD FETCH-OPTIONS OUTDIR [uidl]:
# writes a fetchmail rc file (mode 600, or fetchmail refuses it).
fm_rc() {
    local file=$1 port=$2 tls=$3 user=$4 pw=$5 keep=$6 out=$7 uidl=${8:-}
    local tlsopt
    case $pw in *"'"* | *\\*) setup_error "fm_rc: password with ' or \\ not supported" ;; esac
    # stls: sslproto without ssl makes STLS mandatory (no clear-text fallback);
    # none: sslproto '' disables STLS (and sslcertck would demand TLS).
    case $tls in
    ssl) tlsopt="ssl sslproto 'TLS1.2+' sslcertck sslcertfile '$CERT'" ;;
    stls) tlsopt="sslproto 'TLS1.2+' sslcertck sslcertfile '$CERT'" ;;
    *) tlsopt="sslproto ''" ;;
    esac
    mkdir -p "$out"
    # "poll localhost", not 127.0.0.1: fetchmail matches the certificate against
    # the poll name and only knows DNS names, not IP address SANs.
    cat >"$file" <<EOF
# Written by tests/interop/pop3.sh
set no syslog
poll localhost service $port protocol POP3 $uidl timeout 20:
    user '$user' there with password '$pw'
    $tlsopt
    $keep
    mda '$P3/mda.sh $out'
EOF
    chmod 600 "$file"
}

# fm NAME RCFILE IDFILE: runs fetchmail once (verbose, foreground, bounded); the
# log is in $FM_LOG, the exit status in $FM_RC.
fm() {
    local name=$1 rc=$2 ids=$3
    FM_LOG="$P3/fetchmail-$name.log"
    TRANSCRIPTS+=("$FM_LOG")
    mkdir -p "$P3/fetchmail-home"
    {
        printf '$ fetchmail -f %s --idfile %s --nodetach --nosyslog -v\n' "$rc" "$ids"
        sed "s/with password '.*'/with password '****'/" "$rc" | sed 's/^/# /'
    } >"$FM_LOG"
    # FETCHMAILUSER: when run as root, fetchmail would switch to $USER/$LOGNAME to
    # run the MDA; keep the current user, who owns $WORK.
    FETCHMAILHOME="$P3/fetchmail-home" FETCHMAILUSER="$(id -un)" \
        timeout 60 fetchmail -f "$rc" --idfile "$ids" --pidfile "$P3/fetchmail-home/pid" \
        --nodetach --nosyslog -v >>"$FM_LOG" 2>&1
    FM_RC=$?
}

expect_fm_rc() {
    [ "$FM_RC" -eq "$1" ] ||
        fail "fetchmail exited $FM_RC ($(fetchmail_meaning "$FM_RC")), expected $1 ($(fetchmail_meaning "$1"))"
}

# expect_log REGEX WHAT: a line of the fetchmail log matches.
expect_log() {
    grep -Eq -- "$1" "$FM_LOG" || fail "fetchmail log lacks $2 (/$1/)"
}

# expect_no_log REGEX WHAT: no line of the fetchmail log matches.
expect_no_log() {
    ! grep -Eq -- "$1" "$FM_LOG" || fail "fetchmail log unexpectedly has $2 (/$1/)"
}

nfiles() {
    find "$1" -type f 2>/dev/null | wc -l
}

# curl_pop3 NAME URL CURL-ARGS...: output in $CU_OUT, trace in $CU_LOG, status $CU_RC.
curl_pop3() {
    local name=$1 url=$2
    shift 2
    CU_OUT="$P3/curl-$name.out"
    CU_LOG="$P3/curl-$name.log"
    TRANSCRIPTS+=("$CU_LOG")
    printf '$ curl -v %s %s\n' "$*" "$url" >"$CU_LOG"
    timeout 60 curl -sS -v --max-time 30 "$@" "$url" -o "$CU_OUT" 2>>"$CU_LOG"
    CU_RC=$?
    # The log must not show passwords: curl prints the AUTH exchange.
    sed -i -E 's/^(> (AUTH PLAIN|PASS) ?).*/\1****/; /^> [A-Za-z0-9+\/=]{8,}\r?$/s/.*/> ****/' "$CU_LOG"
}

expect_cu_rc() {
    [ "$CU_RC" -eq "$1" ] || fail "curl exited $CU_RC, expected $1 (see EXIT CODES in man curl)"
}

# ---------------------------------------------------------------- checks

check_pop3_setup() {
    local out="$P3/setup.txt" u pw
    mkdir -p "$P3" "$P3_EXPECT" || fail "cannot create $P3" || return 1
    TRANSCRIPTS+=("$out")
    : >"$out"
    for u in "$DAVE:$DAVE_PW" "$ERIN:$ERIN_PW" "$FRANK:$FRANK_PW" "$GRACE:$GRACE_PW"; do
        pw=${u#*:}
        u=${u%%:*}
        { say "\$ pochta user add $u --password-stdin"; printf '%s\n' "$pw" | cli user add "$u" --password-stdin; } \
            >>"$out" 2>&1 || fail "user add $u failed" || return 1
    done
    # fetchmail's MDA: one file per message.
    cat >"$P3/mda.sh" <<'EOF'
#!/bin/sh
# fetchmail MDA for the interop tests: stores the message on stdin as a new file in $1.
f=$(mktemp "$1/msg.XXXXXX") || exit 75
cat >"$f" || exit 75
EOF
    chmod 755 "$P3/mda.sh"
    # Lines starting with "." (stuffed by SMTP and by POP3, so un-stuffed twice).
    printf '%s\n' "Lines that start with a dot:" ".leading dot" "..two dots" "." "...three" \
        "" " . not at the start" ". space after the dot" ".." "last line" >"$P3_DOTS"
    head -c 40960 /dev/urandom >"$P3_ATTACH" || fail "cannot write $P3_ATTACH" || return 1
    # ~300 KB of text in 5000 lines: many reads and writes per RETR.
    awk 'BEGIN { for (i = 0; i < 5000; i++) printf "line %05d %s\n", i, "abcdefghij abcdefghij abcdefghij abcdefghij abcdefghij" }' \
        >"$P3_BIG" || fail "cannot write $P3_BIG" || return 1

    TOK_PLAIN=$(token pop3-plain)
    TOK_DOTS=$(token pop3-dots)
    TOK_ATTACH=$(token pop3-attach)
    TOK_8BIT=$(token pop3-8bit)
    TOK_BIG=$(token pop3-big)
    TOK_ERIN=$(token pop3-erin)
    TOK_GRACE=$(token pop3-grace)
    # grace's order matters for curl: 1 = dots, 2 = attachment, 3 = plain.
    deliver plain "$TOK_PLAIN" "$DAVE,$ERIN,$FRANK" --body "plain text $TOK_PLAIN" || return 1
    deliver dots "$TOK_DOTS" "$DAVE,$ERIN,$FRANK,$GRACE" --body "@$P3_DOTS" || return 1
    deliver attach "$TOK_ATTACH" "$DAVE,$FRANK,$GRACE" --body "attached: $TOK_ATTACH" \
        --attach-type application/octet-stream --attach-name random.bin --attach "@$P3_ATTACH" || return 1
    deliver 8bit "$TOK_8BIT" "$DAVE" \
        --add-header "Content-Type: text/plain; charset=utf-8" \
        --add-header "Content-Transfer-Encoding: 8bit" --body "Grüße, Привет, 你好 $TOK_8BIT" || return 1
    deliver big "$TOK_BIG" "$DAVE" --body "@$P3_BIG" || return 1
    deliver erin "$TOK_ERIN" "$ERIN" --body "only for erin $TOK_ERIN" || return 1
    deliver grace "$TOK_GRACE" "$GRACE" --body "plain for grace $TOK_GRACE" || return 1
    save_expected "$DAVE" "$TOK_PLAIN" "$TOK_DOTS" "$TOK_ATTACH" "$TOK_8BIT" "$TOK_BIG" || return 1
    save_expected "$ERIN" "$TOK_PLAIN" "$TOK_DOTS" "$TOK_ERIN" || return 1
    save_expected "$FRANK" "$TOK_PLAIN" "$TOK_DOTS" "$TOK_ATTACH" || return 1
    save_expected "$GRACE" "$TOK_DOTS" "$TOK_ATTACH" "$TOK_GRACE"
}

# -- fetchmail, pop3 port, STLS, fetchall, no keep (dave)

check_fetchmail_stls() {
    local out="$P3/fm-dave" res f
    fm_rc "$P3/fetchmailrc-dave" "$POP3_PORT" stls "$DAVE" "$DAVE_PW" "fetchall no keep" "$out"
    fm dave-1 "$P3/fetchmailrc-dave" "$P3/fetchids-dave"
    expect_fm_rc 0 || return 1
    expect_log '^fetchmail: POP3> STLS' "STLS" || return 1
    expect_log 'upgrade to TLS succeeded' "a successful STLS upgrade" || return 1
    # Nothing of the login may precede the upgrade.
    local at_stls at_login
    at_stls=$(grep -nE 'POP3> STLS' "$FM_LOG" | head -n 1 | cut -d: -f1)
    at_login=$(grep -nE 'POP3> (USER|AUTH|PASS)' "$FM_LOG" | head -n 1 | cut -d: -f1)
    [ -n "$at_login" ] && [ "${at_stls:-0}" -gt 0 ] && [ "$at_stls" -lt "$at_login" ] ||
        fail "fetchmail did not send STLS before logging in" || return 1
    [ "$(grep -c 'POP3> RETR' "$FM_LOG")" = 5 ] || fail "fetchmail did not send RETR 5 times" || return 1
    [ "$(grep -c 'POP3< +OK Message [0-9]* deleted' "$FM_LOG")" = 5 ] ||
        fail "fetchmail did not get 5 DELE replies" || return 1
    res=$(python3 "$FETCHED_PY" compare "$out" "$P3_EXPECT/dave" 2>&1) || fail "$(tail -n 1 <<<"$res")" || return 1
    say "$res" >"$P3/fm-dave-compare.txt"
    f=$(file_with "$out" "$TOK_ATTACH")
    res=$(python3 "$FETCHED_PY" attachment "$f" "$P3_ATTACH" 2>&1) || fail "$res" || return 1
    f=$(file_with "$out" "$TOK_DOTS")
    res=$(python3 "$FETCHED_PY" lines "$f" "$P3_DOTS" 2>&1) || fail "dot lines: $res" || return 1
    f=$(file_with "$out" "$TOK_8BIT")
    grep -qF "Grüße, Привет, 你好" "$f" || fail "the 8-bit UTF-8 body did not arrive verbatim" || return 1
    expect_count "$DAVE" 0
}

check_fetchmail_stls_again() {
    local out="$P3/fm-dave" before
    before=$(nfiles "$out")
    fm dave-2 "$P3/fetchmailrc-dave" "$P3/fetchids-dave"
    expect_fm_rc 1 || return 1
    expect_log 'No mail for dave@localhost' '"No mail"' || return 1
    [ "$(nfiles "$out")" = "$before" ] || fail "the second run delivered $(($(nfiles "$out") - before)) message(s)" || return 1
    expect_count "$DAVE" 0
}

# -- fetchmail, pop3s, keep + uidl (erin)

check_fetchmail_pop3s_keep() {
    local out="$P3/fm-erin" res ids want
    fm_rc "$P3/fetchmailrc-erin" "$POP3S_PORT" ssl "$ERIN" "$ERIN_PW" keep "$out" uidl
    fm erin-1 "$P3/fetchmailrc-erin" "$P3/fetchids-erin"
    expect_fm_rc 0 || return 1
    expect_no_log 'POP3> STLS' "STLS on the implicit-TLS port" || return 1
    expect_log 'SSL/TLS: using protocol TLSv1\.[23]' "a TLS 1.2+ connection" || return 1
    expect_log '^fetchmail: POP3> UIDL' "UIDL" || return 1
    expect_no_log 'POP3> DELE' "DELE (keep is set)" || return 1
    [ "$(nfiles "$out")" = 3 ] || fail "$(nfiles "$out") message(s) delivered locally, expected 3" || return 1
    res=$(python3 "$FETCHED_PY" compare "$out" "$P3_EXPECT/erin" 2>&1) || fail "$(tail -n 1 <<<"$res")" || return 1
    say "$res" >"$P3/fm-erin-compare.txt"
    expect_count "$ERIN" 3 || return 1
    # fetchmail's idfile holds the UIDLs it has seen: pochta's, for all three.
    [ -s "$P3/fetchids-erin" ] || fail "fetchmail wrote no idfile" || return 1
    ids=$(awk '{ print $NF }' "$P3/fetchids-erin" | sort)
    want=$(python3 "$STORE_PY" list "$DB" "$ERIN" | awk '{ print $3 }' | sort)
    [ "$ids" = "$want" ] || fail "idfile UIDLs ($(tr '\n' ' ' <<<"$ids")) differ from the store's ($(tr '\n' ' ' <<<"$want"))"
}

check_fetchmail_uidl() {
    local out="$P3/fm-erin" tok f
    fm erin-2 "$P3/fetchmailrc-erin" "$P3/fetchids-erin"
    expect_fm_rc 1 || return 1
    expect_log '3 messages \(3 seen\)' '"3 messages (3 seen)"' || return 1
    expect_no_log 'POP3> (RETR|TOP)' "a download" || return 1
    [ "$(nfiles "$out")" = 3 ] || fail "the second run delivered $(($(nfiles "$out") - 3)) message(s)" || return 1
    expect_count "$ERIN" 3 || return 1
    # One new message: the third run fetches exactly that one.
    tok=$(token pop3-erin-new)
    deliver erin-new "$tok" "$ERIN" --body "new for erin $tok" || return 1
    expect_stored "$ERIN" "$tok" 1 || return 1
    fm erin-3 "$P3/fetchmailrc-erin" "$P3/fetchids-erin"
    expect_fm_rc 0 || return 1
    expect_log '4 messages \(3 seen\)' '"4 messages (3 seen)"' || return 1
    [ "$(nfiles "$out")" = 4 ] || fail "$(nfiles "$out") messages locally after the third run, expected 4" || return 1
    f=$(file_with "$out" "$tok")
    [ -n "$f" ] || fail "the new message ($tok) was not delivered" || return 1
    expect_count "$ERIN" 4
}

check_fetchmail_lock_busy() {
    local hold_out="$P3/hold-erin.txt" release="$P3/hold-erin.release" pid i
    TRANSCRIPTS+=("$hold_out")
    rm -f "$release"
    python3 "$POP3_CLIENT_PY" hold "$POP3S_PORT" "$CERT" "$ERIN" "$ERIN_PW" "$release" >"$hold_out" 2>&1 &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        grep -q '^holding' "$hold_out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^holding' "$hold_out"; then
        touch "$release"
        wait "$pid"
        fail "the holding session did not log in"
        return 1
    fi
    fm erin-busy "$P3/fetchmailrc-erin" "$P3/fetchids-erin"
    touch "$release"
    wait "$pid" || fail "the holding session failed" || return 1
    expect_fm_rc 9 || return 1
    expect_log 'POP3< -ERR \[IN-USE\]' "-ERR [IN-USE]" || return 1
    expect_count "$ERIN" 4
}

check_fetchmail_wrong_password() {
    local out="$P3/fm-erin-badpw"
    fm_rc "$P3/fetchmailrc-erin-badpw" "$POP3S_PORT" ssl "$ERIN" "not the password" keep "$out" uidl
    fm erin-badpw "$P3/fetchmailrc-erin-badpw" "$P3/fetchids-erin-badpw"
    expect_fm_rc 3 || return 1
    expect_log 'POP3< -ERR \[AUTH\]' "-ERR [AUTH]" || return 1
    [ "$(nfiles "$out")" = 0 ] || fail "messages were delivered despite the wrong password" || return 1
    expect_count "$ERIN" 4
}

check_fetchmail_cleartext_refused() {
    local out="$P3/fm-dave-cleartext"
    fm_rc "$P3/fetchmailrc-dave-cleartext" "$POP3_PORT" none "$DAVE" "$DAVE_PW" "fetchall no keep" "$out"
    fm dave-cleartext "$P3/fetchmailrc-dave-cleartext" "$P3/fetchids-dave-cleartext"
    expect_fm_rc 3 || return 1
    expect_no_log 'POP3> STLS' "STLS" || return 1
    expect_log 'POP3< -ERR \[AUTH\]' "-ERR [AUTH] to USER" || return 1
    expect_no_log 'POP3> PASS' "PASS (the password sent in clear text)"
}

# -- getmail6, pop3s, Maildir, delete (frank)

check_getmail() {
    local dir="$P3/getmail" md log res f user_line=""
    md="$dir/Maildir"
    log="$P3/getmail-1.log"
    TRANSCRIPTS+=("$log")
    mkdir -p "$md/cur" "$md/new" "$md/tmp" || fail "cannot create $md" || return 1
    # getmail refuses to deliver as root; as root, it delivers as `nobody`, who
    # then needs to reach the Maildir.
    if [ "$(id -u)" -eq 0 ]; then
        id nobody >/dev/null 2>&1 || fail "running as root and there is no user nobody for getmail's delivery" || return 1
        chmod 711 "$WORK" "$P3" "$dir"
        chown -R nobody: "$md" || fail "cannot chown $md to nobody" || return 1
        runuser -u nobody -- test -w "$md/new" ||
            fail "user nobody cannot write $md (is every directory above it searchable?)" || return 1
        user_line="user = nobody"
    fi
    cat >"$dir/getmailrc" <<EOF
# Written by tests/interop/pop3.sh
[retriever]
type = SimplePOP3SSLRetriever
server = 127.0.0.1
port = $POP3S_PORT
username = $FRANK
password = $FRANK_PW
# verifies the chain and the name 127.0.0.1 (an IP address SAN)
ca_certs = $CERT
timeout = 20

[destination]
type = Maildir
path = $md/
$user_line

[options]
verbose = 2
read_all = true
delete = true
EOF
    chmod 600 "$dir/getmailrc"
    say "\$ getmail --getmaildir $dir --rcfile getmailrc" >"$log"
    timeout 60 getmail --getmaildir "$dir" --rcfile getmailrc >>"$log" 2>&1
    local rc=$?
    [ "$rc" -eq 0 ] || fail "getmail exited $rc" || return 1
    grep -q '3 messages .* retrieved' "$log" || fail "getmail did not report 3 messages retrieved" || return 1
    [ "$(grep -c 'delivered to Maildir .*, deleted' "$log")" = 3 ] ||
        fail "getmail did not report 3 messages delivered and deleted" || return 1
    [ "$(nfiles "$md/new")" = 3 ] || fail "$(nfiles "$md/new") message(s) in $md/new, expected 3" || return 1
    res=$(python3 "$FETCHED_PY" compare "$md" "$P3_EXPECT/frank" 2>&1) || fail "$(tail -n 1 <<<"$res")" || return 1
    say "$res" >"$P3/getmail-compare.txt"
    f=$(file_with "$md" "$TOK_ATTACH")
    res=$(python3 "$FETCHED_PY" attachment "$f" "$P3_ATTACH" 2>&1) || fail "$res" || return 1
    f=$(file_with "$md" "$TOK_DOTS")
    res=$(python3 "$FETCHED_PY" lines "$f" "$P3_DOTS" 2>&1) || fail "dot lines: $res" || return 1
    expect_count "$FRANK" 0 || return 1
    # A second run finds nothing.
    log="$P3/getmail-2.log"
    TRANSCRIPTS+=("$log")
    timeout 60 getmail --getmaildir "$dir" --rcfile getmailrc >"$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || fail "the second getmail run exited $rc" || return 1
    grep -q ' 0 messages .* retrieved' "$log" || fail "the second getmail run did not report 0 messages" || return 1
    [ "$(nfiles "$md")" = 3 ] || fail "the second getmail run delivered more messages" || return 1
}

# -- curl (grace)

check_curl_list_uidl() {
    local want got url="pop3s://127.0.0.1:$POP3S_PORT/"
    want=$(python3 "$STORE_PY" list "$DB" "$GRACE" 2>&1) || fail "store query failed: $want" || return 1
    curl_pop3 list "$url" --cacert "$CERT" --sasl-ir -u "$GRACE:$GRACE_PW"
    expect_cu_rc 0 || return 1
    grep -q '^> AUTH PLAIN' "$CU_LOG" || fail "curl did not log in with AUTH PLAIN (initial response)" || return 1
    got=$(tr -d '\r' <"$CU_OUT")
    [ "$got" = "$(awk '{ print $1, $2 }' <<<"$want")" ] ||
        fail "LIST says: $(tr '\n' ' ' <<<"$got"); the store has (number size): $(awk '{ print $1, $2 }' <<<"$want" | tr '\n' ' ')" || return 1
    curl_pop3 uidl "$url" --cacert "$CERT" -X UIDL -u "$GRACE:$GRACE_PW"
    expect_cu_rc 0 || return 1
    got=$(tr -d '\r' <"$CU_OUT")
    [ "$got" = "$(awk '{ print $1, $3 }' <<<"$want")" ] ||
        fail "UIDL says: $(tr '\n' ' ' <<<"$got"); the store's message ids: $(awk '{ print $1, $3 }' <<<"$want" | tr '\n' ' ')"
}

check_curl_retr_pop3s() {
    python3 "$STORE_PY" blob "$DB" "$GRACE" '#1' >"$P3/grace-1.eml" || fail "cannot read grace's message 1 from the store" || return 1
    grep -qF -- "$TOK_DOTS" "$P3/grace-1.eml" || fail "grace's message 1 is not the dots message" || return 1
    curl_pop3 retr1 "pop3s://127.0.0.1:$POP3S_PORT/1" --cacert "$CERT" -u "$GRACE:$GRACE_PW"
    expect_cu_rc 0 || return 1
    grep -q '^> RETR 1' "$CU_LOG" || fail "curl did not send RETR 1" || return 1
    cmp -s "$CU_OUT" "$P3/grace-1.eml" ||
        fail "RETR 1 ($(wc -c <"$CU_OUT") bytes) differs from the stored message ($(wc -c <"$P3/grace-1.eml") bytes): $(cmp "$CU_OUT" "$P3/grace-1.eml" 2>&1)"
}

check_curl_retr_stls() {
    python3 "$STORE_PY" blob "$DB" "$GRACE" '#2' >"$P3/grace-2.eml" || fail "cannot read grace's message 2 from the store" || return 1
    grep -qF -- "$TOK_ATTACH" "$P3/grace-2.eml" || fail "grace's message 2 is not the attachment message" || return 1
    curl_pop3 retr2-stls "pop3://127.0.0.1:$POP3_PORT/2" --ssl-reqd --cacert "$CERT" \
        --login-options AUTH=LOGIN -u "$GRACE:$GRACE_PW"
    expect_cu_rc 0 || return 1
    grep -q '^> STLS' "$CU_LOG" || fail "curl did not send STLS" || return 1
    grep -q '^> AUTH LOGIN' "$CU_LOG" || fail "curl did not log in with AUTH LOGIN" || return 1
    cmp -s "$CU_OUT" "$P3/grace-2.eml" ||
        fail "RETR 2 ($(wc -c <"$CU_OUT") bytes) differs from the stored message ($(wc -c <"$P3/grace-2.eml") bytes): $(cmp "$CU_OUT" "$P3/grace-2.eml" 2>&1)" || return 1
    local res
    res=$(python3 "$FETCHED_PY" attachment "$CU_OUT" "$P3_ATTACH" 2>&1) || fail "$res"
}

check_curl_dele() {
    curl_pop3 dele3 "pop3s://127.0.0.1:$POP3S_PORT/3" --cacert "$CERT" -X DELE -I -u "$GRACE:$GRACE_PW"
    expect_cu_rc 0 || return 1
    grep -q '^> DELE 3' "$CU_LOG" || fail "curl did not send DELE 3" || return 1
    # (curl's QUIT comes at its cleanup, after the -v trace ends.)
    expect_count "$GRACE" 2 || return 1
    expect_stored "$GRACE" "$TOK_GRACE" 0 || return 1
    expect_stored "$GRACE" "$TOK_DOTS" 1
}

check_curl_cleartext_refused() {
    curl_pop3 cleartext "pop3://127.0.0.1:$POP3_PORT/" -u "$GRACE:$GRACE_PW"
    # 67: login denied. curl sees neither USER nor SASL in CAPA and gives up.
    expect_cu_rc 67 || return 1
    grep -q '^< STLS' "$CU_LOG" || fail "CAPA does not offer STLS" || return 1
    ! grep -Eq '^< (USER|SASL)' "$CU_LOG" || fail "CAPA offers USER or SASL before TLS" || return 1
    ! grep -Eq '^> (USER|PASS|AUTH|APOP)' "$CU_LOG" || fail "curl sent credentials in clear text" || return 1
    [ ! -s "$CU_OUT" ] || fail "curl got a listing without TLS"
}

check_pop3_cleartext_dialog() {
    local out="$P3/poplib-cleartext.txt"
    TRANSCRIPTS+=("$out")
    python3 "$POP3_CLIENT_PY" cleartext "$POP3_PORT" "$CERT" "$GRACE" "$GRACE_PW" >"$out" 2>&1 ||
        fail "$(tail -n 1 "$out")"
}

check_pop3_in_use() {
    local out="$P3/poplib-in-use.txt"
    TRANSCRIPTS+=("$out")
    python3 "$POP3_CLIENT_PY" in-use "$POP3S_PORT" "$CERT" "$GRACE" "$GRACE_PW" >"$out" 2>&1 ||
        fail "$(tail -n 1 "$out")" || return 1
    expect_count "$GRACE" 2
}

pop3_checks() {
    check "POP3 setup: 4 accounts, 7 messages (dots, 40 KiB binary, 8-bit, 300 KB) delivered via the MX" check_pop3_setup
    check "fetchmail, pop3 + STLS (cert verified), fetchall, no keep: 5 messages intact, INBOX empty" check_fetchmail_stls
    check "fetchmail, second run: exit 1 (no mail), nothing delivered" check_fetchmail_stls_again
    check "fetchmail, pop3s, keep + uidl: 3 messages intact, left on the server, idfile = store ids" check_fetchmail_pop3s_keep
    check "fetchmail UIDL: second run fetches nothing; after a new delivery only that one" check_fetchmail_uidl
    check "fetchmail while another session holds the maildrop: [IN-USE], exit 9 (lock busy)" check_fetchmail_lock_busy
    check "fetchmail with a wrong password: -ERR [AUTH], exit 3, nothing fetched" check_fetchmail_wrong_password
    check "refused: fetchmail with STLS disabled (sslproto ''): USER gets -ERR [AUTH], no PASS, exit 3" check_fetchmail_cleartext_refused
    check "getmail6, pop3s (ca_certs), Maildir, delete: 3 messages intact, INBOX empty, rerun gets 0" check_getmail
    check "curl pop3s (AUTH PLAIN, SASL-IR): LIST sizes and UIDL match the store" check_curl_list_uidl
    check "curl pop3s: RETR 1 (dot lines) byte-exact with the stored message" check_curl_retr_pop3s
    check "curl pop3 --ssl-reqd (STLS, AUTH LOGIN): RETR 2 (attachment) byte-exact" check_curl_retr_stls
    check "curl pop3s: -X DELE 3 removes exactly message 3 (at curl's QUIT)" check_curl_dele
    check "refused: curl pop3:// without TLS gets no login (exit 67), sends no credentials" check_curl_cleartext_refused
    check "refused: USER, PASS, AUTH before STLS (-ERR [AUTH]); after STLS USER/PASS works (poplib)" check_pop3_cleartext_dialog
    check "maildrop lock: 2nd session -ERR [IN-USE]; dropped session unlocks, deletes nothing (poplib)" check_pop3_in_use
}
