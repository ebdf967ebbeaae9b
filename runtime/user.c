/* user.c — "user", "uid", "user:group" or "uid:gid" to ids, groups and HOME, from the
 * /etc/passwd and /etc/group of a root directory, as docker resolves them: the engine does it
 * in an image's root for `run -u`, guest-init in a VM container's root for `exec -u`. */
#include "container.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* A passwd/group line lookup in the rootfs: field 0 is the name, field 2 the id. */
struct id_entry {
  bool found;
  unsigned long id, gid;
  char home[256];
};

static int read_in_rootfs(const char *rootfs, const char *path, char **out)
{
  _cleanup_close_ int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return -errno;
  int fd = open_in_root(rootfd, path, false, false, O_RDONLY, NULL);
  if (fd < 0)
    return fd;
  _cleanup_close_ int f = fd;
  size_t cap = 4 << 20;
  _cleanup_free_ char *buf = xmalloc(cap + 1);
  int n = read_all(f, buf, cap);
  if (n < 0)
    return n;
  buf[n] = 0;
  *out = steal_pointer(&buf);
  return 0;
}

static void id_lookup(const char *text, const char *name, bool by_id, unsigned long want,
                      struct id_entry *out)
{
  memset(out, 0, sizeof(*out));
  if (!text)
    return;
  for (const char *line = text; *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t) (end - line) : strlen(line);
    _cleanup_free_ char *l = xstrndup(line, len);
    line += len + (end ? 1 : 0);
    char *f[7] = {0};
    size_t nf = 0;
    for (char *p = l, *save = NULL; nf < 7;) {
      char *sep = strchr(p, ':');
      f[nf++] = p;
      if (!sep)
        break;
      *sep = 0;
      p = sep + 1;
      (void) save;
    }
    if (nf < 3 || f[0][0] == '#')
      continue;
    uint64_t id;
    if (parse_u64(f[2], &id) < 0)
      continue;
    if ((by_id && id == want) || (!by_id && !strcmp(f[0], name))) {
      out->found = true;
      out->id = id;
      uint64_t g;
      if (nf >= 4 && parse_u64(f[3], &g) == 0)
        out->gid = g;
      if (nf >= 6)
        snprintf(out->home, sizeof(out->home), "%s", f[5]);
      return;
    }
  }
}

/* Groups that list `name` as a member (/etc/group's fourth field). */
static struct json_object *supplementary_gids(const char *group_text, const char *name,
                                              unsigned long primary)
{
  struct json_object *a = json_object_new_array();
  if (!group_text || !name)
    return a;
  for (const char *line = group_text; *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t) (end - line) : strlen(line);
    _cleanup_free_ char *l = xstrndup(line, len);
    line += len + (end ? 1 : 0);
    char *f[4] = {0};
    size_t nf = 0;
    for (char *p = l; nf < 4;) {
      char *sep = strchr(p, ':');
      f[nf++] = p;
      if (!sep)
        break;
      *sep = 0;
      p = sep + 1;
    }
    uint64_t gid;
    if (nf < 4 || parse_u64(f[2], &gid) < 0 || gid == primary)
      continue;
    for (char *m = f[3], *save = NULL, *tok; (tok = strtok_r(m, ",", &save)); m = NULL)
      if (!strcmp(tok, name)) {
        json_object_array_add(a, json_object_new_int64(gid));
        break;
      }
  }
  return a;
}

int user_resolve(const char *spec, const char *rootfs, struct json_object *user, char **home,
                 struct isola_error **err)
{
  _cleanup_free_ char *passwd = NULL, *group = NULL, *u = xstrdup(spec && *spec ? spec : "0");
  read_in_rootfs(rootfs, "/etc/passwd", &passwd);
  read_in_rootfs(rootfs, "/etc/group", &group);
  char *g = strchr(u, ':');
  if (g)
    *g++ = 0;
  uint64_t uid, gid = 0;
  struct id_entry pw;
  bool numeric = parse_u64(u, &uid) == 0;
  id_lookup(passwd, u, numeric, numeric ? uid : 0, &pw);
  if (!numeric) {
    if (!pw.found)
      return isola_failx(err, ENOENT, "--user: no user \"%s\" in the image's /etc/passwd", u);
    uid = pw.id;
  }
  if (uid > UINT32_MAX - 1)
    return isola_failx(err, EINVAL, "--user: uid %s is out of range", u);
  if (pw.found)
    gid = pw.gid;
  if (g) {
    struct id_entry gr;
    if (parse_u64(g, &gid) < 0) {
      id_lookup(group, g, false, 0, &gr);
      if (!gr.found)
        return isola_failx(err, ENOENT, "--user: no group \"%s\" in the image's /etc/group", g);
      gid = gr.id;
    }
    if (gid > UINT32_MAX - 1)
      return isola_failx(err, EINVAL, "--user: gid %s is out of range", g);
  }
  json_object_object_add(user, "uid", json_object_new_int64((int64_t) uid));
  json_object_object_add(user, "gid", json_object_new_int64((int64_t) gid));
  _cleanup_free_ char *pname = NULL;
  if (pw.found && passwd) {
    /* The name of the uid, for group membership. */
    if (numeric) {
      for (const char *line = passwd; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        const char *c1 = memchr(line, ':', len);
        if (c1) {
          _cleanup_free_ char *name = xstrndup(line, c1 - line);
          struct id_entry e2;
          _cleanup_free_ char *l = xstrndup(line, len);
          id_lookup(l, name, false, 0, &e2);
          if (e2.found && e2.id == uid) {
            pname = steal_pointer(&name);
            break;
          }
        }
        line += len + (end ? 1 : 0);
      }
    } else {
      pname = xstrdup(u);
    }
  }
  if (!g)
    json_object_object_add(user, "additionalGids", supplementary_gids(group, pname, gid));
  *home = xstrdup(pw.found && pw.home[0] ? pw.home : "/");
  return 0;
}
