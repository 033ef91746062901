# shellcheck shell=bash
# IMAP interop checks: sourced by run.sh, which provides the server (IMAP_PORT for
# STARTTLS, IMAPS_PORT for implicit TLS, MX_PORT), $WORK, $CERT, $DB, $STORE_PY,
# `check`, `fail`, `say`, `setup_error`, `sw`, `expect_rc`, `expect_stored`,
# `cli` and `token`. run.sh calls imap_checks.
#
# Four accounts, so that the checks do not disturb one another:
#
#   heidi  mbsync (isync): a full two-way sync of INBOX, the special-use folders,
#          Work, Work/Projects and Lists with flags into a Maildir tree over
#          imaps (certificate verified); then changes on both sides (local:
#          flags, a deletion, a move, a copy, a new folder; server: a flag, a
#          delivery, an expunge, a new folder) and a second run that converges;
#          a third run (imaps) and a fourth (STARTTLS, the LOGIN command) that
#          change nothing
#   ivan   curl: LIST with special-use attributes, UID FETCH byte-exact over
#          imaps and over imap + STARTTLS, SEARCH, APPEND (upload), the
#          clear-text and wrong-password refusals
#   judy   neomutt over imaps, driven headless through a pty (script(1)) with
#          `push`: copy, flag, delete, save to a new folder, read a message;
#          then offlineimap3 syncs the result into a Maildir
#   kim    python (imap_client.py): LOGINDISABLED and [PRIVACYREQUIRED] before
#          STARTTLS, the STARTTLS injection defence, IDLE wake-ups within 1 s,
#          COMPRESS=DEFLATE
#
# What the clients did is verified in the store itself (store.py state: every
# mailbox, every message's Subject and flags), in what the server says over IMAP
# (imap_client.py state) and in the local Maildirs (imap_client.py maildir), in
# one format, compared with the expected state written out here.
#
# Needs: mbsync (Debian package isync), neomutt, offlineimap (offlineimap3),
# curl, script (bsdutils), python3.

# The check functions are called through `check`:
# shellcheck disable=SC2317

IMAP_CLIENT_PY="$HERE/imap_client.py"
FETCHED_PY="$HERE/fetched.py"

HEIDI=heidi@localhost
IVAN=ivan@localhost
JUDY=judy@localhost
KIM=kim@localhost
# Quotes, '#', ':', backslashes and spaces: every client's config syntax (and
# IMAP's quoted strings, for LOGIN) must carry them.
HEIDI_PW='heidi: "mbsync" pass #1'
IVAN_PW='ivan s3cret/with+base64=chars:'
JUDY_PW='judy "neomutt" pass #2'
KIM_PW='kim pass: "raw" \backslash'

IM="$WORK/imap"
IM_ATTACH="$IM/attachment.bin"
IM_DOTS="$IM/dots.txt"
IM_BIG="$IM/big.txt"

# mbsync: the near side (Maildir tree) and the configs (imaps, STARTTLS).
MB="$IM/mbsync"
MB_MAIL="$MB/Mail"
MB_RC="$MB/mbsyncrc"
MB_RC_STARTTLS="$MB/mbsyncrc-starttls"

# Message subjects (tokens), set by the setup checks.
H_IN1="" H_IN2="" H_IN3="" H_IN4="" H_W1="" H_W2="" H_P1="" H_P2="" H_L1="" H_L2="" H_L3=""
H_D1="" H_R1="" H_N1=""
I_DOTS="" I_ATTACH="" I_PLAIN="" I_UP=""
J1="" J2="" J3="" J4="" J5=""
K_BIG=""

# ---------------------------------------------------------------- helpers

# im_deliver NAME TOKEN RCPTS SWAKS-ARGS...: one message through the MX, Subject TOKEN.
im_deliver() {
    local name=$1 tok=$2 rcpts=$3
    shift 3
    sw "imap-$name" --server "127.0.0.1:$MX_PORT" \
        --from sender@remote.example --to "$rcpts" --header "Subject: $tok" "$@"
    expect_rc 0
}

# im_py NAME ARGS...: runs imap_client.py; transcript in $IM/NAME.txt.
im_py() {
    local name=$1 out="$IM/$1.txt"
    shift
    TRANSCRIPTS+=("$out")
    timeout 60 python3 "$IMAP_CLIENT_PY" "$@" >"$out" 2>&1 ||
        fail "imap_client.py $1: $(tail -n 1 "$out")"
}

# im_ops NAME ADDRESS PASSWORD OP...: changes the account over IMAP (imaplib).
im_ops() {
    local name=$1 addr=$2 pw=$3
    shift 3
    im_py "$name" ops "$IMAPS_PORT" "$CERT" "$addr" "$pw" "$@"
}

# im_expected FILE LINE...: an expected state, sorted as the state dumps are.
# Lines: "box PATH COUNT" and "msg PATH SUBJECT FLAGS" (words separated by tabs).
im_expected() {
    local file=$1
    shift
    printf '%s\n' "$@" | LC_ALL=C sort >"$file"
}
im_box() { printf 'box\t%s\t%s' "$1" "$2"; }
im_msg() { printf 'msg\t%s\t%s\t%s' "$1" "$2" "$3"; }

# im_same_state WHAT EXPECTED ACTUAL: the two state files are equal.
im_same_state() {
    local d
    TRANSCRIPTS+=("$3")
    d=$(diff "$2" "$3") && return 0
    TRANSCRIPTS+=("$2")
    fail "$1 is not as expected (< expected, > actual): $(grep '^[<>]' <<<"$d" | head -n 8 | tr '\t' ' ' | tr '\n' ';')"
}

# im_store_state ADDRESS FILE: the account as stored.
im_store_state() {
    python3 "$STORE_PY" state "$DB" "$1" >"$2" 2>&1 || fail "store.py state $1: $(tail -n 1 "$2")"
}

im_modseq() {
    python3 "$STORE_PY" modseq "$DB" "$1"
}

# im_maildir_state DIR FILE: a local Maildir tree, in the same format.
im_maildir_state() {
    python3 "$IMAP_CLIENT_PY" maildir "$1" >"$2" 2>&1 || fail "imap_client.py maildir $1: $(tail -n 1 "$2")"
}

# im_listing DIR: every message file of a Maildir tree (names carry the flags).
im_listing() {
    (cd "$1" && find . -path '*/cur/*' -o -path '*/new/*' | grep -v '/\.' | LC_ALL=C sort)
}

# The one message file under DIR whose contents hold TOKEN.
im_md_file() {
    local f
    f=$(grep -rlF -- "$2" "$1" | grep -E '/(cur|new)/' || true)
    [ -n "$f" ] && [ "$(wc -l <<<"$f")" = 1 ] || return 1
    printf '%s\n' "$f"
}

# mbsync's configuration syntax: a double-quoted string with \ and " escaped.
mb_quote() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

# mb_rc FILE PORT IMAPS|STARTTLS AUTHMECH: the mbsync configuration for heidi.
mb_rc() {
    cat >"$1" <<EOF
# Written by tests/interop/imap.sh
IMAPAccount heidi
# localhost: mbsync checks the certificate against the host name
Host localhost
Port $2
User $HEIDI
Pass $(mb_quote "$HEIDI_PW")
# (isync 1.5 calls it TLSType; 1.4, as in Debian 12, only knows SSLType)
SSLType $3
CertificateFile $CERT
AuthMechs $4
Timeout 20

IMAPStore heidi-remote
Account heidi

MaildirStore heidi-local
Path $MB_MAIL/
Inbox $MB_MAIL/INBOX
SubFolders Verbatim

Channel heidi
Far :heidi-remote:
Near :heidi-local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
EOF
    chmod 600 "$1"
}

mb_meaning() {
    case $1 in
    0) say "success" ;;
    1) say "error (see the log)" ;;
    124) say "killed by timeout" ;;
    *) say "unexpected status" ;;
    esac
}

# mb_run NAME RCFILE [pty]: runs `mbsync -a` once, bounded; the log is in $MB_LOG,
# the exit status in $MB_RC_STATUS. Without "pty": -Dn (the IMAP dialogue,
# credentials masked by mbsync itself). With "pty": under script(1), so that
# mbsync prints its progress counters (only to a terminal).
mb_run() {
    local name=$1 rc=$2 mode=${3:-}
    MB_LOG="$MB/mbsync-$name.log"
    TRANSCRIPTS+=("$MB_LOG")
    if [ "$mode" = pty ]; then
        printf '$ script -qec "mbsync -c %s -a" /dev/null\n' "$rc" >"$MB_LOG"
        timeout 60 script -qec "mbsync -c '$rc' -a" /dev/null </dev/null >>"$MB_LOG" 2>&1
        MB_RC_STATUS=$?
        # One line per progress update instead of carriage returns.
        sed -i 's/\r/\n/g' "$MB_LOG"
    else
        printf '$ mbsync -c %s -a -Dn\n' "$rc" >"$MB_LOG"
        timeout 60 mbsync -c "$rc" -a -Dn >>"$MB_LOG" 2>&1
        MB_RC_STATUS=$?
    fi
    # In case a version logs the password: mask whatever follows LOGIN/AUTHENTICATE.
    sed -i -E 's/^((\([0-9]+ in progress\) )?>>> [0-9]+ (LOGIN|AUTHENTICATE [A-Z0-9-]+) ).*/\1****/' "$MB_LOG"
}

expect_mb_rc() {
    [ "$MB_RC_STATUS" -eq 0 ] ||
        fail "mbsync exited $MB_RC_STATUS ($(mb_meaning "$MB_RC_STATUS")): $(grep -iE 'error|fail|refus|cannot|not ' "$MB_LOG" | head -n 2 | tr '\n' ' ')"
}

# The IMAP commands mbsync sent (tags stripped), one per line.
mb_commands() {
    sed -n -E 's/^(\([0-9]+ in progress\) )?>>> [0-9]+ //p' "$MB_LOG"
}

# curl_imap NAME URL CURL-ARGS...: output in $CU_OUT, trace in $CU_LOG, status $CU_RC.
curl_imap() {
    local name=$1 url=$2
    shift 2
    CU_OUT="$IM/curl-$name.out"
    CU_LOG="$IM/curl-$name.log"
    TRANSCRIPTS+=("$CU_LOG")
    local a prev="" shown=()
    for a in "$@"; do
        [ "$prev" = -u ] && a="${a%%:*}:****"
        shown+=("$a")
        prev=$a
    done
    printf '$ curl -v %s %s\n' "${shown[*]}" "$url" >"$CU_LOG"
    timeout 60 curl -sS -v --max-time 30 "$@" "$url" -o "$CU_OUT" 2>>"$CU_LOG"
    CU_RC=$?
    # No passwords in the log: curl prints the SASL exchange.
    sed -i -E 's/^(> [A-Z0-9]+ (AUTHENTICATE [A-Z0-9-]+|LOGIN) ).*/\1****/; /^> [A-Za-z0-9+\/=]+\r?$/s/.*/> ****/' "$CU_LOG"
}

expect_curl_rc() {
    [ "$CU_RC" -eq "$1" ] || fail "curl exited $CU_RC, expected $1 (see EXIT CODES in man curl)"
}

# ---------------------------------------------------------------- setup

check_imap_setup() {
    local out="$IM/setup.txt" u pw
    mkdir -p "$IM" "$MB_MAIL" || fail "cannot create $IM" || return 1
    TRANSCRIPTS+=("$out")
    : >"$out"
    for u in "$HEIDI:$HEIDI_PW" "$IVAN:$IVAN_PW" "$JUDY:$JUDY_PW" "$KIM:$KIM_PW"; do
        pw=${u#*:}
        u=${u%%:*}
        { say "\$ pochta user add $u --password-stdin"; printf '%s\n' "$pw" | cli user add "$u" --password-stdin; } \
            >>"$out" 2>&1 || fail "user add $u failed" || return 1
    done
    printf '%s\n' "Lines that start with a dot:" ".leading dot" "..two dots" "." "...three" \
        "" " . not at the start" "last line" >"$IM_DOTS"
    head -c 40960 /dev/urandom >"$IM_ATTACH" || fail "cannot write $IM_ATTACH" || return 1
    awk 'BEGIN { for (i = 0; i < 5000; i++) printf "line %05d %s\n", i, "abcdefghij abcdefghij abcdefghij abcdefghij abcdefghij" }' \
        >"$IM_BIG" || fail "cannot write $IM_BIG" || return 1

    # heidi (mbsync): three messages in INBOX through the MX (one with an
    # attachment), the rest APPENDed with flags into the other folders.
    H_IN1=$(token imap-h-in1) H_IN2=$(token imap-h-in2) H_IN3=$(token imap-h-in3)
    H_W1=$(token imap-h-work1) H_W2=$(token imap-h-work2)
    H_P1=$(token imap-h-proj1) H_P2=$(token imap-h-proj2)
    H_L1=$(token imap-h-list1) H_L2=$(token imap-h-list2) H_L3=$(token imap-h-list3)
    H_D1=$(token imap-h-draft1)
    im_deliver h-in1 "$H_IN1" "$HEIDI" --body "first $H_IN1" || return 1
    im_deliver h-in2 "$H_IN2" "$HEIDI" --body "second $H_IN2" \
        --attach-type application/octet-stream --attach-name random.bin --attach "@$IM_ATTACH" || return 1
    im_deliver h-in3 "$H_IN3" "$HEIDI" --body "@$IM_DOTS" || return 1
    im_ops ops-heidi-setup "$HEIDI" "$HEIDI_PW" \
        create:Work create:Work/Projects create:Lists \
        "store:INBOX:$H_IN1:+\\Seen" "store:INBOX:$H_IN2:+\\Seen \\Flagged" \
        "append:Work:\\Seen \\Flagged:$H_W1" "append:Work:\\Seen:$H_W2" \
        "append:Work/Projects:\\Answered \\Seen:$H_P1" "append:Work/Projects::$H_P2" \
        "append:Lists:\\Seen:$H_L1" "append:Lists::$H_L2" "append:Lists:\\Seen:$H_L3" \
        "append:Drafts:\\Draft:$H_D1" || return 1

    # ivan (curl): 1 = dot lines, 2 = attachment, 3 = plain.
    I_DOTS=$(token imap-i-dots) I_ATTACH=$(token imap-i-attach) I_PLAIN=$(token imap-i-plain)
    im_deliver i-dots "$I_DOTS" "$IVAN" --body "@$IM_DOTS" || return 1
    im_deliver i-attach "$I_ATTACH" "$IVAN" --body "attached: $I_ATTACH" \
        --attach-type application/octet-stream --attach-name random.bin --attach "@$IM_ATTACH" || return 1
    im_deliver i-plain "$I_PLAIN" "$IVAN" --body "plain $I_PLAIN" || return 1

    # judy (neomutt): five plain messages.
    J1=$(token imap-j1) J2=$(token imap-j2) J3=$(token imap-j3) J4=$(token imap-j4) J5=$(token imap-j5)
    local j
    for j in "$J1" "$J2" "$J3" "$J4" "$J5"; do
        im_deliver "j-${j#interop-imap-}" "$j" "$JUDY" --body "for judy $j" || return 1
    done

    # kim (python): a 300 KB text message for COMPRESS.
    K_BIG=$(token imap-k-big)
    im_deliver k-big "$K_BIG" "$KIM" --body "@$IM_BIG" || return 1
    expect_stored "$HEIDI" "$H_IN3" 1 || return 1
    expect_stored "$IVAN" "$I_PLAIN" 1 || return 1
    expect_stored "$JUDY" "$J5" 1 || return 1
    expect_stored "$KIM" "$K_BIG" 1
}

# ---------------------------------------------------------------- mbsync (heidi)

# The expected state after the first sync (server and Maildir).
mb_expected_1() {
    im_expected "$1" \
        "$(im_box Archive 0)" "$(im_box Drafts 1)" "$(im_box INBOX 3)" "$(im_box Junk 0)" "$(im_box Lists 3)" \
        "$(im_box Sent 0)" "$(im_box Trash 0)" "$(im_box Work 2)" "$(im_box Work/Projects 2)" \
        "$(im_msg INBOX "$H_IN1" S)" "$(im_msg INBOX "$H_IN2" FS)" "$(im_msg INBOX "$H_IN3" -)" \
        "$(im_msg Work "$H_W1" FS)" "$(im_msg Work "$H_W2" S)" \
        "$(im_msg Work/Projects "$H_P1" RS)" "$(im_msg Work/Projects "$H_P2" -)" \
        "$(im_msg Lists "$H_L1" S)" "$(im_msg Lists "$H_L2" -)" "$(im_msg Lists "$H_L3" S)" \
        "$(im_msg Drafts "$H_D1" D)"
}

check_imap_mbsync_first() {
    local res cmds
    mb_rc "$MB_RC" "$IMAPS_PORT" IMAPS PLAIN
    mb_rc "$MB_RC_STARTTLS" "$IMAP_PORT" STARTTLS LOGIN
    mb_run first "$MB_RC"
    expect_mb_rc || return 1
    grep -q '^Connection is now encrypted' "$MB_LOG" || fail "mbsync did not report an encrypted connection" || return 1
    cmds=$(mb_commands)
    grep -q '^AUTHENTICATE PLAIN' <<<"$cmds" || fail "mbsync did not log in with AUTHENTICATE PLAIN" || return 1
    # mbsync turns on COMPRESS=DEFLATE when offered: the whole sync ran deflated.
    grep -q '^COMPRESS DEFLATE' <<<"$cmds" || fail "mbsync did not send COMPRESS DEFLATE" || return 1
    grep -qE '^[0-9]+ OK .*DEFLATE' "$MB_LOG" || fail "COMPRESS DEFLATE was not answered OK" || return 1
    mb_expected_1 "$IM/mbsync-expected-1.txt"
    im_maildir_state "$MB_MAIL" "$IM/mbsync-maildir-1.txt" || return 1
    im_same_state "the local Maildir after the first sync" "$IM/mbsync-expected-1.txt" "$IM/mbsync-maildir-1.txt" || return 1
    im_store_state "$HEIDI" "$IM/mbsync-store-1.txt" || return 1
    im_same_state "the server (store) after the first sync" "$IM/mbsync-expected-1.txt" "$IM/mbsync-store-1.txt" || return 1
    # The INBOX copies are the stored messages (bodies byte-identical, line ends
    # aside; every header line kept).
    res=$(python3 "$STORE_PY" save "$DB" "$HEIDI" "$IM/expected/heidi" "$H_IN1" "$H_IN2" "$H_IN3" 2>&1) || fail "$res" || return 1
    # (fetched.py takes every file of a tree: copy the messages without mbsync's state files.)
    mkdir -p "$IM/mbsync-inbox-1" || fail "cannot create $IM/mbsync-inbox-1" || return 1
    find "$MB_MAIL/INBOX/cur" "$MB_MAIL/INBOX/new" -type f ! -name '.*' -exec cp {} "$IM/mbsync-inbox-1/" \;
    res=$(python3 "$FETCHED_PY" compare "$IM/mbsync-inbox-1" "$IM/expected/heidi" 2>&1) || fail "INBOX: $(tail -n 1 <<<"$res")" || return 1
    local f
    f=$(im_md_file "$MB_MAIL/INBOX" "$H_IN2") || fail "no single local file holds $H_IN2" || return 1
    res=$(python3 "$FETCHED_PY" attachment "$f" "$IM_ATTACH" 2>&1) || fail "$res" || return 1
    f=$(im_md_file "$MB_MAIL/INBOX" "$H_IN3") || fail "no single local file holds $H_IN3" || return 1
    res=$(python3 "$FETCHED_PY" lines "$f" "$IM_DOTS" 2>&1) || fail "dot lines: $res"
}

# im_md_flags FILE FLAGS: sets a local message's flags (Maildir: cur/NAME:2,FLAGS).
im_md_flags() {
    local f=$1 base
    base=$(basename "$f")
    mv "$f" "$(dirname "$(dirname "$f")")/cur/${base%%:2,*}:2,$2"
}

# im_md_move FILE DIR [copy]: into another folder, without mbsync's ",U=" (a new message there).
im_md_move() {
    local f=$1 dir=$2 base
    base=$(basename "$f")
    base=${base/,U=[0-9]*:2,/:2,}
    if [ "${3:-}" = copy ]; then
        cp "$f" "$dir/cur/copy-$base"
    else
        mv "$f" "$dir/cur/$base"
    fi
}

check_imap_mbsync_changes() {
    local f
    # Local changes.
    f=$(im_md_file "$MB_MAIL/INBOX" "$H_IN3") || fail "no single local file holds $H_IN3" || return 1
    im_md_flags "$f" FS
    f=$(im_md_file "$MB_MAIL/Lists" "$H_L2") || fail "no single local file holds $H_L2" || return 1
    rm -f "$f"
    f=$(im_md_file "$MB_MAIL/Work" "$H_W2") || fail "no single local file holds $H_W2" || return 1
    im_md_move "$f" "$MB_MAIL/Lists"
    f=$(im_md_file "$MB_MAIL/Work/Projects" "$H_P1") || fail "no single local file holds $H_P1" || return 1
    im_md_move "$f" "$MB_MAIL/INBOX" copy
    H_N1=$(token imap-h-note1)
    mkdir -p "$MB_MAIL/Notes/cur" "$MB_MAIL/Notes/new" "$MB_MAIL/Notes/tmp"
    printf 'From: heidi@localhost\nTo: heidi@localhost\nSubject: %s\nMessage-ID: <%s@interop.test>\n\nA local note.\n' \
        "$H_N1" "$H_N1" >"$MB_MAIL/Notes/cur/$(date +%s).note.interop:2,S"
    # Server changes.
    H_IN4=$(token imap-h-in4) H_R1=$(token imap-h-receipt1)
    im_deliver h-in4 "$H_IN4" "$HEIDI" --body "fourth $H_IN4" || return 1
    im_ops ops-heidi-changes "$HEIDI" "$HEIDI_PW" \
        "store:INBOX:$H_IN1:+\\Flagged" "expunge:Lists:$H_L1" \
        create:Receipts "append:Receipts:\\Seen:$H_R1" || return 1

    mb_run second "$MB_RC"
    expect_mb_rc || return 1
    im_expected "$IM/mbsync-expected-2.txt" \
        "$(im_box Archive 0)" "$(im_box Drafts 1)" "$(im_box INBOX 5)" "$(im_box Junk 0)" "$(im_box Lists 2)" \
        "$(im_box Notes 1)" "$(im_box Receipts 1)" "$(im_box Sent 0)" "$(im_box Trash 0)" "$(im_box Work 1)" "$(im_box Work/Projects 2)" \
        "$(im_msg INBOX "$H_IN1" FS)" "$(im_msg INBOX "$H_IN2" FS)" "$(im_msg INBOX "$H_IN3" FS)" \
        "$(im_msg INBOX "$H_IN4" -)" "$(im_msg INBOX "$H_P1" RS)" \
        "$(im_msg Work "$H_W1" FS)" \
        "$(im_msg Work/Projects "$H_P1" RS)" "$(im_msg Work/Projects "$H_P2" -)" \
        "$(im_msg Lists "$H_L3" S)" "$(im_msg Lists "$H_W2" S)" \
        "$(im_msg Notes "$H_N1" S)" "$(im_msg Receipts "$H_R1" S)" \
        "$(im_msg Drafts "$H_D1" D)"
    im_maildir_state "$MB_MAIL" "$IM/mbsync-maildir-2.txt" || return 1
    im_same_state "the local Maildir after the second sync" "$IM/mbsync-expected-2.txt" "$IM/mbsync-maildir-2.txt" || return 1
    im_store_state "$HEIDI" "$IM/mbsync-store-2.txt" || return 1
    im_same_state "the server (store) after the second sync" "$IM/mbsync-expected-2.txt" "$IM/mbsync-store-2.txt" || return 1
    # And what the server says over IMAP (LIST, EXAMINE, FETCH FLAGS) agrees.
    im_py imap-state-heidi state "$IMAPS_PORT" "$CERT" "$HEIDI" "$HEIDI_PW" "$IM/mbsync-imap-2.txt" || return 1
    im_same_state "the server (over IMAP) after the second sync" "$IM/mbsync-expected-2.txt" "$IM/mbsync-imap-2.txt"
}

check_imap_mbsync_nothing_to_do() {
    local before after ms_before ms_after counters
    before=$(im_listing "$MB_MAIL")
    ms_before=$(im_modseq "$HEIDI") || fail "store.py modseq failed" || return 1
    mb_run third "$MB_RC" pty
    expect_mb_rc || return 1
    # The last progress line, e.g. "C: 1/1  B: 11/11  F: +0/0 *0/0 #0/0  N: +0/0 *0/0 #0/0":
    # nothing added (+), flagged (*) or deleted (#) on the far (F) or near (N) side.
    counters=$(grep -E '^C: [0-9]+/[0-9]+ +B: ' "$MB_LOG" | tail -n 1)
    [ -n "$counters" ] || fail "mbsync printed no progress counters" || return 1
    grep -qE '^C: 1/1 +B: 11/11 ' <<<"$counters" || fail "mbsync did not finish 1 channel and 11 boxes: $counters" || return 1
    [[ ! ${counters#*F:} =~ [1-9] ]] || fail "the third run still had something to do: $counters" || return 1
    after=$(im_listing "$MB_MAIL")
    [ "$before" = "$after" ] || fail "the third run changed the Maildir: $(diff <(say "$before") <(say "$after") | grep '^[<>]' | head -n 4 | tr '\n' ' ')" || return 1
    ms_after=$(im_modseq "$HEIDI")
    [ "$ms_before" = "$ms_after" ] || fail "the third run changed the server (account modseq $ms_before -> $ms_after)"
}

check_imap_mbsync_starttls() {
    local before after ms_before ms_after cmds
    before=$(im_listing "$MB_MAIL")
    ms_before=$(im_modseq "$HEIDI") || fail "store.py modseq failed" || return 1
    mb_run fourth "$MB_RC_STARTTLS"
    expect_mb_rc || return 1
    cmds=$(mb_commands)
    grep -q '^STARTTLS' <<<"$cmds" || fail "mbsync did not send STARTTLS" || return 1
    grep -q '^LOGIN' <<<"$cmds" || fail "mbsync did not log in with the LOGIN command" || return 1
    [ "$(grep -nE '^STARTTLS' <<<"$cmds" | cut -d: -f1)" -lt "$(grep -nE '^LOGIN' <<<"$cmds" | cut -d: -f1)" ] ||
        fail "mbsync sent LOGIN before STARTTLS" || return 1
    ! grep -qE '^(UID )?(APPEND|STORE|EXPUNGE|COPY|MOVE|CREATE|DELETE|RENAME)' <<<"$cmds" ||
        fail "the fourth run changed something: $(grep -E '^(UID )?(APPEND|STORE|EXPUNGE|COPY|MOVE|CREATE|DELETE|RENAME)' <<<"$cmds" | head -n 3 | tr '\n' ' ')" || return 1
    after=$(im_listing "$MB_MAIL")
    [ "$before" = "$after" ] || fail "the fourth run changed the Maildir" || return 1
    ms_after=$(im_modseq "$HEIDI")
    [ "$ms_before" = "$ms_after" ] || fail "the fourth run changed the server (account modseq $ms_before -> $ms_after)"
}

# ---------------------------------------------------------------- curl (ivan)

check_imap_curl_list() {
    local box attr
    curl_imap list "imaps://127.0.0.1:$IMAPS_PORT/" --cacert "$CERT" -u "$IVAN:$IVAN_PW"
    expect_curl_rc 0 || return 1
    grep -q '^> [A-Z0-9]* AUTHENTICATE PLAIN' "$CU_LOG" || fail "curl did not log in with AUTHENTICATE PLAIN" || return 1
    tr -d '\r' <"$CU_OUT" >"$CU_OUT.lf"
    grep -qE '^\* LIST \([^)]*\) "/" INBOX$' "$CU_OUT.lf" || fail "LIST has no INBOX" || return 1
    for box in Drafts:Drafts Sent:Sent Archive:Archive Junk:Junk Trash:Trash; do
        attr=${box#*:}
        box=${box%%:*}
        grep -qE "^\\* LIST \\([^)]*\\\\${attr}[ )][^\"]*\"/\" $box\$" "$CU_OUT.lf" ||
            fail "LIST has no $box with \\$attr: $(grep -E " $box\$" "$CU_OUT.lf" || echo none)" || return 1
    done
    [ "$(grep -c '^\* LIST ' "$CU_OUT.lf")" = 6 ] || fail "LIST returned $(grep -c '^\* LIST ' "$CU_OUT.lf") mailboxes, expected 6"
}

check_imap_curl_fetch_imaps() {
    local flags
    python3 "$STORE_PY" blob "$DB" "$IVAN" '#1' >"$IM/ivan-1.eml" || fail "cannot read ivan's message 1 from the store" || return 1
    grep -qF -- "$I_DOTS" "$IM/ivan-1.eml" || fail "ivan's message 1 is not the dots message" || return 1
    curl_imap uid1 "imaps://127.0.0.1:$IMAPS_PORT/INBOX;UID=1" --cacert "$CERT" -u "$IVAN:$IVAN_PW"
    expect_curl_rc 0 || return 1
    grep -qE '^> [A-Z0-9]+ (UID )?FETCH 1 BODY\[\]' "$CU_LOG" || fail "curl did not send UID FETCH 1 BODY[]" || return 1
    cmp -s "$CU_OUT" "$IM/ivan-1.eml" ||
        fail "UID 1 ($(wc -c <"$CU_OUT") bytes) differs from the stored message ($(wc -c <"$IM/ivan-1.eml") bytes): $(cmp "$CU_OUT" "$IM/ivan-1.eml" 2>&1)" || return 1
    # BODY[] (not BODY.PEEK[]) sets \Seen.
    im_store_state "$IVAN" "$IM/ivan-state.txt" || return 1
    flags=$(awk -F'\t' -v s="$I_DOTS" '$1 == "msg" && $3 == s { print $4 }' "$IM/ivan-state.txt")
    [ "$flags" = S ] || fail "after FETCH BODY[] the message's flags are '${flags:-?}', expected \\Seen (S)"
}

check_imap_curl_fetch_starttls() {
    local res
    python3 "$STORE_PY" blob "$DB" "$IVAN" '#2' >"$IM/ivan-2.eml" || fail "cannot read ivan's message 2 from the store" || return 1
    grep -qF -- "$I_ATTACH" "$IM/ivan-2.eml" || fail "ivan's message 2 is not the attachment message" || return 1
    curl_imap uid2-starttls "imap://127.0.0.1:$IMAP_PORT/INBOX;UID=2" --ssl-reqd --cacert "$CERT" \
        --login-options AUTH=LOGIN -u "$IVAN:$IVAN_PW"
    expect_curl_rc 0 || return 1
    grep -qE '^> [A-Z0-9]+ STARTTLS' "$CU_LOG" || fail "curl did not send STARTTLS" || return 1
    grep -qE '^> [A-Z0-9]+ AUTHENTICATE LOGIN' "$CU_LOG" || fail "curl did not log in with AUTHENTICATE LOGIN" || return 1
    cmp -s "$CU_OUT" "$IM/ivan-2.eml" ||
        fail "UID 2 ($(wc -c <"$CU_OUT") bytes) differs from the stored message ($(wc -c <"$IM/ivan-2.eml") bytes): $(cmp "$CU_OUT" "$IM/ivan-2.eml" 2>&1)" || return 1
    res=$(python3 "$FETCHED_PY" attachment "$CU_OUT" "$IM_ATTACH" 2>&1) || fail "$res"
}

check_imap_curl_search_append() {
    local file="$IM/upload.eml"
    # SEARCH (curl's URL query) finds message 3 by its subject.
    curl_imap search "imaps://127.0.0.1:$IMAPS_PORT/INBOX?SUBJECT%20$I_PLAIN" --cacert "$CERT" -u "$IVAN:$IVAN_PW"
    expect_curl_rc 0 || return 1
    [ "$(tr -d '\r' <"$CU_OUT")" = "* SEARCH 3" ] || fail "SEARCH SUBJECT $I_PLAIN gave: $(tr -d '\r' <"$CU_OUT" | tr '\n' ' ')" || return 1
    # APPEND: curl -T uploads a message into INBOX; it is stored byte for byte.
    I_UP=$(token imap-i-upload)
    printf 'From: ivan@localhost\r\nTo: ivan@localhost\r\nSubject: %s\r\nMessage-ID: <%s@interop.test>\r\n\r\nUploaded by curl.\r\n.a line with a dot\r\n' \
        "$I_UP" "$I_UP" >"$file"
    curl_imap append "imaps://127.0.0.1:$IMAPS_PORT/INBOX" --cacert "$CERT" -T "$file" -u "$IVAN:$IVAN_PW"
    expect_curl_rc 0 || return 1
    grep -qE '^> [A-Z0-9]+ APPEND INBOX' "$CU_LOG" || fail "curl did not send APPEND INBOX" || return 1
    grep -qE '^< [A-Z0-9]+ OK \[APPENDUID [0-9]+ 4\]' "$CU_LOG" || fail "APPEND was not answered OK [APPENDUID ... 4]" || return 1
    expect_stored "$IVAN" "$I_UP" 1 || return 1
    python3 "$STORE_PY" blob "$DB" "$IVAN" "$I_UP" >"$IM/ivan-up.eml" || fail "cannot read the uploaded message from the store" || return 1
    cmp -s "$file" "$IM/ivan-up.eml" || fail "the stored message differs from the uploaded file: $(cmp "$file" "$IM/ivan-up.eml" 2>&1)"
}

check_imap_curl_cleartext_refused() {
    curl_imap cleartext "imap://127.0.0.1:$IMAP_PORT/" -u "$IVAN:$IVAN_PW"
    # 67: login denied. curl sees LOGINDISABLED and no AUTH= and gives up.
    expect_curl_rc 67 || return 1
    grep -qE '^< \* (OK \[)?CAPABILITY .*LOGINDISABLED' "$CU_LOG" || fail "the server did not advertise LOGINDISABLED" || return 1
    ! grep -qE '^< \* (OK \[)?CAPABILITY .*AUTH=' "$CU_LOG" || fail "the server advertised AUTH= before TLS" || return 1
    ! grep -qE '^> [A-Z0-9]+ (LOGIN|AUTHENTICATE)' "$CU_LOG" || fail "curl sent credentials in clear text" || return 1
    [ ! -s "$CU_OUT" ] || fail "curl got a listing without TLS"
}

check_imap_curl_wrong_password() {
    curl_imap badpw "imaps://127.0.0.1:$IMAPS_PORT/" --cacert "$CERT" -u "$IVAN:not the password"
    expect_curl_rc 67 || return 1
    grep -qE '^< [A-Z0-9]+ NO \[AUTHENTICATIONFAILED\]' "$CU_LOG" || fail "no NO [AUTHENTICATIONFAILED]" || return 1
    [ ! -s "$CU_OUT" ] || fail "curl got a listing with a wrong password"
}

# ---------------------------------------------------------------- neomutt + offlineimap (judy)

check_imap_neomutt() {
    local dir="$IM/neomutt" log out push
    mkdir -p "$dir/home" || fail "cannot create $dir" || return 1
    out="$dir/screen.txt"
    case $JUDY_PW in *"'"*) setup_error "neomutt: password with ' not supported" ;; esac
    cat >"$dir/muttrc" <<EOF
# Written by tests/interop/imap.sh
set folder = "imaps://localhost:$IMAPS_PORT/"
set spoolfile = "+INBOX"
set imap_user = "$JUDY"
set imap_pass = '$JUDY_PW'
# The certificate is verified against cert.pem; certificate_file is where
# neomutt would keep certificates a user accepted by hand (it must stay empty).
set ssl_ca_certificates_file = "$CERT"
set certificate_file = "$dir/certificates"
set ssl_force_tls = yes
set ssl_verify_host = yes
set header_cache = ""
set message_cachedir = ""
set confirmappend = no
set confirmcreate = no
set delete = yes
set quit = yes
set move = no
set mark_old = no
set wait_key = no
set sleep_time = 0
set mail_check = 0
set timeout = 0
set imap_passive = yes
set record = ""
set postponed = ""
EOF
    chmod 600 "$dir/muttrc"
    # j1: copy to Archive; j2: flag; j3: delete; j4: save (move) to Saved, a new
    # folder; j5: read (the pager); then sync (expunge) and quit.
    push="<tag-pattern>~s $J1<enter><tag-prefix><copy-message>=Archive<enter><untag-pattern>~A<enter>"
    push+="<tag-pattern>~s $J2<enter><tag-prefix><flag-message><untag-pattern>~A<enter>"
    push+="<delete-pattern>~s $J3<enter>"
    push+="<tag-pattern>~s $J4<enter><tag-prefix><save-message>=Saved<enter><untag-pattern>~A<enter>"
    push+="<limit>~s $J5<enter><display-message><exit><limit>~A<enter>"
    push+="<sync-mailbox><quit>"
    {
        say "\$ script -qec \"neomutt -n -F $dir/muttrc -d 2 -l $dir/debug.log -e 'push \\\"...\\\"'\" /dev/null"
        say "# push: $push"
    } >"$dir/command.txt"
    TRANSCRIPTS+=("$dir/command.txt" "$out")
    # neomutt needs a terminal: script(1) gives it a pty. -n: no system neomuttrc.
    # At a prompt (e.g. an unverified certificate) it would wait: the timeout ends it.
    HOME="$dir/home" TERM=xterm timeout 30 script -qec \
        "neomutt -n -F '$dir/muttrc' -d 2 -l '$dir/debug.log' -e 'push \"$push\"'" /dev/null </dev/null >"$out" 2>&1
    local rc=$?
    # The screen, without terminal control sequences.
    sed -i -E 's/\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r//g' "$out"
    # neomutt numbers its logs: debug.log0 is the newest.
    log="$dir/debug.log0"
    [ -f "$log" ] || log="$dir/debug.log"
    if [ -f "$log" ]; then
        # Level 2 shows AUTHENTICATE PLAIN's credentials: mask them.
        sed -i -E 's/(AUTHENTICATE [A-Z]+) .*/\1 ****/; s/( a[0-9]+ LOGIN) .*/\1 ****/' "$log"
        # The commands sent; pipelined ones follow on lines of their own.
        sed -n -E 's/.*[0-9]> (a[0-9]{4} .*)/\1/p; t; s/^(a[0-9]{4} .*)/\1/p' "$log" >"$dir/commands.txt"
        TRANSCRIPTS=("$dir/commands.txt" "${TRANSCRIPTS[@]}")
    fi
    [ "$rc" -eq 0 ] || fail "neomutt (under script) exited $rc$([ "$rc" = 124 ] && echo ': killed by timeout, waiting at a prompt? (see screen.txt)')" || return 1
    [ -f "$log" ] || fail "neomutt wrote no debug log" || return 1
    grep -q 'AUTHENTICATE PLAIN' "$log" || fail "neomutt did not log in (no AUTHENTICATE in its log)" || return 1
    [ ! -s "$dir/certificates" ] || fail "neomutt saved the certificate as accepted by hand: it did not verify it against cert.pem" || return 1
    grep -qE 'UID COPY [0-9]+ "?Archive' "$dir/commands.txt" || fail "neomutt did not UID COPY to Archive" || return 1
    grep -qE 'CREATE "?Saved' "$dir/commands.txt" || fail "neomutt did not CREATE Saved" || return 1
    grep -qE '(UID )?FETCH [0-9]+ BODY(\.PEEK)?\[\]' "$dir/commands.txt" || fail "neomutt did not fetch a message body" || return 1
    grep -qE '^a[0-9]+ (UID )?EXPUNGE' "$dir/commands.txt" || fail "neomutt did not expunge" || return 1
    ! grep -qE 'IMAP command failed: a[0-9]+ BAD' "$log" ||
        fail "the server answered BAD: $(grep -m1 -E 'IMAP command failed: a[0-9]+ BAD' "$log" | sed 's/.*failed: //')" || return 1
    im_expected "$IM/neomutt-expected.txt" \
        "$(im_box Archive 1)" "$(im_box Drafts 0)" "$(im_box INBOX 3)" "$(im_box Junk 0)" "$(im_box Saved 1)" "$(im_box Sent 0)" "$(im_box Trash 0)" \
        "$(im_msg Archive "$J1" -)" "$(im_msg INBOX "$J1" -)" "$(im_msg INBOX "$J2" F)" "$(im_msg INBOX "$J5" S)" "$(im_msg Saved "$J4" -)"
    im_store_state "$JUDY" "$IM/neomutt-store.txt" || return 1
    im_same_state "the server (store) after neomutt" "$IM/neomutt-expected.txt" "$IM/neomutt-store.txt"
}

check_imap_offlineimap() {
    local dir="$IM/offlineimap" log rc f
    mkdir -p "$dir/mail" || fail "cannot create $dir" || return 1
    printf '%s' "$JUDY_PW" >"$dir/password"
    chmod 600 "$dir/password"
    cat >"$dir/offlineimaprc" <<EOF
# Written by tests/interop/imap.sh
[general]
accounts = judy
metadata = $dir/metadata
ui = basic

[Account judy]
localrepository = judy-local
remoterepository = judy-remote

[Repository judy-local]
type = Maildir
localfolders = $dir/mail
sep = /

[Repository judy-remote]
type = IMAP
remotehost = localhost
remoteport = $IMAPS_PORT
remoteuser = $JUDY
remotepassfile = $dir/password
ssl = yes
# verifies the chain and the name localhost
sslcacertfile = $CERT
timeout = 20
EOF
    # The Maildir must come out as the server has the account (after neomutt).
    im_store_state "$JUDY" "$IM/offlineimap-store-1.txt" || return 1
    log="$dir/offlineimap-1.log"
    TRANSCRIPTS+=("$log")
    say "\$ offlineimap -c $dir/offlineimaprc -o -u basic" >"$log"
    timeout 60 offlineimap -c "$dir/offlineimaprc" -o -u basic >>"$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || fail "offlineimap exited $rc" || return 1
    ! grep -qE '^ERROR|Traceback' "$log" || fail "offlineimap reported an error: $(grep -m1 -E '^ERROR|Traceback' "$log")" || return 1
    im_maildir_state "$dir/mail" "$IM/offlineimap-maildir-1.txt" || return 1
    im_same_state "offlineimap's Maildir" "$IM/offlineimap-store-1.txt" "$IM/offlineimap-maildir-1.txt" || return 1
    # A local change goes back: J2 flagged and seen.
    f=$(im_md_file "$dir/mail/INBOX" "$J2") || fail "no single local file holds $J2" || return 1
    im_md_flags "$f" FS
    log="$dir/offlineimap-2.log"
    TRANSCRIPTS+=("$log")
    timeout 60 offlineimap -c "$dir/offlineimaprc" -o -u basic >"$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || fail "the second offlineimap run exited $rc" || return 1
    im_store_state "$JUDY" "$IM/offlineimap-store-2.txt" || return 1
    awk -F'\t' -v OFS='\t' -v s="$J2" '$1 == "msg" && $2 == "INBOX" && $3 == s { $4 = "FS" } 1' \
        "$IM/offlineimap-store-1.txt" >"$IM/offlineimap-expected-2.txt"
    im_same_state "the server (store) after offlineimap's second run" "$IM/offlineimap-expected-2.txt" "$IM/offlineimap-store-2.txt"
}

# ---------------------------------------------------------------- python (kim)

check_imap_cleartext() {
    im_py kim-cleartext cleartext "$IMAP_PORT" "$CERT" "$KIM" "$KIM_PW"
}

check_imap_idle() {
    local tok
    tok=$(token imap-k-idle)
    im_py kim-idle idle "$IMAPS_PORT" "$CERT" "$KIM" "$KIM_PW" "$MX_PORT" "$tok" || return 1
    expect_stored "$KIM" "$tok" 0
}

check_imap_compress() {
    python3 "$STORE_PY" blob "$DB" "$KIM" "$K_BIG" >"$IM/kim-big.eml" || fail "cannot read kim's message from the store" || return 1
    im_py kim-compress compress "$IMAPS_PORT" "$CERT" "$KIM" "$KIM_PW" "$K_BIG" "$IM/kim-big.eml"
}

imap_checks() {
    check "IMAP setup: 4 accounts; folders, flags, 20 messages via the MX and APPEND" check_imap_setup
    check "mbsync, imaps (cert verified), first sync: 9 folders, counts, flags -> Maildir S/F/R/D, bodies intact" check_imap_mbsync_first
    check "mbsync, changes on both sides (flags, delete, move, copy, new folders, expunge, delivery): converges" check_imap_mbsync_changes
    check "mbsync, third run: nothing to do (counters 0), Maildir and server (modseq) unchanged" check_imap_mbsync_nothing_to_do
    check "mbsync, imap + STARTTLS + LOGIN command: nothing to do, no change sent" check_imap_mbsync_starttls
    check "curl imaps: LIST shows INBOX and the 5 special-use folders (\\Drafts \\Sent ...)" check_imap_curl_list
    check "curl imaps: UID FETCH 1 BODY[] byte-exact with the stored message, \\Seen set" check_imap_curl_fetch_imaps
    check "curl imap --ssl-reqd (STARTTLS, AUTHENTICATE LOGIN): UID 2 (attachment) byte-exact" check_imap_curl_fetch_starttls
    check "curl imaps: SEARCH SUBJECT, APPEND (-T) stored byte-exact with APPENDUID" check_imap_curl_search_append
    check "refused: curl imap:// without TLS gets no login (LOGINDISABLED, exit 67)" check_imap_curl_cleartext_refused
    check "refused: curl imaps with a wrong password (NO [AUTHENTICATIONFAILED], exit 67)" check_imap_curl_wrong_password
    check "neomutt over imaps (headless, cert verified): copy, flag, delete, save to new folder, read" check_imap_neomutt
    check "offlineimap3 over imaps (sslcacertfile): Maildir = server; a local flag goes back" check_imap_offlineimap
    check "refused: LOGIN/AUTHENTICATE before STARTTLS (LOGINDISABLED, NO [PRIVACYREQUIRED]); no STARTTLS injection" check_imap_cleartext
    check "IDLE: EXISTS within 1 s of an MX delivery; FETCH FLAGS and EXPUNGE from another session" check_imap_idle
    check "COMPRESS=DEFLATE: raw zlib client, 300 KB BODY[] byte-exact" check_imap_compress
}
