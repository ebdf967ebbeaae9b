/* The libFuzzer entry point every harness in this directory defines; driver.c calls it for
 * builds without libFuzzer (gcc), so the seed corpus runs as a regression test. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
