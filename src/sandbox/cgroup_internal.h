/*
 * Internals of the per-run cgroups, shared by cgroup.c (open, attach,
 * signals, close), cgroup_find.c (which hierarchies exist and where the
 * supervisor's own groups are), cgroup_file.c (reading and writing control
 * files), cgroup_v1.c and cgroup_v2.c (each version's control files).
 *
 * Discovery is split from the live calls so tests can feed it mountinfo and
 * /proc/self/cgroup text and a directory standing in for "/".
 */
#ifndef AGENTNET_SANDBOX_CGROUP_INTERNAL_H
#define AGENTNET_SANDBOX_CGROUP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agentnet/common.h"
#include "sandbox/cgroup.h"

#define AN__CGROUP_PATH_MAX 512
#define AN__CGROUP_NOTE_MAX 512

/* Name of the group, below the supervisor's own, that contains every run's group. */
#define AN__CGROUP_BASE_NAME "agentnet-sandbox"

/* The resources a run's groups enforce or measure, in the order notes list them. */
typedef enum {
    AN__CGROUP_MEMORY,
    AN__CGROUP_PIDS,
    AN__CGROUP_CPU,
    AN__CGROUP_RESOURCE_COUNT
} an__sbx_cgroup_resource_t;

/* One mounted hierarchy and the supervisor's own group in it. */
typedef struct {
    int version;                         /* 0 = unusable or not mounted, else 1 or 2 */
    char mount_dir[AN__CGROUP_PATH_MAX]; /* mount point, below the layout's root */
    char own_dir[AN__CGROUP_PATH_MAX];   /* the supervisor's own group in it */
    char problem[AN__CGROUP_NOTE_MAX];   /* why a mounted hierarchy is unusable, or "" */
} an__sbx_cgroup_hierarchy_t;

/*
 * The hierarchies a run can use: the v2 one, and for each resource the v1
 * hierarchy carrying its controller (memory, pids, cpuacct). Two resources
 * share an entry's directories when their controllers are mounted together.
 */
typedef struct {
    an__sbx_cgroup_hierarchy_t v2;
    an__sbx_cgroup_hierarchy_t v1[AN__CGROUP_RESOURCE_COUNT];
} an__sbx_cgroup_layout_t;

/* One group the run created, in one hierarchy. */
typedef struct {
    int version;                        /* 1 or 2 */
    unsigned resources;                 /* bit (1u << resource) for each one it serves */
    char base_dir[AN__CGROUP_PATH_MAX]; /* <own>/agentnet-sandbox, shared by runs */
    char dir[AN__CGROUP_PATH_MAX];      /* <own>/agentnet-sandbox/<run_id> */
    int self_attach;                    /* the first process moves itself in (v1 "tasks") */
} an__sbx_cgroup_group_t;

/* A v2 group plus one v1 group per resource at most. */
#define AN__CGROUP_GROUP_MAX (1 + AN__CGROUP_RESOURCE_COUNT)

struct an__sbx_cgroup {
    an__sbx_cgroup_group_t groups[AN__CGROUP_GROUP_MAX];
    size_t group_count;
    int group_of[AN__CGROUP_RESOURCE_COUNT];                     /* index into groups, or -1 */
    char reason[AN__CGROUP_RESOURCE_COUNT][AN__CGROUP_NOTE_MAX]; /* why it has no group, or "" */
    char error[AN__CGROUP_NOTE_MAX]; /* the last failure of attach, stats or kill */
};

/* Fills layout from the text of /proc/self/mountinfo and /proc/self/cgroup,
 * putting root ("" for the real one) in front of every directory. Lines that
 * do not parse are skipped, and a hierarchy not found has version 0. */
void an__sbx_cgroup_find(const char *mountinfo, const char *self_cgroup, const char *root,
                         an__sbx_cgroup_layout_t *layout);

/* Reads /proc/self/mountinfo and /proc/self/cgroup into layout. Returns 0,
 * AN_ENOMEM, or AN_EIO with err naming the file that could not be read. */
int an__sbx_cgroup_find_self(an__sbx_cgroup_layout_t *layout, char *err, size_t err_len);

/* an__sbx_cgroup_open on a layout found beforehand (or made up by a test). */
int an__sbx_cgroup_open_layout(const an__sbx_cgroup_layout_t *layout, const char *run_id,
                               uint64_t memory_bytes, uint64_t max_pids, an__sbx_cgroup_t **out,
                               char *note, size_t note_len);

/*
 * Control files. Each returns 0 or a positive errno value, so callers can
 * tell "not writable" (EACCES, EPERM, EROFS) and "missing" (ENOENT) apart.
 */
int an__sbx_cgroup_read(const char *dir, const char *file, char *buf, size_t buf_len);
int an__sbx_cgroup_write(const char *dir, const char *file, const char *text);
/* Reads a whole file of any length into buf, which the caller frees. */
int an__sbx_cgroup_read_all(const char *dir, const char *file, an_buf_t *buf);
/* Reads a file holding one number, or "max" (read as UINT64_MAX). */
int an__sbx_cgroup_read_u64(const char *dir, const char *file, uint64_t *out);
/* Reads the value of key in a flat keyed file ("key value" lines). ENOENT
 * when the file or the key is missing. */
int an__sbx_cgroup_read_key(const char *dir, const char *file, const char *key, uint64_t *out);
/* snprintf for messages, where cutting a long path short is acceptable. */
void an__sbx_cgroup_format(char *out, size_t out_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when the space-separated list contains word. */
int an__sbx_cgroup_list_has(const char *list, const char *word);

/*
 * Makes group->dir as <own_dir>/agentnet-sandbox/<run_id>. before_run, when
 * not NULL, runs on the base directory before the run's group is made (v2
 * enables controllers there). Returns 0 or a positive errno value.
 */
int an__sbx_cgroup_mkdir(const char *own_dir, const char *run_id,
                         int (*before_run)(const char *base_dir, void *arg), void *arg,
                         an__sbx_cgroup_group_t *group);
/* Removes the run's group, then the base directory when no other run uses
 * it. Returns 0 or the errno value of removing the run's group. */
int an__sbx_cgroup_rmdir(const an__sbx_cgroup_group_t *group);

/* Version-specific limits and counters. setup returns 0 or a positive errno
 * value, naming the file that failed in reason. */
int an__sbx_cgroup_v1_setup(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            uint64_t memory_bytes, uint64_t max_pids, char *reason,
                            size_t reason_len);
int an__sbx_cgroup_v2_setup(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            uint64_t memory_bytes, uint64_t max_pids, char *reason,
                            size_t reason_len);
int an__sbx_cgroup_v1_stats(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            an__sbx_cgroup_stats_t *out);
int an__sbx_cgroup_v2_stats(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            an__sbx_cgroup_stats_t *out);

/*
 * Makes the run's v2 group for the resources in *requested, enabling the
 * memory and pids controllers below own_dir first. A resource whose
 * controller is missing or cannot be enabled is cleared from *requested, with
 * the reason in reasons. Returns 0, or the errno value of making the group
 * (every requested resource's reason is then written and *requested is 0). The
 * group exists when 0 is returned with *requested not 0.
 */
int an__sbx_cgroup_v2_make(const char *own_dir, const char *run_id, unsigned *requested,
                           char reasons[][AN__CGROUP_NOTE_MAX], an__sbx_cgroup_group_t *group);

#endif
