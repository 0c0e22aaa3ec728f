# Shell helpers shared by the bench scripts (sourced by benches/sysbench.sh and
# benches/read-only.sh; the helpers call the script's `log` and `die` and use
# its HOST): the defaults of the settings both share,
# process liveness and stopping by recorded PID, taking down the sandbox the
# script started, bounded waits, free ports and per-process CPU ticks. Defines functions only; runs nothing.

# bench_setup NAME: the set-up both scripts share: ROOT (the checkout) as the
# working directory, the settings both take (each script's header documents
# them) from the environment or else their defaults, where the release build
# is (TARGET_DIR, honouring CARGO_TARGET_DIR; BIN, SANDBOX_BIN), OUT (default
# under TARGET_DIR/bench, named after NAME and the UTC time) and HOST.
bench_setup() {
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  cd "$ROOT"
  BENCH_TIME="${BENCH_TIME:-20}"
  BENCH_THREADS="${BENCH_THREADS:-8}"
  BENCH_WARMUP="${BENCH_WARMUP:-5}"
  BENCH_BUILD="${BENCH_BUILD:-1}"
  SB_TABLES="${SB_TABLES:-4}"
  SB_TABLE_SIZE="${SB_TABLE_SIZE:-10000}"
  HAPROXY_THREADS="${HAPROXY_THREADS:-1}"
  TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  OUT="${BENCH_OUT:-$TARGET_DIR/bench/$1-$(date -u +%Y%m%dT%H%M%SZ)}"
  BIN="$TARGET_DIR/release/mysql-zk-proxy"
  SANDBOX_BIN="$TARGET_DIR/release/mysql-zk-proxy-sandbox"
  HOST=127.0.0.1
}

# alive PID: exists and is not a zombie (a killed child lingers until reaped).
alive() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "${st%% *}" != Z ]]
}

# stop_pid PID [NAME]: TERM, up to 10 s for it to exit, then KILL; reap it.
stop_pid() {
  local pid="$1" name="${2:-process}" deadline=$((SECONDS + 10))
  [[ -n "$pid" ]] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    if alive "$pid"; then
      log "$name (pid $pid) still running 10 s after SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# sandbox_down DIR: `sandbox down --wipe` the sandbox in DIR if this script
# started it (OWN_SANDBOX, its temp dir, is set), then remove OWN_SANDBOX.
sandbox_down() {
  [[ -n "$OWN_SANDBOX" ]] || return 0
  timeout 120 "$SANDBOX_BIN" down --wipe --dir "$1" >/dev/null 2>&1 ||
    log "sandbox down failed: stop it with '$SANDBOX_BIN down --wipe --dir $1'"
  rmdir "$OWN_SANDBOX" 2>/dev/null || true
}

# wait_until SECONDS WHAT CMD...: poll CMD until it succeeds or the deadline passes.
wait_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || { log "timed out after ${limit}s waiting for $what"; return 1; }
    sleep 0.05
  done
}

# listening PORT: something accepts connections on $HOST:PORT.
listening() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# free_port VAR: set VAR to a port in 24000-29999 that nothing listens on and
# no socket uses (best effort: a start that loses a race fails loudly).
TAKEN=""
free_port() {
  local var="$1" p used=""
  command -v ss >/dev/null && used="$(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}')"
  for _ in $(seq 1 200); do
    p=$((24000 + RANDOM % 6000))
    listening "$p" && continue
    grep -qx "$p" <<<"$used" && continue
    [[ " $TAKEN " == *" $p "* ]] && continue
    TAKEN="$TAKEN $p"
    printf -v "$var" '%s' "$p"
    return 0
  done
  die "no free port found in 24000-29999"
}

# cpu_ticks PID: utime + stime of a process (all its threads): fields 14, 15
# of /proc/PID/stat; "" if gone.
cpu_ticks() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" || return 0
  awk '{print $12 + $13}' <<<"$st"
}
