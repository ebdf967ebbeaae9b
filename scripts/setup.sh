#!/usr/bin/env bash
# The main job: install dependencies, build, and run `echo hello` in a container of the embedded
# default image (busybox, built from Debian's busybox-static into the isola binary) through
# `isola run`, in a KVM microVM of its own (--isolation=vm) when /dev/kvm is usable. The first
# run also builds the guest kernel (kernel-config/build.sh: about 10 CPU-minutes, with a
# line per stage and per 250 objects; cached in /var/cache/isola/kernel). The image store is
# /var/lib/isola.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
  kernel-config/build.sh --print-path >/dev/null
  exec build/cli/isola run --rm --isolation=vm busybox echo hello
fi
echo "setup: no usable /dev/kvm on this machine, so the container runs with process isolation" \
  "(--isolation=vm needs KVM)" >&2
exec build/cli/isola run --rm busybox echo hello
