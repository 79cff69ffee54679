#!/usr/bin/env bash
# Pinned Python tools in an ignored venv (created on first use), for the infra, fuzzing and
# packaging scripts. Prints the venv's bin folder.
#
#   scripts/python-tools.sh          scripts/python-tools.txt in .venv/
#   scripts/python-tools.sh checkov  scripts/checkov.txt in .venv-checkov/ (its dependencies
#                                    pin versions the other tools cannot share)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
set_name=${1:-python-tools}
case "$set_name" in
  python-tools) venv="$root/.venv" ;;
  checkov) venv="$root/.venv-checkov" ;;
  *) echo "unknown tool set $set_name" >&2; exit 2 ;;
esac
requirements="$root/scripts/$set_name.txt"
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
) 9>"$venv.lock"
echo "$venv/bin"
