/* loader.c — loads an ELF64 x86-64 kernel (vmlinux or a test guest) and an initrd into guest
 * RAM. The file is outside input: every header field, offset and size is checked against the
 * file and against guest RAM before a byte is copied. */
#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "vmm.h"

#define LOADER_MAX_PHDRS 64
#define LOADER_MAX_NOTES (64u << 10)
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* pread exactly len bytes at off; -EIO on a short file. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
  uint8_t *p = buf;
  while (len) {
    ssize_t n = pread(fd, p, len, (off_t) off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return -EIO;
    p += n;
    off += (uint64_t) n;
    len -= (size_t) n;
  }
  return 0;
}

/* Look for the PVH entry note in one PT_NOTE segment's contents. */
static bool find_pvh_entry(const uint8_t *notes, uint64_t size, uint64_t *entry)
{
  uint64_t off = 0;
  while (size - off >= sizeof(Elf64_Nhdr)) {
    Elf64_Nhdr nh;
    memcpy(&nh, notes + off, sizeof(nh));
    off += sizeof(nh);
    uint64_t namesz = ((uint64_t) nh.n_namesz + 3) & ~3ull;
    uint64_t descsz = ((uint64_t) nh.n_descsz + 3) & ~3ull;
    if (namesz > size - off || descsz > size - off - namesz)
      return false;
    const uint8_t *name = notes + off, *desc = notes + off + namesz;
    if (nh.n_namesz == 4 && memcmp(name, "Xen", 4) == 0 && nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY &&
        nh.n_descsz >= 4) {
      uint32_t e32;
      uint64_t e64 = 0;
      if (nh.n_descsz >= 8) {
        memcpy(&e64, desc, 8);
      } else {
        memcpy(&e32, desc, 4);
        e64 = e32;
      }
      *entry = e64;
      return true;
    }
    off += namesz + descsz;
  }
  return false;
}

int loader_load_kernel(struct vm *vm, const char *path, struct boot_info *bi,
                       struct isola_error **err)
{
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return isola_fail(err, errno, "cannot open kernel \"%s\"", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return isola_fail(err, errno, "cannot stat kernel \"%s\"", path);
  if (!S_ISREG(st.st_mode))
    return isola_failx(err, EINVAL, "kernel \"%s\" is not a regular file", path);
  uint64_t fsize = (uint64_t) st.st_size;

  Elf64_Ehdr eh;
  if (fsize < sizeof(eh) || pread_full(fd, &eh, sizeof(eh), 0) < 0 ||
      memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return isola_failx(err, ENOEXEC, "kernel \"%s\" is not an ELF file", path);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64)
    return isola_failx(err, ENOEXEC, "kernel \"%s\" is not a little-endian x86-64 ELF64 file",
                       path);
  if (eh.e_type != ET_EXEC)
    return isola_failx(err, ENOEXEC, "kernel \"%s\" is not an ELF executable (e_type %u)", path,
                       eh.e_type);
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > LOADER_MAX_PHDRS)
    return isola_failx(err, ENOEXEC,
                       "kernel \"%s\": bad program header table (%u entries of %u bytes)", path,
                       eh.e_phnum, eh.e_phentsize);
  uint64_t ph_size = (uint64_t) eh.e_phnum * sizeof(Elf64_Phdr);
  if (eh.e_phoff > fsize || ph_size > fsize - eh.e_phoff)
    return isola_failx(err, ENOEXEC, "kernel \"%s\" is truncated: program headers past the end",
                       path);
  Elf64_Phdr ph[LOADER_MAX_PHDRS];
  if (pread_full(fd, ph, ph_size, eh.e_phoff) < 0)
    return isola_failx(err, ENOEXEC, "kernel \"%s\": cannot read program headers", path);

  uint64_t lo = UINT64_MAX, hi = 0, pvh_entry = 0;
  bool pvh = false;
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    const Elf64_Phdr *p = &ph[i];
    if (p->p_type != PT_LOAD && p->p_type != PT_NOTE)
      continue;
    if (p->p_offset > fsize || p->p_filesz > fsize - p->p_offset)
      return isola_failx(err, ENOEXEC,
                         "kernel \"%s\" is truncated: segment %u (offset 0x%llx, "
                         "%llu bytes) goes past the end of the file",
                         path, i, (unsigned long long) p->p_offset,
                         (unsigned long long) p->p_filesz);
    if (p->p_type == PT_NOTE) {
      if (pvh || p->p_filesz == 0 || p->p_filesz > LOADER_MAX_NOTES)
        continue;
      _cleanup_free_ uint8_t *notes = xmalloc(p->p_filesz);
      if (pread_full(fd, notes, p->p_filesz, p->p_offset) < 0)
        return isola_failx(err, ENOEXEC, "kernel \"%s\": cannot read notes", path);
      pvh = find_pvh_entry(notes, p->p_filesz, &pvh_entry);
      continue;
    }
    if (p->p_filesz > p->p_memsz)
      return isola_failx(err, ENOEXEC, "kernel \"%s\": segment %u has more file bytes than memory",
                         path, i);
    uint8_t *dst = vm_gpa_ptr(vm, GPA(p->p_paddr), p->p_memsz);
    if (!dst || p->p_paddr < VM_HIMEM_START)
      return isola_failx(err, ENOEXEC,
                         "kernel \"%s\": segment %u at 0x%llx-0x%llx is outside "
                         "guest memory (0x%llx-0x%llx)",
                         path, i, (unsigned long long) p->p_paddr,
                         (unsigned long long) (p->p_paddr + p->p_memsz),
                         (unsigned long long) VM_HIMEM_START, (unsigned long long) vm->mem_size);
    int r = pread_full(fd, dst, p->p_filesz, p->p_offset);
    if (r < 0)
      return isola_fail(err, -r, "cannot read kernel \"%s\"", path);
    memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
    if (p->p_paddr < lo)
      lo = p->p_paddr;
    if (p->p_paddr + p->p_memsz > hi)
      hi = p->p_paddr + p->p_memsz;
  }
  if (hi == 0)
    return isola_failx(err, ENOEXEC, "kernel \"%s\" has no loadable segment", path);
  bi->protocol = pvh ? BOOT_PVH : BOOT_LINUX;
  bi->entry = GPA(pvh ? pvh_entry : eh.e_entry);
  bi->kernel_start = GPA(lo);
  bi->kernel_end = GPA(hi);
  if (bi->entry.v < lo || bi->entry.v >= hi)
    return isola_failx(err, ENOEXEC,
                       "kernel \"%s\": %s entry point 0x%llx is outside its "
                       "segments",
                       path, pvh ? "PVH" : "ELF", (unsigned long long) bi->entry.v);
  return 0;
}

int loader_load_initrd(struct vm *vm, const char *path, struct boot_info *bi,
                       struct isola_error **err)
{
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return isola_fail(err, errno, "cannot open initrd \"%s\"", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return isola_fail(err, errno, "cannot stat initrd \"%s\"", path);
  if (!S_ISREG(st.st_mode))
    return isola_failx(err, EINVAL, "initrd \"%s\" is not a regular file", path);
  uint64_t size = (uint64_t) st.st_size;
  uint64_t room = vm->mem_size - bi->kernel_end.v;
  if (size == 0 || size > room)
    return isola_failx(err, EFBIG,
                       "initrd \"%s\" (%llu bytes) does not fit in guest memory above "
                       "the kernel (%llu bytes free)",
                       path, (unsigned long long) size, (unsigned long long) room);
  uint64_t at = (vm->mem_size - size) & ~0xfffull;
  if (at < bi->kernel_end.v)
    return isola_failx(err, EFBIG, "initrd \"%s\" does not fit in guest memory", path);
  uint8_t *dst = vm_gpa_ptr(vm, GPA(at), size);
  if (!dst)
    return isola_failx(err, EFBIG, "initrd \"%s\" does not fit in guest memory", path);
  int r = pread_full(fd, dst, size, 0);
  if (r < 0)
    return isola_fail(err, -r, "cannot read initrd \"%s\"", path);
  bi->initrd = GPA(at);
  bi->initrd_size = size;
  return 0;
}
