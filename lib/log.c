/* Logging for the CLI front ends: text or JSON lines, as runc/crun write them for engines. */
#include "util.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>

static int log_fd = -1;
static enum log_format log_fmt = LOG_FORMAT_TEXT;
static bool log_debug_on;

int log_init(const char *path, enum log_format format, bool debug)
{
  log_fmt = format;
  log_debug_on = debug;
  if (path && *path) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
      return -errno;
    log_fd = fd;
  }
  return 0;
}

static const char *level_name(enum log_level l)
{
  switch (l) {
  case LOG_ERROR:
    return "error";
  case LOG_WARNING:
    return "warning";
  case LOG_INFO:
    return "info";
  default:
    return "debug";
  }
}

static void emit(int fd, enum log_level level, const char *msg)
{
  char ts[64];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof(ts) - n, ".%09ldZ", now.tv_nsec);
  _cleanup_free_ char *line = NULL;
  if (log_fmt == LOG_FORMAT_JSON) {
    _cleanup_json_ struct json_object *o = json_object_new_object();
    json_object_object_add(o, "level", json_object_new_string(level_name(level)));
    json_object_object_add(o, "msg", json_object_new_string(msg));
    json_object_object_add(o, "time", json_object_new_string(ts));
    line = xasprintf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
  } else {
    line = xasprintf("%s %s: %s\n", ts, level_name(level), msg);
  }
  (void) write_all(fd, line, strlen(line));
}

void log_msg(enum log_level level, const char *fmt, ...)
{
  if (level == LOG_DEBUG && !log_debug_on)
    return;
  if (log_fd < 0 && level > LOG_WARNING)
    return;
  _cleanup_free_ char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  va_end(ap);
  emit(log_fd >= 0 ? log_fd : STDERR_FILENO, level, msg);
}

void log_error_to_stderr(const char *prog, const char *msg)
{
  if (log_fd >= 0)
    emit(log_fd, LOG_ERROR, msg);
  _cleanup_free_ char *line = xasprintf("%s: %s\n", prog, msg);
  (void) write_all(STDERR_FILENO, line, strlen(line));
}
