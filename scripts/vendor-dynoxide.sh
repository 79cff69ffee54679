#!/usr/bin/env bash
# dynoxide, the local engine and the simulation's storage, as the workspace builds it
# (Cargo.toml's [patch.crates-io]): the crate published on crates.io, its checksum checked,
# with one patch applied. Drop the copy when a release carries the patch.
#
#   scripts/vendor-dynoxide.sh           write the copy from the crate and the patch
#   scripts/vendor-dynoxide.sh --check   fail if the copy is not exactly that (CI)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

version=3.2.0
sha256=a2d1ffc871ddd8d1d26bcd0a52e32386a8cf08083c0995b78959afa987923ae4
copy=bench/vendor/dynoxide-rs
patch=bench/vendor/dynoxide-rs.patch
# What building the crate reads; its tests, docs and packaging stay upstream.
files=(Cargo.toml build.rs build VERSION src LICENSE-APACHE LICENSE-MIT NOTICE README-crate.md)

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) sed -n '2,7p' "$0" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -sSfL --retry 3 -o "$work/crate.tar.gz" \
  "https://static.crates.io/crates/dynoxide-rs/dynoxide-rs-$version.crate"
echo "$sha256  $work/crate.tar.gz" | sha256sum --check --quiet
tar -xzf "$work/crate.tar.gz" -C "$work"
mkdir "$work/copy"
(cd "$work/dynoxide-rs-$version" && cp -R "${files[@]}" "$work/copy/")
patch --quiet --directory "$work/copy" -p1 <"$root/$patch"

if $check; then
  if ! diff -r "$work/copy" "$root/$copy" >"$work/diff"; then
    head -40 "$work/diff" >&2
    echo "$copy is not dynoxide-rs $version with $patch: run scripts/vendor-dynoxide.sh" >&2
    exit 1
  fi
  echo "$copy is dynoxide-rs $version with $patch"
else
  rm -rf "${root:?}/$copy"
  mv "$work/copy" "$root/$copy"
  echo "wrote $copy: dynoxide-rs $version with $patch"
fi
