/* seccomp_compile()/seccomp_install(): config.json snippets in, real kernel behaviour out.
 * Every filter is installed in a forked child (a filter cannot be removed), which reports what
 * it saw through its exit code: 0 when everything matched, a distinct small number otherwise. */
#include "seccomp_filter.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MISSING_DIR "/nonexistent-isola-seccomp-test/x"

/* Parse a config.json around `seccomp_json` and compile it; *msg gets the error, if any. */
static int compile(const char *seccomp_json, struct seccomp_prog *prog, char **msg)
{
  _cleanup_free_ char *text = xasprintf("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
                                        "\"linux\":{\"seccomp\":%s}}",
                                        seccomp_json);
  _cleanup_spec_ struct oci_spec *spec = NULL;
  _cleanup_error_ struct isola_error *err = NULL;
  int r = spec_parse(text, strlen(text), "config.json", &spec, &err);
  if (r >= 0)
    r = seccomp_compile(spec->seccomp, prog, &err);
  if (msg)
    *msg = xstrdup(err && err->msg ? err->msg : "");
  return r;
}

/* Leave a filtered child with the bare system call: ASan's _exit() and noreturn hooks make calls
 * (sigaltstack, mmap) that a deny-by-default filter refuses; hence no _Noreturn either. */
static void child_exit(int code)
{
  for (;;)
    syscall(SYS_exit_group, code);
}

/* Fork, install, run fn, exit with its result; returns the wait status. */
static int run_filtered(const struct seccomp_prog *prog, int (*fn)(void))
{
  int status = 0;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    if (seccomp_install(prog) < 0)
      child_exit(99);
    child_exit(fn());
  }
  if (waitpid(pid, &status, 0) < 0)
    return -1;
  return status;
}

static bool exited_ok(int status)
{
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool killed_by(int status, int sig)
{
  return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

/* Compile `json`, run fn under it, expect a clean exit. */
static void check_behaviour(const char *what, const char *json, int (*fn)(void))
{
  struct seccomp_prog prog = {0};
  _cleanup_free_ char *msg = NULL;
  int r = compile(json, &prog, &msg);
  ok(r == 0, "%s: compiles (%s)", what, msg);
  if (r == 0) {
    int status = run_filtered(&prog, fn);
    ok(exited_ok(status), "%s: child status %#x", what, status);
  }
  seccomp_prog_clear(&prog);
}

/* Compile `json`, expect failure with `needle` in the message. */
static void check_rejected(const char *what, const char *json, const char *needle)
{
  struct seccomp_prog prog = {0};
  _cleanup_free_ char *msg = NULL;
  int r = compile(json, &prog, &msg);
  ok(r < 0 && strstr(msg, needle), "%s: rejected with \"%s\" (got %d: %s)", what, needle, r, msg);
  ok(prog.bpf == NULL, "%s: no program left behind", what);
  seccomp_prog_clear(&prog);
}

static int errno_of(long r)
{
  return r < 0 ? errno : 0;
}

static int mkdir_errno(void)
{
  return errno_of(mkdir(MISSING_DIR, 0700));
}

static int getcwd_errno(void)
{
  char buf[4096];
  return errno_of(syscall(SYS_getcwd, buf, sizeof(buf)));
}

static int child_mkdir_enosys_getcwd_ok(void)
{
  if (mkdir_errno() != ENOSYS)
    return 1;
  if (getcwd_errno() != 0)
    return 2;
  return 0;
}

static int child_getcwd_eperm_mkdir_normal(void)
{
  if (getcwd_errno() != EPERM)
    return 1;
  if (mkdir_errno() != ENOENT)
    return 2;
  return 0;
}

static int child_getcwd_ok(void)
{
  return getcwd_errno() == 0 ? 0 : 1;
}

static int child_default_eperm(void)
{
  if (syscall(SYS_getpid) <= 0)
    return 1;
  if (getcwd_errno() != EPERM)
    return 2;
  return 0;
}

static int child_default_enosys(void)
{
  if (syscall(SYS_getpid) <= 0)
    return 1;
  if (mkdir_errno() != ENOSYS)
    return 2;
  return 0;
}

static int child_personality(void)
{
  if (errno_of(syscall(SYS_personality, 0xffffffffUL)) != EPERM)
    return 1;
  if (errno_of(syscall(SYS_personality, 0UL)) != 0)
    return 2;
  return 0;
}

static int child_dup_0(void)
{
  long fd = syscall(SYS_dup, 0);
  return fd >= 0 ? 0 : 1;
}

static int child_dup_1000(void)
{
  syscall(SYS_dup, 1000);
  return 1; /* should have been killed */
}

/* Two conditions on arg 0: either one matches (OR). */
static int child_dup_or(void)
{
  if (errno_of(syscall(SYS_dup, 100)) != ENOSYS)
    return 1;
  if (errno_of(syscall(SYS_dup, 200)) != ENOSYS)
    return 2;
  if (errno_of(syscall(SYS_dup, 300)) != EBADF)
    return 3;
  return 0;
}

/* Conditions on args 0 and 2: both must match (AND). */
static int child_dup3_and(void)
{
  if (errno_of(syscall(SYS_dup3, 0, 50, O_CLOEXEC)) != ENOSYS)
    return 1;
  if (errno_of(syscall(SYS_dup3, 0, 51, 0)) != 0)
    return 2;
  if (errno_of(syscall(SYS_dup3, 1, 52, O_CLOEXEC)) != 0)
    return 3;
  return 0;
}

static int child_dup3_masked(void)
{
  if (errno_of(syscall(SYS_dup3, 0, 53, O_CLOEXEC)) != EXDEV)
    return 1;
  if (errno_of(syscall(SYS_dup3, 0, 54, 0)) != 0)
    return 2;
  return 0;
}

static int child_getcwd(void)
{
  getcwd_errno();
  return 1; /* should have been killed */
}

static void test_actions(void)
{
  check_behaviour("errnoRet",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\","
                  "\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38}]}",
                  child_mkdir_enosys_getcwd_ok);
  check_behaviour("ERRNO defaults to EPERM",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                  "\"action\":\"SCMP_ACT_ERRNO\"}]}",
                  child_getcwd_eperm_mkdir_normal);
  check_behaviour("unknown names skipped",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
                  "\"no_such_syscall_xyz\",\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
                  child_getcwd_eperm_mkdir_normal);
  check_behaviour("rule with the default action skipped",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\"}]}",
                  child_getcwd_ok);
  check_behaviour("SCMP_ACT_LOG lets the call through",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                  "\"action\":\"SCMP_ACT_LOG\"}]}",
                  child_getcwd_ok);
  check_behaviour("default ERRNO (EPERM) with an allow list",
                  "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"exit_group\","
                  "\"exit\",\"getpid\",\"rt_sigreturn\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
                  child_default_eperm);
  check_behaviour("defaultErrnoRet",
                  "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":38,\"syscalls\":[{"
                  "\"names\":[\"exit_group\",\"exit\",\"getpid\",\"rt_sigreturn\"],\"action\":"
                  "\"SCMP_ACT_ALLOW\"}]}",
                  child_default_enosys);

  struct seccomp_prog prog = {0};
  int r = compile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                  "\"action\":\"SCMP_ACT_TRAP\"}]}",
                  &prog, NULL);
  ok(r == 0 && killed_by(run_filtered(&prog, child_getcwd), SIGSYS), "SCMP_ACT_TRAP raises SIGSYS");
  seccomp_prog_clear(&prog);
}

static void test_args(void)
{
  check_behaviour("deny personality(0xffffffff) only",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
                  "\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,"
                  "\"value\":4294967295,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                  child_personality);
  check_behaviour("same index twice: OR",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"dup\"],"
                  "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38,\"args\":[{\"index\":0,\"value\":"
                  "100,\"op\":\"SCMP_CMP_EQ\"},{\"index\":0,\"value\":200,\"op\":"
                  "\"SCMP_CMP_EQ\"}]}]}",
                  child_dup_or);
  check_behaviour("different indexes: AND",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"dup3\"],"
                  "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38,\"args\":[{\"index\":0,\"value\":"
                  "0,\"op\":\"SCMP_CMP_EQ\"},{\"index\":2,\"value\":524288,\"op\":"
                  "\"SCMP_CMP_EQ\"}]}]}",
                  child_dup3_and);
  check_behaviour("MASKED_EQ takes value as the mask, valueTwo as the value",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"dup3\"],"
                  "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":18,\"args\":[{\"index\":2,\"value\":"
                  "524288,\"valueTwo\":524288,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}",
                  child_dup3_masked);

  const char *kill_json =
      "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"dup\"],"
      "\"action\":\"SCMP_ACT_KILL_PROCESS\",\"args\":[{\"index\":0,\"value\":"
      "1000,\"op\":\"SCMP_CMP_EQ\"}]}]}";
  struct seccomp_prog prog = {0};
  int r = compile(kill_json, &prog, NULL);
  ok(r == 0, "KILL_PROCESS on one argument compiles");
  if (r == 0) {
    int status = run_filtered(&prog, child_dup_1000);
    ok(killed_by(status, SIGSYS), "dup(1000) kills with SIGSYS (status %#x)", status);
    status = run_filtered(&prog, child_dup_0);
    ok(exited_ok(status), "dup(0) is untouched (status %#x)", status);
  }
  seccomp_prog_clear(&prog);
}

static void test_arches_and_flags(void)
{
  check_behaviour("x86 family arches",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\","
                  "\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"],\"syscalls\":[{\"names\":[\"mkdir\","
                  "\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38}]}",
                  child_mkdir_enosys_getcwd_ok);
  check_behaviour("every arch the OCI spec names",
                  "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86\","
                  "\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X32\",\"SCMP_ARCH_ARM\",\"SCMP_ARCH_AARCH64\","
                  "\"SCMP_ARCH_MIPS\",\"SCMP_ARCH_MIPS64\",\"SCMP_ARCH_MIPS64N32\","
                  "\"SCMP_ARCH_MIPSEL\",\"SCMP_ARCH_MIPSEL64\",\"SCMP_ARCH_MIPSEL64N32\","
                  "\"SCMP_ARCH_PPC\",\"SCMP_ARCH_PPC64\",\"SCMP_ARCH_PPC64LE\",\"SCMP_ARCH_S390\","
                  "\"SCMP_ARCH_S390X\",\"SCMP_ARCH_PARISC\",\"SCMP_ARCH_PARISC64\","
                  "\"SCMP_ARCH_RISCV64\",\"SCMP_ARCH_LOONGARCH64\",\"SCMP_ARCH_M68K\","
                  "\"SCMP_ARCH_SH\",\"SCMP_ARCH_SHEB\"],\"syscalls\":[{\"names\":[\"mkdir\","
                  "\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38}]}",
                  child_mkdir_enosys_getcwd_ok);
  check_rejected("unknown arch",
                 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\","
                 "\"SCMP_ARCH_VAX\"]}",
                 "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_VAX\"");

  struct seccomp_prog prog = {0};
  _cleanup_free_ char *msg = NULL;
  int r = compile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\","
                  "\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\",\"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\"],"
                  "\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\","
                  "\"errnoRet\":38}]}",
                  &prog, &msg);
  ok(r == 0, "flags compile (%s)", msg);
  ok(prog.flags == (SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW),
     "LOG and SPEC_ALLOW kept, WAIT_KILLABLE_RECV dropped without a listener (%#x)", prog.flags);
  ok(!prog.notify, "no listener without SCMP_ACT_NOTIFY");
  ok(exited_ok(run_filtered(&prog, child_mkdir_enosys_getcwd_ok)), "filter with flags installs");
  seccomp_prog_clear(&prog);

  r = compile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_TSYNC\"],"
              "\"syscalls\":[{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
              &prog, NULL);
  ok(r == 0 && prog.notify &&
         prog.flags == (SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH |
                        SECCOMP_FILTER_FLAG_NEW_LISTENER),
     "TSYNC with a listener adds TSYNC_ESRCH (%#x)", prog.flags);
  seccomp_prog_clear(&prog);

  r = compile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
              "\"no_such_syscall_xyz\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
              &prog, NULL);
  ok(r == 0 && !prog.notify && prog.flags == 0, "NOTIFY on unknown calls only: no listener");
  seccomp_prog_clear(&prog);
}

static void test_rejects(void)
{
  check_rejected("unknown action",
                 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"SCMP_ACT_BOGUS\"}]}",
                 "linux.seccomp.syscalls[0]");
  check_rejected("unknown default action", "{\"defaultAction\":\"SCMP_ACT_NOPE\"}",
                 "linux.seccomp.defaultAction");
  check_rejected("unknown flag", "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"BOGUS\"]}",
                 "linux.seccomp.flags[0]");
  check_rejected("errnoRet beyond 16 bits",
                 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":70000}]}",
                 "linux.seccomp.syscalls[0].errnoRet");
  check_rejected("defaultErrnoRet beyond 16 bits",
                 "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":65536}",
                 "linux.seccomp.defaultErrnoRet");
  check_rejected("NOTIFY as the default", "{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}",
                 "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY");
  check_rejected("arg index out of range",
                 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"dup\"],"
                 "\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":6,\"value\":1,\"op\":"
                 "\"SCMP_CMP_EQ\"}]}]}",
                 "linux.seccomp.syscalls[0].args[0]");

  struct seccomp_prog empty = {0};
  ok(seccomp_install(&empty) == -EINVAL, "installing an empty program fails with EINVAL");
}

/* Child of test_notify: send the listener up, then make the call the supervisor answers. */
static int notify_sock = -1;
static const struct seccomp_prog *notify_prog;

static int child_notify(void)
{
  int fd = seccomp_install(notify_prog);
  if (fd < 0)
    return 1;
  if (send_fds(notify_sock, "L", 1, &fd, 1) < 0)
    return 2;
  return getcwd_errno() == EXDEV ? 0 : 3;
}

static int child_noop(void)
{
  return 0;
}

static void test_notify(void)
{
  struct seccomp_prog prog = {0};
  int sv[2], status = 0, fds[1] = {-1}, nfds = 0;
  char byte;
  int r = compile("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/run/x.sock\","
                  "\"flags\":[\"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\"],\"syscalls\":[{"
                  "\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
                  &prog, NULL);
  ok(r == 0 && prog.notify && (prog.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) &&
         (prog.flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV),
     "NOTIFY compiles with a listener (flags %#x)", prog.flags);
  if (r < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    ok(0, "notify setup");
    seccomp_prog_clear(&prog);
    return;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    notify_sock = sv[1];
    notify_prog = &prog;
    child_exit(child_notify());
  }
  close(sv[1]);
  r = recv_fds(sv[0], &byte, 1, fds, 1, &nfds);
  ok(r == 1 && nfds == 1 && fds[0] >= 0, "install returned a listener fd (%d)", fds[0]);
  if (nfds == 1) {
    struct seccomp_notif req = {0};
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    bool got = poll(&p, 1, 5000) == 1 && ioctl(fds[0], SECCOMP_IOCTL_NOTIF_RECV, &req) == 0;
    ok(got && req.data.nr == SYS_getcwd, "supervisor sees getcwd (nr %d)", got ? req.data.nr : -1);
    if (got) {
      struct seccomp_notif_resp resp = {.id = req.id, .error = -EXDEV};
      ok(ioctl(fds[0], SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0, "supervisor answers EXDEV");
    }
    close(fds[0]);
  }
  close(sv[0]);
  waitpid(pid, &status, 0);
  ok(exited_ok(status), "the call returned the supervisor's errno (status %#x)", status);

  ok(exited_ok(run_filtered(&prog, child_noop)), "notify filter installs without a supervisor");
  seccomp_prog_clear(&prog);
}

int main(void)
{
  if (geteuid() != 0) {
    skip("seccomp filters without no_new_privs need CAP_SYS_ADMIN");
    done_testing();
  }
  test_actions();
  test_args();
  test_arches_and_flags();
  test_rejects();
  test_notify();
  done_testing();
}
