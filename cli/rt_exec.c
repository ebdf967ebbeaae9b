/* exec: a new process in a running container, from flags or a process.json. */
#include "cli.h"

#include <fcntl.h>
#include <string.h>

static int parse_user(const char *s, struct oci_process *p, struct isola_error **err)
{
  uint64_t uid, gid;
  _cleanup_free_ char *copy = xstrdup(s);
  char *colon = strchr(copy, ':');
  if (colon)
    *colon = '\0';
  if (parse_u64(copy, &uid) < 0 || uid > UINT32_MAX ||
      (colon && (parse_u64(colon + 1, &gid) < 0 || gid > UINT32_MAX)))
    return isola_failx(err, EINVAL, "exec: --user \"%s\" is not UID[:GID] (numbers)", s);
  p->user.uid = (uint32_t) uid;
  if (colon)
    p->user.gid = (uint32_t) gid;
  return 0;
}

int verb_exec(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *process_file = NULL, *console_socket = NULL, *pid_file = NULL, *cwd = NULL,
             *user = NULL, *apparmor = NULL, *label = NULL, *cgroup = NULL;
  _cleanup_strv_ char **env = NULL, **caps = NULL, **gids = NULL;
  bool tty = false, detach = false, no_new_privs = false, ignore_paused = false;
  int preserve_fds = 0;
  const struct opt opts[] = {
      {"process", 'p', OPT_STR, &process_file},
      {"console-socket", 0, OPT_STR, &console_socket},
      {"pid-file", 0, OPT_STR, &pid_file},
      {"cwd", 0, OPT_STR, &cwd},
      {"env", 'e', OPT_STRLIST, &env},
      {"tty", 't', OPT_BOOL, &tty},
      {"user", 'u', OPT_STR, &user},
      {"additional-gids", 'g', OPT_STRLIST, &gids},
      {"cap", 'c', OPT_STRLIST, &caps},
      {"no-new-privs", 0, OPT_BOOL, &no_new_privs},
      {"detach", 'd', OPT_BOOL, &detach},
      {"preserve-fds", 0, OPT_INT, &preserve_fds},
      {"apparmor", 0, OPT_STR, &apparmor},
      {"process-label", 0, OPT_STR, &label},
      {"cgroup", 0, OPT_STR, &cgroup},
      {"ignore-paused", 0, OPT_BOOL, &ignore_paused},
      {NULL, 0, 0, NULL},
  };
  int first = opts_parse("exec", opts, argc, argv, err);
  if (first < 0)
    return 1;
  if (first >= argc) {
    isola_failx(err, EINVAL, "exec: usage: isola-runtime exec [options] ID [COMMAND [ARG...]]");
    return 1;
  }
  const char *id = argv[first];
  if (cgroup) {
    isola_failx(err, ENOTSUP, "exec: --cgroup: joining a sub-cgroup is not supported");
    return 1;
  }
  struct oci_process proc = {0};
  int status = 0;
  if (process_file) {
    _cleanup_free_ char *text = NULL;
    _cleanup_json_ struct json_object *o = NULL;
    size_t len;
    int r = read_file_at(AT_FDCWD, process_file, 4 << 20, &text, &len);
    if (r < 0) {
      isola_fail(err, -r, "exec: --process: cannot read \"%s\"", process_file);
      return 1;
    }
    if (json_parse_doc(text, len, process_file, &o, err) < 0 ||
        spec_parse_process(o, process_file, &proc, err) < 0)
      goto out;
    /* What the file leaves out comes from the container, as with runc: an exec'd process never
     * gets more privilege than the container's own for want of a field. */
    struct oci_process def = {0};
    if (container_exec_default_process(&cli->ro, id, &def, err) < 0)
      goto out;
    if (!proc.has_caps) {
      proc.caps = def.caps;
      proc.has_caps = def.has_caps;
    }
    if (!proc.has_no_new_privileges)
      proc.no_new_privileges = def.no_new_privileges;
    if (!proc.apparmor_profile)
      proc.apparmor_profile = steal_pointer(&def.apparmor_profile);
    if (!proc.selinux_label)
      proc.selinux_label = steal_pointer(&def.selinux_label);
    spec_process_clear(&def);
  } else {
    if (first + 1 >= argc) {
      isola_failx(err, EINVAL, "exec: no command given (and no --process)");
      return 1;
    }
    if (container_exec_default_process(&cli->ro, id, &proc, err) < 0)
      goto out;
    strv_free(proc.args);
    proc.args = strv_copy(argv + first + 1);
    for (size_t i = 0; env && env[i]; i++) {
      if (!strchr(env[i], '=')) {
        isola_failx(err, EINVAL, "exec: --env \"%s\" is not NAME=VALUE", env[i]);
        goto out;
      }
      proc.env = strv_append(proc.env, env[i]);
    }
    if (cwd) {
      free(proc.cwd);
      proc.cwd = xstrdup(cwd);
    }
    if (user && parse_user(user, &proc, err) < 0)
      goto out;
    if (gids) {
      size_t n = strv_length(gids);
      free(proc.user.additional_gids);
      proc.user.additional_gids = xzalloc((n + 1) * sizeof(uint32_t));
      for (size_t i = 0; i < n; i++) {
        uint64_t g;
        if (parse_u64(gids[i], &g) < 0 || g > UINT32_MAX) {
          isola_failx(err, EINVAL, "exec: --additional-gids \"%s\" is not a number", gids[i]);
          goto out;
        }
        proc.user.additional_gids[i] = (uint32_t) g;
      }
      proc.user.n_additional_gids = n;
    }
    for (size_t i = 0; caps && caps[i]; i++) {
      int c = spec_cap_from_name(caps[i]);
      if (c < 0) {
        isola_failx(err, EINVAL, "exec: --cap: unknown capability \"%s\"", caps[i]);
        goto out;
      }
      proc.has_caps = true;
      uint64_t bit = 1ULL << c;
      proc.caps.bounding |= bit;
      proc.caps.effective |= bit;
      proc.caps.permitted |= bit;
      proc.caps.inheritable |= bit;
    }
    proc.terminal = tty;
    if (no_new_privs)
      proc.no_new_privileges = true;
    if (apparmor) {
      free(proc.apparmor_profile);
      proc.apparmor_profile = xstrdup(apparmor);
    }
    if (label) {
      free(proc.selinux_label);
      proc.selinux_label = xstrdup(label);
    }
  }
  if (proc.cwd && proc.cwd[0] != '/') {
    isola_failx(err, EINVAL, "exec: cwd \"%s\" is not an absolute path", proc.cwd);
    goto out;
  }
  struct exec_opts eo = {.id = id,
                         .process = &proc,
                         .console_socket = console_socket,
                         .pid_file = pid_file,
                         .preserve_fds = preserve_fds,
                         .detach = detach};
  container_exec(&cli->ro, &eo, &status, err);
out:
  spec_process_clear(&proc);
  return *err ? 1 : status;
}
