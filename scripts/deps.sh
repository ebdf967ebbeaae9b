#!/usr/bin/env bash
# Installs what isola needs to build and test on Debian 12 (as root). Quiet when all is there.
set -euo pipefail
pkgs=(
  build-essential meson ninja-build pkg-config clang clang-format
  libjson-c-dev libseccomp-dev
  # images/: headers only; isola dlopen()s libcurl4, libarchive13, zlib1g and libzstd1 (which
  # these bring) on first use, so they are listed too: no ELF dependency names them.
  libcurl4-openssl-dev libarchive-dev libssl-dev libzstd-dev zlib1g-dev
  libcurl4 libarchive13 zlib1g libzstd1
  erofs-utils busybox-static python3 python3-pytest procps iproute2 util-linux strace zstd
  crun runc podman containerd uidmap
  debootstrap skopeo
  docker-registry python3-cryptography
  qemu-system-x86
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
