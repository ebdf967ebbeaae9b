#!/usr/bin/env bash
# Builds isola's guest kernel: an uncompressed x86-64 vmlinux with a PVH entry, from Debian's
# linux-source-6.1, tinyconfig + isola.config, with the patches in patches/ applied. The result is
# cached outside the repository under a key made of the source version, the config fragment and
# the patches, so a second run only prints the path. See README.md next to this script.
#
#   kernel-config/build.sh               build if needed (progress on stderr), print the vmlinux path
#   kernel-config/build.sh --print-path  for scripts: silent on a cache hit, stage lines only
#                                        while building; stdout is the path alone in both modes
#   options: --force (rebuild even if cached), --jobs N (default 2), --cache DIR
#   environment: ISOLA_KERNEL_CACHE (default /var/cache/isola/kernel)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/isola.config
patches_dir=$here/patches
cache=${ISOLA_KERNEL_CACHE:-/var/cache/isola/kernel}
jobs=2
print_path=0
force=0
# Bump when the recipe below changes in a way that changes the output (not for cosmetics).
recipe=1
src_pkg=linux-source-6.1
src_tarball=/usr/src/linux-source-6.1.tar.xz

die() { echo "kernel-config: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --print-path) print_path=1 ;;
    --force) force=1 ;;
    --jobs) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--jobs needs a positive number"; jobs=$2; shift ;;
    --cache) [[ -n ${2:-} ]] || die "--cache needs a directory"; cache=$2; shift ;;
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument \"$1\" (try --help)" ;;
  esac
  shift
done

tty=0
[[ -t 2 ]] && tty=1
say() { echo "kernel: $*" >&2; }

# --- build dependencies (Debian 12), installed only when missing
deps=("$src_pkg" build-essential bc bison flex libelf-dev cpio xz-utils binutils)
missing=()
for p in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  ((EUID == 0)) || die "missing packages: ${missing[*]} (run as root or install them)"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ -r $src_tarball ]] || die "cannot read $src_tarball (package $src_pkg)"

# --- the cache key: source version, fragment, patches, recipe
src_version=$(dpkg-query -W -f='${Version}' "$src_pkg")
patches=()
while IFS= read -r -d '' p; do patches+=("$p"); done \
  < <(find "$patches_dir" -maxdepth 1 -name '*.patch' -print0 2>/dev/null | sort -z)
config_sha=$(sha256sum <"$fragment" | cut -c1-64)
patches_sha=$( (for p in "${patches[@]}"; do basename "$p"; sha256sum <"$p"; done) | sha256sum | cut -c1-64)
key_text="recipe $recipe
source $src_pkg $src_version
config $config_sha
patches $patches_sha"
key=$src_version-$(printf '%s\n' "$key_text" | sha256sum | cut -c1-12)
out=$cache/$key

# The path goes to stdout; everything else to stderr. $cache/vmlinux follows the kernel last
# built or asked for: it is where the engine looks by default (docs/vm.md).
publish() {
  { ln -sfn "$key/vmlinux" "$cache/.vmlinux.$$" && mv -Tf "$cache/.vmlinux.$$" "$cache/vmlinux"; } 2>/dev/null ||
    rm -f "$cache/.vmlinux.$$"
  echo "$out/vmlinux"
}

if ((!force)) && [[ -f $out/vmlinux ]]; then
  ((print_path)) || say "cached: $out"
  publish
  exit 0
fi
# A build is news even in --print-path mode, but only as stage lines.
((print_path)) && tty=0

# One build per key at a time: a second caller waits, then finds the result.
mkdir -p "$cache"
exec 9>"$cache/.lock-$key"
if ! flock -n 9; then
  say "another build of $key is running; waiting"
  flock 9
fi
if ((!force)) && [[ -f $out/vmlinux ]]; then
  publish
  exit 0
fi

start=$SECONDS
work=$cache/build-$key
log=$work/build.log
src=$work/linux
# A work tree left by an interrupted or failed build of the same key was made from the same
# inputs: once it got past configuring (the marker), make picks up where it stopped.
resume=0
if ((!force)) && [[ -f $work/configured ]]; then
  resume=1
else
  rm -rf "$work"
  mkdir -p "$work"
fi

fail() {
  ((tty)) && printf '\n' >&2
  say "FAILED: $*"
  if [[ -s $log ]]; then
    echo "--- last lines of $log:" >&2
    tail -n 40 "$log" >&2
  fi
  say "the work directory is kept for inspection: $work"
  exit 1
}

kmake() { nice make -C "$src" ARCH=x86_64 KBUILD_BUILD_USER=isola KBUILD_BUILD_HOST=isola "$@"; }

# Kconfig drops what it cannot satisfy without a word: every line of the fragment must be in the
# final .config exactly as asked ("# CONFIG_X is not set" also matches an absent option).
check_config() {
  awk '
    NR == FNR {
      if ($0 ~ /^CONFIG_[A-Za-z0-9_]+=/) { i = index($0, "="); have[substr($0, 1, i - 1)] = $0 }
      next
    }
    /^CONFIG_[A-Za-z0-9_]+=/ { i = index($0, "="); k = substr($0, 1, i - 1); want = $0 }
    /^# CONFIG_[A-Za-z0-9_]+ is not set$/ { k = $2; want = "off" }
    k != "" {
      got = (k in have) ? have[k] : "off"
      if (got != want) { printf "  %s: asked for \"%s\", got \"%s\"\n", k, want, got; bad++ }
      k = ""
    }
    END { exit bad ? 1 : 0 }' "$1" "$2"
}

# Extract, patch, configure and check, in a fresh work tree.
prepare() {
  say "building $key (source $src_version, ${#patches[@]} patches) in $work"
  say "extracting $src_tarball"
  mkdir -p "$src"
  nice tar -xJf "$src_tarball" -C "$src" --strip-components=1 || fail "extracting the source"

  for p in "${patches[@]}"; do
    say "applying $(basename "$p")"
    patch -d "$src" -p1 --forward --batch --quiet <"$p" >>"$log" 2>&1 || fail "patch $(basename "$p") does not apply"
  done

  say "configuring: tinyconfig + isola.config, olddefconfig"
  {
    kmake tinyconfig &&
      (cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$fragment") &&
      kmake olddefconfig
  } >>"$log" 2>&1 || fail "configuring"

  if ! mismatch=$(check_config "$src/.config" "$fragment"); then
    printf '%s\n' "$mismatch" >>"$log"
    say "the built configuration does not honour isola.config:"
    printf '%s\n' "$mismatch" >&2
    fail "configuration check (missing dependency or renamed option?)"
  fi
  touch "$work/configured"
}

if ((resume)); then
  say "resuming the build of $key in $work"
else
  prepare
fi

say "compiling (make -j$jobs vmlinux)"
objects=0
set +e
kmake -j"$jobs" vmlinux 2>&1 | while IFS= read -r line; do
  printf '%s\n' "$line" >>"$log"
  case $line in
    "  CC "* | "  AS "*)
      objects=$((objects + 1))
      if ((tty)); then
        printf '\r\033[K  %d objects compiled' "$objects" >&2
      elif ((objects % 250 == 0)); then
        echo "  $objects objects compiled" >&2
      fi
      ;;
    "  LD      vmlinux"*)
      ((tty)) && printf '\r\033[K  %d objects compiled, linking vmlinux' "$objects" >&2
      ;;
  esac
done
rc=${PIPESTATUS[0]}
set -e
((tty)) && printf '\n' >&2
((rc == 0)) || fail "make vmlinux (exit $rc)"

# The monitor and QEMU load it through the PVH entry note (Xen ELF note 0x12, PHYS32_ENTRY).
readelf -n "$src/vmlinux" 2>/dev/null | grep -Eq '^[[:space:]]+Xen[[:space:]].*(0x00000012|PHYS32_ENTRY)' ||
  fail "vmlinux has no PVH entry note"

tmp=$cache/.tmp-$key-$$
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$src/vmlinux" "$tmp/vmlinux"
cp "$src/.config" "$tmp/config"
cp "$src/System.map" "$tmp/System.map"
cp "$log" "$tmp/build.log"
printf '%s\nbuilt %s in %ds with make -j%s\n' "$key_text" "$(date -u +%FT%TZ)" $((SECONDS - start)) "$jobs" >"$tmp/key"
rm -rf "$out"
mv "$tmp" "$out"
rm -rf "$work"
say "built in $((SECONDS - start))s, vmlinux $(($(stat -c %s "$out/vmlinux") / 1024)) KiB"
publish
