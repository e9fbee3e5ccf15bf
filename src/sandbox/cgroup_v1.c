/*
 * cgroup v1 control files of a run's group: memory.limit_in_bytes (with
 * memory.memsw.limit_in_bytes, so swap cannot take the overflow), pids.max,
 * and the counters read back from memory, pids and cpuacct.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sandbox/cgroup_internal.h"


static int write_limit(const char *dir, const char *file, uint64_t value, char *reason,
                       size_t reason_len)
{
    char text[32];
    snprintf(text, sizeof(text), "%" PRIu64, value);
    int rc = an__sbx_cgroup_write(dir, file, text);
    if (rc != 0)
        an__sbx_cgroup_format(reason, reason_len, "writing %s to %s/%s failed (%s)", text, dir,
                              file, strerror(rc));
    return rc;
}


int an__sbx_cgroup_v1_setup(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            uint64_t memory_bytes, uint64_t max_pids, char *reason,
                            size_t reason_len)
{
    int rc = 0;
    switch (resource) {
    case AN__CGROUP_MEMORY:
        if (memory_bytes == 0)
            break;
        /* memsw (memory plus swap) must stay at or above the memory limit,
         * so it is lowered second. It is missing on kernels built without
         * swap accounting, where swap is not charged at all. */
        rc = write_limit(group->dir, "memory.limit_in_bytes", memory_bytes, reason, reason_len);
        if (rc == 0) {
            char probe[64];
            if (an__sbx_cgroup_read(group->dir, "memory.memsw.limit_in_bytes", probe,
                                    sizeof(probe)) == 0)
                rc = write_limit(group->dir, "memory.memsw.limit_in_bytes", memory_bytes, reason,
                                 reason_len);
        }
        break;
    case AN__CGROUP_PIDS:
        if (max_pids != 0)
            rc = write_limit(group->dir, "pids.max", max_pids, reason, reason_len);
        break;
    case AN__CGROUP_CPU:
    case AN__CGROUP_RESOURCE_COUNT:
        break;
    }
    return rc;
}


int an__sbx_cgroup_v1_stats(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            an__sbx_cgroup_stats_t *out)
{
    int rc = 0;
    uint64_t usage_ns = 0;

    switch (resource) {
    case AN__CGROUP_MEMORY:
        rc = an__sbx_cgroup_read_u64(group->dir, "memory.max_usage_in_bytes",
                                     &out->peak_memory_bytes);
        /* The oom_kill line exists since Linux 4.13. */
        if (rc == 0)
            rc = an__sbx_cgroup_read_key(group->dir, "memory.oom_control", "oom_kill",
                                         &out->oom_kills);
        out->has_memory = rc == 0;
        break;
    case AN__CGROUP_PIDS:
        rc = an__sbx_cgroup_read_key(group->dir, "pids.events", "max", &out->pids_max_hits);
        out->has_pids = rc == 0;
        break;
    case AN__CGROUP_CPU:
        rc = an__sbx_cgroup_read_u64(group->dir, "cpuacct.usage", &usage_ns);
        if (rc == 0)
            out->cpu_usec = usage_ns / 1000;
        out->has_cpu = rc == 0;
        break;
    case AN__CGROUP_RESOURCE_COUNT:
        break;
    }
    return rc;
}
