#!/usr/bin/env bash
# The main job (README quick start): install what is missing, build, start a
# sandbox cluster (ZooKeeper + MariaDB primary/GTID replica), start the proxy
# on it, and show a client following a planned primary change.
# Leaves nothing running unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

PROXY_PID=""
cleanup() {
  if [[ -n "$PROXY_PID" ]] && kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -TERM "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  fi
  if [[ "${KEEP:-0}" != 1 ]]; then "$SANDBOX_BIN" down --dir "$SANDBOX_DIR" >/dev/null || true; fi
}
trap cleanup EXIT

echo "==> starting the sandbox cluster in $SANDBOX_DIR"
"$SANDBOX_BIN" up --dir "$SANDBOX_DIR"
eval "$("$SANDBOX_BIN" env --dir "$SANDBOX_DIR")"

PROXY_PORT="${PROXY_PORT:-6033}" ADMIN_PORT="${ADMIN_PORT:-9104}"
echo "==> starting mysql-zk-proxy on 127.0.0.1:$PROXY_PORT (admin 127.0.0.1:$ADMIN_PORT)"
"$BIN" run --listen "127.0.0.1:$PROXY_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
  --zk "$ZK_CONNECT" --primary-path "$PRIMARY_PATH" >"$SANDBOX_DIR/proxy.log" 2>&1 &
PROXY_PID=$!
wait_ready "$SANDBOX_DIR/proxy.log"

ask() { mariadb --no-defaults -h127.0.0.1 -P"$PROXY_PORT" -u"$APP_USER" -p"$APP_PASS" app -N -B \
          -e "SELECT CONCAT('served by port ', @@port, ' (server_id ', @@server_id, ', read_only=', @@read_only, ')')"; }
echo "==> a client through the proxy, before the switchover:"
before="$(ask)"
echo "    $before"
echo "==> /status says:"
admin_get /status | grep -E '^ *"(address|epoch|state)"' | sed 's/^ */    /'

echo "==> planned switchover (primary -> replica: draining epoch + 1, then the replica serving with epoch + 2)"
"$SANDBOX_BIN" switchover --dir "$SANDBOX_DIR"
# new connections follow the record as soon as the proxy's watch fires
for _ in $(seq 1 100); do
  out="$(ask 2>/dev/null || true)"; [[ -n "$out" && "$out" != "$before" ]] && break
  sleep 0.05
done
echo "==> the same client command after the switchover:"
echo "    $(ask)"
echo "==> proxy metrics:"
admin_get /metrics | grep -E '^mysql_zk_proxy_(route_epoch|route_changes_total|client_connections_total)' | sed 's/^/    /'
echo "==> done (KEEP=1 leaves the cluster and proxy running; proxy log: $SANDBOX_DIR/proxy.log)"
if [[ "${KEEP:-0}" == 1 ]]; then PROXY_PID=""; fi
