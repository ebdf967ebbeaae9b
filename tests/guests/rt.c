/* The test guests' runtime (see guest.h). */
#include "guest.h"

#define COM1 0x3f8

void *memset(void *d, int c, size_t n)
{
  uint8_t *p = d;
  while (n--)
    *p++ = (uint8_t) c;
  return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
  uint8_t *p = d;
  const uint8_t *q = s;
  while (n--)
    *p++ = *q++;
  return d;
}

size_t strlen(const char *s)
{
  size_t n = 0;
  while (s[n])
    n++;
  return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (a[i] != b[i])
      return (uint8_t) a[i] - (uint8_t) b[i];
    if (!a[i])
      return 0;
  }
  return 0;
}

void puts_serial(const char *s)
{
  for (; *s; s++) {
    while (!(inb(COM1 + 5) & 0x20))
      ;
    outb(COM1, (uint8_t) *s);
  }
}

void put_hex(uint64_t v)
{
  char buf[19] = "0x";
  for (int i = 0; i < 16; i++)
    buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
  buf[18] = 0;
  puts_serial(buf);
}

void pass(void)
{
  puts_serial("PASS\n");
  for (;;)
    outb(0xf4, VERDICT_PASS);
}

void fail(unsigned n, const char *what)
{
  puts_serial("FAIL ");
  puts_serial(what);
  puts_serial("\n");
  for (;;)
    outb(0xf4, (uint8_t) (VERDICT_FAIL + n));
}

const char *cmdline(void)
{
  uint64_t p = 0;
  if (boot_protocol == 1)
    p = *(volatile uint64_t *) (boot_arg + 24); /* hvm_start_info.cmdline_paddr */
  else if (boot_protocol == 2)
    p = *(volatile uint32_t *) (boot_arg + 0x228); /* boot_params.hdr.cmd_line_ptr */
  return p ? (const char *) p : "";
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
  const char *s = cmdline();
  size_t kl = strlen(key);
  for (; *s; s++) {
    if ((s == cmdline() || s[-1] == ' ') && strncmp(s, key, kl) == 0 && s[kl] == '=') {
      const char *v = s + kl + 1;
      uint64_t n = 0;
      if (v[0] == '0' && v[1] == 'x') {
        for (v += 2;; v++) {
          unsigned d = *v >= '0' && *v <= '9'   ? (unsigned) (*v - '0')
                       : *v >= 'a' && *v <= 'f' ? (unsigned) (*v - 'a' + 10)
                                                : 16;
          if (d > 15)
            break;
          n = n * 16 + d;
        }
      } else {
        for (; *v >= '0' && *v <= '9'; v++)
          n = n * 10 + (uint64_t) (*v - '0');
      }
      return n;
    }
  }
  return def;
}

uint64_t ram_top(void)
{
  uint64_t top = 0;
  if (boot_protocol == 1) {
    uint64_t map = *(volatile uint64_t *) (boot_arg + 40);
    uint32_t n = *(volatile uint32_t *) (boot_arg + 48);
    for (uint32_t i = 0; i < n && i < 128; i++) {
      volatile uint8_t *e = (volatile uint8_t *) (map + 24ull * i);
      uint64_t end = *(volatile uint64_t *) e + *(volatile uint64_t *) (e + 8);
      if (*(volatile uint32_t *) (e + 16) == 1 && end > top)
        top = end;
    }
  } else if (boot_protocol == 2) {
    uint8_t n = *(volatile uint8_t *) (boot_arg + 0x1e8);
    for (uint32_t i = 0; i < n && i < 128; i++) {
      volatile uint8_t *e = (volatile uint8_t *) (boot_arg + 0x2d0 + 20ull * i);
      uint64_t end = *(volatile uint64_t *) e + *(volatile uint64_t *) (e + 8);
      if (*(volatile uint32_t *) (e + 16) == 1 && end > top)
        top = end;
    }
  }
  return top;
}

bool wait_u16(volatile uint16_t *p, uint16_t want, uint64_t spins)
{
  for (uint64_t i = 0; i < spins; i++) {
    if (*p == want)
      return true;
    __asm__ volatile("pause");
  }
  return *p == want;
}
