#!/usr/bin/env bash
# Failover drill on the sandbox (docs/drill.md): install what is missing,
# build, start the sandbox cluster (unless it is already up) and a proxy
# whose credential store holds the app user (so idle sessions are migrated),
# run the drill against it (`mysql-zk-proxy-sandbox drill`: the deployed
# `mysql-zk-proxy-drill` with the sandbox's login, ZooKeeper and switchover;
# default 20 planned switchovers under load) and write drill-report.json and
# drill-report.html into OUT_DIR (default: .).
# Extra arguments go to `drill` (e.g. --switchovers 5 --interval 2s).
# --unplanned: each switch kills the primary (SIGKILL) and publishes the
# replica (`mysql-zk-proxy-sandbox failover --unplanned`); the reports are
# drill-unplanned-report.*. The proxy's [monitor] user is the sandbox's admin
# (its loss reports read the new primary's GTID position).
# Stops only what it started; KEEP=1 leaves them running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
source scripts/common.sh
OUT_DIR="${OUT_DIR:-$ROOT}"
PROXY_PORT="${PROXY_PORT:-6033}" ADMIN_PORT="${ADMIN_PORT:-9104}"

PROXY_PID="" STARTED_SANDBOX=0
cleanup() {
  [[ "${KEEP:-0}" == 1 ]] && return
  if [[ -n "$PROXY_PID" ]] && kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -TERM "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  fi
  if [[ "$STARTED_SANDBOX" == 1 ]]; then "$SANDBOX_BIN" down --dir "$SANDBOX_DIR" >/dev/null || true; fi
}
trap cleanup EXIT

echo "==> sandbox in $SANDBOX_DIR"
up="$("$SANDBOX_BIN" up --dir "$SANDBOX_DIR")"
echo "$up"
[[ "$up" == *"already up"* ]] || STARTED_SANDBOX=1
eval "$("$SANDBOX_BIN" env --dir "$SANDBOX_DIR")"

# The app user's mysql_native_password hash (*HEX) from mysql.user.
HASH="$(mariadb --no-defaults -h127.0.0.1 -P"$PRIMARY_PORT" -u"$ADMIN_USER" -p"$ADMIN_PASS" -N -B \
  -e "SELECT authentication_string FROM mysql.user WHERE user = '$APP_USER' AND host = '%'")"
[[ "$HASH" == \** ]] || { echo "no mysql_native_password hash for $APP_USER: '$HASH'"; exit 1; }
CONFIG="$SANDBOX_DIR/drill-proxy.toml"
cat >"$CONFIG" <<EOF
# written by scripts/drill.sh: the sandbox's app user in the credential store
[[users]]
name = "$APP_USER"
mysql_native_password = "$HASH"
EOF
# the ledger's loss reports read the new primary's GTID position as this
# user; the drill checks them (0 for a planned switchover)
cat >>"$CONFIG" <<EOF
[monitor]
user = "$ADMIN_USER"
password = "$ADMIN_PASS"
EOF
REPORT=drill-report
[[ " $* " == *" --unplanned "* ]] && REPORT=drill-unplanned-report

if admin_get /live >/dev/null 2>&1; then
  echo "something already serves 127.0.0.1:$ADMIN_PORT; set ADMIN_PORT/PROXY_PORT"; exit 1
fi
echo "==> starting mysql-zk-proxy on 127.0.0.1:$PROXY_PORT (admin 127.0.0.1:$ADMIN_PORT)"
"$BIN" run --config "$CONFIG" --listen "127.0.0.1:$PROXY_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
  --zk "$ZK_CONNECT" --primary-path "$PRIMARY_PATH" >"$SANDBOX_DIR/drill-proxy.log" 2>&1 &
PROXY_PID=$!
wait_ready "$SANDBOX_DIR/drill-proxy.log"

echo "==> drill (proxy log: $SANDBOX_DIR/drill-proxy.log)"
status=0
"$SANDBOX_BIN" drill --dir "$SANDBOX_DIR" --proxy "127.0.0.1:$PROXY_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
  --json "$OUT_DIR/$REPORT.json" --html "$OUT_DIR/$REPORT.html" "$@" || status=$?
if [[ "$status" == 3 ]]; then echo "==> the drill ran; its verdict is FAIL (see the reports)"; fi
exit "$status"
