#!/usr/bin/env bash
# sysbench oltp_read_only through the read-only listener (two replicas) vs.
# direct to one replica vs. HAProxy round-robin over the same two replicas,
# in ONE run on ONE machine: only the per-round ratios mean anything
# (docs/performance.md). A second proxy with consistency = "fleet" measures
# what causal reads add. Usage: benches/read-only.sh
#
# Steps: build the release binaries; start a sandbox (ZooKeeper, a primary,
# two GTID replicas with their records) in a temp dir; sysbench prepare on
# the primary and wait until both replicas applied it; start HAProxy
# (benches/haproxy-replicas.cfg) and the proxies, recording their PIDs and
# stopping exactly those at exit; warm up; then per round run sysbench
# against each target back to back (order rotated every round) and record
# qps, p95 and the CPU time (/proc/PID/stat utime+stime) of the middlebox
# during the run -> CPU microseconds per query. Prints per-target medians and
# spreads and per-round ratios; writes results.tsv and summary.md.
#
# Environment (default):
#   BENCH_TIME (20)      seconds per sysbench run
#   BENCH_THREADS (8)    sysbench --threads
#   BENCH_REPEAT (3)     rounds (the spread and the medians need several)
#   BENCH_TARGETS        ("direct haproxy ro ro_fleet"; also ro_proxy)
#   BENCH_WARMUP (5)     seconds of oltp_read_only through each target first
#   BENCH_BUILD (1)      cargo build --release first; 0 uses target/release as is
#   BENCH_OUT            results dir (target/bench/read-only-<UTC time>)
#   SB_TABLES (4), SB_TABLE_SIZE (10000), HAPROXY_THREADS (1)
# All traffic goes to 127.0.0.1; every wait has a deadline and every sysbench
# run is bounded by `timeout`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup read-only
BENCH_REPEAT="${BENCH_REPEAT:-3}"
BENCH_TARGETS="${BENCH_TARGETS:-direct haproxy ro ro_fleet}"
read -ra TARGETS <<<"$BENCH_TARGETS"

log() { printf '[read-only bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for v in BENCH_TIME BENCH_THREADS BENCH_REPEAT; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
for t in "${TARGETS[@]}"; do
  case "$t" in direct | haproxy | ro | ro_fleet | ro_proxy) ;; *) die "unknown target '$t' (direct haproxy ro ro_fleet ro_proxy)" ;; esac
done
for cmd in sysbench curl awk getconf timeout mariadb; do
  command -v "$cmd" >/dev/null || die "$cmd not found (scripts/install-deps.sh)"
done
HAPROXY_BIN="$(command -v haproxy || echo /usr/sbin/haproxy)"
CLK_TCK="$(getconf CLK_TCK)"

# ---- processes: everything started here is recorded and only that is stopped
PIDS=() OWN_SANDBOX=""
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  sandbox_down "$OWN_SANDBOX/sandbox"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"
if [[ "$BENCH_BUILD" == 1 ]]; then
  log "cargo build --release"
  cargo build --release --locked --quiet -p mysql-zk-proxy -p mysql-zk-proxy-sandbox
fi
[[ -x "$BIN" && -x "$SANDBOX_BIN" ]] || die "$BIN or $SANDBOX_BIN missing (cargo build --release)"

# ---- sandbox: primary + two replicas, their records published
OWN_SANDBOX="$(mktemp -d "${TMPDIR:-/tmp}/mzp-ro-bench.XXXXXX")"
timeout 300 "$SANDBOX_BIN" up --replicas 2 --dir "$OWN_SANDBOX/sandbox" >"$OUT/sandbox-up.txt" 2>&1 ||
  die "sandbox up failed: $(cat "$OUT/sandbox-up.txt")"
eval "$(timeout 60 "$SANDBOX_BIN" env --dir "$OWN_SANDBOX/sandbox")"
: "${PRIMARY_PORT:?}" "${DB2_PORT:?}" "${DB3_PORT:?}" "${ZK_CONNECT:?}" "${PRIMARY_PATH:?}"
log "primary db1 :$PRIMARY_PORT, replicas db2 :$DB2_PORT, db3 :$DB3_PORT"

sb() { # sb LIMIT OUTFILE PORT COMMAND [args]
  local limit="$1" out="$2" port="$3" cmd="$4"
  shift 4
  timeout -k 5 "$limit" sysbench oltp_read_only --db-driver=mysql --mysql-host="$HOST" --mysql-port="$port" \
    --mysql-user="$APP_USER" --mysql-password="$APP_PASS" --mysql-db=sbtest \
    --tables="$SB_TABLES" --table-size="$SB_TABLE_SIZE" "$@" "$cmd" </dev/null >"$out" 2>&1
}
sb 600 "$OUT/prepare.txt" "$PRIMARY_PORT" prepare --threads="$SB_TABLES" || die "prepare failed: $(tail -5 "$OUT/prepare.txt")"
POS="$(mariadb --no-defaults -h"$HOST" -P"$PRIMARY_PORT" -u"$ADMIN_USER" -p"$ADMIN_PASS" -N -B -e 'SELECT @@gtid_binlog_pos')"
for port in "$DB2_PORT" "$DB3_PORT"; do
  got="$(mariadb --no-defaults -h"$HOST" -P"$port" -u"$ADMIN_USER" -p"$ADMIN_PASS" -N -B -e "SELECT MASTER_GTID_WAIT('$POS', 120)")"
  [[ "$got" == 0 ]] || die "replica :$port did not apply $POS in 120 s"
done
log "prepared $SB_TABLES x $SB_TABLE_SIZE rows; both replicas at $POS"

# ---- middleboxes
declare -A PORT=([direct]="$DB2_PORT") MID=([direct]="")
if [[ " ${TARGETS[*]} " == *" haproxy "* ]]; then
  free_port HAPROXY_PORT
  HAPROXY_PORT="$HAPROXY_PORT" REPLICA1_PORT="$DB2_PORT" REPLICA2_PORT="$DB3_PORT" HAPROXY_THREADS="$HAPROXY_THREADS" \
    "$HAPROXY_BIN" -db -f "$ROOT/benches/haproxy-replicas.cfg" </dev/null >"$OUT/haproxy.log" 2>&1 &
  PIDS+=($!) MID[haproxy]=$!
  wait_until 10 "haproxy" listening "$HAPROXY_PORT" || die "haproxy: $(cat "$OUT/haproxy.log")"
  PORT[haproxy]="$HAPROXY_PORT"
fi
start_proxy() { # start_proxy TARGET CONSISTENCY
  local t="$1" port ro admin pid
  free_port port; free_port ro; free_port admin
  printf '[monitor]\nuser = "%s"\npassword = "%s"\n[read_only]\nconsistency = "%s"\n' \
    "$ADMIN_USER" "$ADMIN_PASS" "$2" >"$OUT/$t.toml"
  "$BIN" run --config "$OUT/$t.toml" --listen "$HOST:$port" --read-only-listen "$HOST:$ro" \
    --admin "$HOST:$admin" --zk "$ZK_CONNECT" --primary-path "$PRIMARY_PATH" </dev/null >"$OUT/$t.log" 2>&1 &
  pid=$!
  PIDS+=("$pid") MID[$t]="$pid" PORT[$t]="$ro"
  both_qualified() {
    alive "$pid" && [[ "$(curl -fs --max-time 2 "http://$HOST:$admin/status" | grep -o '"qualified": *true' | wc -l)" == 2 ]]
  }
  wait_until 30 "$t: both replicas qualified" both_qualified || die "$t: $(tail -20 "$OUT/$t.log")"
  log "$t: proxy pid $pid, read-only listener :$ro (consistency $2)"
}
[[ " ${TARGETS[*]} " == *" ro "* ]] && start_proxy ro none
[[ " ${TARGETS[*]} " == *" ro_fleet "* ]] && start_proxy ro_fleet fleet
[[ " ${TARGETS[*]} " == *" ro_proxy "* ]] && start_proxy ro_proxy proxy

{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (dirty)')"
  echo "nproc: $(nproc), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "sysbench oltp_read_only, $BENCH_THREADS threads, $BENCH_TIME s per run, $BENCH_REPEAT rounds, $SB_TABLES x $SB_TABLE_SIZE rows"
} >"$OUT/meta.txt"

for t in "${TARGETS[@]}"; do
  ((BENCH_WARMUP == 0)) || sb $((BENCH_WARMUP + 60)) "$OUT/warmup.$t.txt" "${PORT[$t]}" run \
    --threads="$BENCH_THREADS" --time="$BENCH_WARMUP" || die "warm-up via $t: $(tail -5 "$OUT/warmup.$t.txt")"
done

RES="$OUT/results.tsv"
printf 'round\ttarget\tqps\tqueries\tp95_ms\terrors\tmid_us_per_query\n' >"$RES"
for ((r = 1; r <= BENCH_REPEAT; r++)); do
  n=${#TARGETS[@]}
  for ((i = 0; i < n; i++)); do
    t="${TARGETS[$(((i + r - 1) % n))]}" f="$OUT/r$r.$t.txt"
    m0=""; [[ -z "${MID[$t]}" ]] || m0="$(cpu_ticks "${MID[$t]}")"
    sb $((BENCH_TIME + 60)) "$f" "${PORT[$t]}" run --threads="$BENCH_THREADS" --time="$BENCH_TIME" \
      --report-interval=0 --percentile=95 || die "sysbench via $t failed: $(tail -5 "$f")"
    m=""; [[ -z "${MID[$t]}" ]] || m=$(($(cpu_ticks "${MID[$t]}") - m0))
    awk -v r="$r" -v t="$t" -v m="$m" -v hz="$CLK_TCK" '
      /queries:/ && /per sec/ {q = $2; qps = $3; gsub(/\(/, "", qps)}
      /95th percentile:/ {p95 = $3}
      /ignored errors:/ {err = $3}
      END {printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r, t, qps, q, p95, err,
        (m == "" || q == 0) ? "-" : sprintf("%.1f", m / hz * 1e6 / q)}' "$f" >>"$RES"
    log "round $r via $t: $(tail -1 "$RES" | awk -F'\t' '{printf "qps=%s p95=%sms errors=%s cpu/query=%s us", $3, $5, $6, $7}')"
  done
done

# ---- summary: per target median and min-max over rounds; per-round ratios
awk -F'\t' -v rounds="$BENCH_REPEAT" '
  function med(a, c,    x, y, z, b) { for (x = 1; x <= c; x++) b[x] = a[x]
    for (x = 2; x <= c; x++) { z = b[x]; for (y = x - 1; y >= 1 && b[y] > z; y--) b[y + 1] = b[y]; b[y + 1] = z }
    return c % 2 ? b[(c + 1) / 2] : (b[c / 2] + b[c / 2 + 1]) / 2 }
  function stat(t, col,    a, c, r, lo, hi) { c = 0
    for (r = 1; r <= rounds; r++) if (((r, t, col) in v) && v[r, t, col] != "-") { a[++c] = v[r, t, col]
      if (c == 1 || a[c] < lo) lo = a[c]; if (c == 1 || a[c] > hi) hi = a[c] }
    return c ? sprintf("%.1f (%.1f-%.1f)", med(a, c), lo, hi) : "-" }
  function ratio(t, u, col,    a, c, r, lo, hi) { c = 0
    for (r = 1; r <= rounds; r++) if (v[r, t, col] > 0 && v[r, u, col] > 0) { a[++c] = v[r, t, col] / v[r, u, col]
      if (c == 1 || a[c] < lo) lo = a[c]; if (c == 1 || a[c] > hi) hi = a[c] }
    return c ? sprintf("%.3f (%.3f-%.3f)", med(a, c), lo, hi) : "-" }
  NR == 1 { next }
  { if (!($2 in seen)) { seen[$2] = 1; tg[++nt] = $2 }; v[$1, $2, "qps"] = $3; v[$1, $2, "p95"] = $5; v[$1, $2, "us"] = $7 }
  END {
    print "| target | qps median (min-max) | p95 ms median (min-max) | middlebox CPU us/query median (min-max) | qps / haproxy, per round: median (min-max) | qps / direct (one replica) |"
    print "| --- | ---: | ---: | ---: | ---: | ---: |"
    for (j = 1; j <= nt; j++) { t = tg[j]
      printf "| %s | %s | %s | %s | %s | %s |\n", t, stat(t, "qps"), stat(t, "p95"), stat(t, "us"), ratio(t, "haproxy", "qps"), ratio(t, "direct", "qps") }
    if (("1", "ro_fleet", "p95") in v) printf "\nro_fleet p95 / ro p95 (the causal wait), per round: %s\n", ratio("ro_fleet", "ro", "p95")
    if (("1", "ro_proxy", "p95") in v) printf "ro_proxy p95 / ro p95 (the ledger position check), per round: %s\n", ratio("ro_proxy", "ro", "p95")
    if (("1", "ro", "us") in v) printf "ro CPU per query / haproxy, per round: %s\n", ratio("ro", "haproxy", "us")
  }' "$RES" >"$OUT/summary.tables.md"
{ echo "# sysbench oltp_read_only: read-only listener vs HAProxy round-robin vs one replica"; echo
  sed 's/^/    /' "$OUT/meta.txt"; echo; cat "$OUT/summary.tables.md"; } >"$OUT/summary.md"
echo; column -t -s $'\t' "$RES"; echo; cat "$OUT/summary.tables.md"
echo; echo "results: $OUT"
