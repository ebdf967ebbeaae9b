/* cgroup tests. As root on the build machine they create real cgroups in every hierarchy,
 * apply limits and read the files back, move a child in, list, freeze, kill and destroy, and
 * run the eBPF device program on a cgroup2 directory. The v2 knob conversions are also checked
 * against plain files, since the host's v2 hierarchy may lack the controllers. */
#include "cgroup_internal.h"
#include "tap.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>

/* ---- helpers ---- */

static char *slurp(const char *dir, const char *file)
{
  _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
  char *s = NULL;
  size_t n = 0;
  if (read_file_at(AT_FDCWD, path, 1 << 20, &s, &n) < 0)
    return NULL;
  while (n > 0 && s[n - 1] == '\n')
    s[--n] = '\0';
  return s;
}

static bool file_is(const char *dir, const char *file, const char *want)
{
  _cleanup_free_ char *v = slurp(dir, file);
  if (!v || strcmp(v, want))
    printf("# %s/%s is \"%s\", want \"%s\"\n", dir, file, v ? v : "(unreadable)", want);
  return v && !strcmp(v, want);
}

static bool exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

static const char *msg(struct isola_error *e)
{
  return e && e->msg ? e->msg : "(no error)";
}

static bool starts(const char *s, const char *prefix)
{
  return s && !strncmp(s, prefix, strlen(prefix));
}

/* The directory of the hierarchy hosting controller (v1 first, then unified). */
static const char *dir_for(const struct cgroup *cg, const char *controller, bool *v2)
{
  for (size_t i = 0; i < cg->n_paths; i++)
    if (*cg->paths[i].controller && cgroup_list_has(cg->paths[i].controller, controller, ',')) {
      *v2 = false;
      return cg->paths[i].path;
    }
  for (size_t i = 0; i < cg->n_paths; i++)
    if (!*cg->paths[i].controller) {
      _cleanup_free_ char *c = slurp(cg->paths[i].path, "cgroup.controllers");
      if (c && cgroup_list_has(c, controller, ' ')) {
        *v2 = true;
        return cg->paths[i].path;
      }
    }
  return NULL;
}

/* A child that obeys one-byte commands: 'o' open devices and report errnos, 'f' fork a
 * sleeping grandchild and report its pid, 'p' ping. */
struct child {
  pid_t pid;
  int cmd, res;
};

static int try_open(const char *path, int flags)
{
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0)
    return errno;
  close(fd);
  return 0;
}

static void child_main(int cmd, int res)
{
  char c;
  while (read(cmd, &c, 1) == 1) {
    int out[3] = {0};
    if (c == 'o') {
      out[0] = try_open("/dev/zero", O_RDONLY);
      out[1] = try_open("/dev/zero", O_WRONLY);
      out[2] = try_open("/dev/null", O_RDWR);
    } else if (c == 'f') {
      pid_t g = fork();
      if (g == 0) {
        for (;;)
          pause();
      }
      out[0] = g;
    }
    if (write(res, out, sizeof(out)) != sizeof(out))
      _exit(2);
  }
  _exit(0);
}

static struct child child_start(void)
{
  int a[2], b[2];
  struct child ch = {-1, -1, -1};
  if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
    return ch;
  ch.pid = fork();
  if (ch.pid == 0) {
    close(a[1]);
    close(b[0]);
    child_main(a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  ch.cmd = a[1];
  ch.res = b[0];
  return ch;
}

/* Send a command; wait up to timeout_ms for the answer. false on timeout. */
static bool child_ask(struct child *ch, char c, int out[3], int timeout_ms)
{
  if (write(ch->cmd, &c, 1) != 1)
    return false;
  struct pollfd p = {ch->res, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1)
    return false;
  return read(ch->res, out, 3 * sizeof(int)) == 3 * sizeof(int);
}

static int reap(pid_t pid)
{
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  return st;
}

static void child_close(struct child *ch)
{
  close(ch->cmd);
  close(ch->res);
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const struct oci_device_rule DENY_ALL = {false, 'a', -1, -1, "rwm"};
static const struct oci_device_rule ALLOW_ALL = {true, 'a', -1, -1, "rwm"};
static const struct oci_device_rule ALLOW_NULL = {true, 'c', 1, 3, "rwm"};
static const struct oci_device_rule ALLOW_ZERO_R = {true, 'c', 1, 5, "r"};
static const struct oci_device_rule DENY_ZERO_W = {false, 'c', 1, 5, "w"};

/* ---- pure logic ---- */

static void test_paths(void)
{
  struct isola_error *err = NULL;
  struct cgroup *cg = NULL;
  int r = cgroup_create("/isola/../etc", "x", &cg, &err);
  ok(r == -EINVAL && strstr(msg(err), "linux.cgroupsPath") && strstr(msg(err), "\"..\""),
     "a \"..\" component is refused: %s", msg(err));
  isola_error_free(&err);
  r = cgroup_create("system.slice:isola:abc", "x", &cg, &err);
  ok(r == -ENOTSUP && strstr(msg(err), "systemd cgroup driver is not supported"),
     "systemd slice:prefix:name is refused: %s", msg(err));
  isola_error_free(&err);
  r = cgroup_create("//./", "x", &cg, &err);
  ok(r == -EINVAL && strstr(msg(err), "hierarchy root"), "the root itself is refused: %s",
     msg(err));
  isola_error_free(&err);
  r = cgroup_create("", "a/b", &cg, &err);
  ok(r == -EINVAL && strstr(msg(err), "invalid container id"), "an id with '/' is refused: %s",
     msg(err));
  isola_error_free(&err);

  struct json_object *bad = NULL;
  const char *t = "{\"layout\":\"v1\",\"path\":\"/x\",\"paths\":[{\"controller\":\"memory\","
                  "\"path\":\"/sys/fs/cgroup/memory/../../etc\",\"created\":true}]}";
  json_parse_doc(t, strlen(t), "t", &bad, NULL);
  ok(cgroup_from_json(bad, &cg, &err) == -EINVAL && strstr(msg(err), "paths[0]"),
     "cgroup_from_json refuses a path with \"..\": %s", msg(err));
  json_object_put(bad);
  isola_error_free(&err);

  ok(cgroup_v2_shares_to_weight(0) == 0 && cgroup_v2_shares_to_weight(2) == 1 &&
         cgroup_v2_shares_to_weight(1024) == 100 && cgroup_v2_shares_to_weight(262144) == 10000 &&
         cgroup_v2_shares_to_weight(512) == 59,
     "shares→weight: 2→1, 512→59, 1024→100, 262144→10000");
  ok(cgroup_v2_blkio_to_io_weight(10) == 1 && cgroup_v2_blkio_to_io_weight(1000) == 10000 &&
         cgroup_v2_blkio_to_io_weight(500) == 4950,
     "blkio weight→io.weight: 10→1, 500→4950, 1000→10000");
}

/* v2 knobs against plain files (the kernel's parsing is not what is tested here). */
static int fake_dir(const char *base, const char *const *files, const char *preset)
{
  for (const char *const *f = files; *f; f++) {
    _cleanup_free_ char *p = xasprintf("%s/%s", base, *f);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      if (preset && !strcmp(*f, "cpu.max"))
        (void) !write(fd, preset, strlen(preset));
      close(fd);
    }
  }
  return open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void test_v2_files(void)
{
  char base[] = "/tmp/isola-cgv2-XXXXXX";
  if (!mkdtemp(base)) {
    ok(false, "mkdtemp");
    return;
  }
  static const char *const files[] = {"memory.max", "memory.swap.max", "memory.low",
                                      "cpu.weight", "cpu.max",         "pids.max",
                                      "io.weight",  "io.max",          NULL};
  struct isola_error *err = NULL;
  struct oci_resources r = {0};
  _cleanup_close_ int fd = fake_dir(base, files, NULL);
  r.has_mem_limit = r.has_mem_swap = true;
  r.mem_limit = 1 << 30;
  r.mem_swap = 3 << 29;
  r.has_mem_kernel = true;
  r.mem_kernel = 1 << 20;
  ok(cgroup_v2_set_memory(fd, &r, &err) == 0 && file_is(base, "memory.max", "1073741824") &&
         file_is(base, "memory.swap.max", "536870912"),
     "v2: memory.max = limit, memory.swap.max = swap - limit, kernel ignored %s", msg(err));
  close(fd);
  fd = fake_dir(base, files, NULL);
  r = (struct oci_resources){.has_mem_limit = true, .mem_limit = -1};
  ok(cgroup_v2_set_memory(fd, &r, &err) == 0 && file_is(base, "memory.max", "max") &&
         file_is(base, "memory.swap.max", "max"),
     "v2: limit -1 → memory.max and memory.swap.max \"max\"");
  r = (struct oci_resources){.has_mem_swap = true, .mem_swap = 1 << 20};
  ok(cgroup_v2_set_memory(fd, &r, &err) == -EINVAL &&
         starts(msg(err), "linux.resources.memory.swap: "),
     "v2: swap without a limit fails naming the field: %s", msg(err));
  isola_error_free(&err);

  close(fd);
  fd = fake_dir(base, files, NULL);
  r = (struct oci_resources){.has_cpu_shares = true,
                             .cpu_shares = 1024,
                             .has_cpu_quota = true,
                             .cpu_quota = 50000,
                             .has_cpu_period = true,
                             .cpu_period = 100000,
                             .has_pids_limit = true,
                             .pids_limit = -1};
  ok(cgroup_v2_set_cpu(fd, &r, &err) == 0 && cgroup_v2_set_pids(fd, &r, &err) == 0 &&
         file_is(base, "cpu.weight", "100") && file_is(base, "cpu.max", "50000 100000") &&
         file_is(base, "pids.max", "max"),
     "v2: cpu.weight from shares, cpu.max \"quota period\", pids.max max %s", msg(err));
  close(fd);
  fd = fake_dir(base, files, "30000 1000\n");
  r = (struct oci_resources){.has_cpu_period = true, .cpu_period = 250000};
  ok(cgroup_v2_set_cpu(fd, &r, &err) == 0 && file_is(base, "cpu.max", "30000 250000"),
     "v2: a period alone keeps the current quota %s", msg(err));
  r = (struct oci_resources){.has_cpu_rt_runtime = true, .cpu_rt_runtime = 1000};
  ok(cgroup_v2_set_cpu(fd, &r, &err) == -ENOTSUP &&
         starts(msg(err), "linux.resources.cpu.realtimeRuntime: "),
     "v2: realtimeRuntime fails naming the field: %s", msg(err));
  isola_error_free(&err);

  close(fd);
  fd = fake_dir(base, files, NULL);
  struct oci_throttle th = {8, 0, 1048576};
  r = (struct oci_resources){.has_blkio_weight = true, .blkio_weight = 500};
  r.throttle[0] = &th;
  r.n_throttle[0] = 1;
  ok(cgroup_v2_set_io(fd, &r, &err) == 0 && file_is(base, "io.weight", "4950") &&
         file_is(base, "io.max", "8:0 rbps=1048576"),
     "v2: io.weight converted, io.max rbps %s", msg(err));
  r = (struct oci_resources){.n_unified = 1, .unified = &(struct oci_kv){"memory.high", "12345"}};
  ok(cgroup_v2_set_unified(fd, &r, &err) == -ENOENT &&
         starts(msg(err), "linux.resources.unified.memory.high: no such file"),
     "v2: a unified key with no file fails naming it: %s", msg(err));
  isola_error_free(&err);
  close(fd);
  fd = -1;
  for (const char *const *f = files; *f; f++) {
    _cleanup_free_ char *p = xasprintf("%s/%s", base, *f);
    unlink(p);
  }
  ok(rmdir(base) == 0, "fake v2 directory removed");
}

/* ---- real cgroups ---- */

static bool pid_listed(const pid_t *pids, size_t n, pid_t p)
{
  for (size_t i = 0; i < n; i++)
    if (pids[i] == p)
      return true;
  return false;
}

static void check_devices(struct child *ch, int zero_r, int zero_w, int null_rw, const char *what)
{
  int out[3] = {-1, -1, -1};
  bool answered = child_ask(ch, 'o', out, 2000);
  ok(answered && out[0] == zero_r && out[1] == zero_w && out[2] == null_rw,
     "%s: /dev/zero r=%s w=%s, /dev/null rw=%s", what, strerror(out[0]), strerror(out[1]),
     strerror(out[2]));
}

/* The default path: "/isola/<id>" in every hierarchy. /isola itself may be shared with
 * containers that other tests run at the same time, so only the leaf is checked here. */
static void test_default_path(const char *id)
{
  struct isola_error *err = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  int r = cgroup_create("", id, &cg, &err);
  ok(r == 0, "cgroup_create(\"\", %s): %s", id, msg(err));
  if (r < 0)
    return;
  _cleanup_free_ char *rel = xasprintf("/isola/%s", id);
  bool all = !strcmp(cg->rel_path, rel) && cg->n_paths > 0;
  for (size_t i = 0; i < cg->n_paths; i++) {
    size_t n = strlen(cg->paths[i].path), k = strlen(rel);
    all &= n > k && !strcmp(cg->paths[i].path + n - k, rel) && exists(cg->paths[i].path);
  }
  ok(all, "an empty cgroupsPath gives %s in each of %zu hierarchies", cg->rel_path, cg->n_paths);
  r = cgroup_destroy(cg, &err);
  all = r == 0;
  for (size_t i = 0; i < cg->n_paths; i++)
    all &= !exists(cg->paths[i].path);
  ok(all, "and it is destroyed: %s", msg(err));
}

/* The whole life of a container cgroup at /isola-test-PID/c (a parent only this test uses). */
static void test_container(const char *top)
{
  struct isola_error *err = NULL;
  struct cgroup_mount *mounts = NULL;
  size_t n_mounts = 0;
  enum cgroup_layout layout;
  if (cgroup_mounts_read(&mounts, &n_mounts, &layout, &err) < 0) {
    ok(false, "cgroup_mounts_read: %s", msg(err));
    return;
  }
  _cleanup_free_ char *rel = xasprintf("/%s/c", top);
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  int r = cgroup_create(rel, "unused", &cg, &err);
  ok(r == 0, "cgroup_create(\"%s\"): %s", rel, msg(err));
  if (r < 0) {
    cgroup_mounts_free(mounts, n_mounts);
    return;
  }
  ok(!strcmp(cg->rel_path, rel) && cg->layout == layout && cg->n_paths == n_mounts,
     "path %s in %zu hierarchies", cg->rel_path, cg->n_paths);
  bool all = true;
  for (size_t i = 0; i < cg->n_paths; i++) {
    _cleanup_free_ char *want = xasprintf("%s%s", mounts[i].mount_point, rel);
    all &= !strcmp(cg->paths[i].path, want) && exists(want) && cg->paths[i].created &&
           cg->paths[i].created_parents == 1;
  }
  ok(all, "every hierarchy has the directory, recorded as created with its parent");

  /* state round trip */
  _cleanup_json_ struct json_object *j = cgroup_to_json(cg), *j2 = NULL;
  _cleanup_free_ char *text = json_to_string(j, false);
  _cleanup_cgroup_ struct cgroup *back = NULL;
  r = json_parse_doc(text, strlen(text), "state", &j2, &err);
  if (r == 0)
    r = cgroup_from_json(j2, &back, &err);
  bool same = r == 0 && back->layout == cg->layout && !strcmp(back->rel_path, cg->rel_path) &&
              back->n_paths == cg->n_paths;
  for (size_t i = 0; same && i < cg->n_paths; i++)
    same = !strcmp(back->paths[i].path, cg->paths[i].path) &&
           !strcmp(back->paths[i].controller, cg->paths[i].controller) &&
           back->paths[i].created == cg->paths[i].created &&
           back->paths[i].created_parents == cg->paths[i].created_parents;
  ok(same, "cgroup_to_json/cgroup_from_json round trip: %s", text);

  /* limits */
  struct oci_resources res = {0};
  res.has_mem_limit = res.has_mem_swap = res.has_mem_kernel = res.has_pids_limit = true;
  res.mem_limit = 64 << 20;
  res.mem_swap = 128 << 20;
  res.mem_kernel = 1 << 20;
  res.pids_limit = 64;
  res.has_cpu_shares = res.has_cpu_quota = res.has_cpu_period = true;
  res.cpu_shares = 512;
  res.cpu_quota = 50000;
  res.cpu_period = 100000;
  res.cpu_cpus = "0";
  bool huge = exists("/sys/kernel/mm/hugepages/hugepages-2048kB");
  struct oci_hugepage_limit hl = {"2MB", 4 << 20};
  if (huge) {
    res.hugepage_limits = &hl;
    res.n_hugepage_limits = 1;
  }
  struct oci_device_rule rules[] = {DENY_ALL, ALLOW_NULL};
  res.devices = rules;
  res.n_devices = 2;
  r = cgroup_apply(cg, &res, &err);
  ok(r == 0, "cgroup_apply memory/swap/kernel/pids/cpu/cpuset/hugetlb/devices: %s", msg(err));
  bool v2 = false;
  _cleanup_free_ char *memsw = NULL;
  const char *d = dir_for(cg, "memory", &v2);
  if (!d)
    skip("no memory controller");
  else if (v2)
    ok(file_is(d, "memory.max", "67108864") && file_is(d, "memory.swap.max", "67108864"),
       "v2 memory.max and memory.swap.max");
  else
    ok(file_is(d, "memory.limit_in_bytes", "67108864") &&
           (!cgroup_has_file(AT_FDCWD, memsw = xasprintf("%s/memory.memsw.limit_in_bytes", d)) ||
            file_is(d, "memory.memsw.limit_in_bytes", "134217728")),
       "v1 memory.limit_in_bytes and memory.memsw.limit_in_bytes (swap is memory+swap)");
  if ((d = dir_for(cg, "pids", &v2)))
    ok(file_is(d, "pids.max", "64"), "pids.max");
  if ((d = dir_for(cg, "cpu", &v2)))
    ok(v2 ? file_is(d, "cpu.weight", "59") && file_is(d, "cpu.max", "50000 100000")
          : file_is(d, "cpu.shares", "512") && file_is(d, "cpu.cfs_quota_us", "50000") &&
                file_is(d, "cpu.cfs_period_us", "100000"),
       "cpu shares/quota/period");
  if ((d = dir_for(cg, "cpuset", &v2)))
    ok(file_is(d, "cpuset.cpus", "0"), "cpuset.cpus");
  if (huge && (d = dir_for(cg, "hugetlb", &v2)))
    ok(file_is(d, v2 ? "hugetlb.2MB.max" : "hugetlb.2MB.limit_in_bytes", "4194304"),
       "hugetlb 2MB limit (in the %s hierarchy)", v2 ? "unified" : "v1");

  /* errors name the field */
  struct oci_resources bad = {
      .has_mem_limit = true, .mem_limit = 64 << 20, .has_mem_swap = true, .mem_swap = 32 << 20};
  r = cgroup_apply(cg, &bad, &err);
  ok(r < 0 && starts(msg(err), "linux.resources.memory.swap: "),
     "swap below the limit fails naming the field: %s", msg(err));
  isola_error_free(&err);
  bad = (struct oci_resources){.has_blkio_weight = true, .blkio_weight = 500};
  d = dir_for(cg, "blkio", &v2);
  if (!d)
    d = dir_for(cg, "io", &v2);
  r = cgroup_apply(cg, &bad, &err);
  _cleanup_free_ char *bfq =
      d ? xasprintf("%s/%s", d, v2 ? "io.bfq.weight" : "blkio.bfq.weight") : NULL;
  _cleanup_free_ char *weight = NULL;
  if (bfq && exists(bfq))
    ok(r == 0 && (weight = slurp(d, v2 ? "io.bfq.weight" : "blkio.bfq.weight")) &&
           (!strcmp(weight, "500") || !strcmp(weight, "default 500")),
       "blockIO.weight goes to the BFQ weight when there is no blkio.weight %s", msg(err));
  else
    ok(r < 0 && starts(msg(err), "linux.resources.blockIO.weight: "),
       "blockIO.weight with no weight file fails naming the field: %s", msg(err));
  isola_error_free(&err);
  struct oci_kv kv = {"nosuch.file", "1"};
  bad = (struct oci_resources){.unified = &kv, .n_unified = 1};
  r = cgroup_apply(cg, &bad, &err);
  ok(r < 0 && starts(msg(err), "linux.resources.unified"), "unified on %s: %s",
     layout == CGROUP_LAYOUT_V1 ? "v1 fails" : "an unknown key fails", msg(err));
  isola_error_free(&err);

  /* a child inside */
  struct child ch = child_start();
  r = cgroup_enter(cg, ch.pid, &err);
  ok(r == 0, "cgroup_enter(%d): %s", (int) ch.pid, msg(err));
  char pp[64];
  snprintf(pp, sizeof(pp), "/proc/%d/cgroup", (int) ch.pid);
  _cleanup_free_ char *pc = NULL;
  read_file_at(AT_FDCWD, pp, 65536, &pc, NULL);
  size_t lines = 0;
  for (char *p = pc; p && (p = strstr(p, rel)); p++)
    lines++;
  ok(lines == cg->n_paths, "/proc/PID/cgroup shows %s in %zu hierarchies", rel, lines);
  int out[3] = {0};
  pid_t grandchild = child_ask(&ch, 'f', out, 2000) ? out[0] : -1;
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 0;
  r = cgroup_pids(cg, &pids, &n, &err);
  ok(r == 0 && n == 2 && pid_listed(pids, n, ch.pid) && pid_listed(pids, n, grandchild),
     "cgroup_pids lists the child and its child (%zu pids)", n);
  if ((d = dir_for(cg, "devices", &v2)) && !v2)
    check_devices(&ch, EPERM, EPERM, 0, "v1 devices deny-all + c 1:3");

  r = cgroup_freeze(cg, true, &err);
  ok(r == 0 && cgroup_is_frozen(cg), "frozen: %s", msg(err));
  ok(!child_ask(&ch, 'p', out, 200), "a frozen child does not answer");
  r = cgroup_freeze(cg, false, &err);
  ok(r == 0 && !cgroup_is_frozen(cg), "thawed: %s", msg(err));
  ok(read(ch.res, out, sizeof(out)) == sizeof(out), "the thawed child answers");

  r = cgroup_kill_all(cg, SIGKILL, &err);
  int st = reap(ch.pid), st2 = grandchild > 0 ? reap(grandchild) : 0;
  ok(r == 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && WIFSIGNALED(st2) &&
         WTERMSIG(st2) == SIGKILL,
     "cgroup_kill_all(SIGKILL) killed both: %s", msg(err));
  child_close(&ch);
  free(steal_pointer(&pids));
  r = cgroup_pids(cg, &pids, &n, &err);
  ok(r == 0 && n == 0, "no pids left");

  r = cgroup_destroy(cg, &err);
  all = r == 0;
  for (size_t i = 0; i < cg->n_paths; i++) {
    _cleanup_free_ char *parent = xasprintf("%s/%s", mounts[i].mount_point, top);
    all &= !exists(cg->paths[i].path) && !exists(parent);
  }
  ok(all, "cgroup_destroy removed every directory and the parent it made: %s", msg(err));
  ok(cgroup_destroy(cg, &err) == 0, "destroying again is fine (ENOENT)");
  cgroup_mounts_free(mounts, n_mounts);
}

static void test_relative_and_busy(const char *name)
{
  struct isola_error *err = NULL;
  struct cgroup_mount *mounts = NULL;
  size_t n_mounts = 0;
  enum cgroup_layout layout;
  if (cgroup_mounts_read(&mounts, &n_mounts, &layout, &err) < 0)
    return;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  int r = cgroup_create(name, "unused", &cg, &err);
  ok(r == 0, "cgroup_create(\"%s\") relative: %s", name, msg(err));
  if (r < 0) {
    cgroup_mounts_free(mounts, n_mounts);
    return;
  }
  bool all = cg->n_paths == n_mounts;
  for (size_t i = 0; all && i < n_mounts; i++) {
    const char *own = strcmp(mounts[i].own_path, "/") ? mounts[i].own_path : "";
    _cleanup_free_ char *want = xasprintf("%s%s/%s", mounts[i].mount_point, own, name);
    all = !strcmp(cg->paths[i].path, want) && exists(want) && cg->paths[i].created_parents == 0;
    if (!all)
      printf("# %s vs %s\n", cg->paths[i].path, want);
  }
  ok(all, "relative paths are below this process's own cgroup in each hierarchy");

  /* A process that exits after 200 ms: destroy waits for it (EBUSY retries). */
  pid_t p = fork();
  if (p == 0) {
    nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    _exit(0);
  }
  cgroup_enter(cg, p, &err);
  double t0 = now_s();
  r = cgroup_destroy(cg, &err);
  double dt = now_s() - t0;
  reap(p);
  ok(r == 0 && dt > 0.1 && dt < 1.0, "destroy retried while the last process exited (%.2f s): %s",
     dt, msg(err));
  all = true;
  for (size_t i = 0; i < cg->n_paths; i++)
    all &= !exists(cg->paths[i].path);
  ok(all, "relative cgroup removed");

  /* One that stays: destroy gives up after about a second with a clear error. */
  cgroup_free(steal_pointer(&cg));
  r = cgroup_create(name, "unused", &cg, &err);
  p = fork();
  if (p == 0) {
    for (;;)
      pause();
  }
  cgroup_enter(cg, p, &err);
  t0 = now_s();
  r = cgroup_destroy(cg, &err);
  dt = now_s() - t0;
  ok(r == -EBUSY && strstr(msg(err), "cannot remove cgroup") && dt >= 0.9 && dt < 3,
     "a busy cgroup fails after %.2f s: %s", dt, msg(err));
  isola_error_free(&err);
  kill(p, SIGKILL);
  reap(p);
  ok(cgroup_destroy(cg, &err) == 0, "and goes once its process is dead: %s", msg(err));
  cgroup_mounts_free(mounts, n_mounts);
}

static void test_bpf_devices(void)
{
  struct isola_error *err = NULL;
  struct cgroup_mount *mounts = NULL;
  size_t n_mounts = 0;
  enum cgroup_layout layout;
  const char *v2 = NULL;
  if (cgroup_mounts_read(&mounts, &n_mounts, &layout, &err) == 0)
    for (size_t i = 0; i < n_mounts; i++)
      if (!*mounts[i].controllers)
        v2 = mounts[i].mount_point;
  if (!v2) {
    skip("no cgroup2 hierarchy for the eBPF device program");
    cgroup_mounts_free(mounts, n_mounts);
    return;
  }
  _cleanup_free_ char *dir = xasprintf("%s/isola-bpf-test-%d", v2, (int) getpid());
  ok(mkdir(dir, 0755) == 0, "mkdir %s", dir);
  _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct child ch = child_start();
  char buf[32];
  snprintf(buf, sizeof(buf), "%d", (int) ch.pid);
  ok(write_file_at(fd, "cgroup.procs", buf, strlen(buf)) == 0, "child %d in the cgroup2 dir",
     (int) ch.pid);

  struct {
    struct oci_device_rule rules[3];
    size_t n;
    int zero_r, zero_w, null_rw;
    const char *what;
  } cases[] = {
      {{DENY_ALL, ALLOW_NULL}, 2, EPERM, EPERM, 0, "eBPF deny-all + c 1:3 rwm"},
      {{DENY_ALL, ALLOW_NULL, ALLOW_ZERO_R}, 3, 0, EPERM, 0, "eBPF + c 1:5 r"},
      {{ALLOW_ALL, DENY_ZERO_W}, 2, 0, EPERM, 0, "eBPF allow-all then deny c 1:5 w"},
      {{DENY_ALL, ALLOW_NULL, ALLOW_ALL}, 3, 0, 0, 0, "eBPF ending in allow-all"},
      {{{0}}, 0, EPERM, EPERM, EPERM, "eBPF with an empty list denies all"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    struct oci_resources r = {.devices = cases[i].rules, .n_devices = cases[i].n};
    int ret = cgroup_v2_set_devices(fd, &r, &err);
    ok(ret == 0 && cgroup_v2_device_prog_count(fd) == 1, "%s: loaded, one program attached: %s",
       cases[i].what, msg(err));
    isola_error_free(&err);
    check_devices(&ch, cases[i].zero_r, cases[i].zero_w, cases[i].null_rw, cases[i].what);
  }

  /* cgroup.freeze works on the cgroup2 directory even in the hybrid layout. */
  int out[3];
  ok(cgroup_v2_freeze(fd, true, &err) == 0 && cgroup_v2_is_frozen(fd), "v2 freeze: %s", msg(err));
  ok(!child_ask(&ch, 'p', out, 200), "a v2-frozen child does not answer");
  ok(cgroup_v2_freeze(fd, false, &err) == 0 && !cgroup_v2_is_frozen(fd), "v2 thaw: %s", msg(err));
  ok(read(ch.res, out, sizeof(out)) == sizeof(out), "the thawed child answers");

  child_close(&ch);
  int st = reap(ch.pid);
  ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exited");
  int r = -1;
  for (int i = 0; i < 100 && (r = rmdir(dir)) < 0 && errno == EBUSY; i++)
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  ok(r == 0, "cgroup2 test directory removed");
  cgroup_mounts_free(mounts, n_mounts);
}

int main(void)
{
  setvbuf(stdout, NULL, _IONBF, 0);
  test_paths();
  test_v2_files();
  if (geteuid() != 0) {
    skip("not root: no real cgroups");
    done_testing();
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1); /* grandchildren come back to us */

  struct isola_error *err = NULL;
  enum cgroup_layout layout;
  struct statfs a, b;
  enum cgroup_layout expect =
      statfs("/sys/fs/cgroup", &a) == 0 && a.f_type == CGROUP2_SUPER_MAGIC ? CGROUP_LAYOUT_V2
      : statfs("/sys/fs/cgroup/unified", &b) == 0 && b.f_type == CGROUP2_SUPER_MAGIC
          ? CGROUP_LAYOUT_HYBRID
          : CGROUP_LAYOUT_V1;
  ok(cgroup_detect_layout(&layout, &err) == 0 && layout == expect, "layout %d (expected %d): %s",
     layout, expect, msg(err));

  char id[64], rel[64];
  snprintf(id, sizeof(id), "isola-test-%d", (int) getpid());
  snprintf(rel, sizeof(rel), "isola-rel-%d", (int) getpid());
  test_default_path(id);
  test_container(id);
  test_relative_and_busy(rel);
  test_bpf_devices();

  /* Nothing of ours is left in any hierarchy. */
  struct cgroup_mount *m = NULL;
  size_t n = 0;
  bool clean = cgroup_mounts_read(&m, &n, &layout, &err) == 0;
  for (size_t i = 0; clean && i < n; i++) {
    const char *own = strcmp(m[i].own_path, "/") ? m[i].own_path : "";
    _cleanup_free_ char *p1 = xasprintf("%s/%s", m[i].mount_point, id);
    _cleanup_free_ char *p2 = xasprintf("%s%s/%s", m[i].mount_point, own, rel);
    _cleanup_free_ char *p3 = xasprintf("%s/isola-bpf-test-%d", m[i].mount_point, (int) getpid());
    _cleanup_free_ char *p4 = xasprintf("%s/isola/%s", m[i].mount_point, id);
    clean = !exists(p1) && !exists(p2) && !exists(p3) && !exists(p4);
  }
  ok(clean, "no test cgroup is left behind");
  cgroup_mounts_free(m, n);
  done_testing();
}
