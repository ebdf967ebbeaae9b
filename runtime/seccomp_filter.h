/* OCI linux.seccomp → a BPF program, through libseccomp.
 *
 * The filter is compiled in the runtime before the container process exists (so errors
 * surface as clean messages from create), and installed in the container process as the
 * last step before execve(2), with the plain seccomp(2) syscall (no allocation there).
 */
#pragma once

#include "spec.h"

struct seccomp_prog {
  void *bpf;          /* struct sock_filter[], malloc'd */
  size_t len;         /* number of instructions */
  unsigned int flags; /* SECCOMP_FILTER_FLAG_* */
  bool notify;        /* uses SCMP_ACT_NOTIFY: install returns a listener fd */
};

/* Compile. Unknown system call names are skipped (a profile lists calls of newer kernels);
 * an unknown architecture or action fails with an error naming the field. */
int seccomp_compile(const struct oci_seccomp *sc, struct seccomp_prog *out,
                    struct isola_error **err);
/* Install in the calling thread; returns the notify listener fd (>= 0) when prog->notify,
 * 0 otherwise, negative errno on failure. Async-signal-safe: usable after fork. */
int seccomp_install(const struct seccomp_prog *prog);
void seccomp_prog_clear(struct seccomp_prog *p);
