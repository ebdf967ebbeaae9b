/* features: what this runtime implements, in the runtime-spec features.md format. */
#include "cli.h"

#include <seccomp.h>

static struct json_object *strings(const char *const *v, size_t n)
{
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++)
    json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

int verb_features(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const struct opt opts[] = {{NULL, 0, 0, NULL}};
  int first = opts_parse("features", opts, argc, argv, err);
  if (first < 0 || need_args("features", argc, first, 0, "", err) < 0)
    return 1;
  static const char *const mount_opts[] = {
      "async",       "atime",   "bind",       "defaults",      "dev",
      "diratime",    "dirsync", "exec",       "lazytime",      "loud",
      "mand",        "noatime", "nodev",      "nodiratime",    "noexec",
      "nolazytime",  "nomand",  "norelatime", "nostrictatime", "nosuid",
      "private",     "rbind",   "relatime",   "remount",       "ro",
      "rprivate",    "rro",     "rrw",        "rshared",       "rslave",
      "runbindable", "rw",      "shared",     "silent",        "slave",
      "strictatime", "suid",    "sync",       "tmpcopyup",     "unbindable"};
  static const char *const hooks[] = {"prestart",       "createRuntime", "createContainer",
                                      "startContainer", "poststart",     "poststop"};
  static const char *const ns[] = {"cgroup", "ipc",  "mount", "network",
                                   "pid",    "time", "user",  "uts"};
  static const char *const actions[] = {
      "SCMP_ACT_ALLOW",        "SCMP_ACT_ERRNO",       "SCMP_ACT_KILL",
      "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
      "SCMP_ACT_NOTIFY",       "SCMP_ACT_TRACE",       "SCMP_ACT_TRAP"};
  static const char *const ops[] = {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                    "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
                                    "SCMP_CMP_NE"};
  static const char *const flags[] = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                      "SECCOMP_FILTER_FLAG_TSYNC",
                                      "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
  static const char *const arches[] = {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",
                                       "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "ociVersionMin", json_object_new_string("1.0.0"));
  json_object_object_add(o, "ociVersionMax", json_object_new_string(OCI_VERSION_SUPPORTED));
  json_object_object_add(o, "hooks", strings(hooks, ARRAY_SIZE(hooks)));
  json_object_object_add(o, "mountOptions", strings(mount_opts, ARRAY_SIZE(mount_opts)));
  struct json_object *lin = json_object_new_object();
  json_object_object_add(lin, "namespaces", strings(ns, ARRAY_SIZE(ns)));
  struct json_object *caps = json_object_new_array();
  for (int c = 0; c <= spec_cap_last(); c++)
    if (spec_cap_name(c))
      json_object_array_add(caps, json_object_new_string(spec_cap_name(c)));
  json_object_object_add(lin, "capabilities", caps);
  struct json_object *cg = json_object_new_object();
  json_object_object_add(cg, "v1", json_object_new_boolean(true));
  json_object_object_add(cg, "v2", json_object_new_boolean(true));
  json_object_object_add(cg, "systemd", json_object_new_boolean(false));
  json_object_object_add(cg, "systemdUser", json_object_new_boolean(false));
  json_object_object_add(lin, "cgroup", cg);
  struct json_object *sc = json_object_new_object();
  const struct scmp_version *v = seccomp_version();
  json_object_object_add(sc, "enabled", json_object_new_boolean(true));
  json_object_object_add(sc, "actions", strings(actions, ARRAY_SIZE(actions)));
  json_object_object_add(sc, "operators", strings(ops, ARRAY_SIZE(ops)));
  json_object_object_add(sc, "archs", strings(arches, ARRAY_SIZE(arches)));
  json_object_object_add(sc, "knownFlags", strings(flags, ARRAY_SIZE(flags)));
  json_object_object_add(sc, "supportedFlags", strings(flags, ARRAY_SIZE(flags)));
  json_object_object_add(lin, "seccomp", sc);
  struct json_object *aa = json_object_new_object();
  json_object_object_add(aa, "enabled", json_object_new_boolean(process_apparmor_enabled()));
  json_object_object_add(lin, "apparmor", aa);
  struct json_object *se = json_object_new_object();
  json_object_object_add(se, "enabled", json_object_new_boolean(false));
  json_object_object_add(lin, "selinux", se);
  struct json_object *idmap = json_object_new_object();
  json_object_object_add(idmap, "enabled", json_object_new_boolean(false));
  struct json_object *mx = json_object_new_object();
  json_object_object_add(mx, "idmap", idmap);
  json_object_object_add(lin, "mountExtensions", mx);
  json_object_object_add(o, "linux", lin);
  struct json_object *ann = json_object_new_object();
  json_object_object_add(ann, "io.isola.version", json_object_new_string(ISOLA_VERSION));
  _cleanup_free_ char *lv =
      xasprintf("%u.%u.%u", v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0);
  json_object_object_add(ann, "io.isola.libseccomp.version", json_object_new_string(lv));
  json_object_object_add(o, "annotations", ann);
  _cleanup_free_ char *text = json_to_string(o, true);
  json_object_put(o);
  printf("%s\n", text);
  return 0;
}
