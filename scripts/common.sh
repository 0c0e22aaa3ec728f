# Sourced by demo.sh and drill.sh (from the repository root): install what is
# missing, build the release binaries (the workspace's default members: the
# proxy `mysql-zk-proxy` and the test bench `mysql-zk-proxy-sandbox`), and the
# shared settings and helpers.
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "==> building (release)"
cargo build --release --locked --quiet
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="$TARGET_DIR/release/mysql-zk-proxy"
SANDBOX_BIN="$TARGET_DIR/release/mysql-zk-proxy-sandbox"
export SANDBOX_DIR="${SANDBOX_DIR:-${TMPDIR:-/tmp}/mysql-zk-proxy-sandbox}"

# GET http://127.0.0.1:$ADMIN_PORT$1 with bash alone; body on stdout, fails unless 200.
admin_get() {
  local resp
  exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3
  resp="$(cat <&3)"; exec 3<&-
  [[ "$resp" == "HTTP/1."?" 200"* ]] || return 1
  printf '%s\n' "${resp#*$'\r\n\r\n'}"
}

# Wait (bounded: 10 s) until the proxy $PROXY_PID answers /ready on $ADMIN_PORT;
# exit with its log ($1) when it dies or never gets ready.
wait_ready() {
  local log="$1"
  for _ in $(seq 1 200); do
    admin_get /ready >/dev/null 2>&1 && return 0
    kill -0 "$PROXY_PID" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.05
  done
  echo "proxy not ready"; cat "$log"; exit 1
}
