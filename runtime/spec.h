/* The OCI runtime-spec config.json as C structures, parsed and validated before any side effect.
 *
 * spec_load()/spec_parse() check every field they read; errors name the field
 * ("config.json: linux.namespaces[2].type: unknown namespace \"foo\""). The returned
 * struct oci_spec owns all its memory; free it with spec_free().
 */
#pragma once

#include "util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

#define OCI_VERSION_SUPPORTED "1.3.0"

enum oci_ns_type {
  NS_PID,
  NS_NETWORK,
  NS_MOUNT,
  NS_IPC,
  NS_UTS,
  NS_USER,
  NS_CGROUP,
  NS_TIME,
  NS_COUNT
};

struct oci_namespace {
  enum oci_ns_type type;
  int clone_flag;
  char *path; /* NULL: create a new one */
};

struct oci_idmap {
  uint32_t container_id, host_id, size;
};

struct oci_mount {
  char *destination;
  char *type;
  char *source;
  char **options;
  /* derived from options */
  unsigned long flags;       /* MS_* applied at mount time */
  unsigned long clear_flags; /* MS_* explicitly cleared (for remounts) */
  unsigned long propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC) */
  bool bind, recursive, remount_ro;
  bool rro; /* recursive read-only (mount_setattr) */
  bool tmpcopyup;
  char *data; /* filesystem-specific options joined by ',' */
};

struct oci_rlimit {
  int resource;
  uint64_t soft, hard;
};

struct oci_caps {
  uint64_t bounding, effective, inheritable, permitted, ambient;
};

struct oci_user {
  uint32_t uid, gid;
  bool has_umask;
  uint32_t umask;
  uint32_t *additional_gids;
  size_t n_additional_gids;
};

struct oci_process {
  bool terminal;
  uint32_t console_height, console_width;
  struct oci_user user;
  char **args;
  char **env;
  char *cwd;
  bool has_caps;
  struct oci_caps caps;
  struct oci_rlimit *rlimits;
  size_t n_rlimits;
  bool no_new_privileges, has_no_new_privileges;
  bool has_oom_score_adj;
  int oom_score_adj;
  char *apparmor_profile;
  char *selinux_label;
  /* scheduler, ioPriority, execCPUAffinity */
  bool has_io_priority;
  int io_priority_class, io_priority;
  bool has_scheduler;
  int sched_policy, sched_nice, sched_priority;
  uint64_t sched_flags, sched_runtime, sched_deadline, sched_period;
  char *exec_cpu_affinity_initial, *exec_cpu_affinity_final;
};

struct oci_hook {
  char *path;
  char **args;
  char **env;
  int timeout; /* seconds, 0 = none */
};

enum oci_hook_kind {
  HOOK_PRESTART,
  HOOK_CREATE_RUNTIME,
  HOOK_CREATE_CONTAINER,
  HOOK_START_CONTAINER,
  HOOK_POSTSTART,
  HOOK_POSTSTOP,
  HOOK_COUNT
};

struct oci_device {
  char *path;
  char type; /* 'c', 'b', 'u', 'p' */
  int64_t major, minor;
  bool has_mode, has_uid, has_gid;
  uint32_t mode, uid, gid;
};

struct oci_device_rule {
  bool allow;
  char type;            /* 'a', 'c', 'b' */
  int64_t major, minor; /* -1 = wildcard */
  char access[4];       /* subset of "rwm" */
};

struct oci_throttle {
  int64_t major, minor;
  uint64_t rate;
};
struct oci_weight_device {
  int64_t major, minor;
  bool has_weight, has_leaf_weight;
  uint16_t weight, leaf_weight;
};
struct oci_hugepage_limit {
  char *page_size;
  uint64_t limit;
};
struct oci_kv {
  char *key, *value;
};

/* Every optional value carries a has_ flag: absent means "leave as is". */
struct oci_resources {
  struct oci_device_rule *devices;
  size_t n_devices;
  /* memory */
  bool has_mem_limit, has_mem_reservation, has_mem_swap, has_mem_kernel, has_mem_kernel_tcp,
      has_mem_swappiness, has_disable_oom_killer, has_use_hierarchy, has_check_before_update;
  int64_t mem_limit, mem_reservation, mem_swap, mem_kernel, mem_kernel_tcp;
  uint64_t mem_swappiness;
  bool disable_oom_killer, use_hierarchy, check_before_update;
  /* cpu */
  bool has_cpu_shares, has_cpu_quota, has_cpu_burst, has_cpu_period, has_cpu_rt_runtime,
      has_cpu_rt_period, has_cpu_idle;
  uint64_t cpu_shares, cpu_period, cpu_rt_period, cpu_burst;
  int64_t cpu_quota, cpu_rt_runtime, cpu_idle;
  char *cpu_cpus, *cpu_mems;
  /* pids */
  bool has_pids_limit;
  int64_t pids_limit;
  /* blkio */
  bool has_blkio_weight, has_blkio_leaf_weight;
  uint16_t blkio_weight, blkio_leaf_weight;
  struct oci_weight_device *blkio_weight_devices;
  size_t n_blkio_weight_devices;
  struct oci_throttle *throttle[4]; /* read bps, write bps, read iops, write iops */
  size_t n_throttle[4];
  /* hugetlb */
  struct oci_hugepage_limit *hugepage_limits;
  size_t n_hugepage_limits;
  /* network (v1 net_cls / net_prio) */
  bool has_net_class_id;
  uint32_t net_class_id;
  struct oci_kv *net_priorities;
  size_t n_net_priorities;
  /* rdma: kept raw */
  struct oci_kv *rdma;
  size_t n_rdma;
  /* v2 unified key/values */
  struct oci_kv *unified;
  size_t n_unified;
};

struct oci_seccomp_arg {
  unsigned index;
  uint64_t value, value_two;
  int op; /* enum scmp_compare */
};

struct oci_seccomp_rule {
  char **names;
  uint32_t action; /* SCMP_ACT_* */
  bool has_errno;
  uint32_t errno_ret;
  struct oci_seccomp_arg *args;
  size_t n_args;
};

struct oci_seccomp {
  uint32_t default_action;
  bool has_default_errno;
  uint32_t default_errno_ret;
  char **architectures;
  char **flags;
  char *listener_path;
  char *listener_metadata;
  struct oci_seccomp_rule *rules;
  size_t n_rules;
};

struct oci_spec {
  char *oci_version;
  char *root_path; /* absolute after spec_resolve_paths() */
  bool root_readonly;
  char *hostname;
  char *domainname;
  bool has_process;
  struct oci_process process;
  struct oci_mount *mounts;
  size_t n_mounts;
  struct oci_hook *hooks[HOOK_COUNT];
  size_t n_hooks[HOOK_COUNT];
  struct json_object *annotations; /* owned reference or NULL */

  /* linux */
  struct oci_namespace namespaces[NS_COUNT];
  size_t n_namespaces;
  struct oci_idmap *uid_mappings, *gid_mappings;
  size_t n_uid_mappings, n_gid_mappings;
  struct oci_kv *sysctl;
  size_t n_sysctl;
  bool has_resources;
  struct oci_resources resources;
  char *cgroups_path;
  unsigned long rootfs_propagation; /* 0 = default (rslave), else MS_* | MS_REC */
  char **masked_paths;
  char **readonly_paths;
  struct oci_device *devices;
  size_t n_devices;
  struct oci_seccomp *seccomp;
  bool has_personality;
  unsigned long personality;
  char *mount_label;
  bool has_time_offsets;
  int64_t time_offset_boottime_secs, time_offset_monotonic_secs;
  uint32_t time_offset_boottime_nsecs, time_offset_monotonic_nsecs;
  char **intel_rdt_unsupported; /* fields seen that this host can't honour */
};

/* Parse config.json text. `what` names the document in errors ("config.json"). */
int spec_parse(const char *text, size_t len, const char *what, struct oci_spec **out,
               struct isola_error **err);
/* Read and parse BUNDLE/config.json; make root.path absolute (relative to bundle) and check it
 * exists and is a directory. When raw is given, the document's text is handed out too (the
 * caller frees it), so that it is read once. */
int spec_load(const char *bundle, struct oci_spec **out, char **raw, size_t *raw_len,
              struct isola_error **err);
void spec_free(struct oci_spec *spec);
static inline void spec_freep(struct oci_spec **s)
{
  spec_free(*s);
}
#define _cleanup_spec_ _cleanup_(spec_freep)

/* A process object alone (exec --process FILE, or "process" of config.json). */
int spec_parse_process(struct json_object *obj, const char *what, struct oci_process *out,
                       struct isola_error **err);
void spec_process_clear(struct oci_process *p);
/* Parse linux.resources (also used by `update -r FILE`). */
int spec_parse_resources(struct json_object *obj, const char *what, struct oci_resources *out,
                         struct isola_error **err);
void spec_resources_clear(struct oci_resources *r);
/* Parse a linux.seccomp object alone (guest-init gets the container's profile this way). */
int spec_parse_seccomp(struct json_object *obj, const char *what, struct oci_seccomp **out,
                       struct isola_error **err);
void spec_seccomp_free(struct oci_seccomp *sc);
static inline void spec_seccomp_freep(struct oci_seccomp **sc)
{
  spec_seccomp_free(*sc);
}

/* Namespace helpers */
const char *spec_ns_name(enum oci_ns_type t);      /* "pid", "network", ... */
const char *spec_ns_proc_name(enum oci_ns_type t); /* "pid", "net", ... (for /proc/PID/ns) */
const struct oci_namespace *spec_find_ns(const struct oci_spec *s, enum oci_ns_type t);

/* Capabilities by name ("CAP_SYS_ADMIN") → number, -1 if unknown. */
int spec_cap_from_name(const char *name);
const char *spec_cap_name(int cap);
int spec_cap_last(void); /* highest capability the running kernel knows */

/* The default config.json of `isola-runtime spec` (rootless = user namespace mappings). */
struct json_object *spec_default_json(bool rootless);
