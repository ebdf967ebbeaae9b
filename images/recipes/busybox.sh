#!/usr/bin/env bash
# busybox.sh OUT.tar [BUSYBOX]: the image docker.io/library/busybox:latest as an oci-archive,
# from Debian's busybox-static (BUSYBOX, default /bin/busybox). Deterministic: the same busybox
# binary gives the same bytes. Built by meson (images/meson.build) and embedded in `isola`.
#
# The tree: /bin/busybox and a symlink per applet in /bin, /etc/passwd and /etc/group, /root,
# /tmp (1777) and the empty mount points. Every entry is 0:0, every mtime SOURCE_DATE_EPOCH
# (default: the date of busybox-static's Debian changelog entry, so it follows the version).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: busybox.sh OUT.tar [BUSYBOX]}
busybox=${2:-/bin/busybox}
[[ -x $busybox ]] || { echo "busybox.sh: $busybox: not an executable (install busybox-static)" >&2; exit 1; }

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
  SOURCE_DATE_EPOCH=0
  changelog=/usr/share/doc/busybox-static/changelog.Debian.gz
  if [[ -r $changelog ]]; then
    SOURCE_DATE_EPOCH=$(python3 - "$changelog" <<'PY'
import email.utils, gzip, sys
for line in gzip.open(sys.argv[1], "rt", errors="replace"):
    if line.startswith(" -- ") and "  " in line[4:]:
        print(int(email.utils.parsedate_to_datetime(line.rsplit("  ", 1)[1].strip()).timestamp()))
        break
else:
    print(0)
PY
)
  fi
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/busybox-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
umask 022
mkdir -p "$root"/{bin,dev,etc,home,proc,root,sys,tmp,var}
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [[ $applet == busybox || $applet == */* ]] && continue
  ln -s busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
users:x:100:
nogroup:x:65534:
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group"

python3 "$here/oci_pack.py" "$root" "$out" --name docker.io/library/busybox:latest --cmd sh \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --epoch "$SOURCE_DATE_EPOCH" --owner 0:0
