#!/usr/bin/env bash
# sysbench through mysql-zk-proxy vs. direct to the primary vs. HAProxy in TCP
# mode, interleaved in ONE run on ONE machine: only the ratios between the three
# mean anything (docs/performance.md). Usage: benches/sysbench.sh
#
# Steps: build the release binary; start a sandbox cluster (ZooKeeper + MariaDB
# primary/GTID replica) in a temp dir, or reuse a running one; sysbench prepare;
# start HAProxy (benches/haproxy.cfg) and the proxy, record their PIDs and stop
# exactly those at exit (also on failure or ^C); warm up; then per round, per
# workload and per thread count, run sysbench against each target back to back
# (target order rotated every round) and record qps, p95, errors, reconnects and
# the CPU time (/proc/PID/stat utime+stime) HAProxy and the proxy used during
# that run -> CPU microseconds per query. Prints a table; writes results.tsv,
# summary.md and the raw sysbench output to the results dir (printed at the end).
#
# Environment (default):
#   BENCH_TIME (20)          seconds per sysbench run
#   BENCH_THREADS (8)        sysbench --threads values, e.g. "8 64"
#   BENCH_WORKLOADS          ("oltp_point_select oltp_read_write")
#   BENCH_REPEAT (1)         rounds; >1 shows the spread (REPEAT is accepted too)
#   BENCH_TARGETS            ("direct haproxy proxy")
#   BENCH_WARMUP (5)         seconds of oltp_point_select through each target first; 0: none
#   BENCH_EXTRA ("")         extra sysbench args. sysbench uses server-side prepared
#                            statements by default (--db-ps-mode=auto), like the
#                            reference harness; "--db-ps-mode=disable" for text queries
#   BENCH_PREPARE (1)        drop and create the sbtest tables (SB_TABLES 4 x SB_TABLE_SIZE 10000)
#   BENCH_SANDBOX_DIR ("")   reuse the running sandbox in this dir (left running);
#                            unset: a fresh sandbox in a temp dir, stopped and wiped at exit
#   BENCH_OUT                results dir (target/bench/sysbench-<UTC time>)
#   BENCH_BUILD (1)          cargo build --release first; 0 uses target/release as is
#   BENCH_IDLE_WAIT (0)      before each timed run, wait up to this many seconds for a
#                            1 s sample in which the machine is < BENCH_IDLE_PCT (20) % busy
#                            (other work on a shared machine skews the ratios)
#   HAPROXY_THREADS (1)      HAProxy nbthread (1 as in the reference: 2 cores here)
#   BENCH_PROXY_CONFIG ("")  config file for the proxy target (default config when unset);
#   BENCH_PROXY2_BIN ($BIN)  binary of target proxy2, e.g. a build of an earlier commit
#                            to measure a change's cost in one run
#   BENCH_PROXY2_TOML        config text of target proxy2, a second proxy ('\n' for newlines;
#                            default '[runtime]\nmode = "shared"')
#   BENCH_PAIRED (0)         1: in each round, HAProxy and the proxy (and proxy2) run AT THE
#                            SAME TIME, each with its own sysbench of BENCH_THREADS threads
#                            against the same primary (direct, if listed, runs alone first).
#                            Both then see the same machine: drift in the host's speed,
#                            which on a shared VM moves single runs by 10-20 %, cancels out
#                            of the per-round ratios. Their mariadbd us/query is shared: "-".
#   RUST_LOG                 passed to the proxy (its default level is info)
# All traffic goes to 127.0.0.1; every wait has a deadline and every sysbench
# run is bounded by `timeout`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup sysbench
BENCH_WORKLOADS="${BENCH_WORKLOADS:-oltp_point_select oltp_read_write}"
BENCH_REPEAT="${BENCH_REPEAT:-${REPEAT:-1}}"
BENCH_TARGETS="${BENCH_TARGETS:-direct haproxy proxy}"
BENCH_EXTRA="${BENCH_EXTRA:-}"
BENCH_PREPARE="${BENCH_PREPARE:-1}"
BENCH_IDLE_WAIT="${BENCH_IDLE_WAIT:-0}"
BENCH_IDLE_PCT="${BENCH_IDLE_PCT:-20}"
BENCH_PAIRED="${BENCH_PAIRED:-0}"

read -ra THREADS <<<"$BENCH_THREADS"
read -ra WORKLOADS <<<"$BENCH_WORKLOADS"
read -ra TARGETS <<<"$BENCH_TARGETS"
read -ra EXTRA <<<"$BENCH_EXTRA"

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has_target() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

[[ "$BENCH_TIME" =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIME must be a positive integer, not '$BENCH_TIME'"
[[ "$BENCH_REPEAT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer, not '$BENCH_REPEAT'"
[[ "$BENCH_WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer, not '$BENCH_WARMUP'"
[[ "$BENCH_IDLE_WAIT" =~ ^[0-9]+$ ]] || die "BENCH_IDLE_WAIT must be an integer, not '$BENCH_IDLE_WAIT'"
[[ "$BENCH_PAIRED" =~ ^[01]$ ]] || die "BENCH_PAIRED must be 0 or 1, not '$BENCH_PAIRED'"
[[ "$BENCH_IDLE_PCT" =~ ^[0-9]+$ ]] || die "BENCH_IDLE_PCT must be an integer, not '$BENCH_IDLE_PCT'"
for t in "${THREADS[@]}"; do [[ "$t" =~ ^[1-9][0-9]*$ ]] || die "bad thread count '$t' in BENCH_THREADS"; done
for t in "${TARGETS[@]}"; do
  case "$t" in direct | haproxy | proxy | proxy2) ;; *) die "unknown target '$t' (direct haproxy proxy proxy2)" ;; esac
done
((${#WORKLOADS[@]} > 0 && ${#TARGETS[@]} > 0 && ${#THREADS[@]} > 0)) || die "nothing to run"
for cmd in sysbench curl awk getconf timeout; do
  command -v "$cmd" >/dev/null || die "$cmd not found (scripts/install-deps.sh installs sysbench and haproxy)"
done
if has_target haproxy; then
  command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || die "haproxy not found (scripts/install-deps.sh)"
fi
HAPROXY_BIN="$(command -v haproxy || echo /usr/sbin/haproxy)"
CLK_TCK="$(getconf CLK_TCK)"
NPROC="$(nproc)"

# ---- processes: everything we start is recorded here and only that is stopped
HAPID="" PROXY_PID="" PROXY2_PID="" RUN_PIDS=() OWN_SANDBOX="" SANDBOX_DIR=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${RUN_PIDS[@]}"; do stop_pid "$pid" "sysbench (timeout)"; done
  stop_pid "$PROXY_PID" "mysql-zk-proxy"
  stop_pid "$PROXY2_PID" "mysql-zk-proxy (proxy2)"
  stop_pid "$HAPID" "haproxy"
  sandbox_down "$SANDBOX_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "failed (status $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

ready() { curl -fs -o /dev/null --max-time 2 "http://$HOST:$1/ready"; }
# busy_ticks: non-idle CPU ticks of the whole machine (user nice system irq softirq steal)
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
# ours_ticks: CPU ticks of the sandbox servers, HAProxy and the proxy (sysbench is counted apart)
ours_ticks() {
  local pid sum=0 t
  for pid in "${SBX_PIDS[@]}" $HAPID $PROXY_PID $PROXY2_PID; do
    t="$(cpu_ticks "$pid")"
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
# wait_idle: up to BENCH_IDLE_WAIT s for a 1 s window with the machine < BENCH_IDLE_PCT % busy.
wait_idle() {
  local deadline=$((SECONDS + BENCH_IDLE_WAIT)) b0 b1 pct
  ((BENCH_IDLE_WAIT > 0)) || return 0
  while :; do
    b0="$(busy_ticks)"
    sleep 1
    b1="$(busy_ticks)"
    pct=$(((b1 - b0) * 100 / (CLK_TCK * NPROC)))
    ((pct < BENCH_IDLE_PCT)) && return 0
    if ((SECONDS >= deadline)); then
      log "machine still ${pct}% busy after ${BENCH_IDLE_WAIT}s of waiting: running anyway"
      return 0
    fi
  done
}

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
rounds_runs=$((BENCH_REPEAT * ${#WORKLOADS[@]} * ${#THREADS[@]} * ${#TARGETS[@]}))
log "results in $OUT; $rounds_runs timed runs of ${BENCH_TIME}s (about $(((rounds_runs * (BENCH_TIME + 2) + 3 * BENCH_WARMUP) / 60 + 1)) min)"
log "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}' &&
  log "WARNING: the machine is busy (load $(cut -d' ' -f1 /proc/loadavg)): expect noisy numbers"

# ---- build
if [[ "$BENCH_BUILD" == 1 ]]; then
  log "cargo build --release"
  cargo build --release --locked --quiet
fi
[[ -x "$BIN" && -x "$SANDBOX_BIN" ]] || die "$BIN or $SANDBOX_BIN missing (cargo build --release)"

# ---- sandbox cluster
if [[ -n "${BENCH_SANDBOX_DIR:-}" ]]; then
  SANDBOX_DIR="$BENCH_SANDBOX_DIR"
  timeout 60 "$SANDBOX_BIN" status --dir "$SANDBOX_DIR" >"$OUT/sandbox-status.txt" 2>/dev/null ||
    die "no running sandbox in $SANDBOX_DIR ($SANDBOX_BIN up --dir $SANDBOX_DIR)"
  log "reusing the sandbox in $SANDBOX_DIR (left running)"
else
  OWN_SANDBOX="$(mktemp -d "${TMPDIR:-/tmp}/mzp-bench.XXXXXX")"
  SANDBOX_DIR="$OWN_SANDBOX/sandbox"
  log "starting a sandbox cluster in $SANDBOX_DIR"
  timeout 300 "$SANDBOX_BIN" up --dir "$SANDBOX_DIR" >"$OUT/sandbox-up.txt" 2>&1 ||
    die "sandbox up failed: $(cat "$OUT/sandbox-up.txt")"
fi
SB_ENV="$(timeout 60 "$SANDBOX_BIN" env --dir "$SANDBOX_DIR" 2>/dev/null)" || die "sandbox env failed"
eval "$SB_ENV"
: "${ZK_CONNECT:?}" "${PRIMARY_PATH:?}" "${PRIMARY_PORT:?}" "${APP_USER:?}" "${APP_PASS:?}"
# PID of the primary mariadbd, for its CPU per query (informative only).
# PID of the primary mariadbd (its CPU per query), and of every sandbox server
# (to tell the CPU used by other work on the machine during each run).
SB_STATUS="$(timeout 60 "$SANDBOX_BIN" status --json --dir "$SANDBOX_DIR" 2>/dev/null | tr -d ' \n' || true)"
DB_PID="$(grep -o '"role":"primary","port":[0-9]*,"pid":[0-9]*' <<<"$SB_STATUS" | sed 's/.*"pid"://' || true)"
read -ra SBX_PIDS <<<"$(grep -o '"\(zk_\)\{0,1\}pid":[0-9]*' <<<"$SB_STATUS" | sed 's/.*://' | tr '\n' ' ' || true)"
log "primary $PRIMARY on $HOST:$PRIMARY_PORT (mariadbd pid ${DB_PID:-?}), ZooKeeper $ZK_CONNECT"

# sb_start LIMIT OUTFILE WORKLOAD PORT COMMAND [sysbench args]: sysbench in
# the background, killed after LIMIT seconds, output to OUTFILE; its PID is
# added to RUN_PIDS (stopped by cleanup) and left in SB_PID.
sb_start() {
  local limit="$1" out="$2" w="$3" port="$4" cmd="$5"
  shift 5
  timeout --foreground -k 5 "$limit" sysbench "$w" --db-driver=mysql --mysql-host="$HOST" \
    --mysql-port="$port" --mysql-user="$APP_USER" --mysql-password="$APP_PASS" --mysql-db=sbtest \
    --tables="$SB_TABLES" --table-size="$SB_TABLE_SIZE" "${EXTRA[@]}" "$@" "$cmd" </dev/null >"$out" 2>&1 &
  SB_PID=$!
  RUN_PIDS+=("$SB_PID")
}
# sb_wait PID: wait for a run sb_start began (a signal to this script still
# stops it at once); returns its status.
sb_wait() {
  local rc=0 keep=() p
  wait "$1" || rc=$?
  for p in "${RUN_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  RUN_PIDS=("${keep[@]}")
  return "$rc"
}
# sb LIMIT OUTFILE WORKLOAD PORT COMMAND [sysbench args]: one run, waited for.
sb() {
  sb_start "$@"
  sb_wait "$SB_PID"
}
# children_cpu VAR FILE: set VAR to the user+system seconds of this shell's
# waited-for children so far (`times` must run in this shell, not a subshell).
children_cpu() {
  times >"$2"
  printf -v "$1" '%s' "$(awk 'NR == 2 {t = 0; for (i = 1; i <= 2; i++) {
    split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2]}; print t}' "$2")"
}

if [[ "$BENCH_PREPARE" == 1 ]]; then
  T0=$SECONDS
  sb 120 "$OUT/cleanup.txt" oltp_read_write "$PRIMARY_PORT" cleanup ||
    die "sysbench cleanup failed: $(tail -5 "$OUT/cleanup.txt")"
  sb 600 "$OUT/prepare.txt" oltp_read_write "$PRIMARY_PORT" prepare --threads="$SB_TABLES" ||
    die "sysbench prepare failed: $(tail -5 "$OUT/prepare.txt")"
  log "prepared $SB_TABLES tables x $SB_TABLE_SIZE rows in $((SECONDS - T0)) s"
fi

# ---- HAProxy (TCP mode) to the current primary, and the proxy
declare -A PORT=([direct]="$PRIMARY_PORT")
declare -A MIDPID=([direct]="")
if has_target haproxy; then
  free_port HAPROXY_PORT
  HAPROXY_PORT="$HAPROXY_PORT" PRIMARY_PORT="$PRIMARY_PORT" HAPROXY_THREADS="$HAPROXY_THREADS" \
    "$HAPROXY_BIN" -db -f "$ROOT/benches/haproxy.cfg" </dev/null >"$OUT/haproxy.log" 2>&1 &
  HAPID=$!
  wait_until 10 "haproxy on port $HAPROXY_PORT" listening "$HAPROXY_PORT" ||
    die "haproxy did not listen: $(cat "$OUT/haproxy.log")"
  alive "$HAPID" || die "haproxy exited: $(cat "$OUT/haproxy.log")"
  PORT[haproxy]="$HAPROXY_PORT" MIDPID[haproxy]="$HAPID"
  log "haproxy pid $HAPID on $HOST:$HAPROXY_PORT -> $PRIMARY_PORT (TCP mode, nbthread $HAPROXY_THREADS)"
fi
# start_proxy TARGET [run args]: a proxy for TARGET; sets PORT/MIDPID[TARGET], prints its PID var.
start_proxy() {
  local t="$1" port admin pid
  shift
  free_port port
  free_port admin
  local bin="$BIN"
  [[ "$t" == proxy2 ]] && bin="${BENCH_PROXY2_BIN:-$BIN}"
  "$bin" run --listen "$HOST:$port" --admin "$HOST:$admin" \
    --zk "$ZK_CONNECT" --primary-path "$PRIMARY_PATH" "$@" </dev/null >"$OUT/$t.log" 2>&1 &
  pid=$!
  if [[ "$t" == proxy ]]; then PROXY_PID=$pid; else PROXY2_PID=$pid; fi
  proxy_up() { alive "$pid" && ready "$admin"; }
  wait_until 30 "the proxy's /ready on port $admin" proxy_up ||
    die "proxy ($t) not ready: $(tail -20 "$OUT/$t.log")"
  PORT[$t]="$port" MIDPID[$t]="$pid"
  log "mysql-zk-proxy ($t: $bin) pid $pid on $HOST:$port (admin $admin) -> ZooKeeper $PRIMARY_PATH"
}
# proxy: the default config ([runtime] mode = "per_core"), or BENCH_PROXY_CONFIG;
# proxy2: a second proxy configured by BENCH_PROXY2_TOML (default: tokio's
# multi-thread runtime), to compare two settings in one run.
PROXY_ARGS=()
[[ -n "${BENCH_PROXY_CONFIG:-}" ]] && PROXY_ARGS=(--config "$BENCH_PROXY_CONFIG")
has_target proxy && start_proxy proxy "${PROXY_ARGS[@]}"
if has_target proxy2; then
  printf '%b\n' "${BENCH_PROXY2_TOML:-[runtime]\nmode = \"shared\"}" >"$OUT/proxy2.toml"
  start_proxy proxy2 --config "$OUT/proxy2.toml"
fi

# ---- metadata
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: BENCH_TIME=$BENCH_TIME BENCH_THREADS=\"$BENCH_THREADS\" BENCH_REPEAT=$BENCH_REPEAT" \
    "BENCH_WORKLOADS=\"$BENCH_WORKLOADS\" BENCH_TARGETS=\"$BENCH_TARGETS\" BENCH_EXTRA=\"$BENCH_EXTRA\"" \
    "BENCH_IDLE_WAIT=$BENCH_IDLE_WAIT BENCH_PAIRED=$BENCH_PAIRED HAPROXY_THREADS=$HAPROXY_THREADS benches/sysbench.sh"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel: $(uname -sr)"
  echo "sysbench: $(sysbench --version 2>/dev/null)"
  echo "haproxy: $("$HAPROXY_BIN" -v 2>/dev/null | head -1) nbthread $HAPROXY_THREADS"
  echo "mariadb: $(mariadb --no-defaults -h"$HOST" -P"$PRIMARY_PORT" -u"$APP_USER" -p"$APP_PASS" -N -B -e 'SELECT VERSION()' 2>/dev/null || echo '?')"
  echo "sysbench: $SB_TABLES tables x $SB_TABLE_SIZE rows, ${BENCH_EXTRA:-server-side prepared statements (--db-ps-mode=auto)}"
  echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "idle_wait: ${BENCH_IDLE_WAIT}s for < ${BENCH_IDLE_PCT}% busy before each run"
} >"$OUT/meta.txt"

# ---- warm up (buffer pool, and each path once)
if ((BENCH_WARMUP > 0)); then
  for t in "${TARGETS[@]}"; do
    log "warm-up: oltp_point_select via $t for ${BENCH_WARMUP}s"
    sb $((BENCH_WARMUP + 60)) "$OUT/warmup.$t.txt" oltp_point_select "${PORT[$t]}" run \
      --threads="${THREADS[0]}" --time="$BENCH_WARMUP" || die "warm-up via $t failed: $(tail -5 "$OUT/warmup.$t.txt")"
  done
fi

# ---- timed runs
RES="$OUT/results.tsv"
printf 'round\tworkload\tthreads\ttarget\tstatus\ttps\tqps\tqueries\tp95_ms\tavg_ms\terrors\treconnects\tmid_cpu_s\tmid_us_per_query\tdb_cpu_s\tdb_us_per_query\tsysbench_cpu_s\tother_cpu_s\n' >"$RES"
FAILED=0
# Counters sampled around a run (or around a pair of runs) by begin_run/end_run.
declare -A M0 M1
mid_ticks() { [[ -z "${MIDPID[$1]}" ]] || cpu_ticks "${MIDPID[$1]}"; } # "" for direct
begin_run() { # begin_run TARGET...: CPU counters before
  local t
  for t in "$@"; do M0[$t]="$(mid_ticks "$t")"; done
  D0="" D1=""
  [[ -z "$DB_PID" ]] || D0="$(cpu_ticks "$DB_PID")"
  B0="$(busy_ticks)" O0="$(ours_ticks)"
  children_cpu C0 "$OUT/times.txt"
}
end_run() { # end_run TARGET...: CPU counters after
  local t
  children_cpu C1 "$OUT/times.txt"
  B1="$(busy_ticks)" O1="$(ours_ticks)"
  [[ -z "$DB_PID" ]] || D1="$(cpu_ticks "$DB_PID")"
  for t in "$@"; do M1[$t]="$(mid_ticks "$t")"; done
}
# record ROUND WORKLOAD THREADS TARGET RC SHARED: one results row from the
# run's sysbench output and the counters; SHARED=1 (a paired run): the
# mariadbd, sysbench and other-CPU columns belong to both runs, so "-".
record() {
  local r="$1" w="$2" th="$3" t="$4" rc="$5" shared="$6" f m="" d="" sbcpu="" other=""
  f="$OUT/r$r.$w.t$th.$t.txt"
  [[ -z "${M0[$t]}" || -z "${M1[$t]}" ]] || m=$((M1[$t] - M0[$t]))
  if [[ "$shared" == 0 ]]; then
    [[ -z "$D0" || -z "$D1" ]] || d=$((D1 - D0))
    sbcpu="$(awk -v a="$C0" -v b="$C1" 'BEGIN {printf "%.2f", b - a}')"
    other=$(((B1 - B0) - (O1 - O0)))
  fi
  status=ok
  ((rc == 0)) || { status="rc=$rc"; FAILED=$((FAILED + 1)); }
  awk -v r="$r" -v w="$w" -v th="$th" -v t="$t" -v st="$status" -v hz="$CLK_TCK" \
    -v m="$m" -v d="$d" -v sbcpu="$sbcpu" -v other="$other" '
    /transactions:/ && /per sec/ {tps = $3; gsub(/\(/, "", tps)}
    /queries:/ && /per sec/ {q = $2; qps = $3; gsub(/\(/, "", qps)}
    /95th percentile:/ {p95 = $3}
    /^ *avg:/ {avg = $2}
    /ignored errors:/ {err = $3}
    /reconnects:/ {rec = $2}
    END {
      if (q == "") { q = 0; qps = 0; tps = 0; p95 = "-"; avg = "-"; err = "-"; rec = "-" }
      mc = m == "" ? "-" : sprintf("%.2f", m / hz)
      mu = (m == "" || q == 0) ? "-" : sprintf("%.1f", m / hz * 1e6 / q)
      dc = d == "" ? "-" : sprintf("%.2f", d / hz)
      du = (d == "" || q == 0) ? "-" : sprintf("%.1f", d / hz * 1e6 / q)
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
        r, w, th, t, st, tps, qps, q, p95, avg, err, rec, mc, mu, dc, du, (sbcpu == "" ? "-" : sbcpu),
        (sbcpu == "" ? "-" : sprintf("%.2f", other / hz - sbcpu))
    }' "$f" >>"$RES"
  log "round $r $w ${th}thr via $t: $(tail -1 "$RES" | awk -F'\t' '{printf "qps=%s p95=%sms errors=%s reconnects=%s cpu/query=%s us other_cpu=%ss %s", $7, $9, $11, $12, $14, $18, $5}')"
  if ((rc != 0)); then
    log "sysbench via $t exited $rc; its last lines ($f):"
    tail -5 "$f" | sed 's/^/    /' >&2
  fi
  [[ -z "${MIDPID[$t]}" ]] || alive "${MIDPID[$t]}" || die "$t (pid ${MIDPID[$t]}) died during the run; see $OUT/$t.log"
}
# run_together ROUND WORKLOAD THREADS TARGET...: one timed sysbench per
# target, all started at once (one target: a plain run), then one row each.
run_together() {
  local r="$1" w="$2" th="$3" t pids=() rcs=() i=0 shared=0
  shift 3
  (($# == 1)) || shared=1
  wait_idle
  begin_run "$@"
  for t in "$@"; do
    sb_start $((BENCH_TIME + 60)) "$OUT/r$r.$w.t$th.$t.txt" "$w" "${PORT[$t]}" run --threads="$th" \
      --time="$BENCH_TIME" --report-interval=0 --percentile=95
    pids+=("$SB_PID")
  done
  for i in "${!pids[@]}"; do
    rcs[i]=0
    sb_wait "${pids[i]}" || rcs[i]=$?
  done
  end_run "$@"
  i=0
  for t in "$@"; do
    record "$r" "$w" "$th" "$t" "${rcs[i]}" "$shared"
    i=$((i + 1))
  done
}
for ((r = 1; r <= BENCH_REPEAT; r++)); do
  # rotate the target order each round so no target always runs first/last
  n=${#TARGETS[@]} order=()
  for ((i = 0; i < n; i++)); do order+=("${TARGETS[$(((i + r - 1) % n))]}"); done
  for w in "${WORKLOADS[@]}"; do
    for th in "${THREADS[@]}"; do
      if [[ "$BENCH_PAIRED" == 1 ]]; then
        mids=()
        for t in "${TARGETS[@]}"; do [[ "$t" == direct ]] || mids+=("$t"); done
        has_target direct && run_together "$r" "$w" "$th" direct
        ((${#mids[@]} == 0)) || run_together "$r" "$w" "$th" "${mids[@]}"
      else
        for t in "${order[@]}"; do run_together "$r" "$w" "$th" "$t"; done
      fi
    done
  done
done
echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"

# ---- summary: per (workload, threads, target) mean and min..max over rounds;
# ratios are computed per round (the runs of one round are back to back) and
# then averaged.
awk -F'\t' -v rounds="$BENCH_REPEAT" -v secs="$BENCH_TIME" '
  function fmt(x, d) { return sprintf("%." d "f", x) }
  function add(k, v) { if (!(k in n)) { n[k] = 0; s[k] = 0; lo[k] = v; hi[k] = v }
    n[k]++; s[k] += v; if (v < lo[k]) lo[k] = v; if (v > hi[k]) hi[k] = v }
  function mean(k, d) { return (k in n && n[k] > 0) ? fmt(s[k] / n[k], d) : "-" }
  function spread(k, d) { return (k in n && n[k] > 1) ? fmt(lo[k], d) "-" fmt(hi[k], d) : "" }
  NR == 1 { next }
  {
    key = $2 SUBSEP $3; if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
    if (!(($4) in tseen)) { tseen[$4] = 1; tg[++nt] = $4 }
    g = key SUBSEP $4
    if ($5 != "ok") { bad[g]++; next }
    add(g SUBSEP "qps", $7); add(g SUBSEP "p95", $9); add(g SUBSEP "err", $11); add(g SUBSEP "rec", $12)
    if ($14 != "-") add(g SUBSEP "us", $14)
    qps[$1, key, $4] = $7; us[$1, key, $4] = $14
  }
  END {
    print "| workload | threads | target | qps mean | qps min-max | p95 ms mean | errors | reconnects | CPU us/query (HAProxy or proxy process) | failed runs |"
    print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= nk; i++) for (j = 1; j <= nt; j++) {
      split(keys[i], kk, SUBSEP); g = keys[i] SUBSEP tg[j]
      if (!((g SUBSEP "qps") in n) && !(g in bad)) continue
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", kk[1], kk[2], tg[j],
        mean(g SUBSEP "qps", 0), spread(g SUBSEP "qps", 0), mean(g SUBSEP "p95", 2),
        ((g SUBSEP "err") in n ? s[g SUBSEP "err"] : "-"), ((g SUBSEP "rec") in n ? s[g SUBSEP "rec"] : "-"),
        (tg[j] == "direct" ? "n/a" : mean(g SUBSEP "us", 1)), bad[g] + 0
    }
    print ""
    print "| workload | threads | qps proxy/direct | qps haproxy/direct | qps proxy/haproxy | CPU per query proxy/haproxy |"
    print "| --- | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= nk; i++) {
      split(keys[i], kk, SUBSEP); delete rn; delete rs; delete rl; delete rh; delete rv
      for (r = 1; r <= rounds; r++) {
        pd = qps[r, keys[i], "proxy"]; hd = qps[r, keys[i], "haproxy"]; dd = qps[r, keys[i], "direct"]
        pu = us[r, keys[i], "proxy"]; hu = us[r, keys[i], "haproxy"]
        if (dd > 0 && pd > 0) ratio("pd", pd / dd)
        if (dd > 0 && hd > 0) ratio("hd", hd / dd)
        if (hd > 0 && pd > 0) ratio("ph", pd / hd)
        if (hu > 0 && pu > 0) ratio("cpu", pu / hu)
        qd = qps[r, keys[i], "proxy2"]; qu = us[r, keys[i], "proxy2"]
        if (qd > 0 && pd > 0) ratio("pq", pd / qd)
        if (qu > 0 && pu > 0) ratio("pqcpu", pu / qu)
      }
      line2[i] = sprintf("| %s | %s | %s, median %s | %s, median %s |", kk[1], kk[2], rshow("pq"), median("pq"), rshow("pqcpu"), median("pqcpu"))
      if ("pqcpu" in rn) two = 1
      printf "| %s | %s | %s | %s | %s | %s |\n", kk[1], kk[2], rshow("pd"), rshow("hd"), rshow("ph"), rshow("cpu")
      line[i] = sprintf("| %s | %s | %s | %s | %s | %s |", kk[1], kk[2], median("ph"), wins("ph", 1), median("cpu"), wins("cpu", -1))
    }
    print ""
    print "Per-round ratios, median, and the rounds in which the proxy met the target (qps >= HAProxy, CPU per query <= HAProxy):"
    print ""
    print "| workload | threads | qps proxy/haproxy, median | rounds qps >= | CPU proxy/haproxy, median | rounds CPU <= |"
    print "| --- | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= nk; i++) print line[i]
    if (!two) exit
    print ""
    print "proxy against proxy2 (another config or BENCH_PROXY2_BIN), per-round ratios: mean (min-max), median:"
    print ""
    print "| workload | threads | qps proxy/proxy2 | CPU per query proxy/proxy2 |"
    print "| --- | ---: | ---: | ---: |"
    for (i = 1; i <= nk; i++) print line2[i]
  }
  function ratio(k, v) { if (!(k in rn)) { rn[k] = 0; rs[k] = 0; rl[k] = v; rh[k] = v }
    rn[k]++; rs[k] += v; if (v < rl[k]) rl[k] = v; if (v > rh[k]) rh[k] = v; rv[k, rn[k]] = v }
  function rshow(k) { if (!(k in rn)) return "-"
    return fmt(rs[k] / rn[k], 2) (rn[k] > 1 ? " (" fmt(rl[k], 2) "-" fmt(rh[k], 2) ")" : "") }
  # median of the ratios of k (insertion sort: plain POSIX awk, no asort)
  function median(k,    a, c, x, y, z) { if (!(k in rn)) return "-"
    c = rn[k]; for (x = 1; x <= c; x++) a[x] = rv[k, x]
    for (x = 2; x <= c; x++) { z = a[x]; for (y = x - 1; y >= 1 && a[y] > z; y--) a[y + 1] = a[y]; a[y + 1] = z }
    return fmt(c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2, 3) }
  # wins(k, dir): rounds with ratio >= 1 (dir 1) or <= 1 (dir -1), "n of N"
  function wins(k, dir,    x, w) { if (!(k in rn)) return "-"
    for (x = 1; x <= rn[k]; x++) if ((dir > 0 && rv[k, x] >= 1) || (dir < 0 && rv[k, x] <= 1)) w++
    return (w + 0) " of " rn[k] }
' "$RES" >"$OUT/summary.tables.md"

{
  echo "# sysbench: direct vs HAProxy (TCP) vs mysql-zk-proxy"
  echo
  sed 's/^/    /' "$OUT/meta.txt"
  echo
  if [[ "$BENCH_PAIRED" == 1 ]]; then
    echo "${BENCH_REPEAT} round(s) x ${BENCH_TIME} s per run; in each round the middleboxes ran at the same time"
    echo "(BENCH_PAIRED=1: each with its own ${BENCH_THREADS}-thread sysbench), direct alone before them."
  else
    echo "${BENCH_REPEAT} round(s) x ${BENCH_TIME} s per run, targets interleaved (order rotated per round)."
  fi
  echo "Ratios are per round, then averaged (min-max over rounds in parentheses)."
  echo "CPU us/query: utime+stime of the HAProxy or proxy process during the run / queries."
  echo
  cat "$OUT/summary.tables.md"
  echo
  echo "Per run:"
  echo
  echo "| round | workload | threads | target | qps | p95 ms | errors | reconnects | CPU s (HAProxy/proxy) | us/query | primary mariadbd us/query | sysbench CPU s | other CPU s | status |"
  echo "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  awk -F'\t' 'NR > 1 {printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $7, $9, $11, $12, $13, $14, $16, $17, $18, $5}' "$RES"
  echo
  echo "other CPU s: CPU time the machine spent during the run outside sysbench, the sandbox"
  echo "servers, HAProxy and the proxy (/proc/stat); capacity per run is $(nproc) x ${BENCH_TIME} s."
} >"$OUT/summary.md"

echo
column -t -s $'\t' "$RES"
echo
cat "$OUT/summary.tables.md"
echo
echo "results: $OUT/results.tsv, $OUT/summary.md (raw sysbench output and haproxy/proxy logs beside them)"
((FAILED == 0)) || die "$FAILED sysbench run(s) failed (status column; raw output in $OUT)"
