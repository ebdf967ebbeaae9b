#!/usr/bin/env bash
# The main job: install dependencies, build, and run `echo hello` in a busybox container
# through isola-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
bundle=build/bundles/busybox
scripts/make-bundle.sh "$bundle" echo hello
exec build/cli/isola-runtime run --bundle "$bundle" "isola-hello-$$"
