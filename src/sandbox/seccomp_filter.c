/*
 * Builds a level's seccomp filter into a classic BPF program in the
 * supervisor, and installs that program in the child. The rules themselves
 * are in seccomp_rules.c; user notification handling is in seccomp_notify.c.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <seccomp.h>

#include "agentnet/common.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/seccomp_internal.h"


static int read_program(int fd, an__sbx_filter_t *out, char *err, size_t err_len)
{
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        snprintf(err, err_len, "seccomp: cannot measure the exported filter (%s)",
                 strerror(errno));
        return AN_EIO;
    }
    size_t count = (size_t)size / sizeof(struct sock_filter);
    if (count == 0 || count > BPF_MAXINSNS || (size_t)size % sizeof(struct sock_filter) != 0) {
        snprintf(err, err_len,
                 "seccomp: libseccomp exported %lld bytes, not 1 to %d BPF instructions",
                 (long long)size, BPF_MAXINSNS);
        return AN_EINVAL;
    }

    struct sock_filter *insns = malloc((size_t)size);
    if (!insns) {
        snprintf(err, err_len, "seccomp: cannot allocate %lld bytes for the filter",
                 (long long)size);
        return AN_ENOMEM;
    }
    size_t done = 0;
    while (done < (size_t)size) {
        ssize_t got = pread(fd, (char *)insns + done, (size_t)size - done, (off_t)done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            snprintf(err, err_len, "seccomp: cannot read back the exported filter (%s)",
                     got < 0 ? strerror(errno) : "unexpected end of file");
            free(insns);
            return AN_EIO;
        }
        done += (size_t)got;
    }

    out->insns = insns;
    out->count = (uint16_t)count;
    return 0;
}


/*
 * libseccomp 2.5.4 exports a program only to a file descriptor, so the
 * program goes through a memfd and is read back into memory.
 */
static int export_program(scmp_filter_ctx ctx, an__sbx_filter_t *out, char *err, size_t err_len)
{
    int fd = memfd_create("agentnet-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "seccomp: memfd_create failed (%s)", strerror(errno));
        return AN_EIO;
    }

    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        snprintf(err, err_len, "seccomp: seccomp_export_bpf failed (%s)", strerror(-rc));
        rc = rc == -ENOMEM ? AN_ENOMEM : AN_EIO;
    } else {
        rc = read_program(fd, out, err, err_len);
    }
    close(fd);
    return rc;
}


int an__sbx_filter_build(an_sandbox_level_t level, an__sbx_filter_t *out, char *err,
                         size_t err_len)
{
    memset(out, 0, sizeof(*out));

    scmp_filter_ctx ctx;
    int rc = an__sbx_rules_context(level, &ctx, err, err_len);
    if (rc < 0)
        return rc;

    rc = export_program(ctx, out, err, err_len);
    seccomp_release(ctx);
    if (rc < 0)
        return rc;

    out->uses_notify = level != AN_SANDBOX_MINIMAL;
    return 0;
}


void an__sbx_filter_free(an__sbx_filter_t *filter)
{
    if (!filter)
        return;
    free(filter->insns);
    memset(filter, 0, sizeof(*filter));
}


/*
 * Only the raw syscall runs here: seccomp_load would build the program
 * again, which allocates and so is unsafe after fork in a threaded process.
 * The listener fd the kernel returns is close-on-exec.
 */
int an__sbx_filter_install(const an__sbx_filter_t *filter)
{
    if (!filter || !filter->insns || filter->count == 0)
        return -EINVAL;

    struct sock_fprog prog = {
        .len = filter->count,
        .filter = filter->insns,
    };
    unsigned long flags = filter->uses_notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (rc < 0)
        return -errno;
    return filter->uses_notify ? (int)rc : 0;
}
