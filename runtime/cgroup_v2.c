/* cgroup v2 (unified) knob writers, the freezer, controller enabling, and the device rules as a
 * BPF_PROG_TYPE_CGROUP_DEVICE program (v2 has no devices controller). Contracts are in
 * cgroup_internal.h. */
#include "cgroup_internal.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

/* ---- conversions ---- */

/* log2 and 2^x without libm (the runtime does not link it): x >= 1. */
static double log2_plain(double x)
{
  double r = 0, bit = 0.5;
  while (x >= 2) {
    x /= 2;
    r += 1;
  }
  for (int i = 0; i < 56; i++, bit /= 2) {
    x *= x;
    if (x >= 2) {
      x /= 2;
      r += bit;
    }
  }
  return r;
}

static double exp2_plain(double y)
{
  int k = (int) y;
  double f = (y - k) * 0.69314718055994530942, term = 1, sum = 1; /* 2^f = e^(f ln 2) */
  for (int i = 1; i < 30; i++) {
    term *= f / i;
    sum += term;
  }
  while (k-- > 0)
    sum *= 2;
  return sum;
}

uint64_t cgroup_v2_shares_to_weight(uint64_t shares)
{
  if (shares == 0)
    return 0;
  if (shares <= 2)
    return 1;
  if (shares >= 262144)
    return 10000;
  /* A quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), as runc and
   * crun convert today: weight = ceil(10^((l² + 125 l) / 612 - 7/34)). */
  double l = log2_plain((double) shares);
  double exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0;
  double w = exp2_plain(exponent * 3.32192809488736234787); /* 10^e = 2^(e log2 10) */
  uint64_t c = (uint64_t) w;
  /* ceil(), forgiving the last bits of rounding so that 1024 gives exactly 100 */
  return (double) c >= w - w * 1e-12 ? c : c + 1;
}

uint64_t cgroup_v2_blkio_to_io_weight(uint64_t weight)
{
  if (weight == 0)
    return 0;
  return 1 + (weight - 10) * 9999 / 990;
}

/* ---- memory ---- */

int cgroup_v2_set_memory(int fd, const struct oci_resources *r, struct isola_error **err)
{
  const char *F_LIMIT = "linux.resources.memory.limit", *F_SWAP = "linux.resources.memory.swap";
  int64_t limit = r->has_mem_limit ? r->mem_limit : 0;
  int64_t swap = r->has_mem_swap ? r->mem_swap : 0, swap_max;
  int ret;
  /* OCI swap is memory+swap (the v1 meaning); memory.swap.max is swap alone. As runc: an
   * unlimited memory limit with no swap given makes swap unlimited too. */
  if (limit == -1 && swap == 0)
    swap_max = -1;
  else if (swap == -1 || swap == 0)
    swap_max = swap;
  else if (limit == 0 || limit == -1)
    return isola_failx(err, EINVAL, "%s: cannot set a swap limit (%lld) without a memory limit",
                       F_SWAP, (long long) swap);
  else if (swap < limit)
    return isola_failx(err, EINVAL, "%s: memory+swap %lld is below the memory limit %lld", F_SWAP,
                       (long long) swap, (long long) limit);
  else
    swap_max = swap - limit;

  if (r->has_check_before_update && r->check_before_update && limit > 0) {
    _cleanup_free_ char *cur = NULL;
    uint64_t usage = 0;
    if (cgroup_read(fd, "memory.current", &cur) == 0 && parse_u64(cur, &usage) == 0 &&
        usage > (uint64_t) limit)
      return isola_failx(err, EBUSY,
                         "%s: cannot set memory.max to %lld: the cgroup uses %llu bytes "
                         "(checkBeforeUpdate)",
                         F_LIMIT, (long long) limit, (unsigned long long) usage);
  }
  if (swap_max != 0) {
    if (!cgroup_has_file(fd, "memory.swap.max")) {
      if (swap_max != -1)
        return isola_failx(err, ENOTSUP,
                           "%s: cannot set %lld: swap accounting is off in this kernel (no "
                           "memory.swap.max)",
                           F_SWAP, (long long) swap);
    } else if ((ret = swap_max < 0
                          ? cgroup_write(fd, "memory.swap.max", "max", F_SWAP, err)
                          : cgroup_write_i64(fd, "memory.swap.max", swap_max, F_SWAP, err)) < 0) {
      return ret;
    }
  }
  if (limit != 0 && (ret = limit < 0 ? cgroup_write(fd, "memory.max", "max", F_LIMIT, err)
                                     : cgroup_write_i64(fd, "memory.max", limit, F_LIMIT, err)) < 0)
    return ret;
  if (r->has_mem_reservation && r->mem_reservation != 0) {
    const char *F = "linux.resources.memory.reservation";
    ret = r->mem_reservation < 0 ? cgroup_write(fd, "memory.low", "max", F, err)
                                 : cgroup_write_i64(fd, "memory.low", r->mem_reservation, F, err);
    if (ret < 0)
      return ret;
  }
  if (r->has_mem_swappiness) {
    /* No per-cgroup swappiness on v2: fine only when it asks for what the system has. */
    _cleanup_free_ char *sys = NULL;
    uint64_t v = 0;
    if (read_file_at(AT_FDCWD, "/proc/sys/vm/swappiness", 64, &sys, NULL) < 0 ||
        parse_u64(strtok(sys, "\n"), &v) < 0 || v != r->mem_swappiness)
      return isola_failx(err, ENOTSUP,
                         "linux.resources.memory.swappiness: cannot set %llu: cgroup v2 has no "
                         "per-cgroup swappiness",
                         (unsigned long long) r->mem_swappiness);
  }
  if (r->has_disable_oom_killer && r->disable_oom_killer)
    return isola_failx(err, ENOTSUP,
                       "linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the "
                       "OOM killer");
  if (r->has_use_hierarchy && !r->use_hierarchy)
    return isola_failx(err, ENOTSUP,
                       "linux.resources.memory.useHierarchy: cgroup v2 is always hierarchical");
  /* kernel and kernelTCP: no v2 equivalent, and deprecated; ignored as on v1. */
  return 0;
}

/* ---- cpu, cpuset, pids ---- */

int cgroup_v2_set_cpu(int fd, const struct oci_resources *r, struct isola_error **err)
{
  int ret;
  if (r->has_cpu_shares && r->cpu_shares &&
      (ret = cgroup_write_i64(fd, "cpu.weight", (int64_t) cgroup_v2_shares_to_weight(r->cpu_shares),
                              "linux.resources.cpu.shares", err)) < 0)
    return ret;
  bool quota = r->has_cpu_quota && r->cpu_quota, period = r->has_cpu_period && r->cpu_period;
  if (quota || period) {
    /* cpu.max is "QUOTA PERIOD": keep the current quota when only the period changes. */
    _cleanup_free_ char *cur = NULL, *val = NULL;
    char q[32] = "max";
    if (quota && r->cpu_quota > 0)
      snprintf(q, sizeof(q), "%lld", (long long) r->cpu_quota);
    else if (!quota && cgroup_read(fd, "cpu.max", &cur) == 0 && strtok(cur, " "))
      snprintf(q, sizeof(q), "%s", cur);
    val = period ? xasprintf("%s %llu", q, (unsigned long long) r->cpu_period) : xstrdup(q);
    if ((ret = cgroup_write(fd, "cpu.max", val,
                            quota ? "linux.resources.cpu.quota" : "linux.resources.cpu.period",
                            err)) < 0)
      return ret;
  }
  if (r->has_cpu_burst && (r->cpu_burst || cgroup_has_file(fd, "cpu.max.burst")) &&
      (ret = cgroup_write_i64(fd, "cpu.max.burst", (int64_t) r->cpu_burst,
                              "linux.resources.cpu.burst", err)) < 0)
    return ret;
  if ((r->has_cpu_rt_runtime && r->cpu_rt_runtime) || (r->has_cpu_rt_period && r->cpu_rt_period))
    return isola_failx(
        err, ENOTSUP, "linux.resources.cpu.%s: cgroup v2 has no real-time CPU budget",
        r->has_cpu_rt_runtime && r->cpu_rt_runtime ? "realtimeRuntime" : "realtimePeriod");
  if (r->has_cpu_idle && (r->cpu_idle || cgroup_has_file(fd, "cpu.idle")) &&
      (ret = cgroup_write_i64(fd, "cpu.idle", r->cpu_idle, "linux.resources.cpu.idle", err)) < 0)
    return ret;
  return 0;
}

int cgroup_v2_set_cpuset(int fd, const struct oci_resources *r, struct isola_error **err)
{
  return cgroup_v1_set_cpuset(fd, r, err); /* same files, same format */
}

int cgroup_v2_set_pids(int fd, const struct oci_resources *r, struct isola_error **err)
{
  return cgroup_v1_set_pids(fd, r, err); /* pids.max on both */
}

/* ---- io ---- */

/* BFQ's io.bfq.weight takes the blkio range as is; io.weight needs the conversion. As on v1,
 * a weight that was asked for but cannot be set is an error. */
static int set_io_weight(int fd, const char *dev, uint16_t weight, const char *field,
                         struct isola_error **err)
{
  char val[64];
  const char *file = cgroup_has_file(fd, "io.bfq.weight") ? "io.bfq.weight"
                     : cgroup_has_file(fd, "io.weight")   ? "io.weight"
                                                          : NULL;
  if (!file)
    return isola_failx(err, ENOTSUP,
                       "%s: cannot set weight %u: no io.bfq.weight or io.weight in this cgroup",
                       field, weight);
  uint64_t w = strcmp(file, "io.weight") ? weight : cgroup_v2_blkio_to_io_weight(weight);
  snprintf(val, sizeof(val), "%s%s%llu", dev ? dev : "", dev ? " " : "", (unsigned long long) w);
  return cgroup_write(fd, file, val, field, err);
}

int cgroup_v2_set_io(int fd, const struct oci_resources *r, struct isola_error **err)
{
  const char *B = "linux.resources.blockIO";
  int ret;
  if (r->has_blkio_weight && r->blkio_weight &&
      (ret = set_io_weight(fd, NULL, r->blkio_weight, "linux.resources.blockIO.weight", err)) < 0)
    return ret;
  if (r->has_blkio_leaf_weight && r->blkio_leaf_weight)
    return isola_failx(err, ENOTSUP, "%s.leafWeight: cgroup v2 has no leaf weights", B);
  for (size_t i = 0; i < r->n_blkio_weight_devices; i++) {
    const struct oci_weight_device *d = &r->blkio_weight_devices[i];
    _cleanup_free_ char *f = xasprintf("%s.weightDevice[%zu]", B, i);
    char dev[48];
    snprintf(dev, sizeof(dev), "%lld:%lld", (long long) d->major, (long long) d->minor);
    if (d->has_leaf_weight && d->leaf_weight)
      return isola_failx(err, ENOTSUP, "%s.leafWeight: cgroup v2 has no leaf weights", f);
    if (d->has_weight && d->weight && (ret = set_io_weight(fd, dev, d->weight, f, err)) < 0)
      return ret;
  }
  static const char *const keys[4] = {"throttleReadBpsDevice", "throttleWriteBpsDevice",
                                      "throttleReadIOPSDevice", "throttleWriteIOPSDevice"};
  static const char *const names[4] = {"rbps", "wbps", "riops", "wiops"};
  for (int k = 0; k < 4; k++)
    for (size_t i = 0; i < r->n_throttle[k]; i++) {
      const struct oci_throttle *t = &r->throttle[k][i];
      _cleanup_free_ char *f = xasprintf("%s.%s[%zu]", B, keys[k], i);
      char val[96], rate[32] = "max"; /* 0 removes the limit, as on v1 */
      if (t->rate)
        snprintf(rate, sizeof(rate), "%llu", (unsigned long long) t->rate);
      snprintf(val, sizeof(val), "%lld:%lld %s=%s", (long long) t->major, (long long) t->minor,
               names[k], rate);
      if ((ret = cgroup_write(fd, "io.max", val, f, err)) < 0)
        return ret;
    }
  return 0;
}

/* ---- hugetlb, unified ---- */

int cgroup_v2_set_hugetlb(int fd, const struct oci_resources *r, struct isola_error **err)
{
  return cgroup_write_hugetlb(fd, r, "max", err);
}

int cgroup_v2_set_unified(int fd, const struct oci_resources *r, struct isola_error **err)
{
  for (size_t i = 0; i < r->n_unified; i++) {
    const char *key = r->unified[i].key, *val = r->unified[i].value;
    _cleanup_free_ char *field = xasprintf("linux.resources.unified.%s", key);
    if (strchr(key, '/') || key[0] == '.' || !strchr(key, '.'))
      return isola_failx(err, EINVAL, "%s: not a cgroup file name", field);
    int ret = write_file_at(fd, key, val, strlen(val));
    if (ret == -ENOENT)
      return isola_failx(err, ENOENT,
                         "%s: no such file in the container's cgroup (is the %.*s controller "
                         "enabled?)",
                         field, (int) (strchr(key, '.') - key), key);
    if (ret < 0)
      return isola_fail(err, -ret, "%s: cannot set %s to %s", field, key, val);
  }
  return 0;
}

/* ---- controllers, freezer ---- */

void cgroup_v2_enable_controllers(int fd)
{
  _cleanup_free_ char *avail = NULL, *enabled = NULL;
  if (cgroup_read(fd, "cgroup.controllers", &avail) < 0 ||
      cgroup_read(fd, "cgroup.subtree_control", &enabled) < 0)
    return;
  for (char *s = NULL, *t = strtok_r(avail, " ", &s); t; t = strtok_r(NULL, " ", &s)) {
    if (cgroup_list_has(enabled, t, ' '))
      continue;
    _cleanup_free_ char *cmd = xasprintf("+%s", t);
    (void) write_file_at(fd, "cgroup.subtree_control", cmd, strlen(cmd));
  }
}

static bool events_frozen(int fd, bool *frozen)
{
  _cleanup_free_ char *ev = NULL;
  if (cgroup_read(fd, "cgroup.events", &ev) < 0)
    return false;
  const char *p = strstr(ev, "frozen ");
  if (!p)
    return false;
  *frozen = p[7] == '1';
  return true;
}

int cgroup_v2_freeze(int fd, bool frozen, struct isola_error **err)
{
  const char *want = frozen ? "1" : "0";
  int r = write_file_at(fd, "cgroup.freeze", want, 1);
  if (r < 0)
    return isola_fail(err, -r, "cannot set cgroup.freeze to %s", want);
  for (int i = 0; i < 1000; i++) {
    bool now = !frozen;
    if (!events_frozen(fd, &now) || now == frozen)
      return 0;
    nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
  }
  if (frozen)
    (void) write_file_at(fd, "cgroup.freeze", "0", 1);
  return isola_failx(err, EBUSY, "cannot set cgroup.freeze to %s: still not done after 1 s%s", want,
                     frozen ? " (thawed again)" : "");
}

bool cgroup_v2_is_frozen(int fd)
{
  _cleanup_free_ char *v = NULL;
  return cgroup_read(fd, "cgroup.freeze", &v) == 0 && !strcmp(v, "1");
}

/* ---- devices: an eBPF program ---- */

static int sys_bpf(int cmd, union bpf_attr *attr)
{
  long r = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
  return r < 0 ? -errno : (int) r;
}

struct bpf_prog_buf {
  struct bpf_insn *insn;
  size_t n;
};

static void emit(struct bpf_prog_buf *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off,
                 int32_t imm)
{
  p->insn[p->n++] =
      (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

#define MAX_DEVICE_RULES 4096
#define INSNS_PER_RULE 9

/* The program sees struct bpf_cgroup_dev_ctx { access_type = access << 16 | type; major;
 * minor } and returns 1 to allow. OCI rules are ordered and the last match wins, so the blocks
 * test the rules from last to first and return at the first match; nothing matches → deny.
 * A rule matching everything ends the program (the verifier refuses unreachable code). */
static void build_device_prog(const struct oci_device_rule *rules, size_t n, struct bpf_prog_buf *p)
{
  emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0); /* r2 = type */
  emit(p, BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0); /* r3 = access */
  emit(p, BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0); /* r4 = major */
  emit(p, BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0); /* r5 = minor */
  for (size_t i = n; i-- > 0;) {
    const struct oci_device_rule *d = &rules[i];
    int32_t access = (strchr(d->access, 'r') ? BPF_DEVCG_ACC_READ : 0) |
                     (strchr(d->access, 'w') ? BPF_DEVCG_ACC_WRITE : 0) |
                     (strchr(d->access, 'm') ? BPF_DEVCG_ACC_MKNOD : 0);
    bool type = d->type != 'a', acc = access != 7, major = d->major >= 0, minor = d->minor >= 0;
    int len = type + 3 * acc + major + minor + 2, pos = 0;
    if (type)
      emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, len - ++pos,
           d->type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK);
    if (acc) { /* the access asked for must be a subset of the rule's */
      emit(p, BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
      emit(p, BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, access);
      pos += 3;
      emit(p, BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1, BPF_REG_3, len - pos, 0);
    }
    if (major)
      emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, len - ++pos, (int32_t) d->major);
    if (minor)
      emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, len - ++pos, (int32_t) d->minor);
    emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, d->allow ? 1 : 0);
    emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    if (len == 2)
      return;
  }
  emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
  emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

static int query_device_progs(int cgfd, uint32_t *ids, uint32_t *n)
{
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.query.target_fd = cgfd;
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = (uint64_t) (uintptr_t) ids;
  attr.query.prog_cnt = *n;
  int r = sys_bpf(BPF_PROG_QUERY, &attr);
  *n = r < 0 ? 0 : attr.query.prog_cnt;
  return r < 0 ? r : 0;
}

int cgroup_v2_device_prog_count(int cgfd)
{
  uint32_t ids[64], n = ARRAY_SIZE(ids);
  int r = query_device_progs(cgfd, ids, &n);
  return r < 0 ? r : (int) n;
}

int cgroup_v2_set_devices(int cgfd, const struct oci_resources *r, struct isola_error **err)
{
  const char *F = "linux.resources.devices";
  if (r->n_devices > MAX_DEVICE_RULES)
    return isola_failx(err, E2BIG, "%s: %zu rules, at most %d are supported", F, r->n_devices,
                       MAX_DEVICE_RULES);
  _cleanup_free_ struct bpf_insn *insn =
      xzalloc((8 + r->n_devices * INSNS_PER_RULE) * sizeof(*insn));
  struct bpf_prog_buf prog = {insn, 0};
  build_device_prog(r->devices, r->n_devices, &prog);

  /* Remember what is attached now: after the new program is in, the old ones go. */
  uint32_t old[64], n_old = ARRAY_SIZE(old);
  int ret = query_device_progs(cgfd, old, &n_old);
  if (ret < 0)
    return isola_fail(err, -ret, "%s: cannot list the device programs of the cgroup", F);

  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t) (uintptr_t) prog.insn;
  attr.insn_cnt = (uint32_t) prog.n;
  /* The licence string only gates GPL-only helpers, and this program calls no helper. */
  attr.license = (uint64_t) (uintptr_t) "GPL";
  _cleanup_close_ int progfd = sys_bpf(BPF_PROG_LOAD, &attr);
  if (progfd < 0)
    return isola_fail(err, -progfd, "%s: cannot load the device eBPF program (%zu instructions)", F,
                      prog.n);
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = cgfd;
  attr.attach_bpf_fd = progfd;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if ((ret = sys_bpf(BPF_PROG_ATTACH, &attr)) < 0)
    return isola_fail(err, -ret, "%s: cannot attach the device eBPF program to the cgroup", F);

  for (uint32_t i = 0; i < n_old; i++) {
    memset(&attr, 0, sizeof(attr));
    attr.prog_id = old[i];
    _cleanup_close_ int oldfd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    if (oldfd == -ENOENT)
      continue;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = cgfd;
    attr.attach_bpf_fd = oldfd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    if (oldfd < 0 || (ret = sys_bpf(BPF_PROG_DETACH, &attr)) < 0)
      return isola_fail(err, oldfd < 0 ? -oldfd : -ret,
                        "%s: cannot detach the previous device program (id %u)", F, old[i]);
  }
  return 0;
}
