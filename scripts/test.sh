#!/usr/bin/env bash
# Run every check and test: formatting, lints, the CDK app's offline tests, and the whole Rust
# suite against one DynamoDB Local started for this run (each test makes its own table, so
# tests run in parallel).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

instance="tests-$$"
cleanup() { bash scripts/dynamodb-local.sh stop "$instance"; }
trap cleanup EXIT

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== DynamoDB Local"
DYNAMODB_LOCAL_ENDPOINT=$(bash scripts/dynamodb-local.sh start "$instance")
export DYNAMODB_LOCAL_ENDPOINT
echo "tests use $DYNAMODB_LOCAL_ENDPOINT"

echo "== infra (CDK app, offline)"
bash scripts/infra-test.sh

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== API fuzzing (Schemathesis against a running writer)"
bash scripts/api-fuzz.sh
