#!/usr/bin/env bash
# A headless browser for the API reference test: Debian's chromium, installed with apt on first
# use (the machines run as root). Prints the browser's path.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$root/.local"
(
  flock 9
  if ! command -v chromium >/dev/null; then
    command -v apt-get >/dev/null || { echo "apt-get is needed to install chromium" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "installing chromium needs root (apt-get)" >&2; exit 1; }
    echo "installing chromium from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium >&2
  fi
) 9>"$root/.local/browser.lock"
command -v chromium
