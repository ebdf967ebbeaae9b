/* bus.c — MMIO and port-I/O dispatch: a small fixed table of regions, filled before the vCPUs
 * start and read without locks afterwards. */
#include <string.h>

#include "vmm.h"

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_access_fn fn, void *opaque)
{
  if (len == 0 || base + len < base || !fn)
    return -EINVAL;
  if (bus->n >= BUS_MAX_REGIONS)
    return -ENOSPC;
  for (unsigned i = 0; i < bus->n; i++) {
    const struct bus_region *r = &bus->regions[i];
    if (base < r->base + r->len && r->base < base + len)
      return -EEXIST;
  }
  bus->regions[bus->n++] = (struct bus_region){base, len, fn, opaque};
  return 0;
}

bool bus_dispatch(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
  for (unsigned i = 0; i < bus->n; i++) {
    const struct bus_region *r = &bus->regions[i];
    /* The whole access must fall inside the region: off + len <= r->len without overflow. */
    if (addr < r->base || addr - r->base >= r->len || len > r->len - (addr - r->base))
      continue;
    r->fn(r->opaque, addr - r->base, data, len, is_write);
    return true;
  }
  if (!is_write)
    memset(data, 0xff, len);
  return false;
}
