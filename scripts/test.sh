#!/usr/bin/env bash
# Run every check and test: formatting, lints, the CDK app's offline checks, the whole Rust
# suite against one local engine (dynoxide) started for this run (each test makes its own table, so
# tests run in parallel), and Schemathesis against a running writer.
#
#   scripts/test.sh           everything (what CI runs)
#   scripts/test.sh --quick   formatting, lints and the Rust tests: the inner loop
#
# Work that waits on the network or a single core (installing the Python and npm tools, the
# infra checks, Schemathesis) runs beside the Rust compile and tests instead of after them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

quick=false
case "${1:-}" in
  --quick) quick=true ;;
  "") ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac

instance="tests-$$"
fuzz_instance="fuzz-$$"
logs=$(mktemp -d)
background=()
cleanup() {
  for pid in "${background[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash scripts/engine.sh stop "$instance"
  bash scripts/engine.sh stop "$fuzz_instance"
  rm -rf "$logs"
}
trap cleanup EXIT

# Wait for a background step; show its output; fail if it failed.
finish() {
  local pid=$1 name=$2 status=0
  wait "$pid" || status=$?
  echo "== $name"
  cat "$logs/$name.log"
  if [ "$status" -ne 0 ]; then echo "$name failed (exit $status)" >&2; exit "$status"; fi
}

# The API reference test opens a headless browser; installing it (once) overlaps the build.
bash scripts/browser.sh >"$logs/browser.log" 2>&1 &
browser=$!
background+=("$browser")

if ! $quick; then
  # The infra checks install npm and Python tools; they overlap the Rust build.
  bash scripts/infra-test.sh >"$logs/infra.log" 2>&1 &
  infra=$!
  background+=("$infra")
fi

echo "== formatting"
cargo fmt --all -- --check

echo "== dynoxide: the published crate with bench/vendor/dynoxide-rs.patch"
bash scripts/vendor-dynoxide.sh --check

# Clippy lints the workspace's crates while the test build compiles them: clippy-driver is the
# workspace's rustc wrapper, given `-D warnings` as `cargo clippy -- -D warnings` gives it
# (CLIPPY_ARGS, the variable cargo-clippy sets). So the dependencies are compiled once, not
# checked once for clippy and built again for the tests. Every cargo call below (the engine's
# build included) keeps the same wrapper, so none rebuilds what another built.
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS

# The test build makes every binary, the engine's too: built first on its own, the engine would
# resolve the workspace's features without the dev-dependencies and compile shared crates twice.
# The benchmarks are built (and linted) in the test profile, on the same dependencies.
echo "== Rust build, with clippy's lints"
cargo nextest run --workspace --locked --no-run
cargo test --workspace --locked --benches --no-run

echo "== the local engine (dynoxide)"
# The test build made it (engine.sh would otherwise build it again, on other features).
export ENGINE_BUILT=1
LOCAL_ENGINE_ENDPOINT=$(bash scripts/engine.sh start "$instance")
export LOCAL_ENGINE_ENDPOINT
echo "tests use $LOCAL_ENGINE_ENDPOINT"

if ! $quick; then
  # Schemathesis against the writer binary the test build made, beside the Rust tests, on an
  # engine of its own: the engine runs one request at a time, and the suite keeps it busy.
  fuzz_engine=$(bash scripts/engine.sh start "$fuzz_instance")
  LOCAL_ENGINE_ENDPOINT=$fuzz_engine WRITER_BIN=target/debug/writer \
    bash scripts/api-fuzz.sh >"$logs/api-fuzz.log" 2>&1 &
  fuzz=$!
  background+=("$fuzz")
fi

finish "$browser" browser

echo "== Rust tests"
# Every test records the DynamoDB calls of the deployed functions; the last check compares them
# with infra/permissions.json, which the roles are built from.
PERMISSIONS_LOG="$root/target/permissions"
export PERMISSIONS_LOG
rm -rf "$PERMISSIONS_LOG"
cargo nextest run --workspace --locked --no-fail-fast

echo "== permissions: infra/permissions.json against the calls the tests made"
cargo nextest run --workspace --locked --run-ignored only \
  -E 'test(=permissions::tests::infra_permissions_are_what_the_tests_called)'

if ! $quick; then
  # The whole pipeline in virtual time, seed after seed, each with faults and operator
  # commands (bench/sim): a failure prints its seed and the command that replays it.
  echo "== deterministic simulation: a sweep of seeds for ${SIM_SECONDS:-120} s"
  target/debug/sim --seconds "${SIM_SECONDS:-120}"

  finish "$infra" infra
  finish "$fuzz" api-fuzz
fi
