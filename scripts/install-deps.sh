#!/usr/bin/env bash
# Installs what the sandbox and the integration tests need, idempotently:
# ZooKeeper 3.8 (+ Java), MariaDB server/client, sysbench, HAProxy (Debian
# packages) and the rustfmt/clippy components. The harness starts every server
# itself as a plain process, so no service is enabled or started here.
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*"; }

missing=()
for cmd in java mariadbd mariadb mariadb-install-db sysbench haproxy; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$cmd" ]]; then
    missing+=("$cmd")
  fi
done
[[ -f /usr/share/java/zookeeper.jar ]] || missing+=(zookeeper.jar)

if ((${#missing[@]} == 0)); then
  log "system packages: all present (java, zookeeper.jar, mariadbd, mariadb, mariadb-install-db, sysbench, haproxy)"
else
  log "missing: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    log "ERROR: not root and no sudo; as root run:"
    log "  apt-get update && apt-get install -y zookeeper mariadb-server mariadb-client sysbench haproxy"
    exit 1
  fi
  command -v apt-get >/dev/null 2>&1 || { log "ERROR: apt-get not found (Debian/Ubuntu expected)"; exit 1; }
  log "running apt-get update"
  "${SUDO[@]}" apt-get update -q
  log "installing zookeeper mariadb-server mariadb-client sysbench haproxy"
  # RUNLEVEL=1 keeps Debian maintainer scripts from starting services even
  # without a policy-rc.d; nothing here depends on them running or not.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -q zookeeper mariadb-server mariadb-client sysbench haproxy
  log "installed"
fi

if command -v rustup >/dev/null 2>&1; then
  for comp in rustfmt clippy; do
    if rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
      log "rust component $comp: present"
    else
      log "adding rust component $comp"
      rustup component add "$comp"
    fi
  done
else
  for tool in rustfmt cargo-clippy; do
    command -v "$tool" >/dev/null 2>&1 || log "WARNING: $tool not found and no rustup to add it"
  done
fi
log "done"
