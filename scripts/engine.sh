#!/usr/bin/env bash
# The local DynamoDB-compatible engine: dynoxide (open source, MIT OR Apache-2.0), built with the
# workspace as bench's `engine` binary (pinned by Cargo.lock; nothing else to install).
#
#   scripts/engine.sh path                        build if needed; print the binary's path
#   scripts/engine.sh start NAME [engine flags]   start instance NAME on a free loopback port
#                                                 (in memory unless --db-path FILE; ENGINE_PORT
#                                                 picks the port); print its endpoint
#   scripts/engine.sh stop NAME                   stop instance NAME
#
# Engine flags: --db-path FILE (keep data), --ttl-sweep-secs N (delete expired items every N s).
# Every engine of the project starts here or from bench::local (the tests' own instances).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$root/.local/run"
profile=${ENGINE_PROFILE:-debug}

binary() {
  local path="${CARGO_TARGET_DIR:-$root/target}/$profile/engine"
  # scripts/test.sh sets ENGINE_BUILT once its test build has made the engine: built again on
  # its own, it would resolve features without the dev-dependencies and compile half the
  # dependency tree a second time (about two minutes on CI's two cores).
  if [ -n "${ENGINE_BUILT:-}" ] && [ -x "$path" ]; then
    printf '%s\n' "$path"
    return
  fi
  local flags=(--workspace --locked --bin engine)
  [ "$profile" = release ] && flags+=(--release)
  (cd "$root" && cargo build -q "${flags[@]}" >&2)
  printf '%s\n' "$path"
}

start() {
  local name=${1:?instance name} bin pid
  shift
  bin=$(binary)
  mkdir -p "$state"
  "$bin" --port "${ENGINE_PORT:-0}" "$@" >"$state/$name.out" 2>"$state/$name.log" &
  pid=$!
  echo "$pid" >"$state/$name.pid"
  for _ in $(seq 1 300); do
    if [ -s "$state/$name.out" ]; then
      head -n 1 "$state/$name.out"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "the engine exited; see $state/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "the engine did not listen within 30 s; see $state/$name.log" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

stop() {
  local pidfile="$state/${1:?instance name}.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  path) binary ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
