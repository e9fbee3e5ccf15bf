/*
 * The load decision: checks every request of a manifest against a policy,
 * default-deny, and narrows the policy to what the manifest asked for. It
 * also verifies the entry file's SHA-256 (sha256_file.c). It runs nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agentnet/common.h"
#include "agentnet/sandbox.h"
#include "sandbox/sandbox_internal.h"

__attribute__((format(printf, 2, 3)))
static void add_reason(an_sandbox_reasons_t *reasons, const char *fmt, ...)
{
    /* Past the capacity the last slot reports that more were dropped. */
    if (reasons->count >= AN_SANDBOX_MAX_REASONS) {
        snprintf(reasons->text[AN_SANDBOX_MAX_REASONS - 1], AN_SANDBOX_MAX_REASON_LEN,
                 "more than %d reasons; fix the ones above and check again",
                 AN_SANDBOX_MAX_REASONS - 1);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reasons->text[reasons->count++], AN_SANDBOX_MAX_REASON_LEN, fmt, ap);
    va_end(ap);
}


/* True when path is dir itself or below it, comparing whole components. */
static int path_is_within(const char *path, const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (len == 1 && dir[0] == '/')
        return 1;
    return strncmp(path, dir, len) == 0 && (path[len] == '\0' || path[len] == '/');
}


static int path_is_granted(const char *path, const an_sandbox_paths_t *grants)
{
    for (size_t i = 0; i < grants->count; i++)
        if (path_is_within(path, grants->items[i]))
            return 1;
    return 0;
}


static int dir_list_contains(const char *const *dirs, const char *path)
{
    for (size_t i = 0; dirs && dirs[i]; i++)
        if (path_is_within(path, dirs[i]))
            return 1;
    return 0;
}


static void check_level(const an_sandbox_policy_t *policy, const an_sandbox_manifest_t *m,
                        an_sandbox_policy_t *effective, an_sandbox_reasons_t *reasons)
{
    an_sandbox_level_t asked = m->has_level ? m->level : policy->level;
    if (asked < policy->min_level)
        add_reason(reasons, "level: the manifest requests %s, below the policy's floor %s; "
                   "declare level %s or tighter in the manifest",
                   an_sandbox_level_name(asked), an_sandbox_level_name(policy->min_level),
                   an_sandbox_level_name(policy->min_level));
    effective->level = asked > policy->level ? asked : policy->level;
    effective->min_level = policy->min_level;
}


static void check_network(const an_sandbox_policy_t *policy, const an_sandbox_manifest_t *m,
                          an_sandbox_policy_t *effective, an_sandbox_reasons_t *reasons)
{
    if (m->network > policy->network)
        add_reason(reasons, "network: the manifest requests %s, but the policy allows %s; "
                   "grant network %s in the policy or drop the request",
                   an_sandbox_network_name(m->network), an_sandbox_network_name(policy->network),
                   an_sandbox_network_name(m->network));
    effective->network = m->network;
}


/*
 * A read-only request is granted by a policy path of either list or by a
 * system directory of the effective level; a read-write request only by a
 * read_write path of the policy.
 */
static void check_paths(const an_sandbox_policy_t *policy, const an_sandbox_manifest_t *m,
                        an_sandbox_policy_t *effective, an_sandbox_reasons_t *reasons)
{
    const char *const *system_dirs = an_sandbox_level_system_dirs(effective->level);
    int whole_host = policy->level == AN_SANDBOX_UNRESTRICTED &&
                     effective->level == AN_SANDBOX_UNRESTRICTED;

    for (size_t i = 0; i < m->read_only.count; i++) {
        const char *path = m->read_only.items[i];
        if (!whole_host && !path_is_granted(path, &policy->read_only) &&
            !path_is_granted(path, &policy->read_write) && !dir_list_contains(system_dirs, path))
            add_reason(reasons, "filesystem: the manifest asks to read \"%s\", which the policy "
                       "does not grant; add it to filesystem.read_only in the policy", path);
    }
    for (size_t i = 0; i < m->read_write.count; i++) {
        const char *path = m->read_write.items[i];
        if (!whole_host && !path_is_granted(path, &policy->read_write))
            add_reason(reasons, "filesystem: the manifest asks to write \"%s\", which the policy "
                       "does not grant; add it to filesystem.read_write in the policy", path);
    }
    effective->read_only = m->read_only;
    effective->read_write = m->read_write;
}


static void check_env(const an_sandbox_policy_t *policy, const an_sandbox_manifest_t *m,
                      an_sandbox_policy_t *effective, an_sandbox_reasons_t *reasons)
{
    for (size_t i = 0; i < m->env_count; i++) {
        int allowed = 0;
        for (size_t j = 0; j < policy->env_count && !allowed; j++)
            allowed = strcmp(m->env[i], policy->env[j]) == 0;
        if (!allowed)
            add_reason(reasons, "env: the manifest requests %s, which is not in the policy's "
                       "env allow list; add it there or drop the request", m->env[i]);
    }
    effective->env_count = m->env_count;
    memcpy(effective->env, m->env, sizeof(effective->env));
}


/* A limit of 0 in the policy means none, so any request fits under it. */
static void check_limits(const an_sandbox_policy_t *policy, const an_sandbox_manifest_t *m,
                         an_sandbox_policy_t *effective, an_sandbox_reasons_t *reasons)
{
    for (size_t i = 0; i < an__sandbox_limit_count; i++) {
        const an__sandbox_limit_t *limit = &an__sandbox_limits[i];
        uint64_t allowed = *(const uint64_t *)((const char *)policy + limit->policy_offset);
        uint64_t asked = *(const uint64_t *)((const char *)m + limit->manifest_offset);
        uint64_t *out = (uint64_t *)((char *)effective + limit->policy_offset);

        if (asked == 0) {
            *out = allowed;
            continue;
        }
        if (allowed != 0 && asked > allowed)
            add_reason(reasons, "limits: the manifest requests %s %" PRIu64 " %s, above the "
                       "policy's %" PRIu64 "; lower the request or raise the policy",
                       limit->key, asked, limit->unit, allowed);
        *out = allowed != 0 && allowed < asked ? allowed : asked;
    }
}


static void check_entry_hash(const an_sandbox_manifest_t *m, const char *manifest_dir,
                             an_sandbox_reasons_t *reasons)
{
    char path[AN_SANDBOX_MAX_PATH_LEN * 2 + 2];
    snprintf(path, sizeof(path), "%s/%s", manifest_dir && manifest_dir[0] ? manifest_dir : ".",
             m->entry_file);
    char hex[65];
    char err[AN_SANDBOX_MAX_REASON_LEN - 64];
    int rc = an_sandbox_sha256_file(path, hex, err, sizeof(err));
    if (rc == AN_ENOTFOUND)
        add_reason(reasons, "entry_file: \"%s\" does not exist; ship the entry file next to the "
                   "manifest", path);
    else if (rc != 0)
        add_reason(reasons, "entry_file: %s", err);
    else if (strcmp(hex, m->sha256) != 0)
        add_reason(reasons, "sha256: \"%s\" hashes to %s, but the manifest says %s; the file "
                   "changed after the manifest was written", path, hex, m->sha256);
}


int an_sandbox_can_load(const an_sandbox_policy_t *policy, const an_sandbox_manifest_t *manifest,
                        const char *manifest_dir, an_sandbox_policy_t *effective,
                        an_sandbox_reasons_t *reasons)
{
    reasons->count = 0;
    *effective = *policy;

    check_level(policy, manifest, effective, reasons);
    check_network(policy, manifest, effective, reasons);
    check_paths(policy, manifest, effective, reasons);
    check_env(policy, manifest, effective, reasons);
    check_limits(policy, manifest, effective, reasons);
    check_entry_hash(manifest, manifest_dir, reasons);
    return reasons->count == 0;
}
