/* images/: digests, references, manifests, indexes, configs, and the blob store. */
#include "image.h"
#include "tap.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *D1 = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static bool ref_is(const char *in, const char *want)
{
  struct image_ref r;
  if (ref_parse(in, &r, NULL) < 0)
    return want == NULL;
  char *got = ref_format(&r);
  bool same = want && !strcmp(got, want);
  if (!same)
    printf("# %s -> %s\n", in, got);
  free(got);
  ref_clear(&r);
  return same;
}

static void test_references(void)
{
  ok(ref_is("busybox", "docker.io/library/busybox:latest"), "short name");
  ok(ref_is("busybox:1.36", "docker.io/library/busybox:1.36"), "tag");
  ok(ref_is("user/app", "docker.io/user/app:latest"), "user repository on docker.io");
  ok(ref_is("index.docker.io/library/x:y", "docker.io/library/x:y"), "index.docker.io");
  ok(ref_is("localhost/app:1", "localhost/app:1"), "localhost registry");
  ok(ref_is("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"), "registry with a port");
  ok(ref_is("quay.io/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "quay.io/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
     "digest");
  ok(ref_is("Busybox", NULL), "uppercase repository refused");
  ok(ref_is("a//b", NULL), "empty component refused");
  ok(ref_is("a/../b", NULL), "dot-dot component refused");
  ok(ref_is("x:", NULL), "empty tag refused");
  ok(ref_is("x:-bad", NULL), "tag starting with '-' refused");
  ok(ref_is("x@sha256:abc", NULL), "short digest refused");
  ok(ref_is("", NULL), "empty refused");
  ok(ref_is("a_b.c-d__e", "docker.io/library/a_b.c-d__e:latest"), "separators");
  ok(ref_is("a___b", NULL), "three underscores refused");
  char *s = ref_short_name("docker.io/library/busybox:latest");
  ok(!strcmp(s, "busybox:latest"), "short name of an official image");
  free(s);
  s = ref_short_name("localhost/app:1");
  ok(!strcmp(s, "localhost/app:1"), "short name elsewhere is the full name");
  free(s);
}

static void test_digests(void)
{
  ok(digest_check(D1, "x", NULL) == 0, "a valid digest");
  ok(digest_check("sha256:0123", "x", NULL) < 0, "short digest");
  ok(digest_check("sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "x",
                  NULL) < 0,
     "other algorithm");
  ok(digest_check("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "x",
                  NULL) < 0,
     "uppercase hex");
  ok(digest_check("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", "x",
                  NULL) < 0,
     "too long");
  char d[DIGEST_LEN + 1];
  sha256_digest_of("", 0, d);
  ok(!strcmp(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
     "sha256 of nothing");
}

static void test_manifests(void)
{
  char doc[2048];
  snprintf(doc, sizeof(doc),
           "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
           "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
           "\"digest\":\"%s\",\"size\":10},"
           "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
           "\"digest\":\"%s\",\"size\":20}]}",
           D1, D1);
  struct image_manifest *m = NULL;
  struct isola_error *err = NULL;
  ok(manifest_parse(doc, strlen(doc), &m, &err) == 0 && m->n_layers == 1 &&
         m->layers[0].size == 20 && !strcmp(m->config_digest, D1),
     "OCI manifest");
  manifest_free(m);
  m = NULL;
  ok(!manifest_is_index(doc, strlen(doc)), "a manifest is not an index");

  const char *bad[][2] = {
      {"{\"schemaVersion\":1}", "schemaVersion"},
      {"{\"schemaVersion\":2,\"layers\":[]}", "config"},
      {"{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:x\",\"size\":1},\"layers\":[]}",
       "config"},
      {"{\"schemaVersion\":2,\"config\":{\"digest\":"
       "\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
       "\"size\":-1},\"layers\":[]}",
       "size"},
      {"{\"schemaVersion\":2,\"config\":{\"digest\":"
       "\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
       "\"size\":1},\"layers\":[{\"mediaType\":\"text/html\",\"digest\":"
       "\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
       "\"size\":1}]}",
       "layers[0]"},
      {"[1,2]", "expected an object"},
      {"{\"schemaVersion\":2,", "manifest"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    isola_error_free(&err);
    int r = manifest_parse(bad[i][0], strlen(bad[i][0]), &m, &err);
    ok(r < 0 && err && strstr(err->msg, bad[i][1]), "bad manifest %zu names %s: %s", i, bad[i][1],
       err ? err->msg : "(no error)");
    if (r == 0)
      manifest_free(m);
  }
  isola_error_free(&err);

  char idx[2048];
  snprintf(idx, sizeof(idx),
           "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
           "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
           "\"digest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\","
           "\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
           "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
           "\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
           D1);
  char chosen[DIGEST_LEN + 1];
  ok(manifest_is_index(idx, strlen(idx)), "an index is an index");
  ok(manifest_parse(idx, strlen(idx), &m, &err) == -EMEDIUMTYPE, "manifest_parse refuses an index");
  isola_error_free(&err);
  ok(index_select(idx, strlen(idx), "linux", "amd64", chosen, &err) == 0 && !strcmp(chosen, D1),
     "index picks linux/amd64");
  ok(index_select(idx, strlen(idx), "linux", "s390x", chosen, &err) == -ENOENT && err &&
         strstr(err->msg, "linux/arm64, linux/amd64"),
     "no match lists the platforms: %s", err ? err->msg : "");
  isola_error_free(&err);

  const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"sh\"],"
                    "\"Entrypoint\":null,\"User\":\"1:2\"},\"rootfs\":{\"type\":\"layers\","
                    "\"diff_ids\":[\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123"
                    "456789abcdef\"]}}";
  struct image_config *c = NULL;
  ok(image_config_parse(cfg, strlen(cfg), &c, &err) == 0 && c->n_diff_ids == 1 && c->cmd &&
         !strcmp(c->cmd[0], "sh") && !c->entrypoint && !strcmp(c->user, "1:2"),
     "image config");
  image_config_free(c);
  const char *badcfg = "{\"rootfs\":{\"diff_ids\":[\"md5:x\"]}}";
  ok(image_config_parse(badcfg, strlen(badcfg), &c, &err) < 0 && err &&
         strstr(err->msg, "rootfs.diff_ids[0]"),
     "bad diff_id is named: %s", err ? err->msg : "");
  isola_error_free(&err);
}

static void test_store(void)
{
  char dir[] = "/tmp/isola-test-images-XXXXXX";
  ok(mkdtemp(dir) != NULL, "mkdtemp");
  struct image_store *s = NULL;
  struct isola_error *err = NULL;
  ok(store_open(dir, &s, &err) == 0, "store_open");
  char d[DIGEST_LEN + 1];
  ok(store_put_blob(s, "hello", 5, "test", d, &err) == 0 && store_has_blob(s, d), "put a blob");
  char *text = NULL;
  size_t len = 0;
  ok(store_read_blob(s, d, &text, &len, &err) == 0 && len == 5 && !strcmp(text, "hello"),
     "read it back, verified");
  free(text);

  struct blob_writer *w = NULL;
  ok(blob_writer_new(s, "layer x", 8, &w, &err) == 0, "writer");
  ok(blob_writer_write(w, "12345", 5, &err) == 0, "write within the limit");
  ok(blob_writer_write(w, "6789", 4, &err) == -EFBIG && strstr(err->msg, "layer x"),
     "past the limit: %s", err ? err->msg : "");
  isola_error_free(&err);
  blob_writer_free(w);

  ok(blob_writer_new(s, "layer y", 100, &w, &err) == 0 && blob_writer_write(w, "abc", 3, &err) == 0,
     "second writer");
  char got[DIGEST_LEN + 1];
  ok(blob_writer_commit(w, D1, got, &err) == -EILSEQ && strstr(err->msg, "digest mismatch"),
     "a mismatching blob is refused: %s", err ? err->msg : "");
  isola_error_free(&err);
  blob_writer_free(w);
  /* Nothing of the refused blob is left: only the "hello" blob. */
  char path[256];
  snprintf(path, sizeof(path), "%s/blobs/sha256", dir);
  int n = 0;
  DIR *dd = opendir(path);
  for (struct dirent *de; dd && (de = readdir(dd));)
    n += de->d_name[0] != '.';
  if (dd)
    closedir(dd);
  ok(n == 1, "no stray file after a refused blob (%d files)", n);

  ok(store_tag(s, "docker.io/library/x:1", D1, &err) == -ENOENT,
     "naming a manifest that is not stored fails");
  isola_error_free(&err);
  struct image_entry e;
  ok(store_resolve(s, "nothing", &e, &err) == -ENOENT && strstr(err->msg, "isola images"),
     "resolve of a missing image: %s", err ? err->msg : "");
  isola_error_free(&err);
  store_close(s);
  rm_rf_at(AT_FDCWD, dir);
}

int main(void)
{
  test_references();
  test_digests();
  test_manifests();
  test_store();
  done_testing();
}
