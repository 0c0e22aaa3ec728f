#!/usr/bin/env bash
# Syscalls per query of HAProxy (TCP mode) and of mysql-zk-proxy under the
# same sysbench load, counted with `strace -c -f` (strace slows both, so only
# the per-query counts mean anything), and optionally a cpu-clock profile of
# the proxy (PERF=1: `perf record -g`, report in the results dir).
# Needs a running sandbox: target/release/mysql-zk-proxy-sandbox up --dir DIR
# Usage: SANDBOX_DIR=DIR [SECS=5] [THREADS=8] [PROXY_CONFIG=file] [PERF=1] benches/syscalls.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release/mysql-zk-proxy"
SECS="${SECS:-5}" THREADS="${THREADS:-8}"
OUT="${OUT:-$ROOT/target/bench/syscalls-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
eval "$("$ROOT/target/release/mysql-zk-proxy-sandbox" env --dir "${SANDBOX_DIR:?set SANDBOX_DIR to a running sandbox}")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
  echo $((30000 + RANDOM % 5000)); }
HP="$(port)" PP="$(port)"
HAPROXY_PORT="$HP" PRIMARY_PORT="$PRIMARY_PORT" HAPROXY_THREADS=1 haproxy -db -f "$ROOT/benches/haproxy.cfg" \
  </dev/null >"$OUT/haproxy.log" 2>&1 &
PIDS+=($!) HPID=$!
CFG=()
[[ -n "${PROXY_CONFIG:-}" ]] && CFG=(--config "$PROXY_CONFIG")
"$BIN" run "${CFG[@]}" --listen "127.0.0.1:$PP" --admin "" --zk "$ZK_CONNECT" --primary-path "$PRIMARY_PATH" \
  </dev/null >"$OUT/proxy.log" 2>&1 &
PIDS+=($!) PPID_=$!
sb() {
  sysbench oltp_point_select --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$1" \
    --mysql-user="$APP_USER" --mysql-password="$APP_PASS" --mysql-db=sbtest --tables=4 --table-size=10000 \
    --threads="$THREADS" --time="$SECS" run
}
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PP") 2>/dev/null && break; sleep 0.1; done
sleep 1 # the proxy learns the primary from ZooKeeper just after it listens
for t in haproxy proxy; do
  if [[ $t == haproxy ]]; then p=$HP pid=$HPID; else p=$PP pid=$PPID_; fi
  sb "$p" >/dev/null # warm-up
  strace -c -f -p "$pid" -o "$OUT/$t.strace" &
  st=$!
  sleep 0.5
  sb "$p" >"$OUT/$t.sysbench"
  kill -INT "$st"; wait "$st" || true
  q="$(awk '/queries:/ && /per sec/ {print $2}' "$OUT/$t.sysbench")"
  echo "== $t: $q queries; calls per query:"
  awk -v q="$q" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "  %-14s %.2f\n", $NF, $4 / q}' "$OUT/$t.strace" | sort -k2 -nr | head -8
done
if [[ "${PERF:-0}" == 1 ]]; then
  perf record -e cpu-clock -g -p "$PPID_" -o "$OUT/proxy.perf.data" -- sleep "$SECS" 2>/dev/null &
  pr=$!
  sb "$PP" >"$OUT/proxy.perf.sysbench"
  wait "$pr" || true
  perf report -i "$OUT/proxy.perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | head -80 >"$OUT/proxy.perf.txt"
  perf report -i "$OUT/proxy.perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | head -12
fi
echo "results in $OUT"
