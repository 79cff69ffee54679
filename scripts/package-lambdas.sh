#!/usr/bin/env bash
# Build both Lambda functions for arm64 (provided.al2023) with cargo lambda into
# target/lambda/<bin>/bootstrap, where the CDK app picks them up, and print each zip's size.
# cargo-lambda and zig come pinned from PyPI into the ignored .venv/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target" || {
    echo "cannot install the Rust standard library for $target (rustup target add $target)" >&2
    exit 1
  }
fi
bin=$(bash scripts/python-tools.sh)
export PATH="$bin:$PATH"

# The release profile in Cargo.toml keeps panic = "unwind": a panic in a handler becomes an
# error response (writer: 500 problem; projector: a failed invocation Lambda retries), not a
# dead process.
# No default features: the writer's interactive API reference (/docs) is for local servers.
cargo lambda build --profile lambda --arm64 -p writer -p projector --no-default-features \
  --bin writer --bin projector

limit=$((5 * 1024 * 1024))
for function in writer projector; do
  binary="target/lambda/$function/bootstrap"
  [ -x "$binary" ] || { echo "missing $binary" >&2; exit 1; }
  size=$(python3 - "$binary" <<'PY'
import io, sys, zipfile
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(sys.argv[1], "bootstrap")
print(len(buffer.getvalue()))
PY
)
  printf '%-10s bootstrap %9d bytes, zipped %8d bytes (%s MB)\n' "$function" "$(stat -c %s "$binary")" "$size" \
    "$(python3 -c "print(round($size / 1048576, 2))")"
  [ "$size" -le "$limit" ] || { echo "$function zip is over 5 MB" >&2; exit 1; }
done
