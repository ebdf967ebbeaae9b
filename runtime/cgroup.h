/* Container cgroups on cgroup v1, v2 and the hybrid layout (v1 controllers + v2 at
 * /sys/fs/cgroup/unified).
 *
 * Contracts:
 *  - cgroup_create() creates the container's directory in every hierarchy it uses and
 *    records them in the struct cgroup (and so in the state, via cgroup_to_json()) before
 *    it makes the first one, so that cgroup_destroy() can remove what a killed runtime made.
 *  - cgroup_apply() writes the limits; unsupported or unavailable knobs fail with an error
 *    naming the config field, except values that are the kernel default.
 *  - cgroup_destroy() kills nothing: callers kill first (cgroup_kill_all()), then destroy;
 *    it retries rmdir briefly while the last processes exit.
 *  - No function here prints or exits; all return negative errno and set *err.
 */
#pragma once

#include "spec.h"

enum cgroup_layout { CGROUP_LAYOUT_V1, CGROUP_LAYOUT_V2, CGROUP_LAYOUT_HYBRID };

struct cgroup_path {
  char *controller;         /* "memory", "cpu,cpuacct", ... or "" for the v2 hierarchy */
  char *path;               /* absolute directory, e.g. /sys/fs/cgroup/memory/isola/ID */
  bool created;             /* we made it (so delete removes it) */
  unsigned created_parents; /* how many directories above path we made too (destroy removes
                             * them when empty); 0 when created is false */
};

struct cgroup {
  enum cgroup_layout layout;
  char *rel_path; /* the container's path below each hierarchy's root, e.g. "/isola/ID"; a
                   * relative cgroupsPath stays relative ("a/b": below the runtime's own cgroup) */
  struct cgroup_path *paths;
  size_t n_paths;
};

/* Which layout this host has. */
int cgroup_detect_layout(enum cgroup_layout *out, struct isola_error **err);
/* Work out the container's cgroup from linux.cgroupsPath (empty: "/isola/<id>"; relative paths
 * are below the runtime's own cgroup) and create its directories. */
int cgroup_create(const char *cgroups_path, const char *id, struct cgroup **out,
                  struct isola_error **err);
/* The same, calling record() with the planned cgroup before the first mkdir, so the caller can
 * persist it: a runtime killed in the middle leaves a state that names every directory. */
int cgroup_create_recorded(const char *cgroups_path, const char *id,
                           int (*record)(const struct cgroup *cg, void *arg), void *arg,
                           struct cgroup **out, struct isola_error **err);
/* Move pid into the container's cgroup in every hierarchy. */
int cgroup_enter(const struct cgroup *cg, pid_t pid, struct isola_error **err);
/* Apply linux.resources. `update` calls it again with the new values. */
int cgroup_apply(const struct cgroup *cg, const struct oci_resources *res,
                 struct isola_error **err);
/* Freeze or thaw every process (pause/resume). */
int cgroup_freeze(const struct cgroup *cg, bool frozen, struct isola_error **err);
/* Is the container frozen? */
bool cgroup_is_frozen(const struct cgroup *cg);
/* The pids in the container's cgroup (any hierarchy that lists them). Caller frees *pids. */
int cgroup_pids(const struct cgroup *cg, pid_t **pids, size_t *n, struct isola_error **err);
/* Send sig to every process in the cgroup. */
int cgroup_kill_all(const struct cgroup *cg, int sig, struct isola_error **err);
/* Remove the directories we created (deepest first); ENOENT is success. */
int cgroup_destroy(const struct cgroup *cg, struct isola_error **err);
void cgroup_free(struct cgroup *cg);
static inline void cgroup_freep(struct cgroup **cg)
{
  cgroup_free(*cg);
}
#define _cleanup_cgroup_ _cleanup_(cgroup_freep)

/* Persist in / restore from the container state. */
struct json_object *cgroup_to_json(const struct cgroup *cg);
int cgroup_from_json(struct json_object *o, struct cgroup **out, struct isola_error **err);
