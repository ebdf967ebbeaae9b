/* Small guests selected by "test=" on the command line: ways to end a VM and the UART.
 *   serial  — Linux's 8250 probing (scratch, divisor latch, loopback MSR), then prints a line
 *   reset   — i8042 reset (0xFE to port 0x64): exit status 0
 *   panic   — prints Linux's panic line, then resets: the monitor reports a panic (124)
 *   triple  — an empty IDT and an exception: a triple fault (120)
 *   io      — unknown ports read all ones, CMOS and i8042 status read 0 */
#include "guest.h"

#define COM1 0x3f8

static void serial_test(void)
{
  outb(COM1 + 7, 0x5a);
  CHECK(1, inb(COM1 + 7) == 0x5a);
  outb(COM1 + 3, 0x80); /* DLAB */
  outb(COM1 + 0, 0x01);
  outb(COM1 + 1, 0x00);
  CHECK(2, inb(COM1 + 0) == 0x01 && inb(COM1 + 1) == 0x00);
  outb(COM1 + 3, 0x03); /* 8N1 */
  CHECK(3, inb(COM1 + 3) == 0x03);
  outb(COM1 + 4, 0x10 | 0x0a); /* loopback, OUT2, RTS */
  CHECK(4, (inb(COM1 + 6) & 0xf0) == 0x90);
  outb(COM1 + 4, 0x0b);
  CHECK(5, (inb(COM1 + 5) & 0x60) == 0x60);
  CHECK(6, inb(COM1 + 2) & 0x01); /* no interrupt pending */
  outb(COM1 + 1, 0x02);           /* THRI */
  CHECK(7, (inb(COM1 + 2) & 0x0f) == 0x02);
  outb(COM1 + 1, 0x00);
  puts_serial("serial: hello from the guest\n");
  pass();
}

void guest_main(void)
{
  uint64_t t = cmdline_u64("test", 0);
  switch (t) {
  case 1:
    serial_test();
    break;
  case 2:
    outb(0x64, 0xfe);
    break;
  case 3:
    puts_serial("Kernel panic - not syncing: test guest\n");
    outb(0x64, 0xfe);
    break;
  case 4: {
    struct {
      uint16_t limit;
      uint64_t base;
    } __attribute__((packed)) idt = {0, 0};
    __asm__ volatile("lidt %0; ud2" : : "m"(idt));
    break;
  }
  case 5:
    CHECK(10, inb(0x2f8) == 0xff);
    CHECK(11, inb(0x71) == 0 && inb(0x64) == 0);
    CHECK(12, inb(0xcfc) == 0xff);
    pass();
  default:
    break;
  }
  fail(15, "not stopped");
}
