/* mptable.c — an Intel MultiProcessor Specification 1.4 table, so that a kernel without ACPI
 * finds every vCPU and the IOAPIC: the floating pointer at VM_MPTABLE_ADDR (the last KiB of
 * base memory, where Linux looks), the configuration table right after it. */
#include <string.h>

#include "vmm.h"

#define MP_PROCESSOR 0
#define MP_BUS 1
#define MP_IOAPIC 2
#define MP_INTSRC 3
#define MP_LINTSRC 4
#define MP_IRQ_INT 0
#define MP_IRQ_NMI 1
#define MP_IRQ_EXTINT 3
#define MP_TABLE_END 0x100000ull /* the reserved e820 range ends there */

static uint8_t checksum(const uint8_t *p, size_t len)
{
  uint8_t sum = 0;
  for (size_t i = 0; i < len; i++)
    sum = (uint8_t) (sum + p[i]);
  return (uint8_t) -sum;
}

int mptable_write(struct vm *vm, struct isola_error **err)
{
  unsigned nirq = VM_IRQ_LAST + 1;
  size_t size = 16 + 44 + 20 * vm->ncpus + 8 + 8 + 8 * nirq + 8 * 2;
  uint8_t *base = vm_gpa_ptr(vm, GPA(VM_MPTABLE_ADDR), size);
  if (!base || VM_MPTABLE_ADDR + size > MP_TABLE_END)
    return isola_failx(err, E2BIG, "the MP table for %u vCPUs does not fit", vm->ncpus);
  memset(base, 0, size);
  uint8_t *mpf = base, *cfg = base + 16, *e = cfg + 44;
  uint8_t ioapic_id = (uint8_t) vm->ncpus;
  uint16_t count = 0;

  for (unsigned i = 0; i < vm->ncpus; i++, e += 20, count++) {
    e[0] = MP_PROCESSOR;
    e[1] = (uint8_t) i;                 /* local APIC id */
    e[2] = 0x14;                        /* local APIC version */
    e[3] = 1 | (i == 0 ? 2 : 0);        /* enabled, BSP */
    uint32_t sig = 0x600, feat = 0x201; /* family 6; FPU, APIC */
    memcpy(e + 4, &sig, 4);
    memcpy(e + 8, &feat, 4);
  }
  e[0] = MP_BUS;
  memcpy(e + 2, "ISA   ", 6);
  e += 8, count++;
  e[0] = MP_IOAPIC;
  e[1] = ioapic_id;
  e[2] = 0x11; /* version */
  e[3] = 1;    /* enabled */
  uint32_t ioapic_addr = (uint32_t) VM_IOAPIC_BASE;
  memcpy(e + 4, &ioapic_addr, 4);
  e += 8, count++;
  for (unsigned irq = 0; irq < nirq; irq++, e += 8, count++) {
    /* ISA IRQ n → IOAPIC pin n, bus-default polarity and trigger (active high, edge). */
    e[0] = MP_INTSRC;
    e[1] = MP_IRQ_INT;
    e[4] = 0; /* source bus: ISA */
    e[5] = (uint8_t) irq;
    e[6] = ioapic_id;
    e[7] = (uint8_t) irq;
  }
  for (unsigned lint = 0; lint < 2; lint++, e += 8, count++) {
    e[0] = MP_LINTSRC;
    e[1] = lint == 0 ? MP_IRQ_EXTINT : MP_IRQ_NMI;
    e[6] = 0xff; /* every local APIC */
    e[7] = (uint8_t) lint;
  }

  uint16_t cfg_len = (uint16_t) (e - cfg);
  memcpy(cfg, "PCMP", 4);
  memcpy(cfg + 4, &cfg_len, 2);
  cfg[6] = 4; /* spec revision 1.4 */
  memcpy(cfg + 8, "ISOLA   ", 8);
  memcpy(cfg + 16, "ISOLA-VMM   ", 12);
  memcpy(cfg + 34, &count, 2);
  uint32_t lapic = (uint32_t) VM_LAPIC_BASE;
  memcpy(cfg + 36, &lapic, 4);
  cfg[7] = checksum(cfg, cfg_len);

  memcpy(mpf, "_MP_", 4);
  uint32_t physptr = (uint32_t) (VM_MPTABLE_ADDR + 16);
  memcpy(mpf + 4, &physptr, 4);
  mpf[8] = 1; /* length in 16-byte units */
  mpf[9] = 4;
  mpf[10] = checksum(mpf, 16);
  return 0;
}
