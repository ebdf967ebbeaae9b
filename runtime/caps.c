/* Capabilities: the five OCI sets, applied with raw capset/prctl (no libcap needed). */
#include "container.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

int caps_prepare_keep(void)
{
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return -errno;
  return 0;
}

int caps_drop_bounding(uint64_t keep, struct isola_error **err)
{
  int last = spec_cap_last();
  for (int c = 0; c <= last; c++) {
    if (keep & (1ULL << c))
      continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      return isola_fail(err, errno, "process.capabilities.bounding: cannot drop %s",
                        spec_cap_name(c));
  }
  return 0;
}

int caps_check_available(const struct oci_caps *caps, struct isola_error **err)
{
  uint64_t wanted = caps->bounding | caps->effective | caps->permitted | caps->inheritable;
  int last = spec_cap_last();
  for (int c = 0; c <= last; c++)
    if ((wanted & (1ULL << c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 0)
      return isola_failx(err, EPERM,
                         "process.capabilities: %s is not in the bounding set isola-runtime "
                         "runs with, so the container cannot have it",
                         spec_cap_name(c));
  return 0;
}

int caps_apply(const struct oci_caps *caps, struct isola_error **err)
{
  int last = spec_cap_last();
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2] = {0};
  for (int i = 0; i < 2; i++) {
    data[i].effective = (uint32_t) (caps->effective >> (32 * i));
    data[i].permitted = (uint32_t) (caps->permitted >> (32 * i));
    data[i].inheritable = (uint32_t) (caps->inheritable >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0)
    return isola_fail(err, errno, "process.capabilities: cannot set capabilities");
  /* Ambient capabilities must be in permitted and inheritable; the kernel checks. */
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return isola_fail(err, errno, "process.capabilities.ambient: cannot clear");
  for (int c = 0; c <= last; c++) {
    if (!(caps->ambient & (1ULL << c)))
      continue;
    /* A capability missing from the inheritable set cannot be ambient; runc warns and goes on,
     * and configs written for it (its default spec among them) rely on that. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0 && errno != EPERM)
      return isola_fail(err, errno, "process.capabilities.ambient: cannot raise %s",
                        spec_cap_name(c));
  }
  return 0;
}
