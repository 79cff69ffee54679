#!/usr/bin/env bash
# Regenerate docs/benchmarks.md and docs/benchmarks.svg: Lambda package sizes, projector CPU
# (criterion), then the load benchmark of both designs on an engine of its own.
#
#   ROUNDS=2  PHASE_SECS=10  RATE=300  STREAMS=0:1000,1000:1000,5000:2000 (the stream deployments: poller batching window in ms : batch size)
#   PACKAGE=1 (0 skips the Lambda build; the report then shows the sizes last measured, if any)
#   VIRAL_SECONDS=60  SEEDS_SECONDS=5  VIRAL_SEEDS=3 (the deterministic simulation's viral post)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
mkdir -p target/load

if [ "${PACKAGE:-1}" = 1 ]; then
  echo "== Lambda packages"
  bash scripts/package-lambdas.sh | tee target/load/lambda-sizes.txt
fi

echo "== projector CPU: decode + plan"
cargo bench --locked -p bench --bench decode_plan

echo "== load: stream projection against the transactional design"
cargo build --locked --release -p bench -p sim --bin bench --bin engine --bin sim
target/release/bench load \
  --rounds "${ROUNDS:-2}" --phase-secs "${PHASE_SECS:-10}" --rate "${RATE:-300}" \
  --streams "${STREAMS:-0:1000,1000:1000,5000:2000}" --out "$root/target/load" --report "$root/docs"

echo "== multi-shard simulation: a viral post over 16 virtual shards x 2, conflicts modelled"
target/release/bench shards --likes 10000 --rate 500 --shards 16 --parallelization 2 --batch-size 1000 \
  --batching-window-ms 1000 \
  --json "$root/docs/benchmarks.json"

echo "== deterministic simulation: one post at 20,000 likes/s over 100 shards x 2, beside the same load spread evenly"
# VIRAL_SECONDS of virtual load, seed 1, the two runs one after the other (the full minute takes
# over an hour of wall time and up to 9.3 GB of memory: docs/benchmarks.md); then SEEDS_SECONDS of
# it for VIRAL_SEEDS seeds, to show how far the figures move with the schedule.
target/release/sim --viral --viral-seconds "${VIRAL_SECONDS:-60}" --threads 1 --json "$root/docs/benchmarks.json"
target/release/sim --viral --viral-seconds "${SEEDS_SECONDS:-5}" --viral-seeds "${VIRAL_SEEDS:-3}" \
  --json "$root/docs/benchmarks.json" --json-key simulatedViralPostSeeds
