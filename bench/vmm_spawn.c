/* vmm_spawn.c — the launcher bench/vmm.sh times each monitor run with (built by the script into
 * its work directory, statically linked).
 *
 * usage: vmm_spawn RESULT PROG [ARG]...
 * Spawns PROG (an absolute path) with the launcher's stdin/stdout/stderr and environment, waits
 * for it with wait4() and writes one line to RESULT:
 *   exit-code t0-monotonic-ns t1-monotonic-ns t0-realtime-ns t1-realtime-ns ru_maxrss-KiB
 * with t0 taken just before the spawn and t1 just after wait4() returns; exit-code is the
 * status, or 128 + signal.
 *
 * Why a launcher: a child's ru_maxrss also counts the memory of whatever it was before its
 * exec (the kernel keeps the old mm's high-water mark), and a child of vfork/posix_spawn was,
 * until exec, its parent's mm. Spawned straight from Python every monitor would report at least
 * Python's ~13 MiB; spawned from this small static program the floor is this program's few
 * hundred KiB, below what either monitor uses. Exit status 125 if the launcher itself fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static uint64_t clock_ns(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

int main(int argc, char **argv)
{
  if (argc < 3 || argv[2][0] != '/') {
    fputs("usage: vmm_spawn RESULT /PATH/TO/PROG [ARG]...\n", stderr);
    return 125;
  }
  FILE *result = fopen(argv[1], "we");
  if (!result) {
    fprintf(stderr, "vmm_spawn: cannot open %s: %s\n", argv[1], strerror(errno));
    return 125;
  }
  uint64_t t0_real = clock_ns(CLOCK_REALTIME);
  uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
  pid_t pid;
  int e = posix_spawn(&pid, argv[2], NULL, NULL, argv + 2, environ);
  if (e) {
    fprintf(stderr, "vmm_spawn: cannot run %s: %s\n", argv[2], strerror(e));
    return 125;
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "vmm_spawn: wait4: %s\n", strerror(errno));
      return 125;
    }
  }
  uint64_t t1 = clock_ns(CLOCK_MONOTONIC);
  uint64_t t1_real = clock_ns(CLOCK_REALTIME);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  fprintf(result, "%d %llu %llu %llu %llu %ld\n", code, (unsigned long long) t0,
          (unsigned long long) t1, (unsigned long long) t0_real, (unsigned long long) t1_real,
          ru.ru_maxrss);
  return fclose(result) == 0 ? 0 : 125;
}
