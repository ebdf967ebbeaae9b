#!/usr/bin/env bash
# The main job: install dependencies, build, and run `echo hello` in a container of the embedded
# default image (busybox, built from Debian's busybox-static into the isola binary) through
# `isola run`. The image store is /var/lib/isola.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/cli/isola run --rm busybox echo hello
