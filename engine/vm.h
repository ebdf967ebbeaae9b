/* vm.h — the host side of the guest protocol, shared by vm.c (isola run --isolation=vm) and
 * vm_exec.c (isola exec into a VM container). Private to those two. */
#pragma once

#include "engine.h"
#include "isola_guest_abi.h"

#include <termios.h>

/* One conversation with guest-init (isola_guest_abi.h): our stdio and signals on one side,
 * one connection on the other. */
struct vm_session {
  int conn, in_fd, out_fd, err_fd, log_out, log_err, sigfd;
  bool in_open;
  bool tty;        /* the process has a terminal in the guest, and ours (stdin) is one: RESIZE */
  uint32_t credit; /* STDIN bytes we may still send */
  int status;      /* from EXIT, -1 until then */
  char error[ISOLA_GUEST_MAX_ERROR + 1];
};

/* Send HELLO and msg (PROCESS), then relay until EXIT: STDOUT/STDERR to out_fd/err_fd and the
 * logs, in_fd as STDIN under the credit window, signals from sigfd as SIGNAL, SIGWINCH as RESIZE
 * (with tty). on_started(arg), when given, runs at STARTED. 0 with s->status set, or an error
 * (a protocol error, the connection gone without EXIT, init's own failure). */
int vm_converse(struct vm_session *s, struct json_object *msg, void (*on_started)(void *),
                void *arg, struct isola_error **err);
/* -t on a terminal: ours goes raw, so that keys (^C included) reach the guest's terminal, whose
 * line discipline does the rest; its size goes into msg's process.consoleSize. False when
 * stdin is no terminal; *restore says whether *saved must be put back. */
bool terminal_raw(struct json_object *msg, struct termios *saved, bool *restore);
