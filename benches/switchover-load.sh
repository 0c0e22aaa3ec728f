#!/usr/bin/env bash
# sysbench oltp_read_write through mysql-zk-proxy while the sandbox switches
# its primary over twice: what a client pool sees of planned switchovers.
# Exits non-zero when sysbench counted an error or a reconnect.
#
# Steps: build; start a sandbox in a temp dir (stopped and wiped at exit); a
# proxy whose [[users]] holds the app user's hash (its sessions can move);
# sysbench prepare; then sysbench for LOAD_TIME seconds with a switchover at
# SWITCH_AT and another at SWITCH_AT + SWITCH_GAP; prints sysbench's summary
# and the proxy's migration counters. All traffic stays on 127.0.0.1.
#
# Environment (default): LOAD_TIME (40), LOAD_THREADS (8), SWITCH_AT (10),
# SWITCH_GAP (12), SB_TABLES (4), SB_TABLE_SIZE (10000), LOAD_EXTRA ("").
set -euo pipefail
cd "$(dirname "$0")/.."
LOAD_TIME="${LOAD_TIME:-40}" LOAD_THREADS="${LOAD_THREADS:-8}"
SWITCH_AT="${SWITCH_AT:-10}" SWITCH_GAP="${SWITCH_GAP:-12}"
SB_TABLES="${SB_TABLES:-4}" SB_TABLE_SIZE="${SB_TABLE_SIZE:-10000}"
export SANDBOX_DIR="$(mktemp -d "${TMPDIR:-/tmp}/switchover-load.XXXXXX")"
source scripts/common.sh
PROXY_PORT="${PROXY_PORT:-16033}" ADMIN_PORT="${ADMIN_PORT:-19104}"
PROXY_PID=""
cleanup() {
  if [[ -n "$PROXY_PID" ]] && kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -TERM "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  fi
  "$SANDBOX_BIN" down --dir "$SANDBOX_DIR" --wipe >/dev/null 2>&1 || true
  rm -rf "$SANDBOX_DIR"
}
trap cleanup EXIT

"$SANDBOX_BIN" up --dir "$SANDBOX_DIR" >/dev/null
eval "$("$SANDBOX_BIN" env --dir "$SANDBOX_DIR")"
HASH="$(mariadb --no-defaults -h127.0.0.1 -P"$PRIMARY_PORT" -u"$ADMIN_USER" -p"$ADMIN_PASS" -N -B \
  -e "SELECT authentication_string FROM mysql.user WHERE user = '$APP_USER' AND host = '%'")"
printf '[[users]]\nname = "%s"\nmysql_native_password = "%s"\n' "$APP_USER" "$HASH" \
  >"$SANDBOX_DIR/proxy.toml"
"$BIN" run --config "$SANDBOX_DIR/proxy.toml" --listen "127.0.0.1:$PROXY_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --zk "$ZK_CONNECT" --primary-path "$PRIMARY_PATH" \
  >"$SANDBOX_DIR/proxy.log" 2>&1 &
PROXY_PID=$!
wait_ready "$SANDBOX_DIR/proxy.log"

sb() {
  sysbench "$1" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PROXY_PORT" \
    --mysql-user="$APP_USER" --mysql-password="$APP_PASS" --mysql-db=sbtest \
    --tables="$SB_TABLES" --table-size="$SB_TABLE_SIZE" "${@:2}"
}
mariadb --no-defaults -h127.0.0.1 -P"$PRIMARY_PORT" -u"$ADMIN_USER" -p"$ADMIN_PASS" \
  -e "CREATE DATABASE IF NOT EXISTS sbtest; GRANT ALL ON sbtest.* TO '$APP_USER'@'%'"
sb oltp_read_write prepare >/dev/null

echo "==> oltp_read_write, $LOAD_THREADS threads, ${LOAD_TIME} s; switchovers at ${SWITCH_AT} s and $((SWITCH_AT + SWITCH_GAP)) s"
# shellcheck disable=SC2086
timeout $((LOAD_TIME + 60)) sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 \
  --mysql-port="$PROXY_PORT" --mysql-user="$APP_USER" --mysql-password="$APP_PASS" \
  --mysql-db=sbtest --tables="$SB_TABLES" --table-size="$SB_TABLE_SIZE" \
  --threads="$LOAD_THREADS" --time="$LOAD_TIME" --report-interval=5 ${LOAD_EXTRA:-} run \
  >"$SANDBOX_DIR/sysbench.out" 2>&1 &
SB_PID=$!
switch_log=()
for at in "$SWITCH_AT" "$SWITCH_GAP"; do
  sleep "$at"
  t0=$(date +%s%N)
  if ! "$SANDBOX_BIN" switchover --dir "$SANDBOX_DIR" >"$SANDBOX_DIR/switchover.out" 2>&1; then
    echo "==> FAIL: switchover failed:"; cat "$SANDBOX_DIR/switchover.out"
    kill "$SB_PID" 2>/dev/null || true; exit 1
  fi
  switch_log+=("switchover took $(( ($(date +%s%N) - t0) / 1000000 )) ms")
done
status=0
wait "$SB_PID" || status=$?
grep -E "transactions:|queries:|ignored errors:|reconnects:|95th percentile:" "$SANDBOX_DIR/sysbench.out" |
  sed 's/^ */    /'
printf '    %s\n' "${switch_log[@]}"
admin_get /metrics | grep -E '^mysql_zk_proxy_(sessions_migrated_total|sessions_closed_by_failover_total|transactions_aborted_total|client_connections_total)' |
  sed 's/^/    /'
errors="$(awk '/ignored errors:/ {print $3}' "$SANDBOX_DIR/sysbench.out")"
reconnects="$(awk '/reconnects:/ {print $2}' "$SANDBOX_DIR/sysbench.out")"
if [[ "$status" != 0 || "${errors:-x}" != 0 || "${reconnects:-x}" != 0 ]]; then
  echo "==> FAIL: sysbench exit $status, errors ${errors:-?}, reconnects ${reconnects:-?}"
  tail -20 "$SANDBOX_DIR/sysbench.out"
  exit 1
fi
echo "==> OK: 0 errors, 0 reconnects across two switchovers"
