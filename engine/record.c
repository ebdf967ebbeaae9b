/* Container records: STORE/containers/ID/container.json, found by id, prefix or name. */
#include "engine.h"
#include "spec_json.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECORD_FILE "container.json"

void engine_now(char out[40])
{
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 40 - n, ".%09ldZ", ts.tv_nsec);
}

char *ctr_dir(struct engine *e, const char *id)
{
  return xasprintf("%s/containers/%s", e->store->root, id);
}

void ctr_record_free(struct ctr_record *r)
{
  free(r->id);
  free(r->name);
  free(r->image);
  free(r->image_id);
  free(r->created);
  free(r->started);
  free(r->finished);
  free(r->stop_signal);
  strv_free(r->command);
  free(r);
}

const char *ctr_status_name(enum ctr_status s)
{
  switch (s) {
  case CTR_CREATED:
    return "created";
  case CTR_RUNNING:
    return "running";
  case CTR_EXITED:
    return "exited";
  }
  return "unknown";
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
  if (v)
    json_object_object_add(o, k, json_object_new_string(v));
}

int ctr_record_write(struct engine *e, const struct ctr_record *r, struct isola_error **err)
{
  _cleanup_json_ struct json_object *o = json_object_new_object();
  add_str(o, "id", r->id);
  add_str(o, "name", r->name);
  add_str(o, "image", r->image);
  add_str(o, "image_id", r->image_id);
  add_str(o, "created", r->created);
  add_str(o, "started", r->started);
  add_str(o, "finished", r->finished);
  add_str(o, "stop_signal", r->stop_signal);
  struct json_object *cmd = json_object_new_array();
  for (char **c = r->command; c && *c; c++)
    json_object_array_add(cmd, json_object_new_string(*c));
  json_object_object_add(o, "command", cmd);
  add_str(o, "status", ctr_status_name(r->status));
  json_object_object_add(o, "exit_code", json_object_new_int(r->exit_code));
  json_object_object_add(o, "monitor_pid", json_object_new_int(r->monitor_pid));
  json_object_object_add(o, "monitor_start", json_object_new_uint64(r->monitor_start));
  json_object_object_add(o, "vmm_pid", json_object_new_int(r->vmm_pid));
  json_object_object_add(o, "vmm_start", json_object_new_uint64(r->vmm_start));
  json_object_object_add(o, "rm", json_object_new_boolean(r->rm));
  json_object_object_add(o, "tty", json_object_new_boolean(r->tty));
  add_str(o, "isolation", r->isolation == ISOLATION_VM ? "vm" : "process");
  _cleanup_free_ char *text = json_to_string(o, true);
  _cleanup_free_ char *path = xasprintf("containers/%s/" RECORD_FILE, r->id);
  int rc = write_file_atomic(e->store->rootfd, path, text, strlen(text), 0600);
  if (rc < 0)
    return isola_fail(err, -rc, "cannot write the record of container %.12s", r->id);
  return 0;
}

int ctr_record_read(struct engine *e, const char *id, struct ctr_record **out,
                    struct isola_error **err)
{
  _cleanup_free_ char *path = xasprintf("containers/%s/" RECORD_FILE, id), *text = NULL;
  size_t len;
  int r = read_file_at(e->store->rootfd, path, 1 << 20, &text, &len);
  if (r < 0)
    return isola_fail(err, -r, "no such container \"%s\"", id);
  _cleanup_json_ struct json_object *o = NULL;
  if ((r = json_parse_doc(text, len, path, &o, err)) < 0)
    return r;
  struct jctx c = {.what = path, .err = err};
  struct ctr_record *rec = xzalloc(sizeof(*rec));
  _cleanup_free_ char *status = NULL, *isolation = NULL;
  int64_t code = 0, mpid = 0, vpid = 0;
  uint64_t mstart = 0, vstart = 0;
  if ((r = jget_str(&c, o, "", "id", &rec->id)) < 0 ||
      (r = jget_str(&c, o, "", "name", &rec->name)) < 0 ||
      (r = jget_str(&c, o, "", "image", &rec->image)) < 0 ||
      (r = jget_str(&c, o, "", "image_id", &rec->image_id)) < 0 ||
      (r = jget_str(&c, o, "", "created", &rec->created)) < 0 ||
      (r = jget_str(&c, o, "", "started", &rec->started)) < 0 ||
      (r = jget_str(&c, o, "", "finished", &rec->finished)) < 0 ||
      (r = jget_str(&c, o, "", "stop_signal", &rec->stop_signal)) < 0 ||
      (r = jget_strv(&c, o, "", "command", &rec->command)) < 0 ||
      (r = jget_str(&c, o, "", "status", &status)) < 0 ||
      (r = jget_str(&c, o, "", "isolation", &isolation)) < 0 ||
      (r = jget_i64(&c, o, "", "exit_code", -1, 255, &code, NULL)) < 0 ||
      (r = jget_i64(&c, o, "", "monitor_pid", 0, INT32_MAX, &mpid, NULL)) < 0 ||
      (r = jget_u64(&c, o, "", "monitor_start", &mstart, NULL)) < 0 ||
      (r = jget_i64(&c, o, "", "vmm_pid", 0, INT32_MAX, &vpid, NULL)) < 0 ||
      (r = jget_u64(&c, o, "", "vmm_start", &vstart, NULL)) < 0 ||
      (r = jget_bool(&c, o, "", "rm", &rec->rm, NULL)) < 0 ||
      (r = jget_bool(&c, o, "", "tty", &rec->tty, NULL)) < 0) {
    ctr_record_free(rec);
    return r;
  }
  if (!rec->id || strcmp(rec->id, id)) {
    ctr_record_free(rec);
    return isola_failx(err, EINVAL, "%s: damaged record (id)", path);
  }
  rec->status = !status                      ? CTR_CREATED
                : !strcmp(status, "exited")  ? CTR_EXITED
                : !strcmp(status, "running") ? CTR_RUNNING
                                             : CTR_CREATED;
  rec->isolation = isolation && !strcmp(isolation, "vm") ? ISOLATION_VM : ISOLATION_PROCESS;
  rec->exit_code = (int) code;
  rec->monitor_pid = (pid_t) mpid;
  rec->monitor_start = mstart;
  rec->vmm_pid = (pid_t) vpid;
  rec->vmm_start = vstart;
  *out = rec;
  return 0;
}

static bool monitor_alive(const struct ctr_record *r)
{
  return r->monitor_pid > 0 && proc_start_time(r->monitor_pid) == r->monitor_start;
}

enum ctr_status ctr_record_live_status(const struct ctr_record *r)
{
  if (r->status == CTR_EXITED)
    return CTR_EXITED;
  return monitor_alive(r) ? r->status : CTR_EXITED;
}

static int cmp_created(const void *a, const void *b)
{
  const struct ctr_record *x = *(struct ctr_record *const *) a,
                          *y = *(struct ctr_record *const *) b;
  return strcmp(y->created ? y->created : "", x->created ? x->created : "");
}

int ctr_list(struct engine *e, struct ctr_record ***out, size_t *n, struct isola_error **err)
{
  _cleanup_close_ int fd =
      openat(e->store->rootfd, "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return isola_fail(err, errno, "cannot open \"%s/containers\"", e->store->root);
  DIR *d = fdopendir(fd);
  if (!d)
    return isola_fail(err, errno, "cannot read \"%s/containers\"", e->store->root);
  fd = -1;
  struct ctr_record **v = xzalloc(sizeof(*v));
  size_t k = 0;
  for (struct dirent *de; (de = readdir(d));) {
    if (de->d_name[0] == '.')
      continue;
    struct ctr_record *r = NULL;
    /* A directory without a readable record is one being made or removed right now. */
    if (ctr_record_read(e, de->d_name, &r, NULL) < 0)
      continue;
    v = xrealloc(v, (k + 2) * sizeof(*v));
    v[k++] = r;
  }
  closedir(d);
  qsort(v, k, sizeof(*v), cmp_created);
  *out = v;
  *n = k;
  return 0;
}

void ctr_list_free(struct ctr_record **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ctr_record_free(v[i]);
  free(v);
}

int ctr_find(struct engine *e, const char *what, struct ctr_record **out, struct isola_error **err)
{
  struct ctr_record **v = NULL;
  size_t n = 0;
  int r = ctr_list(e, &v, &n, err);
  if (r < 0)
    return r;
  ssize_t hit = -1;
  size_t prefix_hits = 0;
  for (size_t i = 0; i < n; i++)
    if ((v[i]->name && !strcmp(v[i]->name, what)) || !strcmp(v[i]->id, what)) {
      hit = (ssize_t) i;
      prefix_hits = 1;
      break;
    } else if (strlen(what) >= 1 && !strncmp(v[i]->id, what, strlen(what))) {
      hit = (ssize_t) i;
      prefix_hits++;
    }
  if (hit < 0 || prefix_hits != 1) {
    ctr_list_free(v, n);
    if (prefix_hits > 1)
      return isola_failx(err, EINVAL, "container id prefix \"%s\" is ambiguous", what);
    return isola_failx(err, ENOENT, "no such container \"%s\" (try: isola ps -a)", what);
  }
  *out = v[hit];
  v[hit] = v[n - 1];
  ctr_list_free(v, n - 1);
  return 0;
}
