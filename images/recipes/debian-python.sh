#!/usr/bin/env bash
# debian-python.sh [OUT.tar]: the image isola.dev/debian-python:12 (Debian 12 minbase + python3)
# as an oci-archive, built with debootstrap from Debian's mirror and packed by oci_pack.py.
#
# The result is cached in $ISOLA_RECIPE_CACHE (default /var/cache/isola/recipes) under a key made
# of this recipe's files, the suite and the mirror; a later run copies it from there. Set
# ISOLA_RECIPE_REBUILD=1 to build again. The mirror is $ISOLA_DEBIAN_MIRROR (default
# http://deb.debian.org/debian); an apt proxy (Acquire::http::Proxy) is used when configured.
#
# Everything the install leaves that differs between runs is removed or pinned (apt lists and
# caches, logs, machine-id, python bytecode, shadow's last-change dates, backup files), and every
# mtime is clamped to SOURCE_DATE_EPOCH (default: the newest Debian changelog in the tree, so it
# follows the package versions installed).
#
# Time here (2 vCPUs, deb.debian.org): about 115 s for the first build (debootstrap ~80 s, packing
# ~30 s), 0.2 s from the cache. Two independent builds gave byte-identical archives (same
# package versions): manifest sha256:76ce9991..., 58 MB.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-}
suite=bookworm
name=isola.dev/debian-python:12
mirror=${ISOLA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${ISOLA_RECIPE_CACHE:-/var/cache/isola/recipes}

if [[ $(id -u) != 0 ]]; then
  echo "debian-python.sh: debootstrap needs root" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "debian-python.sh: debootstrap is not installed (scripts/deps.sh)" >&2; exit 1; }

key=$( { cat "$here/debian-python.sh" "$here/oci_pack.py"; echo "$suite $mirror $name ${SOURCE_DATE_EPOCH:-}"; } |
  sha256sum | cut -c1-16)
cached=$cache/debian-python-$key.tar

deliver() {
  if [[ -n $out ]]; then
    cp --reflink=auto "$cached" "$out.partial" && mv "$out.partial" "$out"
  fi
}

if [[ -f $cached && -z ${ISOLA_RECIPE_REBUILD:-} ]]; then
  echo "debian-python: cached $cached"
  deliver
  exit 0
fi

if [[ -z ${http_proxy:-} ]]; then
  proxy=$(apt-config shell p Acquire::http::Proxy | sed -n "s/^p='\(.*\)'$/\1/p")
  [[ -n $proxy && $proxy != DIRECT ]] && export http_proxy=$proxy
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
log=$work/debootstrap.log
start=$SECONDS

# debootstrap's output condensed: one line per stage (Retrieving, Validating, Extracting,
# Unpacking, Configuring...), rewritten in place on a terminal.
progress() {
  local stage="" line s tty=0
  [[ -t 1 ]] && tty=1
  while IFS= read -r line; do
    echo "$line" >>"$log"
    [[ $line == I:* || $line == E:* || $line == W:* ]] || continue
    s=${line#?: }
    s=${s%% *}
    [[ $s == Validating ]] && s=Retrieving # they alternate package by package
    if ((tty)); then
      [[ $s != "$stage" && -n $stage ]] && echo
      printf '\r\033[K  %s' "${line:0:100}"
    elif [[ $s != "$stage" ]]; then
      echo "  $line"
    fi
    stage=$s
  done
  ((tty)) && [[ -n $stage ]] && echo
  return 0
}

echo "debian-python: debootstrap $suite from $mirror"
if ! debootstrap --variant=minbase --include=python3 --components=main \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$suite" "$root" "$mirror" 2>&1 | progress; then
  echo "debian-python: debootstrap failed; the end of its log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
[[ -x $root/usr/bin/python3 ]] || { echo "debian-python: no usr/bin/python3 after debootstrap" >&2; tail -n 30 "$log" >&2; exit 1; }

echo "debian-python: cleaning"
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
  "$root"/var/cache/ldconfig/aux-cache "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
  "$root"/etc/hostname "$root"/etc/resolv.conf "$root"/etc/ssh/ssh_host_* \
  "$root"/etc/passwd- "$root"/etc/group- "$root"/etc/shadow- "$root"/etc/gshadow- \
  "$root"/debootstrap "$root"/run/* "$root"/tmp/* "$root"/var/tmp/* \
  "$root"/dev/* "$root"/proc/* "$root"/sys/*
mkdir -p "$root"/var/lib/apt/lists/partial "$root"/var/cache/apt/archives/partial
find "$root" -depth -type d -name __pycache__ -exec rm -rf {} +
: >"$root/etc/machine-id"

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
  SOURCE_DATE_EPOCH=$(find "$root/usr/share/doc" -name changelog.Debian.gz -printf '%T@\n' |
    sort -n | tail -n1 | cut -d. -f1)
fi
export SOURCE_DATE_EPOCH
# The last-change field of each shadow entry is the install day: pin it to the epoch's day.
days=$((SOURCE_DATE_EPOCH / 86400))
sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\1$days:/" "$root/etc/shadow"

echo "debian-python: packing (epoch $SOURCE_DATE_EPOCH)"
python3 "$here/oci_pack.py" "$root" "$work/image.tar" --name "$name" --cmd python3 \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
  --epoch "$SOURCE_DATE_EPOCH"
mv "$work/image.tar" "$cached"
echo "debian-python: built $cached in $((SECONDS - start)) s ($(du -h "$cached" | cut -f1))"
deliver
