/* libisola_vmm without KVM: the bus, the boot structures (command line, MP table, e820), and the
 * virtio-mmio transport + virtqueue driven through MMIO accesses the way a guest would, with
 * every hostile input the test guests use and a random-descriptor storm (run under ASan/UBSan
 * in build-asan). */
#include <string.h>

#include "tap.h"
#include "vmm.h"

#define MEM (16u << 20)
#define DESC 0x10000u
#define AVAIL 0x11000u
#define USED 0x12000u
#define BUF 0x20000u
#define ITABLE 0x30000u
#define QSIZE 8

static struct vm *vm;
static struct virtio_mmio *rng;
static uint64_t base;

static void nop_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
  if (!is_write)
    memset(data, 0x42, len);
}

static uint32_t rd(uint32_t off)
{
  uint32_t v;
  bus_dispatch(&vm->mmio, base + off, (uint8_t *) &v, 4, false);
  return v;
}

static void wr(uint32_t off, uint32_t v)
{
  bus_dispatch(&vm->mmio, base + off, (uint8_t *) &v, 4, true);
}

struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};

static struct desc *desc_table(void)
{
  return (struct desc *) (vm->mem + DESC);
}
static uint16_t *avail16(unsigned i)
{
  return (uint16_t *) (vm->mem + AVAIL) + i;
}
static uint16_t used_idx(void)
{
  return *((uint16_t *) (vm->mem + USED) + 1);
}

static bool setup_queue(uint32_t num, uint64_t d, uint64_t a, uint64_t u)
{
  wr(0x70, 0);
  wr(0x70, 3);
  wr(0x24, 1);
  wr(0x20, 1); /* VERSION_1 */
  wr(0x70, 3 | 8);
  wr(0x30, 0);
  wr(0x38, num);
  wr(0x80, (uint32_t) d);
  wr(0x84, (uint32_t) (d >> 32));
  wr(0x90, (uint32_t) a);
  wr(0x94, (uint32_t) (a >> 32));
  wr(0xa0, (uint32_t) u);
  wr(0xa4, (uint32_t) (u >> 32));
  wr(0x44, 1);
  wr(0x70, 3 | 8 | 4);
  return rd(0x44) == 1;
}

static bool fresh_queue(void)
{
  memset(vm->mem + DESC, 0, 0x3000);
  return setup_queue(QSIZE, DESC, AVAIL, USED);
}

static void submit(uint16_t head)
{
  uint16_t idx = *avail16(1);
  *avail16(2 + idx % QSIZE) = head;
  *avail16(1) = (uint16_t) (idx + 1);
  wr(0x50, 0);
  virtio_mmio_notify_for_test(rng, 0);
}

static void test_bus(void)
{
  struct bus b = {0};
  ok(bus_register(&b, 0x1000, 0x100, nop_access, NULL) == 0, "bus: register");
  ok(bus_register(&b, 0x10ff, 1, nop_access, NULL) == -EEXIST, "bus: overlap refused");
  ok(bus_register(&b, UINT64_MAX - 1, 4, nop_access, NULL) == -EINVAL, "bus: wrap refused");
  uint8_t d[8];
  ok(bus_dispatch(&b, 0x10fc, d, 4, false) && d[0] == 0x42, "bus: access at the end");
  ok(!bus_dispatch(&b, 0x10fe, d, 4, false) && d[0] == 0xff, "bus: straddling access unclaimed");
  ok(!bus_dispatch(&b, 0xfff, d, 2, false), "bus: access before the region");
}

static void test_gpa(void)
{
  ok(vm_gpa_ptr(vm, GPA(0), MEM) == vm->mem, "gpa: all of RAM");
  ok(vm_gpa_ptr(vm, GPA(MEM), 0) != NULL, "gpa: empty range at the end");
  ok(!vm_gpa_ptr(vm, GPA(MEM), 1), "gpa: one byte past the end");
  ok(!vm_gpa_ptr(vm, GPA(MEM - 8), 16), "gpa: straddling the end");
  ok(!vm_gpa_ptr(vm, GPA(UINT64_MAX - 8), 16), "gpa: wrapping around");
  ok(!vm_gpa_ptr(vm, GPA(8), UINT64_MAX), "gpa: huge length");
}

static void test_boot(void)
{
  _cleanup_free_ char *cl = NULL;
  _cleanup_error_ struct isola_error *err = NULL;
  ok(boot_cmdline(vm, "console=ttyS0", &cl, &err) == 0, "cmdline built");
  ok(cl && strstr(cl, "console=ttyS0 panic=-1") && strstr(cl, "virtio_mmio.device=4K@0xd0000000:5"),
     "cmdline: user's, panic=-1, the device: %s", cl ? cl : "");
  ok(cl && !strstr(cl, "isola.pvm"), "cmdline: no host workarounds on real KVM");
  free(cl);
  cl = NULL;
  vm->pvm_host = true;
  ok(boot_cmdline(vm, "panic=5", &cl, &err) == 0 && strstr(cl, "panic=5 noxsave") &&
         strstr(cl, "isola.pvm=1") && !strstr(cl, "panic=-1"),
     "cmdline: kvm_pvm workarounds, the user's panic= kept: %s", cl ? cl : "");
  vm->pvm_host = false;
  char big[VM_CMDLINE_MAX + 10];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  free(cl);
  cl = NULL;
  ok(boot_cmdline(vm, big, &cl, &err) == -E2BIG, "cmdline: too long refused");
  isola_error_free(&err);

  struct boot_info bi = {.protocol = BOOT_PVH, .entry = GPA(0x100000)};
  ok(boot_setup(vm, &bi, "x", &err) == 0, "boot_setup (PVH) without vCPUs");
  const uint8_t *si = vm->mem + VM_BOOT_INFO_ADDR;
  uint32_t magic, n;
  uint64_t map;
  memcpy(&magic, si, 4);
  memcpy(&map, si + 40, 8);
  memcpy(&n, si + 48, 4);
  ok(magic == 0x336ec578 && n == 3 && map > VM_BOOT_INFO_ADDR, "PVH start info and memmap");
  const uint8_t *mpf = vm->mem + VM_MPTABLE_ADDR;
  uint8_t sum = 0;
  for (int i = 0; i < 16; i++)
    sum = (uint8_t) (sum + mpf[i]);
  ok(memcmp(mpf, "_MP_", 4) == 0 && sum == 0, "MP floating pointer and checksum");
  uint32_t cfg;
  uint16_t len, count;
  memcpy(&cfg, mpf + 4, 4);
  memcpy(&len, vm->mem + cfg + 4, 2);
  memcpy(&count, vm->mem + cfg + 34, 2);
  sum = 0;
  for (unsigned i = 0; i < len; i++)
    sum = (uint8_t) (sum + vm->mem[cfg + i]);
  unsigned cpus = 0;
  const uint8_t *e = vm->mem + cfg + 44;
  for (unsigned i = 0; i < count; i++) {
    cpus += e[0] == 0;
    e += e[0] == 0 ? 20 : 8;
  }
  ok(memcmp(vm->mem + cfg, "PCMP", 4) == 0 && sum == 0 && cpus == vm->ncpus &&
         e == vm->mem + cfg + len,
     "MP config table: checksum, %u processors, entries fill it", cpus);
  bi.protocol = BOOT_LINUX;
  ok(boot_setup(vm, &bi, "y", &err) == 0, "boot_setup (Linux) without vCPUs");
  const uint8_t *bp = vm->mem + VM_BOOT_INFO_ADDR;
  uint64_t ram2_end, ram2_start, ram2_size;
  memcpy(&ram2_start, bp + 0x2d0 + 40, 8);
  memcpy(&ram2_size, bp + 0x2d0 + 48, 8);
  ram2_end = ram2_start + ram2_size;
  ok(bp[0x1e8] == 3 && ram2_end == MEM && memcmp(bp + 0x202, "HdrS", 4) == 0,
     "boot_params: HdrS, e820 up to the end of RAM");
}

static void test_virtio_good(void)
{
  ok(rd(0) == 0x74726976 && rd(4) == 2 && rd(8) == 4, "virtio-mmio: magic, version 2, rng");
  wr(0x14, 1);
  ok(rd(0x10) & 1, "virtio-mmio: offers VERSION_1");
  ok(fresh_queue(), "queue ready");
  desc_table()[0] = (struct desc){BUF, 64, 2, 0};
  memset(vm->mem + BUF, 0, 64);
  submit(0);
  uint32_t len;
  memcpy(&len, vm->mem + USED + 8, 4);
  bool nz = false;
  for (int i = 0; i < 64; i++)
    nz |= vm->mem[BUF + i] != 0;
  ok(used_idx() == 1 && len == 64 && nz, "rng: 64 random bytes");
  ok(rd(0x60) & 1, "interrupt status: used buffer");
  wr(0x64, 1);
  ok(!(rd(0x60) & 1), "interrupt acknowledged");
  /* Indirect: two writable buffers. */
  struct desc *it = (struct desc *) (vm->mem + ITABLE);
  it[0] = (struct desc){BUF, 16, 2 | 1, 1};
  it[1] = (struct desc){BUF + 16, 16, 2, 0};
  desc_table()[1] = (struct desc){ITABLE, 32, 4, 0};
  submit(1);
  memcpy(&len, vm->mem + USED + 16, 4);
  ok(used_idx() == 2 && len == 32, "rng: indirect table of two");
  ok(!(rd(0x70) & 0x40), "no NEEDS_RESET after good requests");
}

struct scenario {
  const char *what;
  struct desc d[2];
  struct desc it[2];
  uint16_t avail_jump;
  uint16_t head;
};

static void test_virtio_hostile(void)
{
  const uint64_t top = MEM;
  const struct scenario sc[] = {
      {"loop of two", {{BUF, 16, 3, 1}, {BUF, 16, 3, 0}}, {{0}}, 0, 0},
      {"self loop", {{BUF, 16, 3, 0}}, {{0}}, 0, 0},
      {"buffer outside RAM", {{0xfffff000000ull, 16, 2, 0}}, {{0}}, 0, 0},
      {"buffer straddling the end", {{top - 8, 16, 2, 0}}, {{0}}, 0, 0},
      {"addr+len overflow", {{0xfffffffffffffff0ull, 0x20, 2, 0}}, {{0}}, 0, 0},
      {"huge length", {{BUF, 0xffffffffu, 2, 0}}, {{0}}, 0, 0},
      {"next past the queue", {{BUF, 16, 3, 200}}, {{0}}, 0, 0},
      {"readable after writable", {{BUF, 16, 3, 1}, {BUF, 16, 0, 0}}, {{0}}, 0, 0},
      {"indirect loop", {{ITABLE, 32, 4, 0}}, {{BUF, 16, 3, 1}, {BUF, 16, 3, 0}}, 0, 0},
      {"nested indirect", {{ITABLE, 32, 4, 0}}, {{ITABLE, 32, 4, 0}}, 0, 0},
      {"indirect length 17", {{ITABLE, 17, 4, 0}}, {{BUF, 16, 2, 0}}, 0, 0},
      {"indirect outside RAM", {{0xffffffff000ull, 64, 4, 0}}, {{0}}, 0, 0},
      {"indirect huge", {{ITABLE, 0xfffffff0u, 4, 0}}, {{0}}, 0, 0},
      {"indirect with NEXT", {{ITABLE, 16, 4 | 1, 1}, {BUF, 16, 2, 0}}, {{BUF, 16, 2, 0}}, 0, 0},
      {"avail idx jump", {{BUF, 16, 2, 0}}, {{0}}, 100, 0},
      {"head past the queue", {{BUF, 16, 2, 0}}, {{0}}, 0, 300},
  };
  for (size_t i = 0; i < ARRAY_SIZE(sc); i++) {
    bool ready = fresh_queue();
    memcpy(desc_table(), sc[i].d, sizeof(sc[i].d));
    memcpy(vm->mem + ITABLE, sc[i].it, sizeof(sc[i].it));
    if (sc[i].avail_jump) {
      *avail16(1) = sc[i].avail_jump;
      wr(0x50, 0);
      virtio_mmio_notify_for_test(rng, 0);
    } else {
      submit(sc[i].head);
    }
    ok(ready && (rd(0x70) & 0x40) && used_idx() == 0, "hostile: %s → NEEDS_RESET, nothing used",
       sc[i].what);
    /* Further notifies are ignored until the driver resets. */
    wr(0x50, 0);
    virtio_mmio_notify_for_test(rng, 0);
  }
  static const struct {
    const char *what;
    uint32_t num;
    uint64_t d, a, u;
  } q[] = {
      {"size 0", 0, DESC, AVAIL, USED},
      {"size 3", 3, DESC, AVAIL, USED},
      {"size 4096 > max", 4096, DESC, AVAIL, USED},
      {"size 0x10008", 0x10008, DESC, AVAIL, USED},
      {"desc outside RAM", QSIZE, 0xfffff0000000ull, AVAIL, USED},
      {"avail at the end of RAM", QSIZE, DESC, MEM - 4, USED},
      {"used wrapping", QSIZE, DESC, AVAIL, UINT64_MAX - 3},
      {"desc misaligned", QSIZE, DESC + 8, AVAIL, USED},
  };
  for (size_t i = 0; i < ARRAY_SIZE(q); i++)
    ok(!setup_queue(q[i].num, q[i].d, q[i].a, q[i].u), "queue refused: %s", q[i].what);
  /* Odd accesses: byte-wide registers, config space, an unknown queue. */
  uint8_t b = 0xff;
  bus_dispatch(&vm->mmio, base + 0x70, &b, 1, true);
  bus_dispatch(&vm->mmio, base + 0x0, &b, 1, false);
  ok(b == 0, "byte access to a register reads 0");
  ok(rd(0x100) == 0 && rd(0xffc) == 0, "empty config space reads 0");
  wr(0x30, 5);
  ok(rd(0x34) == 0, "no queue 5");
  wr(0x50, 7);
  /* Features not offered are refused. */
  wr(0x70, 0);
  wr(0x70, 3);
  wr(0x24, 0);
  wr(0x20, 1);
  wr(0x24, 1);
  wr(0x20, 1);
  wr(0x70, 3 | 8);
  ok(!(rd(0x70) & 8), "FEATURES_OK refused for an unoffered feature");
  ok(fresh_queue(), "the device works again after a reset");
}

/* Random descriptors and ring indices: every pop either fails cleanly or yields buffers that
 * lie in guest RAM. */
static void test_virtq_storm(void)
{
  struct virtq q = {0};
  static struct virtq_chain chain;
  unsigned long seed = 12345;
  unsigned good = 0, broken = 0, bad_iov = 0;
  for (int round = 0; round < 20000; round++) {
    uint8_t *raw = vm->mem + DESC;
    for (unsigned i = 0; i < 0x3000; i++) {
      seed = seed * 6364136223846793005ul + 1442695040888963407ul;
      raw[i] = (uint8_t) (seed >> 33);
    }
    struct desc *d = desc_table();
    for (unsigned i = 0; i < 64; i++) { /* mostly plausible addresses, sometimes not */
      seed = seed * 6364136223846793005ul + 1442695040888963407ul;
      if ((seed >> 40) & 3)
        d[i].addr = (seed >> 20) % (MEM + 4096);
      if ((seed >> 44) & 1)
        d[i].len = (uint32_t) ((seed >> 24) & 0xfff);
      if ((seed >> 45) & 3)
        d[i].next = (uint16_t) (d[i].next % 70);
      if ((seed >> 47) & 1)
        d[i].flags &= 7;
      if (((seed >> 46) & 7) == 0)
        d[i] = (struct desc){ITABLE + ((seed >> 50) & 0xff) * 16, 16u * ((seed >> 30) & 7), 4, 0};
    }
    for (unsigned i = 0; i < 64; i++) /* heads mostly in range */
      if (i % 8)
        *avail16(2 + i) %= 64;
    virtq_reset(&q);
    q.vm = vm;
    if (!virtq_setup(&q, vm, 64, 64, GPA(DESC), GPA(AVAIL), GPA(USED)))
      continue;
    q.last_avail = (uint16_t) (*avail16(1) - (round % 70));
    for (int k = 0; k < 8; k++) {
      int r = virtq_pop(&q, &chain);
      if (r <= 0) {
        broken += r < 0;
        break;
      }
      good++;
      for (unsigned i = 0; i < chain.nr_out + chain.nr_in; i++) {
        uint8_t *p = chain.iov[i].iov_base;
        if (p < vm->mem || (uint64_t) (p - vm->mem) + chain.iov[i].iov_len > MEM)
          bad_iov++;
      }
      virtq_push_used(&q, chain.head, 0);
    }
  }
  ok(bad_iov == 0 && broken > 0, "storm: %u chains popped, %u broken queues, every buffer in RAM",
     good, broken);
}

int main(void)
{
  _cleanup_error_ struct isola_error *err = NULL;
  test_bus();
  ok(vm_create(&vm, 0, 1, &err) < 0 && strstr(err->msg, "out of range"), "memory 0 refused");
  isola_error_free(&err);
  ok(vm_create(&vm, 1ull << 40, 1, &err) < 0, "1 TiB refused");
  isola_error_free(&err);
  ok(vm_create(&vm, MEM, 0, &err) < 0, "0 vCPUs refused");
  isola_error_free(&err);
  ok(vm_create(&vm, MEM, 4, &err) == 0, "vm_create without KVM");
  test_gpa();
  isola_error_free(&err);
  ok(virtio_rng_create(vm, &err) == 0, "virtio-rng without KVM");
  rng = vm->virtio[0];
  uint32_t size;
  unsigned gsi;
  virtio_mmio_describe(rng, &base, &size, &gsi);
  ok(base == VM_MMIO_BASE && gsi == VM_IRQ_FIRST, "device at 0x%llx, GSI %u",
     (unsigned long long) base, gsi);
  test_boot();
  test_virtio_good();
  test_virtio_hostile();
  test_virtq_storm();
  vm_destroy(vm);
  done_testing();
}
