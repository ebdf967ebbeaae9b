/* cgroup v1 knob writers: one function per controller, each given the container's directory
 * in the hierarchy that hosts that controller (see cgroup_internal.h for the contracts). */
#include "cgroup_internal.h"

#include <string.h>
#include <time.h>

int cgroup_v1_cpuset_inherit(int parentfd, int dirfd)
{
  static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
  for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
    _cleanup_free_ char *mine = NULL, *parent = NULL;
    int r = cgroup_read(dirfd, files[i], &mine);
    if (r < 0)
      return r;
    if (*mine)
      continue;
    if ((r = cgroup_read(parentfd, files[i], &parent)) < 0)
      return r;
    if (*parent && (r = write_file_at(dirfd, files[i], parent, strlen(parent))) < 0)
      return r;
  }
  return 0;
}

/* ---- memory ---- */

static int set_mem_value(int fd, const char *file, int64_t v, const char *field,
                         struct isola_error **err)
{
  return v == 0 ? 0 : cgroup_write_i64(fd, file, v, field, err);
}

int cgroup_v1_set_memory(int fd, const struct oci_resources *r, struct isola_error **err)
{
  const char *LIMIT = "memory.limit_in_bytes", *MEMSW = "memory.memsw.limit_in_bytes";
  const char *F_LIMIT = "linux.resources.memory.limit", *F_SWAP = "linux.resources.memory.swap";
  int64_t limit = r->has_mem_limit ? r->mem_limit : 0;
  int64_t swap = r->has_mem_swap ? r->mem_swap : 0;
  bool memsw = cgroup_has_file(fd, MEMSW);
  int ret;

  /* runc: an unlimited memory limit with no swap given means unlimited memory+swap too. */
  if (limit == -1 && swap == 0 && memsw)
    swap = -1;
  if (swap != 0 && !memsw) {
    /* Without swap accounting only "no separate swap limit" can be honoured. */
    if (swap != -1 && swap != limit)
      return isola_failx(err, ENOTSUP,
                         "%s: cannot set %lld: swap accounting is off in this kernel (no %s)",
                         F_SWAP, (long long) swap, MEMSW);
    swap = 0;
  }
  /* memory.memsw.limit_in_bytes (memory+swap) may never be below memory.limit_in_bytes: when
   * raising, set the total first; when lowering, the limit first. */
  bool swap_first = false;
  if (limit != 0 && swap != 0) {
    _cleanup_free_ char *cur = NULL;
    uint64_t current = 0;
    if (cgroup_read(fd, LIMIT, &cur) == 0 && parse_u64(cur, &current) == 0)
      swap_first = swap == -1 || current < (uint64_t) swap;
  }
  if (swap_first) {
    if ((ret = set_mem_value(fd, MEMSW, swap, F_SWAP, err)) < 0 ||
        (ret = set_mem_value(fd, LIMIT, limit, F_LIMIT, err)) < 0)
      return ret;
  } else if ((ret = set_mem_value(fd, LIMIT, limit, F_LIMIT, err)) < 0 ||
             (ret = set_mem_value(fd, MEMSW, swap, F_SWAP, err)) < 0) {
    return ret;
  }
  if (r->has_mem_reservation &&
      (ret = set_mem_value(fd, "memory.soft_limit_in_bytes", r->mem_reservation,
                           "linux.resources.memory.reservation", err)) < 0)
    return ret;
  if (r->has_mem_swappiness &&
      (ret = cgroup_write_i64(fd, "memory.swappiness", (int64_t) r->mem_swappiness,
                              "linux.resources.memory.swappiness", err)) < 0)
    return ret;
  if (r->has_disable_oom_killer &&
      (ret = cgroup_write(fd, "memory.oom_control", r->disable_oom_killer ? "1" : "0",
                          "linux.resources.memory.disableOOMKiller", err)) < 0)
    return ret;
  /* Linux 5.x+ always has hierarchy on and refuses 0: that refusal is the right error. */
  if (r->has_use_hierarchy && !r->use_hierarchy &&
      (ret = cgroup_write(fd, "memory.use_hierarchy", "0", "linux.resources.memory.useHierarchy",
                          err)) < 0)
    return ret;
  /* kernel is deliberately ignored: Linux 6.x no longer enforces v1 kernel memory limits
   * (writes to memory.kmem.limit_in_bytes do nothing), and the OCI spec deprecates it. The TCP
   * buffer limit still works where the file exists; where it is gone, it is ignored alike. */
  if (r->has_mem_kernel_tcp && cgroup_has_file(fd, "memory.kmem.tcp.limit_in_bytes") &&
      (ret = set_mem_value(fd, "memory.kmem.tcp.limit_in_bytes", r->mem_kernel_tcp,
                           "linux.resources.memory.kernelTCP", err)) < 0)
    return ret;
  return 0;
}

/* ---- cpu, cpuset, pids ---- */

int cgroup_v1_set_cpu(int fd, const struct oci_resources *r, struct isola_error **err)
{
  int ret;
  if (r->has_cpu_shares && r->cpu_shares &&
      (ret = cgroup_write_i64(fd, "cpu.shares", (int64_t) r->cpu_shares,
                              "linux.resources.cpu.shares", err)) < 0)
    return ret;
  if (r->has_cpu_period && r->cpu_period &&
      (ret = cgroup_write_i64(fd, "cpu.cfs_period_us", (int64_t) r->cpu_period,
                              "linux.resources.cpu.period", err)) < 0)
    return ret;
  if (r->has_cpu_quota && r->cpu_quota &&
      (ret = cgroup_write_i64(fd, "cpu.cfs_quota_us", r->cpu_quota, "linux.resources.cpu.quota",
                              err)) < 0)
    return ret;
  if (r->has_cpu_burst) {
    if (!cgroup_has_file(fd, "cpu.cfs_burst_us")) {
      if (r->cpu_burst)
        return isola_failx(err, ENOTSUP,
                           "linux.resources.cpu.burst: cannot set %llu: this kernel has no "
                           "cpu.cfs_burst_us",
                           (unsigned long long) r->cpu_burst);
    } else if ((ret = cgroup_write_i64(fd, "cpu.cfs_burst_us", (int64_t) r->cpu_burst,
                                       "linux.resources.cpu.burst", err)) < 0) {
      return ret;
    }
  }
  /* The kernel refuses a period below the current runtime and a runtime above the current
   * period: try the period first and, if that is refused, the runtime first (as runc). */
  bool want_period = r->has_cpu_rt_period && r->cpu_rt_period;
  bool want_runtime = r->has_cpu_rt_runtime && r->cpu_rt_runtime;
  int period_r = want_period ? cgroup_write_i64(fd, "cpu.rt_period_us", (int64_t) r->cpu_rt_period,
                                                "linux.resources.cpu.realtimePeriod",
                                                want_runtime ? NULL : err)
                             : 0;
  if (period_r < 0) {
    if (!want_runtime)
      return period_r;
    if ((ret = cgroup_write_i64(fd, "cpu.rt_runtime_us", r->cpu_rt_runtime,
                                "linux.resources.cpu.realtimeRuntime", err)) < 0 ||
        (ret = cgroup_write_i64(fd, "cpu.rt_period_us", (int64_t) r->cpu_rt_period,
                                "linux.resources.cpu.realtimePeriod", err)) < 0)
      return ret;
    want_runtime = false;
  }
  if (want_runtime && (ret = cgroup_write_i64(fd, "cpu.rt_runtime_us", r->cpu_rt_runtime,
                                              "linux.resources.cpu.realtimeRuntime", err)) < 0)
    return ret;
  if (r->has_cpu_idle && (r->cpu_idle || cgroup_has_file(fd, "cpu.idle")) &&
      (ret = cgroup_write_i64(fd, "cpu.idle", r->cpu_idle, "linux.resources.cpu.idle", err)) < 0)
    return ret;
  return 0;
}

int cgroup_v1_set_cpuset(int fd, const struct oci_resources *r, struct isola_error **err)
{
  int ret;
  if (r->cpu_cpus && *r->cpu_cpus &&
      (ret = cgroup_write(fd, "cpuset.cpus", r->cpu_cpus, "linux.resources.cpu.cpus", err)) < 0)
    return ret;
  if (r->cpu_mems && *r->cpu_mems &&
      (ret = cgroup_write(fd, "cpuset.mems", r->cpu_mems, "linux.resources.cpu.mems", err)) < 0)
    return ret;
  return 0;
}

int cgroup_v1_set_pids(int fd, const struct oci_resources *r, struct isola_error **err)
{
  if (!r->has_pids_limit || r->pids_limit == 0)
    return 0;
  if (r->pids_limit < 0)
    return cgroup_write(fd, "pids.max", "max", "linux.resources.pids.limit", err);
  return cgroup_write_i64(fd, "pids.max", r->pids_limit, "linux.resources.pids.limit", err);
}

/* ---- blkio ---- */

/* Weights: CFQ's blkio.weight is gone from current kernels; BFQ offers blkio.bfq.weight (on
 * non-root cgroups, when BFQ is built). runc fails when it cannot set a weight, crun ignores it.
 * We fail only when a weight was actually asked for (non-zero) and neither file exists: the user
 * should not believe I/O is weighted when it is not. */
static const char *weight_file(int fd, const char *cfq, const char *bfq)
{
  return cgroup_has_file(fd, cfq) ? cfq : (bfq && cgroup_has_file(fd, bfq)) ? bfq : NULL;
}

static int set_weight(int fd, const char *cfq, const char *bfq, uint16_t weight, const char *field,
                      struct isola_error **err)
{
  if (weight == 0)
    return 0;
  const char *file = weight_file(fd, cfq, bfq);
  if (!file)
    return isola_failx(err, ENOTSUP,
                       "%s: cannot set weight %u: this kernel has no %s%s%s (no CFQ/BFQ I/O "
                       "scheduler)",
                       field, weight, cfq, bfq ? " or " : "", bfq ? bfq : "");
  return cgroup_write_i64(fd, file, weight, field, err);
}

int cgroup_v1_set_blkio(int fd, const struct oci_resources *r, struct isola_error **err)
{
  const char *B = "linux.resources.blockIO";
  int ret;
  _cleanup_free_ char *f = NULL;
  if (r->has_blkio_weight &&
      (ret = set_weight(fd, "blkio.weight", "blkio.bfq.weight", r->blkio_weight,
                        "linux.resources.blockIO.weight", err)) < 0)
    return ret;
  if (r->has_blkio_leaf_weight &&
      (ret = set_weight(fd, "blkio.leaf_weight", NULL, r->blkio_leaf_weight,
                        "linux.resources.blockIO.leafWeight", err)) < 0)
    return ret;
  for (size_t i = 0; i < r->n_blkio_weight_devices; i++) {
    const struct oci_weight_device *d = &r->blkio_weight_devices[i];
    char val[64];
    free(f);
    f = xasprintf("%s.weightDevice[%zu]", B, i);
    const char *file = weight_file(fd, "blkio.weight_device", "blkio.bfq.weight_device");
    if (d->has_weight && d->weight) {
      if (!file)
        return isola_failx(err, ENOTSUP, "%s: this kernel has no blkio.weight_device", f);
      snprintf(val, sizeof(val), "%lld:%lld %u", (long long) d->major, (long long) d->minor,
               d->weight);
      if ((ret = cgroup_write(fd, file, val, f, err)) < 0)
        return ret;
    }
    if (d->has_leaf_weight && d->leaf_weight) {
      if (!cgroup_has_file(fd, "blkio.leaf_weight_device"))
        return isola_failx(err, ENOTSUP,
                           "%s.leafWeight: this kernel has no "
                           "blkio.leaf_weight_device (no CFQ I/O scheduler)",
                           f);
      snprintf(val, sizeof(val), "%lld:%lld %u", (long long) d->major, (long long) d->minor,
               d->leaf_weight);
      if ((ret = cgroup_write(fd, "blkio.leaf_weight_device", val, f, err)) < 0)
        return ret;
    }
  }
  static const char *const keys[4] = {"throttleReadBpsDevice", "throttleWriteBpsDevice",
                                      "throttleReadIOPSDevice", "throttleWriteIOPSDevice"};
  static const char *const files[4] = {
      "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
      "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"};
  for (int k = 0; k < 4; k++)
    for (size_t i = 0; i < r->n_throttle[k]; i++) {
      const struct oci_throttle *t = &r->throttle[k][i];
      char val[80];
      snprintf(val, sizeof(val), "%lld:%lld %llu", (long long) t->major, (long long) t->minor,
               (unsigned long long) t->rate);
      free(f);
      f = xasprintf("%s.%s[%zu]", B, keys[k], i);
      if ((ret = cgroup_write(fd, files[k], val, f, err)) < 0)
        return ret;
    }
  return 0;
}

/* ---- hugetlb, network, rdma ---- */

int cgroup_v1_set_hugetlb(int fd, const struct oci_resources *r, struct isola_error **err)
{
  return cgroup_write_hugetlb(fd, r, "limit_in_bytes", err);
}

int cgroup_v1_set_net_cls(int fd, const struct oci_resources *r, struct isola_error **err)
{
  if (!r->has_net_class_id)
    return 0;
  return cgroup_write_i64(fd, "net_cls.classid", r->net_class_id, "linux.resources.network.classID",
                          err);
}

int cgroup_v1_set_net_prio(int fd, const struct oci_resources *r, struct isola_error **err)
{
  for (size_t i = 0; i < r->n_net_priorities; i++) {
    _cleanup_free_ char *field = xasprintf("linux.resources.network.priorities[%zu]", i);
    _cleanup_free_ char *val =
        xasprintf("%s %s", r->net_priorities[i].key, r->net_priorities[i].value);
    int ret = cgroup_write(fd, "net_prio.ifpriomap", val, field, err);
    if (ret < 0)
      return ret;
  }
  return 0;
}

int cgroup_set_rdma(int fd, const struct oci_resources *r, struct isola_error **err)
{
  for (size_t i = 0; i < r->n_rdma; i++) {
    _cleanup_free_ char *field = xasprintf("linux.resources.rdma.%s", r->rdma[i].key);
    int ret = cgroup_write(fd, "rdma.max", r->rdma[i].value, field, err);
    if (ret < 0)
      return ret;
  }
  return 0;
}

/* ---- devices ---- */

/* Does exception e cover some device and access of rule d without being the same entry? */
static bool covers_differently(const struct oci_device_rule *e, const struct oci_device_rule *d)
{
  bool same = e->type == d->type && e->major == d->major && e->minor == d->minor;
  bool type_ok = e->type == 'a' || e->type == d->type;
  bool major_ok = e->major < 0 || e->major == d->major;
  bool minor_ok = e->minor < 0 || e->minor == d->minor;
  return !same && type_ok && major_ok && minor_ok && strpbrk(e->access, d->access);
}

/* v1 keeps a default plus a list of exceptions, and a rule only removes an identical
 * exception: "allow c *:*" then "deny c 4:1" would leave 4:1 allowed. OCI says the last
 * matching rule wins, so such a list is refused (as runc does) rather than applied wrongly. */
static int check_v1_representable(const struct oci_resources *r, struct isola_error **err)
{
  bool allow_default = false;
  size_t n = 0;
  _cleanup_free_ const struct oci_device_rule **exc = xzalloc((r->n_devices + 1) * sizeof(*exc));
  for (size_t i = 0; i < r->n_devices; i++) {
    const struct oci_device_rule *d = &r->devices[i];
    if (d->type == 'a' && d->major < 0 && d->minor < 0 && !strcmp(d->access, "rwm")) {
      allow_default = d->allow;
      n = 0;
      continue;
    }
    if (d->allow == allow_default) {
      /* Same polarity as the default: it removes exceptions; a wider one cannot be split. */
      for (size_t j = 0; j < n; j++)
        if (covers_differently(exc[j], d))
          return isola_failx(err, EINVAL,
                             "linux.resources.devices[%zu]: cannot be enforced by the v1 devices "
                             "controller after a wider rule of the opposite kind (use narrower "
                             "rules)",
                             i);
    } else {
      exc[n++] = d;
    }
  }
  return 0;
}

int cgroup_v1_set_devices(int fd, const struct oci_resources *r, struct isola_error **err)
{
  int check = check_v1_representable(r, err);
  if (check < 0)
    return check;
  /* Start from deny-all, then apply the rules in order. (v1 keeps an exception list rather
   * than "last match wins", so a deny that partly overlaps an earlier allow of a narrower
   * device removes only identical entries; the usual deny-all + allows config is exact.) */
  int ret = cgroup_write(fd, "devices.deny", "a", "linux.resources.devices", err);
  for (size_t i = 0; ret == 0 && i < r->n_devices; i++) {
    const struct oci_device_rule *d = &r->devices[i];
    const char *file = d->allow ? "devices.allow" : "devices.deny";
    _cleanup_free_ char *field = xasprintf("linux.resources.devices[%zu]", i);
    if (d->type == 'a' && d->major < 0 && d->minor < 0 && !strcmp(d->access, "rwm")) {
      /* "a" switches the default and clears the exceptions: exactly "everything". */
      ret = cgroup_write(fd, file, "a", field, err);
      continue;
    }
    /* The kernel reads any "a ..." entry as the whole "a": spell out c and b instead. */
    const char *types = d->type == 'a' ? "cb" : d->type == 'c' ? "c" : "b";
    for (const char *t = types; ret == 0 && *t; t++) {
      char maj[24] = "*", min[24] = "*", val[80];
      if (d->major >= 0)
        snprintf(maj, sizeof(maj), "%lld", (long long) d->major);
      if (d->minor >= 0)
        snprintf(min, sizeof(min), "%lld", (long long) d->minor);
      snprintf(val, sizeof(val), "%c %s:%s %s", *t, maj, min, d->access);
      ret = cgroup_write(fd, file, val, field, err);
    }
  }
  return ret;
}

/* ---- freezer ---- */

int cgroup_v1_freeze(int fd, bool frozen, struct isola_error **err)
{
  const char *want = frozen ? "FROZEN" : "THAWED";
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    /* A write while FREEZING retries the tasks that did not stop yet. */
    int r = write_file_at(fd, "freezer.state", want, strlen(want));
    if (r < 0)
      return isola_fail(err, -r, "cannot set freezer.state to %s", want);
    _cleanup_free_ char *state = NULL;
    if ((r = cgroup_read(fd, "freezer.state", &state)) < 0)
      return isola_fail(err, -r, "cannot read freezer.state");
    if (!strcmp(state, want))
      return 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec) > 1000000000LL)
      break;
    nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
  }
  if (frozen)
    (void) write_file_at(fd, "freezer.state", "THAWED", 6);
  return isola_failx(err, EBUSY, "cannot set freezer.state to %s: still not done after 1 s%s", want,
                     frozen ? " (thawed again)" : "");
}

bool cgroup_v1_is_frozen(int fd)
{
  _cleanup_free_ char *state = NULL;
  return cgroup_read(fd, "freezer.state", &state) == 0 && strcmp(state, "THAWED") != 0;
}
