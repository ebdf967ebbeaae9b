/* The isola-runtime command line: global flags, option parsing, one file per verb.
 * Verbs map argv to runtime library calls; only this layer prints and picks exit codes. */
#pragma once

#include "container.h"

enum opt_type { OPT_BOOL, OPT_STR, OPT_INT, OPT_STRLIST };

struct opt {
  const char *name; /* long name, also accepted with one dash as runc's flag library does */
  char short_name;  /* 0 for none */
  enum opt_type type;
  void *dest; /* bool *, const char **, int *, char *** */
};

/* Parse options up to the first positional argument (or "--"). Returns the index of the first
 * positional argument, or a negative errno with *err naming the bad option. */
int opts_parse(const char *verb, const struct opt *opts, int argc, char **argv,
               struct isola_error **err);

struct cli {
  struct runtime_opts ro;
  const char *log_path;
  const char *log_format;
};

/* Each returns the process exit status; errors are printed by the caller via cli_fail(). */
typedef int (*verb_fn)(struct cli *cli, int argc, char **argv, struct isola_error **err);
int verb_create(struct cli *, int, char **, struct isola_error **);
int verb_run(struct cli *, int, char **, struct isola_error **);
int verb_start(struct cli *, int, char **, struct isola_error **);
int verb_state(struct cli *, int, char **, struct isola_error **);
int verb_kill(struct cli *, int, char **, struct isola_error **);
int verb_delete(struct cli *, int, char **, struct isola_error **);
int verb_exec(struct cli *, int, char **, struct isola_error **);
int verb_ps(struct cli *, int, char **, struct isola_error **);
int verb_list(struct cli *, int, char **, struct isola_error **);
int verb_spec(struct cli *, int, char **, struct isola_error **);
int verb_features(struct cli *, int, char **, struct isola_error **);
int verb_pause(struct cli *, int, char **, struct isola_error **);
int verb_resume(struct cli *, int, char **, struct isola_error **);
int verb_update(struct cli *, int, char **, struct isola_error **);

/* Exactly n positional arguments (named in `usage`), or an error. */
int need_args(const char *verb, int argc, int first, int n, const char *usage,
              struct isola_error **err);
/* "KILL", "SIGKILL", "9", "RTMIN+2" → signal number, or -1. */
int parse_signal(const char *s);
