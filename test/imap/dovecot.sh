#!/bin/sh
# Runs the IMAP conformance suite (or any command) against a private Debian Dovecot.
# Usage: test/imap/dovecot.sh [COMMAND...]   (default: node scripts/run-tests.mjs test/imap)
# Needs the Debian package dovecot-imapd. Everything lives in one temp dir (config, logs,
# sockets, sdbox mail storage, passwd-file) which is removed afterwards; Dovecot listens on
# 127.0.0.1:$IMAP_PORT (default: a free port) without TLS, with users user1/pass1 and
# user2/pass2 (sdbox rather than maildir: Dovecot's maildir refuses RENAME INBOX). As root,
# mail is owned by nobody; otherwise everything runs as the caller.
set -eu
cd "$(dirname "$0")/../.."
DIR=$(mktemp -d /tmp/quill-dovecot.XXXXXX)
PORT=${IMAP_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
mkdir -p "$DIR/run" "$DIR/state" "$DIR/mail"
chmod 755 "$DIR"

if [ "$(id -u)" = 0 ]; then
  MAIL_USER=nobody; MAIL_GROUP=$(id -gn nobody)
  LOGIN_USER=dovenull; INTERNAL_USER=dovecot; INTERNAL_GROUP=dovecot
  chown nobody "$DIR/mail"
else
  MAIL_USER=$(id -un); MAIL_GROUP=$(id -gn)
  LOGIN_USER=$MAIL_USER; INTERNAL_USER=$MAIL_USER; INTERNAL_GROUP=$MAIL_GROUP
fi

cat > "$DIR/passwd" <<USERS
user1:{PLAIN}pass1::::::
user2:{PLAIN}pass2::::::
USERS

cat > "$DIR/dovecot.conf" <<CONF
protocols = imap
listen = 127.0.0.1
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
info_log_path = $DIR/dovecot.log
default_login_user = $LOGIN_USER
default_internal_user = $INTERNAL_USER
default_internal_group = $INTERNAL_GROUP
first_valid_uid = 1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = sdbox:$DIR/mail/%u
mail_uid = $MAIL_USER
mail_gid = $MAIL_GROUP
mail_plugins = quota
mail_max_userip_connections = 500
# IDLE falls back to polling when inotify runs out (other Dovecots on the machine): poll often.
mailbox_idle_check_interval = 1 secs
namespace inbox {
  inbox = yes
  separator = /
  prefix =
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \\Sent
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
  args = scheme=PLAIN $DIR/passwd
}
userdb {
  driver = static
  args = home=$DIR/mail/%u
}
# No chroot: it needs root, and this Dovecot only serves the test run.
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
# No growing delay after the suite's deliberate failed logins (Dovecot's documented switch).
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
protocol imap {
  mail_plugins = \$mail_plugins imap_quota imap_zlib
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=100M
  quota_max_mail_size = 10M
}
CONF

stop() {
  dovecot -c "$DIR/dovecot.conf" stop 2>/dev/null || true
  sleep 0.5
  rm -rf "$DIR"
}
trap stop EXIT
trap 'exit 130' INT TERM
dovecot -c "$DIR/dovecot.conf"
# Wait until a login works (the first greeting can come before the auth process is up).
i=0
until python3 -c "import imaplib; imaplib.IMAP4('127.0.0.1', $PORT, timeout=2).login('user1', 'pass1')" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 50 ]; then cat "$DIR/dovecot.log" >&2; exit 1; fi
  sleep 0.1
done

export IMAP_TARGET="127.0.0.1:$PORT"
export IMAP_USERS="user1:pass1,user2:pass2"
if [ $# -eq 0 ]; then set -- node scripts/run-tests.mjs test/imap; fi
status=0
"$@" || status=$?
if [ -n "${DOVECOT_LOG:-}" ]; then cp "$DIR/dovecot.log" "$DOVECOT_LOG"; fi
exit $status
