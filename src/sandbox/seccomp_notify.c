/*
 * The supervisor's side of seccomp: the kernel feature probe, and responding
 * to user notifications from the deny-list levels with EPERM while naming the
 * denied call. Building and installing filters is in seccomp_filter.c.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <seccomp.h>

#include "agentnet/common.h"
#include "sandbox/seccomp_filter.h"

/* On x86_64, x32 calls carry this bit in the syscall number. */
#define X32_SYSCALL_BIT 0x40000000U

/* libseccomp reaches SCMP_ACT_NOTIFY and its notify API at this level. */
#define NOTIFY_API_LEVEL 5U

typedef struct {
    uint32_t action;
    const char *name;
    const char *since;
} kernel_action_t;

static const kernel_action_t filter_actions[] = {
    {SECCOMP_RET_ERRNO, "SECCOMP_RET_ERRNO", "Linux 3.5"},
    {SECCOMP_RET_KILL_PROCESS, "SECCOMP_RET_KILL_PROCESS", "Linux 4.14"},
};

static const kernel_action_t notify_action = {SECCOMP_RET_USER_NOTIF,
                                              "SECCOMP_RET_USER_NOTIF (user notification)",
                                              "Linux 5.0"};


static int check_action(const kernel_action_t *action, const char *level_name, char *err,
                        size_t err_len)
{
    uint32_t value = action->action;
    if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &value) == 0)
        return 0;

    if (errno == ENOSYS) {
        snprintf(err, err_len,
                 "seccomp: the kernel lacks the seccomp() syscall (Linux 3.17 or later); level "
                 "%s needs it, so use a newer kernel or level unrestricted", level_name);
    } else if (errno == EOPNOTSUPP) {
        snprintf(err, err_len,
                 "seccomp: the kernel lacks the filter action %s (%s or later); level %s needs "
                 "it, so use a newer kernel or level unrestricted",
                 action->name, action->since, level_name);
    } else {
        snprintf(err, err_len,
                 "seccomp: the kernel lacks seccomp filters (CONFIG_SECCOMP_FILTER) or "
                 "SECCOMP_GET_ACTION_AVAIL (Linux 4.14 or later): %s; level %s needs them, so "
                 "use a newer kernel or level unrestricted", strerror(errno), level_name);
    }
    return AN_EINVAL;
}


int an__sbx_seccomp_probe(an_sandbox_level_t level, char *err, size_t err_len)
{
    if (level == AN_SANDBOX_UNRESTRICTED)
        return 0;
    const char *level_name = an_sandbox_level_name(level);

    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
        snprintf(err, err_len,
                 "seccomp: the kernel was built without seccomp (CONFIG_SECCOMP): %s; level %s "
                 "needs it, so use a kernel with seccomp or level unrestricted",
                 strerror(errno), level_name);
        return AN_EINVAL;
    }
    for (size_t i = 0; i < sizeof(filter_actions) / sizeof(filter_actions[0]); i++) {
        int rc = check_action(&filter_actions[i], level_name, err, err_len);
        if (rc < 0)
            return rc;
    }
    if (level == AN_SANDBOX_MINIMAL)
        return 0;

    int rc = check_action(&notify_action, level_name, err, err_len);
    if (rc < 0)
        return rc;
    unsigned int api = seccomp_api_get();
    if (api < NOTIFY_API_LEVEL) {
        const struct scmp_version *version = seccomp_version();
        snprintf(err, err_len,
                 "seccomp: libseccomp %u.%u.%u offers API level %u, but user notification needs "
                 "level %u; level %s needs it, so install libseccomp 2.5 or later",
                 version->major, version->minor, version->micro, api, NOTIFY_API_LEVEL,
                 level_name);
        return AN_EINVAL;
    }
    return 0;
}


static void describe_ioctl(uint64_t request_arg, char *detail, size_t detail_len)
{
    uint32_t request = (uint32_t)request_arg;
    if (request == TIOCSTI)
        snprintf(detail, detail_len, "ioctl TIOCSTI");
    else if (request == TIOCLINUX)
        snprintf(detail, detail_len, "ioctl TIOCLINUX");
    else
        snprintf(detail, detail_len, "ioctl 0x%x", (unsigned)request);
}


static void describe_clone(uint64_t flags, char *detail, size_t detail_len)
{
    static const struct {
        uint64_t flag;
        const char *name;
    } namespace_flags[] = {
        {CLONE_NEWNS, "CLONE_NEWNS"},         {CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
        {CLONE_NEWUTS, "CLONE_NEWUTS"},       {CLONE_NEWIPC, "CLONE_NEWIPC"},
        {CLONE_NEWUSER, "CLONE_NEWUSER"},     {CLONE_NEWPID, "CLONE_NEWPID"},
        {CLONE_NEWNET, "CLONE_NEWNET"},
    };

    size_t used = (size_t)snprintf(detail, detail_len, "clone");
    const char *separator = " ";
    for (size_t i = 0; i < sizeof(namespace_flags) / sizeof(namespace_flags[0]); i++) {
        if (!(flags & namespace_flags[i].flag) || used >= detail_len)
            continue;
        used += (size_t)snprintf(detail + used, detail_len - used, "%s%s", separator,
                                 namespace_flags[i].name);
        separator = "|";
    }
}


/* A call through another ABI: "x32 getpid", "i386 getpid". */
static void describe_foreign(const char *abi, uint32_t arch, int nr, char *detail,
                             size_t detail_len)
{
    char *name = seccomp_syscall_resolve_num_arch(arch, nr);
    if (name)
        snprintf(detail, detail_len, "%s %s", abi, name);
    else
        snprintf(detail, detail_len, "%s syscall %d", abi, nr);
    free(name);
}


static void describe_call(const struct seccomp_data *data, char *detail, size_t detail_len)
{
    if (data->arch != seccomp_arch_native()) {
        if (data->arch == SCMP_ARCH_X86) {
            describe_foreign("i386", data->arch, data->nr, detail, detail_len);
        } else {
            char abi[32];
            snprintf(abi, sizeof(abi), "arch 0x%08x", (unsigned)data->arch);
            describe_foreign(abi, data->arch, data->nr, detail, detail_len);
        }
        return;
    }
#ifdef __x86_64__
    if ((uint32_t)data->nr & X32_SYSCALL_BIT) {
        describe_foreign("x32", SCMP_ARCH_X32, data->nr, detail, detail_len);
        return;
    }
#endif

    const char *name = an__sbx_syscall_name(data->nr);
    if (!name)
        snprintf(detail, detail_len, "syscall %d", data->nr);
    else if (strcmp(name, "ioctl") == 0)
        describe_ioctl(data->args[1], detail, detail_len);
    else if (strcmp(name, "clone") == 0)
        describe_clone(data->args[0], detail, detail_len);
    else if (strcmp(name, "personality") == 0)
        snprintf(detail, detail_len, "personality 0x%llx", (unsigned long long)data->args[0]);
    else
        snprintf(detail, detail_len, "%s", name);
}


/* Writes the failure into detail and returns the matching AN_E* code. */
static int answer_failed(const char *step, int code, char *detail, size_t detail_len)
{
    snprintf(detail, detail_len, "seccomp: %s failed (%s)", step, strerror(code));
    return code == ENOMEM ? AN_ENOMEM : AN_EIO;
}


/*
 * The request and response buffers take the kernel's sizes through
 * libseccomp. The ioctls are made directly because libseccomp 2.5.4 turns
 * every ioctl failure into ECANCELED, and ENOENT (the caller died or was
 * interrupted by a signal) must be distinguished from a broken listener.
 */
int an__sbx_seccomp_answer(int listener, char *detail, size_t detail_len)
{
    if (detail_len > 0)
        detail[0] = '\0';

    /* RECV would block when nothing is pending, as after the last caller exited. */
    struct pollfd ready = {.fd = listener, .events = POLLIN};
    int polled = poll(&ready, 1, 0);
    if (polled < 0)
        return errno == EINTR ? 0 : answer_failed("poll on the listener", errno, detail,
                                                  detail_len);
    if (ready.revents & POLLNVAL)
        return answer_failed("poll on the listener", EBADF, detail, detail_len);
    if (!(ready.revents & POLLIN))
        return 0;

    struct seccomp_notif *request = NULL;
    struct seccomp_notif_resp *response = NULL;
    int rc = seccomp_notify_alloc(&request, &response);
    if (rc < 0)
        return answer_failed("seccomp_notify_alloc", -rc, detail, detail_len);

    int result = 1;
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, request) < 0) {
        result = errno == ENOENT || errno == EINTR
                     ? 0
                     : answer_failed("SECCOMP_IOCTL_NOTIF_RECV", errno, detail, detail_len);
        goto out;
    }
    describe_call(&request->data, detail, detail_len);

    response->id = request->id;
    response->error = -EPERM;
    response->val = 0;
    response->flags = 0;
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, response) < 0) {
        result = errno == ENOENT
                     ? 0
                     : answer_failed("SECCOMP_IOCTL_NOTIF_SEND", errno, detail, detail_len);
    }

out:
    seccomp_notify_free(request, response);
    return result;
}
