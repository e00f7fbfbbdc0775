# Shared helpers for the dev/ scripts: paths, ports, progress output, process bookkeeping.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${VAP_STATE_DIR:-$ROOT/.vap}
# Downloads and builds shared by every clone on this machine (a fresh clone reuses them).
CACHE=${VAP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vap}
VENV=${VAP_VENV:-$ROOT/.venv}
LOGS=$STATE/logs

PG_PORT=${VAP_PG_PORT:-15432}
KAFKA_PORT=${VAP_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${VAP_KAFKA_CONTROLLER_PORT:-19093}
ETCD_PORT=${VAP_ETCD_PORT:-12379}
ETCD_PEER_PORT=${VAP_ETCD_PEER_PORT:-12380}
KUBE_PORT=${VAP_KUBE_PORT:-16443}

mkdir -p "$STATE" "$LOGS" "$CACHE"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
seconds_since() { awk -v start="$1" -v end="$(now_ms)" 'BEGIN { printf "%.1f", (end - start) / 1000 }'; }

# is_running NAME: the process recorded in $STATE/NAME.pid is alive.
is_running() {
  local pidfile=$STATE/$1.pid
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# start_daemon NAME LOGFILE CMD...: run CMD in its own session, detached, and record its pid.
start_daemon() {
  local name=$1 logfile=$2; shift 2
  setsid "$@" >>"$logfile" 2>&1 < /dev/null &
  echo $! >"$STATE/$name.pid"
}

# stop_daemon NAME: SIGTERM, wait up to 30 s, then SIGKILL; removes the pid file.
stop_daemon() {
  local name=$1 pidfile=$STATE/$1.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      info "$name did not stop in 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# wait_for NAME TIMEOUT_SECONDS LOGFILE CMD...: poll CMD until it succeeds, printing a dot a second.
# Fails at once, with the tail of LOGFILE, when the daemon recorded as NAME has exited, or on timeout.
wait_for() {
  local name=$1 timeout=$2 logfile=$3; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    local problem=""
    if [[ -f $STATE/$name.pid ]] && ! is_running "$name"; then problem="exited"; fi
    if (( $(date +%s) >= deadline )); then problem="not ready after ${timeout}s"; fi
    if [[ -n $problem ]]; then
      printf '\n'
      tail -n 20 "$logfile" >&2 || true
      die "$name $problem (log: $logfile)"
    fi
    printf '.'; sleep 1
  done
  printf '\n'
}

# with_progress WHAT LOGFILE CMD...: run CMD with its output in LOGFILE, a progress line every 30 s,
# and its time at the end; on failure the log's tail and an error.
with_progress() {
  local what=$1 logfile=$2 start; shift 2
  start=$(now_ms)
  info "$what (log: $logfile)"
  "$@" >>"$logfile" 2>&1 &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1; waited=$((waited + 1))
    (( waited % 30 == 0 )) && info "... still working (${waited}s)"
  done
  wait "$pid" || { tail -n 30 "$logfile" >&2; die "$what failed (log: $logfile)"; }
  info "done in $(seconds_since "$start")s"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  step "installing Debian packages: $*"
  command -v apt-get >/dev/null || die "apt-get not found: install $* yourself"
  if [[ $(id -u) -ne 0 ]]; then die "installing $* needs root (sudo apt-get install $*)"; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
