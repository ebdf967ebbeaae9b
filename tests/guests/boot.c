/* Entry state (built twice: boot_pvh with the PVH note, boot_linux without). PVH: 32-bit
 * protected mode with paging off, ebx → hvm_start_info (magic, version 1, memory map,
 * cmdline). Linux: long mode, rsi → boot_params ("HdrS", 0xaa55, e820, cmdline). Both: the RAM
 * the map reports ends at expect_mem MiB and interrupts are off. */
#include "guest.h"

void guest_main(void)
{
  uint64_t expect_mem = cmdline_u64("expect_mem", 0) << 20;
  CHECK(1, expect_mem != 0); /* the cmdline made it */
  CHECK(2, !(entry_flags & 0x200));
  if (boot_protocol == 1) {
    CHECK(3, cmdline_u64("expect_pvh", 0) == 1);
    CHECK(4, (entry_cr0 & 1) && !(entry_cr0 & 0x80000000u)); /* PE, no paging */
    CHECK(5, boot_arg != 0 && boot_arg < 0x100000);
    CHECK(6, *(volatile uint32_t *) boot_arg == 0x336ec578u);
    CHECK(7, *(volatile uint32_t *) (boot_arg + 4) >= 1);
    CHECK(8, *(volatile uint32_t *) (boot_arg + 48) >= 2); /* memmap entries */
  } else {
    CHECK(9, boot_protocol == 2 && cmdline_u64("expect_pvh", 0) == 0);
    CHECK(10, (entry_cr0 & 0x80000001u) == 0x80000001u);
    CHECK(11, boot_arg != 0 && boot_arg < 0x100000);
    CHECK(12, *(volatile uint16_t *) (boot_arg + 0x1fe) == 0xaa55);
    CHECK(13, *(volatile uint32_t *) (boot_arg + 0x202) == 0x53726448);
    CHECK(14, *(volatile uint8_t *) (boot_arg + 0x1e8) >= 2);
  }
  CHECK(15, ram_top() == expect_mem);
  puts_serial("boot: ");
  puts_serial(boot_protocol == 1 ? "pvh" : "linux");
  puts_serial(" ram_top=");
  put_hex(ram_top());
  puts_serial(" cmdline=");
  puts_serial(cmdline());
  puts_serial("\n");
  pass();
}
