/* config.json parsing: good documents parse, bad ones fail naming the field. */
#include "spec.h"
#include "tap.h"

#include <sched.h>
#include <sys/mount.h>

#define BASE "\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"}"

static char *parse_err(const char *json)
{
  struct oci_spec *s = NULL;
  struct isola_error *err = NULL;
  if (spec_parse(json, strlen(json), "config.json", &s, &err) == 0) {
    spec_free(s);
    return NULL;
  }
  char *msg = xstrdup(err->msg);
  isola_error_free(&err);
  return msg;
}

static void expect_error(const char *json, const char *needle)
{
  char *msg = parse_err(json);
  ok(msg && strstr(msg, needle), "rejects %s → \"%s\" (got: %s)", json, needle,
     msg ? msg : "no error");
  free(msg);
}

int main(void)
{
  struct oci_spec *s = NULL;
  struct isola_error *err = NULL;
  const char *good =
      "{" BASE ",\"hostname\":\"h\",\"process\":{\"args\":[\"sh\",\"-c\",\"x\"],\"cwd\":\"/\","
      "\"env\":[\"A=1\"],\"user\":{\"uid\":1,\"gid\":2,\"umask\":18,\"additionalGids\":[5,6]},"
      "\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"CAP_CHOWN\"]},"
      "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":20}],\"oomScoreAdj\":100},"
      "\"mounts\":[{\"destination\":\"/data\",\"source\":\"/tmp\",\"options\":[\"rbind\",\"ro\","
      "\"rslave\",\"size=1\"]},{\"destination\":\"/t\",\"type\":\"tmpfs\",\"options\":["
      "\"nosuid\",\"mode=755\"]}],"
      "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"uts\"},{\"type\":\"mount\"},{"
      "\"type\":\"network\","
      "\"path\":\"/proc/1/ns/net\"}],\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"},"
      "\"resources\":{\"memory\":{\"limit\":1048576},\"pids\":{\"limit\":10},\"devices\":[{"
      "\"allow\":false,\"access\":\"rwm\"},{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":3}]"
      "},"
      "\"rootfsPropagation\":\"rshared\",\"maskedPaths\":[\"/proc/kcore\"]}}";
  int r = spec_parse(good, strlen(good), "config.json", &s, &err);
  ok(r == 0, "parses a full config (%s)", err ? err->msg : "ok");
  if (r == 0) {
    ok(!strcmp(s->process.args[2], "x"), "args");
    ok(s->process.user.uid == 1 && s->process.user.gid == 2 && s->process.user.umask == 18, "user");
    ok(s->process.user.n_additional_gids == 2 && s->process.user.additional_gids[1] == 6,
       "additional gids");
    ok(s->process.caps.bounding == ((1ULL << 5) | (1ULL << 0)), "capabilities to bits");
    ok(s->process.n_rlimits == 1 && s->process.rlimits[0].hard == 20, "rlimits");
    ok(s->process.has_oom_score_adj && s->process.oom_score_adj == 100, "oomScoreAdj");
    ok(s->n_mounts == 2 && s->mounts[0].bind && s->mounts[0].recursive, "rbind mount");
    ok((s->mounts[0].flags & MS_RDONLY) && s->mounts[0].propagation == (MS_SLAVE | MS_REC),
       "mount flags and propagation");
    ok(s->n_namespaces == 4 && s->namespaces[3].path && s->namespaces[3].clone_flag == CLONE_NEWNET,
       "namespaces with a path");
    ok(s->resources.has_mem_limit && s->resources.mem_limit == 1048576, "memory limit");
    ok(s->resources.n_devices == 2 && s->resources.devices[1].minor == 3, "device rules");
    ok(s->rootfs_propagation == (MS_SHARED | MS_REC), "rootfsPropagation");
    ok(s->n_sysctl == 1 && !strcmp(s->sysctl[0].value, "1"), "sysctl");
    spec_free(s);
  }
  isola_error_free(&err);

  expect_error("{", "invalid JSON");
  expect_error("[]", "expected a JSON object");
  expect_error("{\"root\":{\"path\":\"r\"}}", "ociVersion: missing");
  expect_error("{\"ociVersion\":\"2.0.0\",\"root\":{\"path\":\"r\"}}", "not supported");
  expect_error("{\"ociVersion\":\"1.0.0\"}", "root: missing");
  expect_error("{" BASE ",\"process\":{\"cwd\":\"/\"}}", "process.args");
  expect_error("{" BASE ",\"process\":{\"args\":[\"a\"],\"cwd\":\"rel\"}}", "process.cwd");
  expect_error("{" BASE ",\"process\":{\"args\":[1],\"cwd\":\"/\"}}", "process.args[0]");
  expect_error("{" BASE ",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"env\":[\"NOEQ\"]}}",
               "process.env[0]");
  expect_error("{" BASE ",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"capabilities\":{"
               "\"effective\":[\"CAP_KILL\",\"CAP_TEST\"]}}}",
               "process.capabilities.effective[1]: unknown capability \"CAP_TEST\"");
  expect_error("{" BASE ",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\",\"rlimits\":[{\"type\":"
               "\"RLIMIT_FOO\",\"soft\":1,\"hard\":1}]}}",
               "process.rlimits[0]: unknown rlimit");
  expect_error("{" BASE ",\"linux\":{\"namespaces\":[{\"type\":\"foo\"}]}}",
               "linux.namespaces[0]: unknown namespace type \"foo\"");
  expect_error("{" BASE ",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"pid\"}]}}",
               "given twice");
  expect_error("{" BASE ",\"linux\":{\"namespaces\":[{\"type\":\"user\"}]}}",
               "needs both uidMappings and gidMappings");
  expect_error("{" BASE ",\"mounts\":[{\"type\":\"tmpfs\"}]}", "mounts[0]: missing destination");
  expect_error("{" BASE ",\"hostname\":\"x\"}", "hostname: setting a hostname needs a new uts");
  expect_error("{" BASE ",\"linux\":{\"resources\":{\"memory\":{\"limit\":\"1G\"}}}}",
               "linux.resources.memory.limit: expected an integer");
  expect_error("{" BASE ",\"linux\":{\"resources\":{\"devices\":[{\"allow\":true,\"access\":"
               "\"rwx\"}]}}}",
               "linux.resources.devices[0]");
  expect_error("{" BASE ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_NOPE\"}}}",
               "linux.seccomp.defaultAction: unknown action");
  expect_error("{" BASE ",\"hooks\":{\"prestart\":[{\"path\":\"rel\"}]}}", "hooks.prestart[0]");
  expect_error("{" BASE ",\"linux\":{\"sysctl\":{\"../../x\":\"1\"}}}", "linux.sysctl");
  expect_error("{" BASE "} trailing", "invalid JSON");
  expect_error("{" BASE ",\"linux\":{\"sysctl\":{\"kernel.x\":\"1\\u0000\"}}}",
               "linux.sysctl.kernel.x: string contains a NUL byte");

  /* NUL bytes after the document are trailing data, not whitespace. */
  static const char nul_tail[] = "{" BASE "}\0\0";
  r = spec_parse(nul_tail, sizeof(nul_tail) - 1, "config.json", &s, &err);
  ok(r < 0 && err && strstr(err->msg, "trailing data"), "rejects NUL bytes after the document");
  if (r == 0)
    spec_free(s);
  isola_error_free(&err);
  done_testing();
}
