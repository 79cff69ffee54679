#!/usr/bin/env bash
# Pinned Python tools in the ignored .venv/ (created on first use), for the infra and
# packaging scripts. Prints the venv's bin folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
requirements="$root/scripts/python-tools.txt"
stamp="$venv/.installed"
mkdir -p "$venv"
# A lock keeps parallel callers (the infra checks and Schemathesis) from installing at once.
(
  flock 9
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
  fi
  if [ ! -f "$stamp" ] || ! cmp -s "$requirements" "$stamp"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$stamp"
  fi
) 9>"$root/.venv.lock"
echo "$venv/bin"
