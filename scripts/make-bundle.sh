#!/usr/bin/env bash
# make-bundle.sh DIR [ARG...]: an OCI bundle whose rootfs is Debian's busybox-static with all
# its applets, and whose config.json (from `isola-runtime spec`) runs ARG... without a tty.
set -euo pipefail
dir=$1; shift
top=$(cd "$(dirname "$0")/.." && pwd)
rt=${ISOLA_RUNTIME:-$top/build/cli/isola-runtime}
rootfs=$dir/rootfs
if [ ! -x "$rootfs/bin/busybox" ]; then
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run}
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  "$rootfs/bin/busybox" --list-full | python3 -c '
import os, sys
root = sys.argv[1]
for applet in sys.stdin.read().split():
    path = os.path.join(root, applet)
    if not os.path.lexists(path):
        os.symlink("/bin/busybox", path)
' "$rootfs"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
fi
rm -f "$dir/config.json"
"$rt" spec --bundle "$dir"
python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:] or ["sh"]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
