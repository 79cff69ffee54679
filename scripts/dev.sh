#!/usr/bin/env bash
# Start the whole system locally: the local engine (dynoxide; data kept in .local/dev.db, expired
# tombstones swept every minute), the table, the
# writer with the dev identity header, the projector's stream poller, and demo data. Ctrl-C
# stops everything.
#
#   WRITER_PORT=8080  WRITE_MODE=stream|transactional  TABLE_NAME=publishing
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

port=${WRITER_PORT:-8080}
table=${TABLE_NAME:-publishing}
mode=${WRITE_MODE:-stream}
base="http://127.0.0.1:$port"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash scripts/engine.sh stop dev
}
trap cleanup EXIT INT TERM

echo "== building"
cargo build --workspace --locked

echo "== the local engine (dynoxide)"
endpoint=$(bash scripts/engine.sh start dev --db-path .local/dev.db --ttl-sweep-secs 60)
echo "the engine at $endpoint"

echo "== writer"
./target/debug/writer serve --listen "127.0.0.1:$port" --table "$table" --endpoint-url "$endpoint" \
  --mode "$mode" --dev-identity --create-table &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "$base/openapi.json" >/dev/null && break; sleep 0.1; done
curl -sf "$base/openapi.json" >/dev/null || { echo "the writer did not start" >&2; exit 1; }

echo "== projector (stream poller)"
./target/debug/projector --table "$table" --endpoint-url "$endpoint" poll &
pids+=($!)

echo "== demo data"
call() { curl -sf -X "$1" "$base$2" -H "x-user-id: $3" -H 'content-type: application/json' ${4:+-d "$4"}; }
call PUT /topics/rust demo '{"title":"Rust"}' >/dev/null
call PUT /users/me alice '{"displayName":"Alice","bio":"writes about Rust"}' >/dev/null
call PUT /users/me bob '{"displayName":"Bob"}' >/dev/null
post=$(curl -sf "$base/topics/rust/posts?limit=1" | python3 -c 'import json,sys; p=json.load(sys.stdin)["posts"]; print(p[0]["postId"] if p else "")')
if [ -z "$post" ]; then
  for title in "Ownership, explained" "Async in practice" "Streams as projections"; do
    post=$(call POST /topics/rust/posts alice "{\"title\":\"$title\",\"body\":\"...\"}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["postId"])')
  done
fi
call PUT "/topics/rust/posts/$post/like" bob >/dev/null

cat <<TXT

The writer listens on $base ($mode mode, table $table); the projector polls the stream,
so like counts follow within a second. Try:

  curl -s $base/topics/rust/posts
  curl -s -X PUT $base/topics/rust/posts/$post/like -H 'x-user-id: alice'
  curl -s $base/topics/rust/posts/$post
  curl -s $base/topics/rust/posts/$post/likes
  curl -s $base/users/bob
  curl -s -X POST $base/topics/rust/posts -H 'x-user-id: alice' -H 'content-type: application/json' \\
       -d '{"title":"Hello","body":"World"}'
  curl -s $base/openapi.json

Ctrl-C stops everything.
TXT
wait
