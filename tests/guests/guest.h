/* The test guests' tiny runtime: port and MMIO access, the serial port, the verdict through
 * the debug-exit port, and what the monitor handed over at boot (cmdline, memory map). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VERDICT_PASS 0x10 /* exit status 33 */
#define VERDICT_FAIL 0x20 /* + n: exit status 65 + 2n */

#define AP_TRAMPOLINE 0x8000
#define AP_COUNTER 0x8800

extern uint64_t boot_arg;      /* ebx (PVH) or rsi (Linux) at entry */
extern uint32_t boot_protocol; /* 1 PVH, 2 Linux 64-bit */
extern uint32_t entry_cr0, entry_flags;
extern uint16_t entry_cs;
extern const uint8_t ap_tramp_start[], ap_tramp_end[];

void guest_main(void);

static inline void outb(uint16_t port, uint8_t v)
{
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint32_t mmio_read32(uint64_t addr)
{
  return *(volatile uint32_t *) addr;
}
static inline void mmio_write32(uint64_t addr, uint32_t v)
{
  *(volatile uint32_t *) addr = v;
}
static inline void barrier(void)
{
  __asm__ volatile("mfence" ::: "memory");
}
static inline uint64_t rdtsc(void)
{
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t) hi << 32) | lo;
}

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

void puts_serial(const char *s);
void put_hex(uint64_t v);
__attribute__((noreturn)) void pass(void);
/* Print "FAIL <what>" and exit with VERDICT_FAIL + n. */
__attribute__((noreturn)) void fail(unsigned n, const char *what);
#define CHECK(n, cond)                                                                             \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      fail((n), #cond);                                                                            \
  } while (0)

/* The command line the monitor passed (PVH start info or boot_params), or "". */
const char *cmdline(void);
/* The value of "key=" on the command line as a number (decimal, or hex with 0x), or def. */
uint64_t cmdline_u64(const char *key, uint64_t def);
/* The end of the highest RAM range in the memory map, 0 if there is none. */
uint64_t ram_top(void);
/* Busy-wait up to about `spins` iterations for *p == want; true if it got there. */
bool wait_u16(volatile uint16_t *p, uint16_t want, uint64_t spins);
