# shellcheck shell=bash
# User agent interop checks: `pochta mail` against Dovecot and Postfix, the
# user agent being a client for any server, not only for pochta. Sourced by
# run.sh, which provides $BIN, $WORK, $HERE, `check`, `fail`, `say`,
# `setup_error`, `now_ms`, `fmt_ms` and `token`, and relay.sh (sourced before
# this file) `wait_until` and `add_transcript`. run.sh calls:
#
#   client_checks   the checks (run alone with ONLY=client)
#   client_cleanup  on exit: stops Dovecot and Postfix
#
# The servers, private instances on 127.0.0.3 (nothing else here uses that
# address: the other checks are on 127.0.0.1, Postfix of relay.sh sends from
# 127.0.0.2), everything under $WORK/client; the system's Dovecot and Postfix
# configurations are neither read nor changed, and no system service is used:
#
#   Dovecot   dovecot -c CONF, its own base_dir, state_dir and instance name:
#             IMAP (STARTTLS) and IMAPS, POP3 (STLS) and POP3S, ssl = required
#             with a self-signed certificate, users in a passwd-file, Maildirs
#             owned by nobody, SPECIAL-USE Sent/Drafts/Trash/Junk/Archive
#             created automatically, and an auth socket for Postfix's SASL.
#   Postfix   postfix -c DIR, its own config, queue and data directories: a
#             submission listener only (STARTTLS required, AUTH through
#             Dovecot, senders must be the login's address), delivering mail
#             for ua.test with virtual(8) into the Maildirs Dovecot reads;
#             every other domain is refused at RCPT.
#
# Users alice@ua.test and bob@ua.test. The user agent's accounts use both TLS
# modes: alice submission STARTTLS, IMAPS, POP3 STLS; bob submission
# STARTTLS, IMAP STARTTLS, POP3S. What the user agent did is checked with its
# own `list --json` and in the Maildirs on disk (client_tool.py).
#
# Dovecot and Postfix must be started as root; without root the checks are
# skipped (under CI=true that is a setup error). Needs: dovecot and doveadm
# (Debian packages dovecot-imapd dovecot-pop3d, which bring dovecot-core),
# postfix, openssl, python3, and the users nobody, dovecot and dovenull (the
# Dovecot packages create the last two).

# The check functions are called through `check`, cleanup through the trap:
# shellcheck disable=SC2317

CL_TOOL="$HERE/client_tool.py"

CL="$WORK/client"
CL_DC="$CL/dovecot"
CL_PF="$CL/postfix"
CL_MAIL="$CL/mail"
CL_UA="$CL/ua"
CL_CONF="$CL_UA/client.toml"
CL_FILES="$CL_UA/files"
CL_DC_CONF="$CL_DC/dovecot.conf"
CL_DC_LOG="$CL_DC/dovecot.log"
CL_PF_LOG="$CL_PF/postfix.log"

CL_HOST=127.0.0.3
CL_DOMAIN=ua.test
CL_ALICE=alice@ua.test
CL_BOB=bob@ua.test
# No ':' (the passwd-file's separator); bob's is UTF-8 (SASL PLAIN through
# Postfix to Dovecot, and IMAP/POP3 logins).
CL_ALICE_PW='alice dovecot pass #1 /+='
CL_BOB_PW='Боб-pässword 2'

CL_SUB_PORT="" CL_IMAP_PORT="" CL_IMAPS_PORT="" CL_POP3_PORT="" CL_POP3S_PORT=""
CL_DC_STARTED=0
CL_PF_STARTED=0
# 1 once both servers listen (the setup check passed).
CL_READY=0

# Shared between the checks (each says when an earlier one left it empty).
CL_SUBJECT="" # the Cyrillic subject of the first message, alice -> bob
CL_MID=""     # its Message-ID
CL_ID=""      # its id in bob's INBOX, then in Archive

# ---------------------------------------------------------------- hooks

client_cleanup() {
    cl_pf_stop
    cl_dc_stop
}

# ---------------------------------------------------------------- helpers

cl_port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$CL_HOST/$1" 2>/dev/null
}

# cl_pw ACCOUNT: the password of the account (a wrong one for "wrong").
cl_pw() {
    case $1 in
    alice | strict) printf '%s' "$CL_ALICE_PW" ;;
    bob) printf '%s' "$CL_BOB_PW" ;;
    *) printf 'not the password' ;;
    esac
}

# ua NAME ACCOUNT ARGS...: runs `pochta --client-config $CL_CONF mail
# [--account ACCOUNT] ARGS` (no --account when ACCOUNT is -) with the
# account's password in POCHTA_PASSWORD (UA_PW overrides it) and standard
# input from $UA_IN (default /dev/null). Its stdout is in $UA_OUT, its stderr
# in $UA_ERR, both with the command line and the exit status in $CL/NAME.txt,
# a transcript (with how long it took); the exit status in $UA_RC.
ua() {
    local name=$1 acc=$2 pw
    shift 2
    UA_OUT="$CL/ua-$name.out"
    UA_ERR="$CL/ua-$name.err"
    local txt="$CL/ua-$name.txt" accopt=()
    [ "$acc" = - ] || accopt=(--account "$acc")
    pw=${UA_PW-$(cl_pw "$acc")}
    add_transcript "$txt"
    local t0
    t0=$(now_ms)
    env -u POCHTA_CONFIG -u POCHTA_CLIENT_CONFIG -u EDITOR -u VISUAL \
        POCHTA_PASSWORD="$pw" XDG_CONFIG_HOME="$CL_UA/xdg-config" XDG_DATA_HOME="$CL_UA/xdg-data" \
        COLUMNS=200 NO_COLOR=1 \
        timeout 60 "$BIN" --client-config "$CL_CONF" mail "${accopt[@]}" "$@" \
        <"${UA_IN:-/dev/null}" >"$UA_OUT" 2>"$UA_ERR"
    UA_RC=$?
    local took=$(($(now_ms) - t0))
    {
        printf '$ pochta mail'
        printf ' %q' "${accopt[@]}" "$@"
        [ -z "${UA_IN:-}" ] || printf ' < %s' "$(basename "$UA_IN")"
        printf '\n'
        cat "$UA_OUT"
        [ -s "$UA_ERR" ] && { say "--- stderr"; cat "$UA_ERR"; }
        say "--- exit status $UA_RC after $(fmt_ms "$took")"
    } >"$txt"
}

# ua_ok NAME ACCOUNT ARGS...: ua, and fail unless it exited 0.
ua_ok() {
    ua "$@"
    [ "$UA_RC" -eq 0 ] ||
        fail "pochta mail ${*:3:2} exited $UA_RC: $(tr '\n' ' ' <"$UA_ERR" | cut -c1-300)"
}

# expect_ua REGEX WHAT: a line of the last command's stdout matches (grep -E).
expect_ua() {
    grep -Eq -- "$1" "$UA_OUT" || fail "pochta mail's output lacks $2 (/$1/)"
}

# expect_ua_fixed TEXT: the last command's stdout has TEXT.
expect_ua_fixed() {
    grep -qF -- "$1" "$UA_OUT" || fail "pochta mail's output lacks \"$1\""
}

# sent_mid: the Message-ID in the last `send`/`reply`'s "sent to … (Message-ID <…>)".
sent_mid() {
    sed -n 's/^sent to .* (Message-ID <\(.*\)>)$/\1/p' "$UA_OUT" | head -n 1
}

# md_find DIR MESSAGE-ID: the messages under the Maildir DIR (its new/ and
# cur/, and its Maildir++ folders') with MESSAGE-ID. grep, not python: it runs
# in wait_until's loops.
md_find() {
    local re
    # sed escapes every ERE metacharacter, which ${2//…/…} cannot do portably.
    # shellcheck disable=SC2001
    re="^message-id:[[:space:]]*<$(sed 's/[][\\.*^$+?(){}|]/\\&/g' <<<"$2")>"$'\r'"?\$"
    find "$1" -type f \( -path '*/new/*' -o -path '*/cur/*' \) -print0 2>/dev/null |
        xargs -0r grep -liE -- "$re"
}

# md_has DIR MESSAGE-ID: exactly one message under DIR has MESSAGE-ID.
md_has() {
    [ "$(md_find "$1" "$2" | wc -l)" = 1 ]
}

# md_file DIR MESSAGE-ID: its path.
md_file() {
    md_find "$1" "$2" | head -n 1
}

# md_count DIR: the messages in the Maildir folder DIR (new/ and cur/).
md_count() {
    find "$1/new" "$1/cur" -maxdepth 1 -type f 2>/dev/null | wc -l
}

# show NAME FILE: client_tool.py show FILE (the headers decoded and raw, the
# attachments, the text) into $CL/NAME.show = $SHOWN, a transcript.
show() {
    SHOWN="$CL/$1.show"
    add_transcript "$SHOWN"
    python3 "$CL_TOOL" show "$2" >"$SHOWN" 2>&1 || fail "client_tool.py show $2: $(tail -n 1 "$SHOWN")"
}

# hdr NAME: the values of header NAME in $SHOWN, decoded, one a line.
hdr() {
    sed -n "s/^header $1: //p" "$SHOWN"
}

# shown LINE: $SHOWN has LINE.
shown() {
    grep -qxF -- "$1" "$SHOWN"
}

# pick NAME TEXT: "ID FOLDER FLAGS" of the entries of `list --json` (the
# stdout of ua NAME) whose subject contains TEXT.
pick() {
    python3 "$CL_TOOL" pick "$CL/ua-$1.out" "$2"
}

# listed NAME ACCOUNT TEXT ARGS...: runs `list --json ARGS` for ACCOUNT and
# sets PICKED to the entries whose subject contains TEXT ("ID FOLDER FLAGS").
listed() {
    local name=$1 acc=$2 text=$3
    shift 3
    ua_ok "$name" "$acc" list --json "$@" || return 1
    PICKED=$(pick "$name" "$text" 2>&1) || fail "client_tool.py pick: $PICKED"
}

# picked_one WHAT: PICKED is exactly one entry; its id in PICKED_ID, its
# flags in PICKED_FLAGS.
picked_one() {
    [ -n "$PICKED" ] || fail "$1 is not listed" || return 1
    [ "$(wc -l <<<"$PICKED")" = 1 ] || fail "$1 is listed more than once: $PICKED" || return 1
    PICKED_ID=$(cut -f1 <<<"$PICKED")
    PICKED_FLAGS=$(cut -f3 <<<"$PICKED")
}

# has_flag FLAG: PICKED_FLAGS has FLAG.
has_flag() {
    [[ " $PICKED_FLAGS " == *" $1 "* ]]
}

# cl_send NAME ACCOUNT TO SUBJECT: sends a short text message (body: the
# subject) and waits for it in TO's Maildir; its Message-ID in SENT_MID.
cl_send() {
    local name=$1 acc=$2 to=$3 subject=$4
    printf 'Body of "%s".\n' "$subject" >"$CL_FILES/$name.txt"
    UA_IN="$CL_FILES/$name.txt" ua_ok "$name" "$acc" send --to "$to" --subject "$subject" || return 1
    SENT_MID=$(sent_mid)
    [ -n "$SENT_MID" ] || fail "send did not print the Message-ID" || return 1
    wait_until 15 md_has "$CL_MAIL/${to%@*}" "$SENT_MID" ||
        fail "the message $SENT_MID is not in ${to%@*}'s Maildir within 15 s"
}

# md_flags FILE: the flags in a Maildir file name (after ":2,").
md_flags() {
    local base
    base=$(basename "$1")
    [[ $base == *:2,* ]] && printf '%s' "${base##*:2,}"
}

# ---------------------------------------------------------------- Dovecot

cl_free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind((sys.argv[1], 0))
print(*[s.getsockname()[1] for s in socks])
' "$CL_HOST"
}

cl_write_dovecot() {
    local uid=$1 gid=$2 u
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.ua.test \
        -addext "subjectAltName=DNS:mail.ua.test,IP:$CL_HOST" \
        -keyout "$CL_DC/key.pem" -out "$CL_DC/cert.pem" >"$CL_DC/openssl.txt" 2>&1 ||
        fail "openssl req failed: $(tail -n 1 "$CL_DC/openssl.txt")" || return 1
    chmod 644 "$CL_DC/cert.pem" && chmod 640 "$CL_DC/key.pem" || return 1
    : >"$CL_DC/users"
    for u in "$CL_ALICE:$CL_ALICE_PW" "$CL_BOB:$CL_BOB_PW"; do
        # user:password:uid:gid:gecos:home:shell
        printf '%s:{PLAIN}%s:%s:%s::%s::\n' "${u%%:*}" "${u#*:}" "$uid" "$gid" "$CL_MAIL/${u%%@*}" >>"$CL_DC/users"
    done
    # Read by the auth process (user dovecot).
    chgrp dovecot "$CL_DC/users" && chmod 640 "$CL_DC/users"
    cat >"$CL_DC_CONF" <<EOF
# Written by tests/interop/client.sh: a private Dovecot instance on $CL_HOST.
base_dir = $CL_DC/run
state_dir = $CL_DC/state
instance_name = pochta-interop-client-$$
protocols = imap pop3
listen = $CL_HOST
log_path = $CL_DC_LOG
info_log_path = $CL_DC_LOG
auth_verbose = yes

ssl = required
ssl_cert = <$CL_DC/cert.pem
ssl_key = <$CL_DC/key.pem
disable_plaintext_auth = yes
login_trusted_networks =
auth_mechanisms = plain login

mail_location = maildir:$CL_MAIL/%n
first_valid_uid = 1
first_valid_gid = 1
default_login_user = dovenull
default_internal_user = dovecot
pop3_uidl_format = %08Xu%08Xv
mailbox_idle_check_interval = 1 secs

namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox Archive {
    special_use = \\Archive
    auto = subscribe
  }
}

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $CL_DC/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $CL_DC/users
}

service imap-login {
  inet_listener imap {
    address = $CL_HOST
    port = $CL_IMAP_PORT
  }
  inet_listener imaps {
    address = $CL_HOST
    port = $CL_IMAPS_PORT
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = $CL_HOST
    port = $CL_POP3_PORT
  }
  inet_listener pop3s {
    address = $CL_HOST
    port = $CL_POP3S_PORT
    ssl = yes
  }
}
# Postfix's smtpd (user postfix) asks this socket to check AUTH.
service auth {
  unix_listener $CL_DC/auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# The mail processes run as nobody, which is not in group dovecot.
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
EOF
}

cl_dc_start() {
    local out="$CL_DC/start.txt"
    add_transcript "$out"
    add_transcript "$CL_DC_LOG"
    {
        say "\$ dovecot -c $CL_DC_CONF"
        dovecot -c "$CL_DC_CONF" </dev/null 2>&1
    } >"$out"
    local rc=$?
    CL_DC_STARTED=1
    [ "$rc" -eq 0 ] || fail "dovecot exited $rc: $(grep -m1 -iE 'fatal|error' "$out")" || return 1
    wait_until 15 cl_ports_open "$CL_IMAP_PORT" "$CL_IMAPS_PORT" "$CL_POP3_PORT" "$CL_POP3S_PORT" ||
        fail "Dovecot does not listen on $CL_HOST:{$CL_IMAP_PORT,$CL_IMAPS_PORT,$CL_POP3_PORT,$CL_POP3S_PORT} within 15 s"
}

cl_ports_open() {
    local p
    for p in "$@"; do
        cl_port_open "$p" || return 1
    done
}

# Stops our Dovecot only: through its own config, then by the pid it wrote.
cl_dc_stop() {
    [ "$CL_DC_STARTED" = 1 ] || return 0
    CL_DC_STARTED=0
    local pid="" i
    pid=$(tr -dc 0-9 2>/dev/null <"$CL_DC/run/master.pid")
    doveadm -c "$CL_DC_CONF" stop </dev/null >/dev/null 2>&1
    [ -n "$pid" ] || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "Dovecot (master pid $pid) did not stop within 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null
}

# ---------------------------------------------------------------- Postfix

cl_write_postfix() {
    local uid=$1 gid=$2
    mkdir -p "$CL_PF/conf" "$CL_PF/spool" "$CL_PF/data" && chown postfix "$CL_PF/data" || return 1
    cat >"$CL_PF/conf/main.cf" <<EOF
# Written by tests/interop/client.sh: a private Postfix instance on $CL_HOST.
compatibility_level = 3.6
config_directory = $CL_PF/conf
queue_directory = $CL_PF/spool
data_directory = $CL_PF/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $CL_PF_LOG
maillog_file_prefixes = $CL_PF
myhostname = mail.ua.test
mydomain = ua.test
myorigin = ua.test
mydestination =
# Postfix accepts only an interface's own address here (lo has 127.0.0.1/8);
# the submission listener in master.cf names $CL_HOST itself.
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks =
relay_domains =
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
default_transport = error:this test instance delivers to $CL_DOMAIN only
biff = no

# Mail for $CL_DOMAIN: into the Maildirs Dovecot reads, as nobody.
virtual_mailbox_domains = $CL_DOMAIN
virtual_mailbox_base = $CL_MAIL
virtual_mailbox_maps = inline:{ $CL_ALICE=alice/, $CL_BOB=bob/ }
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 1

smtpd_tls_cert_file = $CL_DC/cert.pem
smtpd_tls_key_file = $CL_DC/key.pem
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = $CL_DC/auth-postfix
smtpd_sender_login_maps = inline:{ $CL_ALICE=$CL_ALICE, $CL_BOB=$CL_BOB }
EOF
    {
        echo "$CL_HOST:$CL_SUB_PORT inet n - n - - smtpd"
        local o
        for o in syslog_name=postfix/submission smtpd_tls_security_level=encrypt \
            smtpd_sasl_auth_enable=yes smtpd_tls_auth_only=yes smtpd_client_restrictions= \
            smtpd_helo_restrictions= \
            smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject \
            smtpd_relay_restrictions=permit_sasl_authenticated,reject \
            smtpd_recipient_restrictions=reject_unauth_destination; do
            echo "  -o $o"
        done
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
    } >"$CL_PF/conf/master.cf"
}

cl_pf_start() {
    local out="$CL_PF/start.txt"
    add_transcript "$out"
    add_transcript "$CL_PF_LOG"
    {
        say "\$ postfix -c $CL_PF/conf start"
        postfix -c "$CL_PF/conf" start </dev/null 2>&1
    } >"$out"
    local rc=$?
    CL_PF_STARTED=1
    if [ "$rc" -ne 0 ]; then
        # Postfix tells why on a terminal only; `check` does not detach.
        say "\$ postfix -c $CL_PF/conf check (under script(1))" >>"$out"
        script -qec "postfix -c '$CL_PF/conf' check" /dev/null </dev/null >>"$out" 2>&1
        fail "postfix start exited $rc: $(grep -m1 -E 'fatal|error' "$out")"
        return 1
    fi
    wait_until 15 cl_port_open "$CL_SUB_PORT" ||
        fail "Postfix does not listen on $CL_HOST:$CL_SUB_PORT within 15 s"
}

cl_pf_stop() {
    [ "$CL_PF_STARTED" = 1 ] || return 0
    CL_PF_STARTED=0
    local pid="" i
    pid=$(tr -dc 0-9 2>/dev/null <"$CL_PF/spool/pid/master.pid")
    postfix -c "$CL_PF/conf" stop </dev/null >/dev/null 2>&1
    [ -n "$pid" ] || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "Postfix (master pid $pid) did not stop within 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null
}

# pf_logged REGEX: Postfix's log has a line matching REGEX (grep -E).
cl_pf_logged() {
    grep -Eq -- "$1" "$CL_PF_LOG"
}

# ---------------------------------------------------------------- checks

check_client_setup() {
    local tool uid gid
    for tool in dovecot doveadm postfix openssl; do
        command -v "$tool" >/dev/null ||
            fail "$tool is not installed (Debian packages dovecot-imapd dovecot-pop3d postfix openssl)" || return 1
    done
    for tool in dovecot dovenull postfix; do
        id "$tool" >/dev/null 2>&1 || fail "no system user $tool (made by the Dovecot/Postfix packages)" || return 1
    done
    uid=$(id -u nobody) && gid=$(id -g nobody) || fail "no user nobody" || return 1
    # Postfix's daemons, Dovecot's processes and the delivery agent (user
    # nobody) must reach their directories under the work directory (0700).
    chmod 711 "$WORK" || fail "chmod $WORK failed" || return 1
    mkdir -p "$CL_DC" "$CL_PF" "$CL_MAIL" "$CL_UA" "$CL_FILES" && chmod 711 "$CL" &&
        chown "$uid:$gid" "$CL_MAIL" && chmod 700 "$CL_MAIL" || fail "cannot create $CL" || return 1
    read -r CL_SUB_PORT CL_IMAP_PORT CL_IMAPS_PORT CL_POP3_PORT CL_POP3S_PORT < <(cl_free_ports) &&
        [ -n "$CL_POP3S_PORT" ] || fail "cannot pick free ports on $CL_HOST" || return 1
    cl_write_dovecot "$uid" "$gid" || return 1
    cl_write_postfix "$uid" "$gid" || fail "cannot write Postfix's configuration" || return 1
    cl_dc_start || return 1
    cl_pf_start || return 1
    CL_READY=1
    say "      Dovecot $(dovecot --version | cut -d' ' -f1): imap $CL_HOST:$CL_IMAP_PORT, imaps :$CL_IMAPS_PORT, pop3 :$CL_POP3_PORT, pop3s :$CL_POP3S_PORT"
    say "      Postfix $(postconf -d -h mail_version 2>/dev/null): submission $CL_HOST:$CL_SUB_PORT"
}

check_client_accounts() {
    ua_ok add-alice - account add alice --email "$CL_ALICE" --name "Алиса" \
        --smtp "$CL_HOST:$CL_SUB_PORT" --imap "$CL_HOST:$CL_IMAPS_PORT" --security-imap tls \
        --pop3 "$CL_HOST:$CL_POP3_PORT" --maildir "$CL_UA/local/alice" --accept-invalid-certs || return 1
    expect_ua "^added account alice: .*smtp $CL_HOST:$CL_SUB_PORT starttls, imap $CL_HOST:$CL_IMAPS_PORT tls, pop3 $CL_HOST:$CL_POP3_PORT starttls" \
        "alice's servers (submission STARTTLS, IMAPS, POP3 STLS)" || return 1
    expect_ua '^it is the default account$' "that alice is the default account" || return 1
    ua_ok add-bob - account add bob --email "$CL_BOB" --name "Боб" \
        --smtp "$CL_HOST:$CL_SUB_PORT" --imap "$CL_HOST:$CL_IMAP_PORT" \
        --pop3 "$CL_HOST:$CL_POP3S_PORT" --security-pop3 tls \
        --maildir "$CL_UA/local/bob" --accept-invalid-certs || return 1
    expect_ua "imap $CL_HOST:$CL_IMAP_PORT starttls, pop3 $CL_HOST:$CL_POP3S_PORT tls" \
        "bob's servers (IMAP STARTTLS, POP3S)" || return 1
    ua_ok account-list - account list || return 1
    expect_ua '^\* alice ' "alice marked default" || return 1
    expect_ua '^  bob ' "bob" || return 1
    add_transcript "$CL_CONF"
    ! grep -qF -e "$CL_ALICE_PW" -e "$CL_BOB_PW" "$CL_CONF" || fail "a password is in $CL_CONF"
}

# cl_folders NAME ACCOUNT: `folders --json` lists the roles Dovecot's SPECIAL-USE gives.
cl_folders() {
    ua_ok "$1" "$2" folders --json || return 1
    local got
    got=$(python3 -c '
import json, sys
print(" ".join(sorted("%s=%s" % (f["name"], f["role"]) for f in json.load(open(sys.argv[1])) if f["role"])))
' "$UA_OUT" 2>&1) || fail "folders --json is not a JSON list of folders: $got" || return 1
    [ "$got" = "Archive=archive Drafts=drafts INBOX=inbox Junk=junk Sent=sent Trash=trash" ] ||
        fail "$2's folders and roles are: ${got:-none}"
}

check_client_folders() {
    cl_folders folders-alice alice || return 1
    cl_folders folders-bob bob
}

check_client_send() {
    local tok pdf="$CL_FILES/отчёт.pdf" body="$CL_FILES/send-body.txt" f
    tok=$(token ua-send)
    CL_SUBJECT="Привет, Боб — отчёт $tok"
    printf '%%PDF-1.4\n\000\001\002binary\377 %s\n' "$tok" >"$pdf"
    printf 'Здравствуй, Боб!\nВторая строка.\n' >"$body"
    UA_IN=$body ua_ok send alice send --to "Боб <$CL_BOB>" --subject "$CL_SUBJECT" --attach "$pdf" || return 1
    expect_ua "^sent to $CL_BOB \\(Message-ID <" "sent to $CL_BOB" || return 1
    CL_MID=$(sent_mid)
    wait_until 15 md_has "$CL_MAIL/bob" "$CL_MID" ||
        fail "no message with Message-ID <$CL_MID> in bob's Maildir within 15 s" || return 1
    f=$(md_file "$CL_MAIL/bob" "$CL_MID")
    add_transcript "$f"
    show send "$f" || return 1
    grep -Eq '^raw Subject: =\?[uU][tT][fF]-8\?' "$SHOWN" || fail "the Subject on disk is not RFC 2047 encoded" || return 1
    shown "header Subject: $CL_SUBJECT" || fail "the Subject on disk decodes to \"$(hdr Subject)\"" || return 1
    shown "header From: Алиса <$CL_ALICE>" || fail "From on disk is \"$(hdr From)\"" || return 1
    shown "header To: Боб <$CL_BOB>" || fail "To on disk is \"$(hdr To)\"" || return 1
    shown "text Здравствуй, Боб!" && shown "text Вторая строка." || fail "the text on disk is not the body sent" || return 1
    shown "attachment отчёт.pdf	application/pdf	$(wc -c <"$pdf")" ||
        fail "the attachment on disk is not отчёт.pdf, application/pdf, $(wc -c <"$pdf") bytes" || return 1
    cl_pf_logged "sasl_method=PLAIN, sasl_username=$CL_ALICE" ||
        fail "Postfix's log shows no AUTH PLAIN as $CL_ALICE" || return 1
    cl_pf_logged "to=<$CL_BOB>, relay=virtual, .*status=sent \(delivered to maildir\)" ||
        fail "Postfix's log shows no virtual delivery to $CL_BOB" || return 1
    # Over IMAP (STARTTLS), as bob: listed, found by subject (ASCII and Cyrillic).
    listed list-bob bob "$tok" || return 1
    picked_one "the message" || return 1
    CL_ID=$PICKED_ID
    [[ $CL_ID == INBOX/* ]] || fail "its id is $CL_ID, not INBOX/UID" || return 1
    python3 "$CL_TOOL" pick "$UA_OUT" "$CL_SUBJECT" | grep -q . ||
        fail "list does not show the subject decoded" || return 1
    ua_ok search-ascii bob search "subject:$tok" --json || return 1
    [ "$(pick search-ascii "$tok" | cut -f1)" = "$CL_ID" ] || fail "search subject:$tok does not find $CL_ID" || return 1
    ua_ok search-cyrillic bob search "subject:отчёт" "from:alice" --json || return 1
    [ "$(pick search-cyrillic "$tok" | cut -f1)" = "$CL_ID" ] ||
        fail "search subject:отчёт from:alice does not find $CL_ID" || return 1
    ua_ok search-none bob search "subject:nothing-$tok" --json || return 1
    [ "$(python3 "$CL_TOOL" count "$UA_OUT")" = 0 ] || fail "search for a subject nobody used finds something"
}

check_client_read() {
    [ -n "$CL_ID" ] || fail "no message (see the send check)" || return 1
    ua_ok read bob read "$CL_ID" || return 1
    expect_ua_fixed "Subject: $CL_SUBJECT" || return 1
    expect_ua_fixed "From: Алиса <$CL_ALICE>" || return 1
    expect_ua_fixed "To: Боб <$CL_BOB>" || return 1
    expect_ua '^Date: ' "Date" || return 1
    expect_ua_fixed "Здравствуй, Боб!" || return 1
    expect_ua '^Attachments:$' "the attachments heading" || return 1
    expect_ua '^  \[1\] отчёт\.pdf  application/pdf  ' "the attachment listed (name, type, size)" || return 1
    # read marked it \Seen: in the listing and in the file name on disk.
    listed list-read bob "$CL_SUBJECT" || return 1
    picked_one "the message" || return 1
    has_flag '\Seen' || fail "not \\Seen after read: flags $PICKED_FLAGS" || return 1
    local f
    f=$(md_file "$CL_MAIL/bob" "$CL_MID")
    [[ $(md_flags "$f") == *S* ]] || fail "the file on disk has no S flag: $(basename "$f")" || return 1
    local dir="$CL_UA/saved"
    ua_ok save bob save "$CL_ID" --attachments "$dir" || return 1
    cmp -s "$CL_FILES/отчёт.pdf" "$dir/отчёт.pdf" || fail "save did not write отчёт.pdf byte for byte"
}

check_client_sent_copy() {
    [ -n "$CL_MID" ] || fail "no message (see the send check)" || return 1
    listed sent-alice alice "$CL_SUBJECT" --folder Sent || return 1
    picked_one "the message in alice's Sent" || return 1
    has_flag '\Seen' || fail "the Sent copy is not \\Seen: flags $PICKED_FLAGS" || return 1
    md_has "$CL_MAIL/alice/.Sent" "$CL_MID" || fail "no file with <$CL_MID> in alice's .Sent/ on disk"
}

check_client_flag() {
    [ -n "$CL_ID" ] || fail "no message (see the send check)" || return 1
    ua_ok flag bob flag "$CL_ID" +flagged || return 1
    listed list-flagged bob "$CL_SUBJECT" || return 1
    picked_one "the message" || return 1
    has_flag '\Flagged' || fail "not \\Flagged after flag +flagged: flags $PICKED_FLAGS" || return 1
    ua_ok search-flagged bob search is:flagged --json || return 1
    [ "$(pick search-flagged "" | cut -f1)" = "$CL_ID" ] || fail "search is:flagged does not find only $CL_ID" || return 1
    local f
    f=$(md_file "$CL_MAIL/bob" "$CL_MID")
    [[ $(md_flags "$f") == *F* ]] || fail "the file on disk has no F flag: $(basename "$f")"
}

check_client_move() {
    [ -n "$CL_ID" ] || fail "no message (see the send check)" || return 1
    ua_ok move bob move "$CL_ID" Archive || return 1
    expect_ua '^moved 1 message\(s\) to Archive; new id\(s\): Archive/[0-9]+$' "the new id in Archive" || return 1
    local new
    new=$(sed -n 's/.*new id(s): //p' "$UA_OUT")
    listed list-after-move bob "$CL_SUBJECT" || return 1
    [ -z "$PICKED" ] || fail "still in INBOX after the move: $PICKED" || return 1
    listed list-archive bob "$CL_SUBJECT" --folder Archive || return 1
    picked_one "the message in Archive" || return 1
    [ "$PICKED_ID" = "$new" ] || fail "listed in Archive as $PICKED_ID, move said $new" || return 1
    has_flag '\Flagged' && has_flag '\Seen' || fail "flags lost in the move: $PICKED_FLAGS" || return 1
    CL_ID=$new
    md_has "$CL_MAIL/bob/.Archive" "$CL_MID" || fail "no file with <$CL_MID> in bob's .Archive/ on disk" || return 1
    [ "$(md_count "$CL_MAIL/bob")" = 0 ] || fail "bob's INBOX on disk is not empty after the move"
}

check_client_delete() {
    local tok subject id
    tok=$(token ua-delete)
    subject="to be deleted $tok"
    cl_send delete-send alice "$CL_BOB" "$subject" || return 1
    local mid=$SENT_MID
    listed list-delete bob "$tok" || return 1
    picked_one "the message to delete" || return 1
    id=$PICKED_ID
    ua_ok delete bob delete "$id" || return 1
    expect_ua '^moved 1 message\(s\) to Trash$' "moved to Trash" || return 1
    listed list-after-delete bob "$tok" || return 1
    [ -z "$PICKED" ] || fail "still in INBOX after delete: $PICKED" || return 1
    listed list-trash bob "$tok" --folder Trash || return 1
    picked_one "the message in Trash" || return 1
    md_has "$CL_MAIL/bob/.Trash" "$mid" || fail "no file with <$mid> in bob's .Trash/ on disk" || return 1
    [ "$(md_count "$CL_MAIL/bob")" = 0 ] || fail "bob's INBOX on disk is not empty after delete" || return 1
    # Now for good.
    ua_ok expunge bob delete "$PICKED_ID" --expunge || return 1
    expect_ua '^deleted 1 message\(s\) for good$' "deleted for good" || return 1
    listed list-after-expunge bob "$tok" --folder Trash || return 1
    [ -z "$PICKED" ] || fail "still in Trash after delete --expunge: $PICKED" || return 1
    [ -z "$(md_find "$CL_MAIL/bob" "$mid")" ] || fail "a file with <$mid> is still in bob's Maildir: $(md_find "$CL_MAIL/bob" "$mid")"
}

check_client_reply() {
    [ -n "$CL_ID" ] || fail "no message (see the send and move checks)" || return 1
    local body="$CL_FILES/reply-body.txt" mid f v
    printf 'Спасибо, получил.\n' >"$body"
    UA_IN=$body ua_ok reply bob reply "$CL_ID" || return 1
    expect_ua "^sent to $CL_ALICE \\(Message-ID <" "sent to $CL_ALICE" || return 1
    mid=$(sent_mid)
    wait_until 15 md_has "$CL_MAIL/alice" "$mid" ||
        fail "no reply with Message-ID <$mid> in alice's Maildir within 15 s" || return 1
    f=$(md_file "$CL_MAIL/alice" "$mid")
    add_transcript "$f"
    show reply "$f" || return 1
    v=$(hdr In-Reply-To)
    [ "$v" = "<$CL_MID>" ] || fail "In-Reply-To on disk is \"$v\", expected <$CL_MID>" || return 1
    v=$(hdr References)
    [[ " $v " == *" <$CL_MID> "* ]] || fail "References on disk is \"$v\", lacking <$CL_MID>" || return 1
    v=$(hdr Subject)
    [ "$v" = "Re: $CL_SUBJECT" ] || fail "the reply's Subject is \"$v\"" || return 1
    shown "text Спасибо, получил." || fail "the reply lacks the text given on stdin" || return 1
    shown "text > Здравствуй, Боб!" || fail "the reply does not quote the original" || return 1
    # The original is \Answered; bob's Sent has the reply.
    listed list-answered bob "$CL_SUBJECT" --folder Archive || return 1
    picked_one "the original in Archive" || return 1
    has_flag '\Answered' || fail "the original is not \\Answered: flags $PICKED_FLAGS" || return 1
    md_has "$CL_MAIL/bob/.Sent" "$mid" || fail "no copy of the reply in bob's .Sent/ on disk"
}

check_client_pop3_keep() {
    local tok
    tok=$(token ua-pop3)
    # alice's INBOX: the reply, and one more.
    cl_send pop3-send-1 bob "$CL_ALICE" "for POP3 $tok" || return 1
    local n
    n=$(md_count "$CL_MAIL/alice")
    [ "$n" = 2 ] || fail "alice's INBOX on disk has $n messages, expected 2 (the reply and one)" || return 1
    ua_ok fetch-keep-1 alice fetch --keep || return 1
    expect_ua "^fetched 2 new message\\(s\\) \\(.*\\) into $CL_UA/local/alice$" "fetched 2 new message(s)" || return 1
    ua_ok fetch-keep-2 alice fetch --keep || return 1
    expect_ua '^fetched 0 new message\(s\) \(.*\), skipped 2 already fetched into ' "fetched 0 new, skipped 2" || return 1
    n=$(md_count "$CL_UA/local/alice")
    [ "$n" = 2 ] || fail "the local Maildir has $n messages, expected 2" || return 1
    n=$(md_count "$CL_MAIL/alice")
    [ "$n" = 2 ] || fail "alice's INBOX on the server has $n messages after fetch --keep, expected 2"
}

check_client_pop3_fetch() {
    local tok n
    tok=$(token ua-pop3-2)
    cl_send pop3-send-2 bob "$CL_ALICE" "for POP3, after the keeps $tok" || return 1
    ua_ok fetch alice fetch || return 1
    expect_ua '^fetched 1 new message\(s\) \(.*\), skipped 2 already fetched, deleted 3 on the server into ' \
        "fetched 1 new, skipped 2, deleted 3" || return 1
    # Dovecot's INBOX is empty on disk; only the local Maildir has them.
    n=$(md_count "$CL_MAIL/alice")
    [ "$n" = 0 ] || fail "alice's INBOX on the server still has $n message(s) in new/ and cur/" || return 1
    n=$(md_count "$CL_UA/local/alice")
    [ "$n" = 3 ] || fail "the local Maildir has $n messages, expected 3"
}

check_client_local_list() {
    ua_ok list-local alice --via local list --json || return 1
    local n
    n=$(python3 "$CL_TOOL" count "$UA_OUT")
    [ "$n" = 3 ] || fail "list --via local shows $n messages, expected 3" || return 1
    [ -n "$(pick list-local "Re: $CL_SUBJECT")" ] || fail "list --via local does not show \"Re: $CL_SUBJECT\"" || return 1
    [ -n "$(pick list-local "for POP3, after the keeps")" ] || fail "list --via local does not show the last message" || return 1
    local id
    id=$(pick list-local "Re: $CL_SUBJECT" | cut -f1)
    ua_ok read-local alice --via local read "$id" || return 1
    expect_ua_fixed "Subject: Re: $CL_SUBJECT"
}

check_client_pop3s() {
    local tok n
    tok=$(token ua-pop3s)
    cl_send pop3s-send alice "$CL_BOB" "for POP3S $tok" || return 1
    # The account as fetch's argument, not --account.
    UA_PW=$CL_BOB_PW ua_ok fetch-bob - fetch bob || return 1
    expect_ua '^fetched 1 new message\(s\) \(.*\), deleted 1 on the server into ' "fetched 1, deleted 1" || return 1
    n=$(md_count "$CL_MAIL/bob")
    [ "$n" = 0 ] || fail "bob's INBOX on the server still has $n message(s)" || return 1
    [ -n "$(md_find "$CL_UA/local/bob" "$SENT_MID")" ] || fail "the message is not in bob's local Maildir"
}

check_client_errors() {
    # Postfix refuses other domains at RCPT: the reply is shown, exit status 1.
    printf 'x\n' >"$CL_FILES/relay.txt"
    UA_IN="$CL_FILES/relay.txt" ua send-relay alice send --to someone@elsewhere.example --subject "relay?"
    [ "$UA_RC" = 1 ] || fail "send to another domain exited $UA_RC, expected 1" || return 1
    grep -q 'someone@elsewhere.example' "$UA_ERR" && grep -q 'Relay access denied' "$UA_ERR" ||
        fail "the error does not name the recipient with Postfix's reply: $(head -c 300 "$UA_ERR")" || return 1
    # Without --accept-invalid-certs the self-signed certificate is refused, with the hint.
    ua_ok add-strict - account add strict --email "$CL_ALICE" --imap "$CL_HOST:$CL_IMAPS_PORT" --security-imap tls || return 1
    ua list-strict strict list
    [ "$UA_RC" = 1 ] || fail "list with a self-signed certificate exited $UA_RC, expected 1" || return 1
    grep -q 'certificate' "$UA_ERR" && grep -q -- '--accept-invalid-certs' "$UA_ERR" ||
        fail "the error does not mention the certificate and --accept-invalid-certs: $(head -c 300 "$UA_ERR")" || return 1
    ua_ok del-strict - account del strict || return 1
    # A wrong password (last: Dovecot delays what follows a failed login).
    UA_PW="not the password" ua list-wrong-pw bob list
    [ "$UA_RC" = 1 ] || fail "list with a wrong password exited $UA_RC, expected 1" || return 1
    grep -q "refused the login for $CL_BOB" "$UA_ERR" ||
        fail "the error does not say the login was refused: $(head -c 300 "$UA_ERR")"
}

client_checks() {
    if [ "$(id -u)" -ne 0 ]; then
        [ "${CI:-}" = true ] && setup_error "the user agent checks start Dovecot and Postfix, which needs root"
        printf 'SKIP  %s  (%s)\n' "user agent against Dovecot + Postfix" "needs root"
        return 0
    fi
    check "ua setup: private Dovecot (IMAP/IMAPS/POP3/POP3S, TLS required) and Postfix (submission, SASL via Dovecot) on $CL_HOST" check_client_setup
    [ "$CL_READY" = 1 ] || return 0
    check "ua account add: alice (STARTTLS/IMAPS/STLS) and bob (STARTTLS/IMAP STARTTLS/POP3S), account list; no password in the file" check_client_accounts
    check "ua folders --json: Dovecot's SPECIAL-USE roles over IMAPS and IMAP STARTTLS" check_client_folders
    check "ua send: Cyrillic subject + attachment through Postfix (STARTTLS, AUTH via Dovecot) -> bob's Maildir; list/search over IMAP" check_client_send
    check "ua read: subject, From/To decoded, text, attachment listed; marked \\Seen (list and Maildir S); save byte for byte" check_client_read
    check "ua send: the copy in alice's Sent (IMAP APPEND), \\Seen" check_client_sent_copy
    check "ua flag +flagged: list --json, search is:flagged, Maildir F" check_client_flag
    check "ua move to Archive: new id, flags kept, gone from INBOX (list and Maildir)" check_client_move
    check "ua delete: to Trash, then delete --expunge: gone (list and Maildir)" check_client_delete
    check "ua reply: In-Reply-To/References on disk, Re: subject, quoted; original \\Answered, copy in Sent" check_client_reply
    check "ua fetch --keep (POP3 STLS) twice: 2 fetched, then 0 (UIDL); the server keeps them" check_client_pop3_keep
    check "ua fetch (POP3 STLS): 1 new, 3 deleted; Dovecot's INBOX new/ and cur/ empty" check_client_pop3_fetch
    check "ua list/read --via local: the fetched Maildir" check_client_local_list
    check "ua fetch (POP3S): bob's mail moved to the local Maildir" check_client_pop3s
    check "ua errors: relay refused by Postfix, self-signed certificate (hint), wrong password; exit status 1" check_client_errors
}
