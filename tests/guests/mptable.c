/* The MP table: a valid floating pointer and config table listing expect_cpus processors
 * (one of them the BSP) and an IOAPIC. */
#include "mp.h"

void guest_main(void)
{
  uint64_t mpf = mp_find();
  CHECK(1, mpf != 0);
  unsigned cpus, ioapics, bsp;
  CHECK(2, mp_count(mpf, &cpus, &ioapics, &bsp));
  puts_serial("mptable: cpus=");
  put_hex(cpus);
  puts_serial("\n");
  CHECK(3, cpus == cmdline_u64("expect_cpus", 1));
  CHECK(4, ioapics == 1 && bsp == 1);
  pass();
}
