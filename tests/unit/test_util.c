/* lib/ helpers: files, errors, process start times. */
#include "util.h"
#include "tap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

int main(void)
{
  char dir[] = "/tmp/isola-test-util-XXXXXX";
  ok(mkdtemp(dir) != NULL, "mkdtemp");
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  ok(mkdir_p_at(dfd, "a/b/c", 0755) == 0, "mkdir_p creates nested directories");
  ok(mkdir_p_at(dfd, "a/b/c", 0755) == 0, "mkdir_p is idempotent");
  ok(write_file_atomic(dfd, "a/f", "hello", 5, 0600) == 0, "atomic write");
  char *text = NULL;
  size_t len = 0;
  ok(read_file_at(dfd, "a/f", 100, &text, &len) == 0 && len == 5 && !strcmp(text, "hello"),
     "read back");
  free(text);
  ok(read_file_at(dfd, "a/f", 3, &text, &len) == -EFBIG, "read_file_at enforces its limit");
  ok(write_file_atomic(dfd, "a/f", "bye", 3, 0600) == 0 &&
         read_file_at(dfd, "a/f", 100, &text, &len) == 0 && !strcmp(text, "bye"),
     "atomic replace");
  free(text);
  ok(rm_rf_at(dfd, "a") == 0 && faccessat(dfd, "a", F_OK, 0) < 0, "rm_rf removes the tree");
  ok(rm_rf_at(dfd, "a") == 0, "rm_rf of a missing path succeeds");

  struct isola_error *err = NULL;
  ok(isola_fail(&err, ENOENT, "cannot open %s", "x") == -ENOENT, "isola_fail returns -errno");
  ok(err && !strcmp(err->msg, "cannot open x: No such file or directory"), "message: %s",
     err ? err->msg : "");
  isola_fail(&err, EPERM, "second");
  ok(err->code == ENOENT, "the first error wins");
  isola_error_prefix(&err, "create %s", "c1");
  ok(!strncmp(err->msg, "create c1: cannot open x", 24), "prefix: %s", err->msg);

  isola_error_free(&err);

  ok(proc_start_time(getpid()) > 0, "our own start time");
  pid_t child = fork();
  if (child == 0)
    _exit(0);
  unsigned long long t = proc_start_time(child);
  waitpid(child, NULL, 0);
  ok(proc_start_time(child) == 0, "a reaped child has no start time (had %llu)", t);
  ok(proc_start_time(-1) == 0, "bad pid");

  uint64_t u;
  int64_t i;
  ok(parse_u64("42", &u) == 0 && u == 42, "parse_u64");
  ok(parse_u64("-1", &u) < 0 && parse_u64("4x", &u) < 0 && parse_u64("", &u) < 0,
     "parse_u64 rejects junk");
  ok(parse_i64("-7", &i) == 0 && i == -7, "parse_i64");
  close(dfd);
  rmdir(dir);
  done_testing();
}
