#!/usr/bin/env bash
# Builds isola into build/ (and, with --asan, also build-asan/ with ASan+UBSan).
set -euo pipefail
cd "$(dirname "$0")/.."
setup() { # dir, extra meson args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
}
setup build
if [ "${1:-}" = "--asan" ]; then
  setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
fi
