/* Finding the MP table (Intel MP spec 1.4) the way Linux does, for the SMP guests. */
#pragma once
#include "guest.h"

static inline bool mp_checksum_ok(const volatile uint8_t *p, uint32_t len)
{
  uint8_t s = 0;
  for (uint32_t i = 0; i < len; i++)
    s = (uint8_t) (s + p[i]);
  return s == 0;
}

/* The floating pointer in the last KiB of base memory or the BIOS area, or 0. */
static inline uint64_t mp_find(void)
{
  static const uint64_t ranges[][2] = {{0x9fc00, 0xa0000}, {0xf0000, 0x100000}};
  for (unsigned r = 0; r < 2; r++)
    for (uint64_t a = ranges[r][0]; a < ranges[r][1]; a += 16) {
      const volatile uint8_t *p = (const volatile uint8_t *) a;
      if (p[0] == '_' && p[1] == 'M' && p[2] == 'P' && p[3] == '_' && mp_checksum_ok(p, 16))
        return a;
    }
  return 0;
}

/* Count enabled processors and IOAPICs in a valid config table; false if it is invalid. */
static inline bool mp_count(uint64_t mpf, unsigned *cpus, unsigned *ioapics, unsigned *bsp)
{
  uint32_t cfg = *(const volatile uint32_t *) (mpf + 4);
  const volatile uint8_t *c = (const volatile uint8_t *) (uint64_t) cfg;
  if (!cfg || c[0] != 'P' || c[1] != 'C' || c[2] != 'M' || c[3] != 'P')
    return false;
  uint16_t len = *(const volatile uint16_t *) (c + 4);
  uint16_t count = *(const volatile uint16_t *) (c + 34);
  if (len < 44 || !mp_checksum_ok(c, len))
    return false;
  *cpus = *ioapics = *bsp = 0;
  const volatile uint8_t *e = c + 44, *end = c + len;
  for (unsigned i = 0; i < count && e < end; i++) {
    switch (e[0]) {
    case 0:
      if (e[3] & 1)
        (*cpus)++;
      if (e[3] & 2)
        (*bsp)++;
      e += 20;
      break;
    case 2:
      (*ioapics)++;
      e += 8;
      break;
    default:
      e += 8;
      break;
    }
  }
  return e == end;
}
