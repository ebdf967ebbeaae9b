/* SMP: start every AP the MP table lists with INIT-SIPI-SIPI through the (in-kernel) LAPIC;
 * each AP runs the real-mode trampoline at 0x8000 and counts itself in. Passes when all
 * expect_cpus - 1 APs ran. */
#include "mp.h"

#define LAPIC 0xfee00000ull
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310

static void icr_send(uint32_t apic_id, uint32_t lo)
{
  mmio_write32(LAPIC + LAPIC_ICR_HI, apic_id << 24);
  mmio_write32(LAPIC + LAPIC_ICR_LO, lo);
  for (int i = 0; i < 100000 && (mmio_read32(LAPIC + LAPIC_ICR_LO) & (1u << 12)); i++)
    __asm__ volatile("pause"); /* delivery status */
}

static void delay(uint64_t spins)
{
  for (uint64_t i = 0; i < spins; i++)
    __asm__ volatile("pause");
}

void guest_main(void)
{
  unsigned cpus, ioapics, bsp;
  uint64_t mpf = mp_find();
  CHECK(1, mpf && mp_count(mpf, &cpus, &ioapics, &bsp));
  CHECK(2, cpus == cmdline_u64("expect_cpus", 1));
  /* smp_force=N: start N-1 APs whatever the MP table says (to check this guest on other VMMs
   * whose firmware lists fewer CPUs). */
  cpus = (unsigned) cmdline_u64("smp_force", cpus);
  memcpy((void *) AP_TRAMPOLINE, ap_tramp_start, (size_t) (ap_tramp_end - ap_tramp_start));
  volatile uint16_t *counter = (volatile uint16_t *) AP_COUNTER;
  *counter = 0;
  barrier();
  mmio_write32(LAPIC + LAPIC_SVR, mmio_read32(LAPIC + LAPIC_SVR) | 0x100); /* enable */
  for (uint32_t id = 1; id < cpus; id++) {
    icr_send(id, 0x4500); /* INIT, assert */
    delay(10000);
    icr_send(id, 0x4600 | (AP_TRAMPOLINE >> 12)); /* STARTUP */
    delay(1000);
    icr_send(id, 0x4600 | (AP_TRAMPOLINE >> 12));
  }
  bool all = wait_u16(counter, (uint16_t) (cpus - 1), 50000000ull);
  puts_serial("smp: aps=");
  put_hex(*counter);
  puts_serial("\n");
  CHECK(3, all);
  pass();
}
