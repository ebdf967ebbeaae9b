/* Container state under --root: one directory per container, one lock, atomic writes. */
#include "container.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

int state_check_id(const char *id, struct isola_error **err)
{
  size_t n = id ? strlen(id) : 0;
  if (n == 0)
    return isola_failx(err, EINVAL, "container id is empty");
  if (n > 1024)
    return isola_failx(err, EINVAL, "container id is longer than 1024 characters");
  if (!strcmp(id, ".") || !strcmp(id, ".."))
    return isola_failx(err, EINVAL, "invalid container id \"%s\"", id);
  for (const char *p = id; *p; p++) {
    unsigned char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          strchr("_.+-", ch)))
      return isola_failx(err, EINVAL,
                         "invalid container id \"%s\": only letters, digits and _.+- are allowed",
                         id);
  }
  return 0;
}

static int open_root(const char *root, bool create, struct isola_error **err)
{
  if (create) {
    int r = mkdir_p_at(AT_FDCWD, root, 0700);
    if (r < 0)
      return isola_fail(err, -r, "cannot create state root %s", root);
  }
  int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return isola_fail(err, errno, "cannot open state root %s", root);
  return fd;
}

static int lock_dir(int fd, const char *id, struct isola_error **err)
{
  while (flock(fd, LOCK_EX) < 0) {
    if (errno != EINTR)
      return isola_fail(err, errno, "cannot lock container \"%s\"", id);
  }
  return 0;
}

int state_dir_create(const char *root, const char *id, int *dirfd, struct isola_error **err)
{
  int r = state_check_id(id, err);
  if (r < 0)
    return r;
  _cleanup_close_ int rootfd = open_root(root, true, err);
  if (rootfd < 0)
    return rootfd;
  if (mkdirat(rootfd, id, 0711) < 0) {
    if (errno == EEXIST)
      return isola_failx(err, EEXIST, "container \"%s\" already exists", id);
    return isola_fail(err, errno, "cannot create state directory %s/%s", root, id);
  }
  _cleanup_close_ int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return isola_fail(err, errno, "cannot open state directory %s/%s", root, id);
  if ((r = lock_dir(fd, id, err)) < 0)
    return r;
  *dirfd = steal_fd(&fd);
  return 0;
}

int state_dir_open(const char *root, const char *id, bool lock, int *dirfd,
                   struct isola_error **err)
{
  int r = state_check_id(id, err);
  if (r < 0)
    return r;
  _cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0 && errno == ENOENT)
    return isola_failx(err, ENOENT, "container \"%s\" does not exist", id);
  if (rootfd < 0)
    return isola_fail(err, errno, "cannot open state root %s", root);
  _cleanup_close_ int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT)
    return isola_failx(err, ENOENT, "container \"%s\" does not exist", id);
  if (fd < 0)
    return isola_fail(err, errno, "cannot open state directory %s/%s", root, id);
  if (lock && (r = lock_dir(fd, id, err)) < 0)
    return r;
  *dirfd = steal_fd(&fd);
  return 0;
}

const char *state_status_name(enum container_status s)
{
  switch (s) {
  case STATUS_CREATING:
    return "creating";
  case STATUS_CREATED:
    return "created";
  case STATUS_RUNNING:
    return "running";
  case STATUS_PAUSED:
    return "paused";
  default:
    return "stopped";
  }
}

static enum container_status status_from_name(const char *s)
{
  if (!s)
    return STATUS_STOPPED;
  if (!strcmp(s, "creating"))
    return STATUS_CREATING;
  if (!strcmp(s, "created"))
    return STATUS_CREATED;
  if (!strcmp(s, "running"))
    return STATUS_RUNNING;
  if (!strcmp(s, "paused"))
    return STATUS_PAUSED;
  return STATUS_STOPPED;
}

int state_write(int dirfd, const struct container_state *st, struct isola_error **err)
{
  _cleanup_json_ struct json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(st->id));
  json_object_object_add(o, "bundle", json_object_new_string(st->bundle ? st->bundle : ""));
  json_object_object_add(o, "pid", json_object_new_int(st->pid));
  json_object_object_add(o, "startTime", json_object_new_uint64(st->start_time));
  json_object_object_add(o, "status", json_object_new_string(state_status_name(st->saved_status)));
  json_object_object_add(o, "created", json_object_new_string(st->created ? st->created : ""));
  json_object_object_add(o, "owner", json_object_new_int64(st->owner));
  if (st->annotations)
    json_object_object_add(o, "annotations", json_object_get(st->annotations));
  if (st->cgroup)
    json_object_object_add(o, "cgroup", cgroup_to_json(st->cgroup));
  if (st->has_exit_status)
    json_object_object_add(o, "exitStatus", json_object_new_int(st->exit_status));
  json_object_object_add(o, "terminal", json_object_new_boolean(st->use_terminal));
  _cleanup_free_ char *text = json_to_string(o, false);
  int r = write_file_atomic(dirfd, "state.json", text, strlen(text), 0600);
  if (r < 0)
    return isola_fail(err, -r, "cannot write the state of container \"%s\"", st->id);
  return 0;
}

int state_read(int dirfd, const char *root, const char *id, struct container_state **out,
               struct isola_error **err)
{
  _cleanup_free_ char *text = NULL;
  size_t len;
  int r = read_file_at(dirfd, "state.json", 1 << 20, &text, &len);
  if (r == -ENOENT) {
    /* The runtime died before writing anything: a bare directory is a stopped container. */
    struct container_state *st = xzalloc(sizeof(*st));
    st->id = xstrdup(id);
    st->root = xstrdup(root);
    st->saved_status = STATUS_CREATING;
    *out = st;
    return 0;
  }
  if (r < 0)
    return isola_fail(err, -r, "cannot read the state of container \"%s\"", id);
  _cleanup_json_ struct json_object *o = NULL;
  if ((r = json_parse_doc(text, len, "state.json", &o, err)) < 0)
    return r;
  struct container_state *st = xzalloc(sizeof(*st));
  struct json_object *v;
  st->id = xstrdup(id);
  st->root = xstrdup(root);
  if (json_object_object_get_ex(o, "bundle", &v))
    st->bundle = xstrdup(json_object_get_string(v));
  if (json_object_object_get_ex(o, "pid", &v))
    st->pid = json_object_get_int(v);
  if (json_object_object_get_ex(o, "startTime", &v))
    st->start_time = json_object_get_uint64(v);
  if (json_object_object_get_ex(o, "status", &v))
    st->saved_status = status_from_name(json_object_get_string(v));
  if (json_object_object_get_ex(o, "created", &v))
    st->created = xstrdup(json_object_get_string(v));
  if (json_object_object_get_ex(o, "owner", &v))
    st->owner = json_object_get_int64(v);
  if (json_object_object_get_ex(o, "annotations", &v) && json_object_is_type(v, json_type_object))
    st->annotations = json_object_get(v);
  if (json_object_object_get_ex(o, "exitStatus", &v)) {
    st->has_exit_status = true;
    st->exit_status = json_object_get_int(v);
  }
  if (json_object_object_get_ex(o, "terminal", &v))
    st->use_terminal = json_object_get_boolean(v);
  if (json_object_object_get_ex(o, "cgroup", &v) &&
      (r = cgroup_from_json(v, &st->cgroup, err)) < 0) {
    state_free(st);
    return r;
  }
  *out = st;
  return 0;
}

void state_free(struct container_state *st)
{
  if (!st)
    return;
  free(st->id);
  free(st->bundle);
  free(st->root);
  free(st->created);
  if (st->annotations)
    json_object_put(st->annotations);
  cgroup_free(st->cgroup);
  free(st);
}

enum container_status state_status(int dirfd, const struct container_state *st)
{
  if (st->pid <= 0 || st->saved_status == STATUS_STOPPED)
    return st->saved_status == STATUS_CREATING && st->pid <= 0 ? STATUS_CREATING : STATUS_STOPPED;
  unsigned long long t = proc_start_time(st->pid);
  if (t == 0 || (st->start_time && t != st->start_time))
    return STATUS_STOPPED;
  if (st->saved_status == STATUS_CREATING)
    return STATUS_CREATING;
  struct stat sb;
  if (fstatat(dirfd, EXEC_FIFO, &sb, AT_SYMLINK_NOFOLLOW) == 0)
    return STATUS_CREATED;
  if (st->cgroup && cgroup_is_frozen(st->cgroup))
    return STATUS_PAUSED;
  return STATUS_RUNNING;
}

struct json_object *state_to_oci_json(const struct container_state *st, enum container_status s)
{
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "ociVersion", json_object_new_string(OCI_VERSION_SUPPORTED));
  json_object_object_add(o, "id", json_object_new_string(st->id));
  json_object_object_add(o, "status", json_object_new_string(state_status_name(s)));
  if (s != STATUS_STOPPED && st->pid > 0)
    json_object_object_add(o, "pid", json_object_new_int(st->pid));
  else
    json_object_object_add(o, "pid", json_object_new_int(0));
  json_object_object_add(o, "bundle", json_object_new_string(st->bundle ? st->bundle : ""));
  json_object_object_add(o, "created", json_object_new_string(st->created ? st->created : ""));
  json_object_object_add(o, "owner", json_object_new_string(""));
  json_object_object_add(o, "annotations",
                         st->annotations ? json_object_get(st->annotations)
                                         : json_object_new_object());
  return o;
}

int state_save_config(int dirfd, const char *text, size_t len, struct isola_error **err)
{
  int r = write_file_atomic(dirfd, "config.json", text, len, 0600);
  if (r < 0)
    return isola_fail(err, -r, "cannot save a copy of config.json in the state");
  return 0;
}

int state_load_config(int dirfd, struct oci_spec **out, struct isola_error **err)
{
  _cleanup_free_ char *text = NULL;
  size_t len;
  int r = read_file_at(dirfd, "config.json", 16 << 20, &text, &len);
  if (r < 0)
    return isola_fail(err, -r, "cannot read the container's saved config.json");
  return spec_parse(text, len, "config.json", out, err);
}

int state_dir_remove(const char *root, const char *id)
{
  _cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return -errno;
  return rm_rf_at(rootfd, id);
}
