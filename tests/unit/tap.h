/* A tiny TAP producer for the C unit tests. */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;
#define ok(cond, ...)                                                                              \
  do {                                                                                             \
    tap_n++;                                                                                       \
    if (cond) {                                                                                    \
      printf("ok %d - ", tap_n);                                                                   \
    } else {                                                                                       \
      tap_failed++;                                                                                \
      printf("not ok %d - %s:%d: ", tap_n, __FILE__, __LINE__);                                    \
    }                                                                                              \
    printf(__VA_ARGS__);                                                                           \
    printf("\n");                                                                                  \
  } while (0)
#define skip(...)                                                                                  \
  do {                                                                                             \
    tap_n++;                                                                                       \
    printf("ok %d - # SKIP ", tap_n);                                                              \
    printf(__VA_ARGS__);                                                                           \
    printf("\n");                                                                                  \
  } while (0)
#define done_testing()                                                                             \
  do {                                                                                             \
    printf("1..%d\n", tap_n);                                                                      \
    return tap_failed ? 1 : 0;                                                                     \
  } while (0)
