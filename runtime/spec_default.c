/* The config.json that `isola-runtime spec` writes: runc's defaults, so tools that start
 * from `runc spec` get what they expect. */
#include "spec.h"

#include <string.h>

static const char default_config[] =
    "{"
    "\"ociVersion\":\"" OCI_VERSION_SUPPORTED "\","
    "\"process\":{\"terminal\":true,\"user\":{\"uid\":0,\"gid\":0},\"args\":[\"sh\"],"
    "\"env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
    "\"TERM=xterm\"],\"cwd\":\"/\","
    "\"capabilities\":{"
    "\"bounding\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"effective\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"permitted\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"ambient\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"]},"
    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":1024}],"
    "\"noNewPrivileges\":true},"
    "\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
    "\"hostname\":\"isola\","
    "\"mounts\":["
    "{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
    "\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]},"
    "{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\","
    "\"options\":[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=0620\","
    "\"gid=5\"]},"
    "{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":\"shm\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"mode=1777\",\"size=65536k\"]},"
    "{\"destination\":\"/dev/mqueue\",\"type\":\"mqueue\",\"source\":\"mqueue\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\"]},"
    "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]},"
    "{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\",\"source\":\"cgroup\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"relatime\",\"ro\"]}],"
    "\"linux\":{"
    "\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]},"
    "\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},"
    "{\"type\":\"uts\"},{\"type\":\"mount\"},{\"type\":\"cgroup\"}],"
    "\"maskedPaths\":[\"/proc/acpi\",\"/proc/asound\",\"/proc/kcore\",\"/proc/keys\","
    "\"/proc/latency_stats\",\"/proc/timer_list\",\"/proc/timer_stats\",\"/proc/sched_debug\","
    "\"/sys/firmware\",\"/proc/scsi\"],"
    "\"readonlyPaths\":[\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\","
    "\"/proc/sysrq-trigger\"]}"
    "}";

struct json_object *spec_default_json(bool rootless)
{
  struct json_object *o = json_tokener_parse(default_config);
  if (!o)
    abort();
  if (!rootless)
    return o;
  /* Rootless: map the caller to root in a user namespace; no new network namespace, and
   * sysfs bound from the host (a fresh one needs a network namespace we own). */
  struct json_object *lin = json_object_object_get(o, "linux");
  struct json_object *ns = json_object_new_array();
  static const char *const types[] = {"pid", "ipc", "uts", "mount", "cgroup", "user"};
  for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "type", json_object_new_string(types[i]));
    json_object_array_add(ns, e);
  }
  json_object_object_add(lin, "namespaces", ns);
  json_object_object_del(lin, "resources");
  const char *keys[] = {"uidMappings", "gidMappings"};
  unsigned ids[] = {geteuid(), getegid()};
  for (int k = 0; k < 2; k++) {
    struct json_object *arr = json_object_new_array(), *m = json_object_new_object();
    json_object_object_add(m, "containerID", json_object_new_int(0));
    json_object_object_add(m, "hostID", json_object_new_int64(ids[k]));
    json_object_object_add(m, "size", json_object_new_int(1));
    json_object_array_add(arr, m);
    json_object_object_add(lin, keys[k], arr);
  }
  struct json_object *mounts = json_object_object_get(o, "mounts");
  for (size_t i = 0; i < json_object_array_length(mounts); i++) {
    struct json_object *m = json_object_array_get_idx(mounts, i);
    const char *dest = json_object_get_string(json_object_object_get(m, "destination"));
    if (!strcmp(dest, "/dev/pts")) {
      /* Only root is mapped: a devpts gid=5 option would name an unmapped group. */
      struct json_object *opts = json_object_object_get(m, "options"),
                         *kept = json_object_new_array();
      for (size_t j = 0; j < json_object_array_length(opts); j++) {
        const char *opt = json_object_get_string(json_object_array_get_idx(opts, j));
        if (strcmp(opt, "gid=5"))
          json_object_array_add(kept, json_object_new_string(opt));
      }
      json_object_object_add(m, "options", kept);
    }
    if (!strcmp(dest, "/sys")) {
      json_object_object_add(m, "type", json_object_new_string("none"));
      json_object_object_add(m, "source", json_object_new_string("/sys"));
      struct json_object *opts = json_object_new_array();
      static const char *const o2[] = {"rbind", "nosuid", "noexec", "nodev", "ro"};
      for (size_t j = 0; j < ARRAY_SIZE(o2); j++)
        json_object_array_add(opts, json_object_new_string(o2[j]));
      json_object_object_add(m, "options", opts);
    }
  }
  return o;
}
