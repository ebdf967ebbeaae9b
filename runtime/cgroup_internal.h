/* Contracts between cgroup.c (layout, paths, lifecycle, dispatch) and the per-version knob
 * writers in cgroup_v1.c and cgroup_v2.c. Internal to the cgroup component (and its test).
 *
 * Every knob writer takes an fd of the container's directory in the hierarchy that hosts its
 * controller, writes only the values that are present in the oci_resources, and fails with an
 * error that names the OCI field, the file and the value:
 *   "linux.resources.memory.limit: cannot set memory.limit_in_bytes to 1234: Device or resource
 * busy"
 *
 * Zero values: like runc, a 0 for memory limit/swap/reservation, cpu shares/quota/period/realtime,
 * pids limit and blkio weights means "unset" (config generators such as Docker emit zeros for
 * fields the user did not give), so it is left alone rather than written.
 */
#pragma once

#include "cgroup.h"

/* The largest cgroup or /proc file we read. */
#define CGROUP_FILE_MAX (16u << 20)

/* A mounted hierarchy as this process sees it (from /proc/self/cgroup + /proc/self/mountinfo). */
struct cgroup_mount {
  char *controllers; /* v1: "cpu,cpuacct", "memory", "name=systemd"; v2: "" */
  char *mount_point; /* /sys/fs/cgroup/memory */
  char *own_path;    /* this process's cgroup relative to mount_point ("/" at the top), or NULL
                      * when it is outside what is mounted there */
};

/* Read the hierarchies this process belongs to that are mounted, and the layout they make.
 * Caller frees with cgroup_mounts_free(). Fails when no cgroup filesystem is mounted. */
int cgroup_mounts_read(struct cgroup_mount **out, size_t *n, enum cgroup_layout *layout,
                       struct isola_error **err);
void cgroup_mounts_free(struct cgroup_mount *m, size_t n);

/* Does the comma-separated list contain name? ("cpu,cpuacct", "cpu") */
bool cgroup_list_has(const char *list, const char *name, char sep);
/* Write value to dirfd/file; on failure the error names field, file and value. */
int cgroup_write(int dirfd, const char *file, const char *value, const char *field,
                 struct isola_error **err);
int cgroup_write_i64(int dirfd, const char *file, int64_t value, const char *field,
                     struct isola_error **err);
/* Does the path have a "." or ".." component (which could leave the hierarchy)? */
bool cgroup_path_has_dots(const char *path);
/* hugepageLimits into hugetlb.<size>.<suffix> (and .rsvd.<suffix> where the kernel has it):
 * "limit_in_bytes" on v1, "max" on v2. */
int cgroup_write_hugetlb(int fd, const struct oci_resources *r, const char *suffix,
                         struct isola_error **err);
bool cgroup_has_file(int dirfd, const char *file);
/* Read a small cgroup file with the trailing newline stripped. */
int cgroup_read(int dirfd, const char *file, char **out);

/* ---- cgroup v1 (cgroup_v1.c) ---- */
/* Give a cpuset directory its parent's cpus and mems when they are empty (a new v1 cpuset
 * cgroup starts empty, and a process cannot join it then). */
int cgroup_v1_cpuset_inherit(int parentfd, int dirfd);
int cgroup_v1_set_memory(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v1_set_cpu(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v1_set_cpuset(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v1_set_pids(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v1_set_blkio(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v1_set_hugetlb(int dirfd, const struct oci_resources *r, struct isola_error **err);
/* Deny everything, then apply the rules in order. */
int cgroup_v1_set_devices(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v1_set_net_cls(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v1_set_net_prio(int dirfd, const struct oci_resources *r, struct isola_error **err);
/* rdma.max has the same format on v1 and v2. */
int cgroup_set_rdma(int dirfd, const struct oci_resources *r, struct isola_error **err);
/* Write freezer.state and wait (up to ~1 s) until the kernel reports the new state; a freeze
 * that does not complete is undone and fails with EBUSY. */
int cgroup_v1_freeze(int dirfd, bool frozen, struct isola_error **err);
bool cgroup_v1_is_frozen(int dirfd);

/* ---- cgroup v2 (cgroup_v2.c) ---- */
int cgroup_v2_set_memory(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v2_set_cpu(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v2_set_cpuset(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v2_set_pids(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v2_set_io(int dirfd, const struct oci_resources *r, struct isola_error **err);
int cgroup_v2_set_hugetlb(int dirfd, const struct oci_resources *r, struct isola_error **err);
/* linux.resources.unified: each key is a file in the directory, written last. */
int cgroup_v2_set_unified(int dirfd, const struct oci_resources *r, struct isola_error **err);
/* Build the device rules into a BPF_PROG_TYPE_CGROUP_DEVICE program, attach it to the cgroup
 * directory dirfd with BPF_F_ALLOW_MULTI, then detach the programs that were attached there
 * before (so `update` replaces rather than stacks). Needs CAP_BPF/CAP_SYS_ADMIN. */
int cgroup_v2_set_devices(int dirfd, const struct oci_resources *r, struct isola_error **err);
/* How many device programs are attached directly to dirfd (for tests); negative errno. */
int cgroup_v2_device_prog_count(int dirfd);
/* cgroup.freeze, then wait (up to ~1 s) for cgroup.events to say "frozen 1"/"frozen 0". */
int cgroup_v2_freeze(int dirfd, bool frozen, struct isola_error **err);
bool cgroup_v2_is_frozen(int dirfd);
/* cgroup.subtree_control: enable in dirfd every controller listed in its cgroup.controllers,
 * one at a time, ignoring refusals (they surface later as "controller not available"). */
void cgroup_v2_enable_controllers(int dirfd);
/* runc/crun's conversions: shares [2, 262144] → cpu.weight [1, 10000] with 1024 → 100, and
 * blkio weight [10, 1000] → io.weight [1, 10000]. 0 stays 0 ("unset"). */
uint64_t cgroup_v2_shares_to_weight(uint64_t shares);
uint64_t cgroup_v2_blkio_to_io_weight(uint64_t weight);
