#!/bin/busybox sh
# /init of the nested KVM host (tests/nested/nested.py): loads KVM and 9p, shows the machine's
# own root read-only (9p tag "hostroot") under a tmpfs root with fresh /tmp, /run, /var/lib/isola
# and /var/tmp, adds the read-write shares the job lists, runs the job's command there and
# powers off. The job directory (9p tag "job") holds: mounts ("ro PATH" or "rw TAG PATH" lines),
# env (shell exports), cmd (a shell script), and receives stdout, stderr and status.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /host /job /root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
v9p="trans=virtio,version=9p2000.L,msize=512000"

fail() {
  echo "nested host: $*" > /job/stderr
  echo 125 > /job/status
  poweroff -f
}

for m in $(cat /modules/order); do
  insmod "/modules/$m.ko" 2> /dev/null || echo "nested host: insmod $m failed" > /dev/console
done
mount -t 9p -o "$v9p" job /job || { echo "nested host: no job share" > /dev/console; poweroff -f; }
[ -c /dev/kvm ] || fail "no /dev/kvm: this QEMU does not offer AMD SVM to its guest"
mount -t 9p -o "$v9p,ro,cache=loose" hostroot /host || fail "cannot mount the machine's root"

r=/root
mount -t tmpfs -o mode=755 root "$r"
for l in bin lib lib32 lib64 libx32 sbin; do [ -L "/host/$l" ] && ln -s "$(readlink "/host/$l")" "$r/$l"; done
# The machine's directories, read-only; /var is rebuilt so that isola's state stays in the VM.
for d in /host/*; do
  n=${d#/host/}
  case "$n" in proc|sys|dev|run|tmp|var|lost+found|bin|lib|lib32|lib64|libx32|sbin) continue ;; esac
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  mkdir -p "$r/$n" && mount --bind "$d" "$r/$n" && mount -o remount,bind,ro "$r/$n"
done
mkdir -p "$r/var/lib"
for d in /host/var/* /host/var/lib/*; do
  n=${d#/host/}
  case "$n" in var/lib|var/tmp|var/run|var/lock|var/lib/isola) continue ;; esac
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  mkdir -p "$r/$n" && mount --bind "$d" "$r/$n" && mount -o remount,bind,ro "$r/$n"
done
ln -s /run "$r/var/run"
ln -s /run/lock "$r/var/lock"
mkdir -p "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/run" "$r/var/tmp" "$r/var/lib/isola"
mount -t proc proc "$r/proc"
mount -t sysfs sys "$r/sys"
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -t devtmpfs dev "$r/dev"
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
for d in tmp var/tmp; do mount -t tmpfs -o mode=1777 tmp "$r/$d"; done
mount -t tmpfs -o mode=755 run "$r/run"
mkdir -p "$r/run/lock"
mount -t tmpfs -o mode=700 isola "$r/var/lib/isola"

# The job's own paths: read-only from the machine's root, or read-write 9p shares.
while read -r kind a b; do
  case "$kind" in
    ro) mkdir -p "$r$a" && mount --bind "/host$a" "$r$a" && mount -o remount,bind,ro "$r$a" ||
          fail "cannot show $a" ;;
    rw) mkdir -p "$r$b" && mount -t 9p -o "$v9p" "$a" "$r$b" || fail "cannot share $b" ;;
  esac
done < /job/mounts

hostname nested-kvm
ip link set lo up 2> /dev/null
chroot "$r" /bin/sh -c '. /proc/1/root/job/env; exec /bin/sh /proc/1/root/job/cmd' \
  < /dev/null > /job/stdout 2> /job/stderr
echo $? > /job/status
sync
poweroff -f
