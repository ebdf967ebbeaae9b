/* The `isola` command line (docker-like): global flags and one file per verb (isola_*.c).
 * Verbs map argv to library calls (images/, engine/); only this layer prints and picks exit
 * codes. */
#pragma once

#include "cli.h"
#include "image.h"

struct isola_cli {
  const char *root;     /* image store and container records (--root) */
  const char *run_root; /* runtime state of running containers (--run-root) */
  bool debug;
  bool json_log;
  int fail_status; /* exit status when a verb fails: 1, or 125 for run/exec/create as docker */
};

typedef int (*isola_verb_fn)(struct isola_cli *cli, int argc, char **argv,
                             struct isola_error **err);
int isola_verb_pull(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_load(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_save(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_images(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_inspect(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_tag(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_rmi(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_system(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_disk(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_run(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_ps(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_logs(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_exec(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_kill(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_stop(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_wait(struct isola_cli *, int, char **, struct isola_error **);
int isola_verb_rm(struct isola_cli *, int, char **, struct isola_error **);

/* Open the store at cli->root (creating it), importing the embedded default image when the
 * store has no "busybox" yet and `want_default` is set. */
int isola_open_store(struct isola_cli *cli, struct image_store **out, struct isola_error **err);

#include "engine.h"
/* Open the store and set up the engine for container verbs; close with isola_engine_close(). */
int isola_engine_open(struct isola_cli *cli, struct engine *e, struct isola_error **err);
void isola_engine_close(struct engine *e);
/* For verbs that act on several containers (kill, stop, wait, rm): `fn` runs for each name;
 * returning 0 prints the name, 1 means it printed its own line, <0 prints the error and the
 * verb's status becomes 1. With release_store the store's gc lock is dropped first (the verb
 * may wait long). */
typedef int (*isola_each_fn)(struct engine *e, const char *what, void *arg,
                             struct isola_error **err);
int isola_each_container(struct isola_cli *cli, char **names, int n, bool release_store,
                         isola_each_fn fn, void *arg, struct isola_error **err);
/* "512m", "1g", "1048576" → bytes (binary units, as docker). */
int isola_parse_size(const char *s, int64_t *out);
