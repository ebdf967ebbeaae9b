/* boot.c — the x86-64 boot state: the guest's command line, e820 map, GDT, page tables,
 * boot_params (Linux 64-bit boot protocol, Documentation/arch/x86/boot.rst) or hvm_start_info
 * (the PVH boot ABI), and the boot vCPU's registers. Application processors are left in
 * wait-for-SIPI: the guest starts them through its LAPIC. */
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm.h"

#define E820_RAM 1
#define E820_RESERVED 2

/* boot_params offsets (the "zero page"). */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_KERNEL_ALIGNMENT 0x230
#define BP_CMDLINE_SIZE 0x238
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

/* hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h), version 1. */
#define PVH_MAGIC 0x336ec578u
#define PVH_MEMMAP_OFF 0x40 /* memmap right after the 56-byte start info */
#define PVH_MODLIST_OFF 0x200

#define GDT_CODE_SEL 0x10 /* Linux's __BOOT_CS */
#define GDT_DATA_SEL 0x18 /* __BOOT_DS */
#define GDT_TSS_SEL 0x20

/* The boot structures live at fixed low addresses that VM_MEM_MIN always covers. */
static uint8_t *low_ptr(struct vm *vm, uint64_t addr, uint64_t len)
{
  uint8_t *p = vm_gpa_ptr(vm, GPA(addr), len);
  if (!p)
    abort(); /* VM_MEM_MIN guarantees this; a layout change that breaks it is our bug */
  return p;
}

static void put16(uint8_t *p, uint16_t v)
{
  memcpy(p, &v, 2);
}
static void put32(uint8_t *p, uint32_t v)
{
  memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
  memcpy(p, &v, 8);
}

int boot_cmdline(struct vm *vm, const char *user, char **out, struct isola_error **err)
{
  char buf[VM_CMDLINE_MAX];
  size_t len = 0;
  bool overflow = false;
#define APPEND(...)                                                                                \
  do {                                                                                             \
    int _n = snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__);                                  \
    if (_n < 0 || (size_t) _n >= sizeof(buf) - len)                                                \
      overflow = true;                                                                             \
    else                                                                                           \
      len += (size_t) _n;                                                                          \
  } while (0)
  buf[0] = '\0';
  if (user && *user)
    APPEND("%s", user);
  /* A panic reboots at once (through the i8042 with reboot=k): the monitor reports it. */
  if (!user || !strstr(user, "panic="))
    APPEND("%spanic=-1", len ? " " : "");
  const char *host = host_cmdline_workarounds(vm);
  if (*host)
    APPEND(" %s", host);
  for (unsigned i = 0; i < vm->nvirtio; i++) {
    uint64_t base;
    uint32_t size;
    unsigned gsi;
    virtio_mmio_describe(vm->virtio[i], &base, &size, &gsi);
    APPEND(" virtio_mmio.device=%uK@0x%llx:%u", size >> 10, (unsigned long long) base, gsi);
  }
#undef APPEND
  if (overflow)
    return isola_failx(err, E2BIG, "the kernel command line is longer than %u bytes",
                       VM_CMDLINE_MAX - 1);
  *out = xstrdup(buf);
  return 0;
}

struct e820 {
  uint64_t addr, size;
  uint32_t type;
};

static unsigned e820_map(const struct vm *vm, struct e820 *map)
{
  map[0] = (struct e820){0, VM_MPTABLE_ADDR, E820_RAM};
  map[1] = (struct e820){VM_MPTABLE_ADDR, VM_HIMEM_START - VM_MPTABLE_ADDR, E820_RESERVED};
  map[2] = (struct e820){VM_HIMEM_START, vm->mem_size - VM_HIMEM_START, E820_RAM};
  return 3;
}

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
  return ((uint64_t) (base & 0xff000000u) << 32) | ((uint64_t) (flags & 0xf0ff) << 40) |
         ((uint64_t) (limit & 0xf0000u) << 32) | ((uint64_t) (base & 0xffffffu) << 16) |
         (limit & 0xffffu);
}

static struct kvm_segment segment_from_gdt(uint64_t e, uint16_t sel)
{
  uint32_t limit = (uint32_t) ((e & 0xffff) | ((e >> 32) & 0xf0000));
  struct kvm_segment s = {
      .base = ((e >> 16) & 0xffffff) | ((e >> 32) & 0xff000000),
      .selector = sel,
      .type = (e >> 40) & 0xf,
      .present = (e >> 47) & 1,
      .dpl = (e >> 45) & 3,
      .db = (e >> 54) & 1,
      .s = (e >> 44) & 1,
      .l = (e >> 53) & 1,
      .g = (e >> 55) & 1,
  };
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.unusable = !s.present;
  return s;
}

static void write_page_tables(struct vm *vm)
{
  /* Identity map of the low 4 GiB with 2 MiB pages: RAM, the MMIO window, the APICs. */
  uint8_t *pml4 = low_ptr(vm, VM_PML4_ADDR, 6 * 4096);
  memset(pml4, 0, 6 * 4096);
  uint8_t *pdpt = pml4 + 4096;
  put64(pml4, (VM_PML4_ADDR + 4096) | 3);
  for (uint64_t i = 0; i < 4; i++) {
    uint8_t *pd = pml4 + (2 + i) * 4096;
    put64(pdpt + i * 8, (VM_PML4_ADDR + (2 + i) * 4096) | 3);
    for (uint64_t j = 0; j < 512; j++)
      put64(pd + j * 8, ((i * 512 + j) << 21) | 0x83); /* present, writable, 2 MiB */
  }
}

static void write_boot_params(struct vm *vm, const struct boot_info *bi, size_t cmdline_len,
                              const struct e820 *map, unsigned n)
{
  uint8_t *bp = low_ptr(vm, VM_BOOT_INFO_ADDR, 4096);
  memset(bp, 0, 4096);
  put16(bp + BP_BOOT_FLAG, 0xaa55);
  put32(bp + BP_HEADER, 0x53726448); /* "HdrS" */
  put16(bp + BP_VERSION, 0x020f);
  bp[BP_TYPE_OF_LOADER] = 0xff; /* undefined loader */
  bp[BP_LOADFLAGS] = 0x01;      /* LOADED_HIGH */
  put32(bp + BP_KERNEL_ALIGNMENT, 0x200000);
  put32(bp + BP_CMD_LINE_PTR, (uint32_t) VM_CMDLINE_ADDR);
  put32(bp + BP_EXT_CMD_LINE_PTR, 0);
  put32(bp + BP_CMDLINE_SIZE, (uint32_t) cmdline_len);
  if (bi->initrd_size) {
    put32(bp + BP_RAMDISK_IMAGE, (uint32_t) bi->initrd.v);
    put32(bp + BP_RAMDISK_SIZE, (uint32_t) bi->initrd_size);
    put32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t) (bi->initrd.v >> 32));
    put32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t) (bi->initrd_size >> 32));
  }
  bp[BP_E820_ENTRIES] = (uint8_t) n;
  for (unsigned i = 0; i < n && i < BP_E820_MAX; i++) {
    uint8_t *e = bp + BP_E820_TABLE + i * 20;
    put64(e, map[i].addr);
    put64(e + 8, map[i].size);
    put32(e + 16, map[i].type);
  }
}

static void write_start_info(struct vm *vm, const struct boot_info *bi, const struct e820 *map,
                             unsigned n)
{
  uint8_t *si = low_ptr(vm, VM_BOOT_INFO_ADDR, 4096);
  memset(si, 0, 4096);
  put32(si + 0, PVH_MAGIC);
  put32(si + 4, 1); /* version */
  put32(si + 8, 0); /* flags */
  put64(si + 24, VM_CMDLINE_ADDR);
  put64(si + 32, 0); /* rsdp: no ACPI */
  put64(si + 40, VM_BOOT_INFO_ADDR + PVH_MEMMAP_OFF);
  put32(si + 48, n);
  for (unsigned i = 0; i < n; i++) {
    uint8_t *e = si + PVH_MEMMAP_OFF + i * 24;
    put64(e, map[i].addr);
    put64(e + 8, map[i].size);
    put32(e + 16, map[i].type);
  }
  if (bi->initrd_size) {
    uint8_t *m = si + PVH_MODLIST_OFF;
    put64(m, bi->initrd.v);
    put64(m + 8, bi->initrd_size);
    put32(si + 12, 1); /* nr_modules */
    put64(si + 16, VM_BOOT_INFO_ADDR + PVH_MODLIST_OFF);
  }
}

int boot_setup(struct vm *vm, const struct boot_info *bi, const char *cmdline,
               struct isola_error **err)
{
  size_t cmdline_len = strlen(cmdline);
  if (cmdline_len >= VM_CMDLINE_MAX)
    return isola_failx(err, E2BIG, "the kernel command line is longer than %u bytes",
                       VM_CMDLINE_MAX - 1);
  memcpy(low_ptr(vm, VM_CMDLINE_ADDR, VM_CMDLINE_MAX), cmdline, cmdline_len + 1);

  struct e820 map[3];
  unsigned n = e820_map(vm, map);
  bool linux64 = bi->protocol == BOOT_LINUX;
  uint64_t gdt[5] = {
      0,
      0,
      gdt_entry(linux64 ? 0xa09b : 0xc09b, 0, 0xfffff), /* code: 64-bit or 32-bit flat */
      gdt_entry(0xc093, 0, 0xfffff),                    /* data: flat */
      gdt_entry(0x008b, 0, 0x67),                       /* a busy 32-bit TSS */
  };
  memcpy(low_ptr(vm, VM_GDT_ADDR, sizeof(gdt)), gdt, sizeof(gdt));
  if (linux64) {
    write_page_tables(vm);
    write_boot_params(vm, bi, cmdline_len, map, n);
  } else {
    write_start_info(vm, bi, map, n);
  }
  int r = mptable_write(vm, err);
  if (r < 0)
    return r;

  if (vm->vm_fd < 0)
    return 0; /* no vCPUs (unit tests of the boot structures) */
  struct vcpu *bsp = &vm->vcpus[0];
  struct kvm_sregs sregs;
  if (ioctl(bsp->fd, KVM_GET_SREGS, &sregs) < 0)
    return isola_fail(err, errno, "KVM_GET_SREGS");
  sregs.gdt.base = VM_GDT_ADDR;
  sregs.gdt.limit = sizeof(gdt) - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cs = segment_from_gdt(gdt[2], GDT_CODE_SEL);
  struct kvm_segment data = segment_from_gdt(gdt[3], GDT_DATA_SEL);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = segment_from_gdt(gdt[4], GDT_TSS_SEL);
  if (linux64) {
    sregs.cr3 = VM_PML4_ADDR;
    sregs.cr4 = 0x20;       /* PAE */
    sregs.cr0 = 0x80050033; /* PG, AM, WP, NE, ET, MP, PE */
    sregs.efer = 0x500;     /* LME, LMA */
  } else {
    sregs.cr0 = 0x11; /* PE, ET: protected mode, paging off */
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
  }
  if (ioctl(bsp->fd, KVM_SET_SREGS, &sregs) < 0)
    return isola_fail(err, errno, "KVM_SET_SREGS");
  struct kvm_regs regs = {.rflags = 2, .rip = bi->entry.v};
  if (linux64)
    regs.rsi = VM_BOOT_INFO_ADDR;
  else
    regs.rbx = VM_BOOT_INFO_ADDR;
  if (ioctl(bsp->fd, KVM_SET_REGS, &regs) < 0)
    return isola_fail(err, errno, "KVM_SET_REGS");
  return 0;
}
