#!/usr/bin/env bash
# Instructions the proxy (and HAProxy, in TCP mode, for comparison) execute
# per query, counted by valgrind's callgrind under a fixed sysbench load:
# deterministic where CPU time on a shared 2-core machine is not, so it shows
# what a change to the data path did to the middlebox's own (user-space)
# work. Kernel work is not counted (benches/syscalls.sh counts syscalls).
# Compare two builds by running it with BIN=... for each; the report
# (callgrind_annotate) of each run stays in the results dir.
# Needs a running sandbox (target/release/mysql-zk-proxy-sandbox up --dir DIR)
# with the sysbench tables prepared (benches/sysbench.sh prepares them;
# SB_TABLES x SB_TABLE_SIZE must match).
# EVENTS: sysbench events per workload (default 20000 point selects, 1000
# read_write transactions of 20 queries each: 20000 queries either way).
# Usage: SANDBOX_DIR=DIR [BIN=path] [TARGETS="proxy haproxy"] [EVENTS=n] [THREADS=8]
#        [WORKLOADS="oltp_point_select oltp_read_write"] [SB_TABLES=4]
#        [SB_TABLE_SIZE=10000] [PROXY_CONFIG=benches/proxy-1thread.toml] benches/instructions.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release/mysql-zk-proxy}"
THREADS="${THREADS:-8}" TARGETS="${TARGETS:-proxy haproxy}"
WORKLOADS="${WORKLOADS:-oltp_point_select oltp_read_write}"
SB_TABLES="${SB_TABLES:-4}" SB_TABLE_SIZE="${SB_TABLE_SIZE:-10000}"
PROXY_CONFIG="${PROXY_CONFIG:-$ROOT/benches/proxy-1thread.toml}"
OUT="${OUT:-$ROOT/target/bench/instructions-$(date -u +%Y%m%dT%H%M%SZ)}"
for cmd in valgrind callgrind_control callgrind_annotate sysbench curl; do
  command -v "$cmd" >/dev/null || { echo "instructions.sh: $cmd not found" >&2; exit 1; }
done
mkdir -p "$OUT"
eval "$("$ROOT/target/release/mysql-zk-proxy-sandbox" env --dir "${SANDBOX_DIR:?set SANDBOX_DIR to a running sandbox}")"
VPID=""
cleanup() { [[ -n "$VPID" ]] && { kill "$VPID" 2>/dev/null || true; wait "$VPID" 2>/dev/null || true; }; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sb() { # sb WORKLOAD PORT EVENTS: queries completed
  timeout 600 sysbench "$1" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$2" \
    --mysql-user="$APP_USER" --mysql-password="$APP_PASS" --mysql-db=sbtest --tables="$SB_TABLES" \
    --table-size="$SB_TABLE_SIZE" --threads="$THREADS" --events="$3" --time=0 run </dev/null |
    awk '/queries:/ {print $2}'
}
# start TARGET WORKLOAD: TARGET under callgrind, instrumentation off until it
# is up and warmed (start-up and the first connections are not measured);
# sets VPID and PORT
start() {
  local t="$1" w="$2" admin
  PORT="$(port)"
  if [[ "$t" == haproxy ]]; then
    HAPROXY_PORT="$PORT" PRIMARY_PORT="$PRIMARY_PORT" HAPROXY_THREADS=1 \
      valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind-$t-$w.out" \
      haproxy -db -f "$ROOT/benches/haproxy.cfg" </dev/null >"$OUT/$t-$w.log" 2>&1 &
    VPID=$!
    up() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
  else
    admin="$(port)"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind-$t-$w.out" \
      "$BIN" run --config "$PROXY_CONFIG" --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$admin" \
      --zk "$ZK_CONNECT" --primary-path "$PRIMARY_PATH" </dev/null >"$OUT/$t-$w.log" 2>&1 &
    VPID=$!
    up() { curl -sf "http://127.0.0.1:$admin/ready" >/dev/null; }
  fi
  for _ in $(seq 1 120); do up && return 0; sleep 0.5; done
  echo "$t not ready: $(tail -5 "$OUT/$t-$w.log")" >&2
  exit 1
}
printf 'target\tworkload\tqueries\tinstructions\tper_query\n' | tee "$OUT/results.tsv"
for w in $WORKLOADS; do
  for t in $TARGETS; do
    start "$t" "$w"
    sb "$w" "$PORT" 200 >/dev/null
    callgrind_control -i on "$VPID" >/dev/null 2>&1
    events="${EVENTS:-$([[ "$w" == oltp_point_select ]] && echo 20000 || echo 1000)}"
    q="$(sb "$w" "$PORT" "$events")"
    callgrind_control -i off "$VPID" >/dev/null 2>&1
    callgrind_control -d "$VPID" >/dev/null 2>&1
    # the dump asked for above is part ".1" (the one at exit has nothing in it)
    f="$OUT/callgrind-$t-$w.out.1"
    for _ in $(seq 1 100); do [[ -s "$f" ]] && break; sleep 0.1; done
    kill "$VPID"
    wait "$VPID" 2>/dev/null || true
    VPID=""
    callgrind_annotate "$f" >"$OUT/annotate-$t-$w.txt" 2>/dev/null
    ir="$(awk '/PROGRAM TOTALS/ {gsub(/,/, "", $1); print $1}' "$OUT/annotate-$t-$w.txt")"
    printf '%s\t%s\t%s\t%s\t%.0f\n' "$t" "$w" "$q" "$ir" "$(awk -v i="$ir" -v q="$q" 'BEGIN {print i / q}')" |
      tee -a "$OUT/results.tsv"
  done
done
echo "results: $OUT"
