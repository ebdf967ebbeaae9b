/* Which cgroup hierarchies this host has, and where the runtime itself sits in each:
 * /proc/self/cgroup joined with /proc/self/mountinfo. */
#include "cgroup_internal.h"

#include <fcntl.h>
#include <string.h>

struct mountinfo_entry {
  char *root, *mount_point, *fstype, *super_opts;
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
  char *w = s;
  for (char *p = s; *p;) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
        p[3] <= '7') {
      *w++ = (char) ((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
      p += 4;
    } else {
      *w++ = *p++;
    }
  }
  *w = '\0';
}

/* Split mountinfo text in place into its cgroup/cgroup2 mounts. */
static size_t mountinfo_cgroups(char *text, struct mountinfo_entry **out)
{
  size_t n = 0;
  struct mountinfo_entry *v = NULL;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *sep = strstr(line, " - ");
    if (!sep)
      continue;
    *sep = '\0';
    char *f[5] = {0}, *s = NULL, *tail = sep + 3, *s2 = NULL;
    f[0] = strtok_r(line, " ", &s);
    for (int i = 1; i < 5 && f[i - 1]; i++)
      f[i] = strtok_r(NULL, " ", &s);
    char *fstype = strtok_r(tail, " ", &s2);
    (void) strtok_r(NULL, " ", &s2); /* source */
    char *super = strtok_r(NULL, " ", &s2);
    if (!f[4] || !fstype || !super || (strcmp(fstype, "cgroup") && strcmp(fstype, "cgroup2")))
      continue;
    unescape_octal(f[3]);
    unescape_octal(f[4]);
    v = xrealloc(v, (n + 1) * sizeof(*v));
    v[n++] = (struct mountinfo_entry){f[3], f[4], fstype, super};
  }
  *out = v;
  return n;
}

/* Where own (a path in the hierarchy) appears below a mount of root; NULL if it does not. */
static char *visible_path(const char *root, const char *own)
{
  if (cgroup_path_has_dots(own)) /* outside our cgroup namespace's view */
    return NULL;
  if (!strcmp(root, "/"))
    return xstrdup(own);
  size_t n = strlen(root);
  if (strncmp(own, root, n) || (own[n] != '/' && own[n] != '\0'))
    return NULL;
  return xstrdup(own[n] ? own + n : "/");
}

static bool mount_matches(const struct mountinfo_entry *m, const char *controllers, bool v2)
{
  if (v2)
    return !strcmp(m->fstype, "cgroup2");
  if (strcmp(m->fstype, "cgroup"))
    return false;
  _cleanup_free_ char *ctl = xstrdup(controllers);
  for (char *s = NULL, *t = strtok_r(ctl, ",", &s); t; t = strtok_r(NULL, ",", &s))
    if (!cgroup_list_has(m->super_opts, t, ','))
      return false;
  return true;
}

/* Several mounts of one hierarchy: prefer the one under /sys/fs/cgroup that shows our cgroup. */
static int mount_score(const struct mountinfo_entry *m, const char *own)
{
  _cleanup_free_ char *vis = visible_path(m->root, own);
  return (strncmp(m->mount_point, "/sys/fs/cgroup", 14) == 0 ? 2 : 0) + (vis ? 1 : 0);
}

void cgroup_mounts_free(struct cgroup_mount *m, size_t n)
{
  for (size_t i = 0; m && i < n; i++) {
    free(m[i].controllers);
    free(m[i].mount_point);
    free(m[i].own_path);
  }
  free(m);
}

int cgroup_mounts_read(struct cgroup_mount **out, size_t *n_out, enum cgroup_layout *layout,
                       struct isola_error **err)
{
  _cleanup_free_ char *self = NULL, *mi_text = NULL;
  _cleanup_free_ struct mountinfo_entry *mi = NULL;
  int r = read_file_at(AT_FDCWD, "/proc/self/cgroup", CGROUP_FILE_MAX, &self, NULL);
  if (r < 0)
    return isola_fail(err, -r, "cannot read /proc/self/cgroup");
  r = read_file_at(AT_FDCWD, "/proc/self/mountinfo", CGROUP_FILE_MAX, &mi_text, NULL);
  if (r < 0)
    return isola_fail(err, -r, "cannot read /proc/self/mountinfo");
  size_t n_mi = mountinfo_cgroups(mi_text, &mi);

  struct cgroup_mount *v = NULL, unified = {0};
  size_t n = 0;
  bool v1_controllers = false;
  for (char *save = NULL, *line = strtok_r(self, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
      continue;
    *c1 = *c2 = '\0';
    const char *ctl = c1 + 1, *own = c2 + 1;
    bool v2 = !strcmp(line, "0") && !*ctl;
    if (!v2 && !*ctl)
      continue;
    const struct mountinfo_entry *best = NULL;
    for (size_t i = 0; i < n_mi; i++)
      if (mount_matches(&mi[i], ctl, v2) &&
          (!best || mount_score(&mi[i], own) > mount_score(best, own)))
        best = &mi[i];
    if (!best)
      continue; /* e.g. the "0::" line on a v1-only host */
    struct cgroup_mount m = {xstrdup(v2 ? "" : ctl), xstrdup(best->mount_point),
                             visible_path(best->root, own)};
    if (v2) {
      free(unified.controllers);
      free(unified.mount_point);
      free(unified.own_path);
      unified = m;
      continue;
    }
    if (strncmp(ctl, "name=", 5))
      v1_controllers = true;
    v = xrealloc(v, (n + 2) * sizeof(*v));
    v[n++] = m;
  }
  if (unified.controllers && !v1_controllers) {
    /* Pure v2 (named v1 hierarchies beside it carry no controllers: leave them out). */
    cgroup_mounts_free(v, n);
    v = xzalloc(sizeof(*v));
    v[0] = unified;
    n = 1;
    *layout = CGROUP_LAYOUT_V2;
  } else if (unified.controllers) {
    v[n++] = unified; /* the unified hierarchy last */
    *layout = CGROUP_LAYOUT_HYBRID;
  } else if (n > 0) {
    *layout = CGROUP_LAYOUT_V1;
  } else {
    free(v);
    return isola_failx(
        err, ENOENT, "no cgroup filesystem is mounted for this process (see /proc/self/mountinfo)");
  }
  *out = v;
  *n_out = n;
  return 0;
}

int cgroup_detect_layout(enum cgroup_layout *out, struct isola_error **err)
{
  struct cgroup_mount *m = NULL;
  size_t n = 0;
  int r = cgroup_mounts_read(&m, &n, out, err);
  cgroup_mounts_free(m, n);
  return r;
}
