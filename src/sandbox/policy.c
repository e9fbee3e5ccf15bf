/*
 * Policy files: a YAML mapping that picks a level and overrides its
 * defaults. It also contains the field readers that manifest.c shares. The
 * decision whether a manifest fits a policy is in can_load.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agentnet/common.h"
#include "agentnet/config.h"
#include "agentnet/sandbox.h"
#include "sandbox/sandbox_internal.h"

#define POLICY(field) offsetof(an_sandbox_policy_t, field)
#define MANIFEST(field) offsetof(an_sandbox_manifest_t, field)

/*
 * Upper bounds: 1 TiB of memory, a week of CPU or wall time, the kernel's
 * default pid_max (4,194,304), 1 GiB of output per stream, 1 TiB files and
 * the kernel's default nr_open (1,048,576) descriptors.
 */
const an__sandbox_limit_t an__sandbox_limits[] = {
    {"max_memory_mb", POLICY(max_memory_mb), MANIFEST(max_memory_mb), "MB", 1024 * 1024},
    {"max_cpu_time_seconds", POLICY(max_cpu_time_seconds), MANIFEST(max_cpu_time_seconds),
     "seconds", 7 * 24 * 3600},
    {"max_wall_time_seconds", POLICY(max_wall_time_seconds), MANIFEST(max_wall_time_seconds),
     "seconds", 7 * 24 * 3600},
    {"max_processes", POLICY(max_processes), MANIFEST(max_processes), "processes", 4194304},
    {"max_output_bytes", POLICY(max_output_bytes), MANIFEST(max_output_bytes), "bytes",
     1024ull * 1024 * 1024},
    {"max_file_size_mb", POLICY(max_file_size_mb), MANIFEST(max_file_size_mb), "MB",
     1024 * 1024},
    {"max_open_files", POLICY(max_open_files), MANIFEST(max_open_files), "files", 1048576},
};
const size_t an__sandbox_limit_count = sizeof(an__sandbox_limits) / sizeof(an__sandbox_limits[0]);


const char *an__sandbox_json_kind(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "a mapping";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "empty (null)";
    }
    return "an unknown value";
}


int an__sandbox_read_limit(const char *source, const an__sandbox_limit_t *limit,
                           const json_t *value, uint64_t *out, char *err, size_t err_len)
{
    if (!json_is_integer(value)) {
        snprintf(err, err_len, "%s: %s is %s; expected a whole number of %s from 1 to %" PRIu64,
                 source, limit->key, an__sandbox_json_kind(value), limit->unit, limit->max);
        return AN_EINVAL;
    }
    json_int_t v = json_integer_value(value);
    if (v < 1 || (uint64_t)v > limit->max) {
        snprintf(err, err_len, "%s: %s %lld is out of range; use a whole number of %s from 1 to "
                 "%" PRIu64 " (leave the key out to keep the level's default)",
                 source, limit->key, (long long)v, limit->unit, limit->max);
        return AN_EINVAL;
    }
    *out = (uint64_t)v;
    return 0;
}


/* A path is accepted when it is absolute and no component is "." or "..". */
static int path_is_clean(const char *path)
{
    if (path[0] != '/')
        return 0;
    for (const char *p = path; *p; ) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += len;
    }
    return 1;
}


int an__sandbox_read_paths(const char *source, const char *key, const json_t *value,
                           an_sandbox_paths_t *out, char *err, size_t err_len)
{
    if (!json_is_array(value)) {
        snprintf(err, err_len, "%s: %s is %s; expected a list of absolute paths", source, key,
                 an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    if (json_array_size(value) > AN_SANDBOX_MAX_PATHS) {
        snprintf(err, err_len, "%s: %s lists %zu paths, more than the maximum %d; grant a "
                 "common parent directory instead", source, key, json_array_size(value),
                 AN_SANDBOX_MAX_PATHS);
        return AN_EINVAL;
    }

    out->count = 0;
    size_t i;
    json_t *item;
    json_array_foreach(value, i, item) {
        if (!json_is_string(item)) {
            snprintf(err, err_len, "%s: %s[%zu] is %s; expected an absolute path string",
                     source, key, i, an__sandbox_json_kind(item));
            return AN_EINVAL;
        }
        const char *path = json_string_value(item);
        if (!path_is_clean(path)) {
            snprintf(err, err_len, "%s: %s[%zu] \"%s\" is not an absolute path without . or .. "
                     "parts; write it as it appears from /", source, key, i, path);
            return AN_EINVAL;
        }
        if (strlen(path) >= AN_SANDBOX_MAX_PATH_LEN) {
            snprintf(err, err_len, "%s: %s[%zu] is %zu bytes long, more than the maximum %d",
                     source, key, i, strlen(path), AN_SANDBOX_MAX_PATH_LEN - 1);
            return AN_EINVAL;
        }
        snprintf(out->items[out->count++], AN_SANDBOX_MAX_PATH_LEN, "%s", path);
    }
    return 0;
}


/* Environment variable names as POSIX portable names: letters, digits and _, not led by a digit. */
static int env_name_is_valid(const char *name)
{
    if (!name[0] || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (const char *p = name; *p; p++) {
        int ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                 (*p >= '0' && *p <= '9') || *p == '_';
        if (!ok)
            return 0;
    }
    return 1;
}


int an__sandbox_read_env(const char *source, const char *key, const json_t *value,
                         char env[][AN_SANDBOX_MAX_ENV_NAME], size_t *count, char *err,
                         size_t err_len)
{
    if (!json_is_array(value)) {
        snprintf(err, err_len, "%s: %s is %s; expected a list of variable names such as "
                 "[LANG, TZ]", source, key, an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    if (json_array_size(value) > AN_SANDBOX_MAX_ENV) {
        snprintf(err, err_len, "%s: %s lists %zu variables, more than the maximum %d", source,
                 key, json_array_size(value), AN_SANDBOX_MAX_ENV);
        return AN_EINVAL;
    }

    *count = 0;
    size_t i;
    json_t *item;
    json_array_foreach(value, i, item) {
        const char *name = json_is_string(item) ? json_string_value(item) : NULL;
        if (!name || !env_name_is_valid(name) || strlen(name) >= AN_SANDBOX_MAX_ENV_NAME) {
            snprintf(err, err_len, "%s: %s[%zu] %s%s%s is not a variable name; use letters, "
                     "digits and _ (at most %d bytes), without =VALUE", source, key, i,
                     name ? "\"" : "", name ? name : an__sandbox_json_kind(item),
                     name ? "\"" : "", AN_SANDBOX_MAX_ENV_NAME - 1);
            return AN_EINVAL;
        }
        snprintf(env[(*count)++], AN_SANDBOX_MAX_ENV_NAME, "%s", name);
    }
    return 0;
}


int an__sandbox_read_network(const char *source, const char *key, const json_t *value,
                             an_sandbox_network_t *out, char *err, size_t err_len)
{
    const char *name = json_is_string(value) ? json_string_value(value) : NULL;
    if (name && strcmp(name, "none") == 0) {
        *out = AN_SANDBOX_NET_NONE;
        return 0;
    }
    if (name && strcmp(name, "loopback") == 0) {
        *out = AN_SANDBOX_NET_LOOPBACK;
        return 0;
    }
    if (name)
        snprintf(err, err_len, "%s: %s \"%s\" is invalid; use none or loopback", source, key,
                 name);
    else
        snprintf(err, err_len, "%s: %s is %s; use the string none or loopback", source, key,
                 an__sandbox_json_kind(value));
    return AN_EINVAL;
}


int an__sandbox_read_level(const char *source, const char *key, const json_t *value,
                           an_sandbox_level_t *out, char *err, size_t err_len)
{
    const char *name = json_is_string(value) ? json_string_value(value) : NULL;
    if (name && an_sandbox_level_parse(name, out) == 0)
        return 0;
    if (name)
        snprintf(err, err_len, "%s: %s \"%s\" is not a level; use unrestricted, sandboxed, "
                 "restricted or minimal", source, key, name);
    else
        snprintf(err, err_len, "%s: %s is %s; use the string unrestricted, sandboxed, "
                 "restricted or minimal", source, key, an__sandbox_json_kind(value));
    return AN_EINVAL;
}


static int read_filesystem(const char *source, const json_t *value, an_sandbox_policy_t *policy,
                           char *err, size_t err_len)
{
    if (!json_is_object(value)) {
        snprintf(err, err_len, "%s: filesystem is %s; expected a mapping with read_only and "
                 "read_write lists", source, an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    const char *key;
    json_t *item;
    json_object_foreach((json_t *)value, key, item) {
        int rc;
        if (strcmp(key, "read_only") == 0)
            rc = an__sandbox_read_paths(source, "filesystem.read_only", item, &policy->read_only,
                                        err, err_len);
        else if (strcmp(key, "read_write") == 0)
            rc = an__sandbox_read_paths(source, "filesystem.read_write", item,
                                        &policy->read_write, err, err_len);
        else {
            snprintf(err, err_len, "%s: unknown key filesystem.%s; use read_only or read_write",
                     source, key);
            rc = AN_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}


/* Checks the combinations that contradict the chosen level. */
static int check_level_rules(const char *source, const an_sandbox_policy_t *policy, char *err,
                             size_t err_len)
{
    if (policy->level >= AN_SANDBOX_RESTRICTED && policy->read_write.count > 0) {
        snprintf(err, err_len, "%s: filesystem.read_write lists \"%s\", but level %s allows no "
                 "writes outside the workdir; remove read_write or use level sandboxed", source,
                 policy->read_write.items[0], an_sandbox_level_name(policy->level));
        return AN_EINVAL;
    }
    if (policy->level == AN_SANDBOX_MINIMAL && policy->network != AN_SANDBOX_NET_NONE) {
        snprintf(err, err_len, "%s: network %s is invalid at level minimal, which allows no "
                 "sockets; use network none or a looser level", source,
                 an_sandbox_network_name(policy->network));
        return AN_EINVAL;
    }
    if (policy->level == AN_SANDBOX_MINIMAL && policy->max_processes > 1) {
        snprintf(err, err_len, "%s: max_processes %" PRIu64 " is invalid at level minimal, which "
                 "allows no process creation; use 1 or a looser level", source,
                 policy->max_processes);
        return AN_EINVAL;
    }
    return 0;
}


static const char *const policy_keys_help =
    "level, min_level, network, filesystem, env, max_memory_mb, max_cpu_time_seconds, "
    "max_wall_time_seconds, max_processes, max_output_bytes, max_file_size_mb, max_open_files";


/* Applies every key of config but level, which the caller already applied. */
static int apply_keys(const char *source, const json_t *config, an_sandbox_policy_t *policy,
                      char *err, size_t err_len)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)config, key, value) {
        int rc = 0;
        const an__sandbox_limit_t *limit = NULL;
        for (size_t i = 0; i < an__sandbox_limit_count; i++)
            if (strcmp(key, an__sandbox_limits[i].key) == 0)
                limit = &an__sandbox_limits[i];

        if (strcmp(key, "level") == 0)
            continue;
        else if (limit)
            rc = an__sandbox_read_limit(source, limit, value,
                                        (uint64_t *)((char *)policy + limit->policy_offset), err,
                                        err_len);
        else if (strcmp(key, "min_level") == 0)
            rc = an__sandbox_read_level(source, key, value, &policy->min_level, err, err_len);
        else if (strcmp(key, "network") == 0)
            rc = an__sandbox_read_network(source, key, value, &policy->network, err, err_len);
        else if (strcmp(key, "filesystem") == 0)
            rc = read_filesystem(source, value, policy, err, err_len);
        else if (strcmp(key, "env") == 0)
            rc = an__sandbox_read_env(source, key, value, policy->env, &policy->env_count, err,
                                      err_len);
        else {
            snprintf(err, err_len, "%s: unknown key \"%s\"; a policy takes %s", source, key,
                     policy_keys_help);
            rc = AN_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}


int an_sandbox_policy_load(const char *path, an_sandbox_policy_t *policy, char *err,
                           size_t err_len)
{
    json_t *config = NULL;
    int rc = an_config_load(path, &config, err, err_len);
    if (rc != 0)
        return rc;
    char source[600];
    snprintf(source, sizeof(source), "policy \"%s\"", path);

    /* The level comes first because every other key overrides its defaults. */
    an_sandbox_level_t level = AN_SANDBOX_SANDBOXED;
    json_t *level_value = json_object_get(config, "level");
    if (level_value)
        rc = an__sandbox_read_level(source, "level", level_value, &level, err, err_len);
    if (rc == 0)
        rc = an_sandbox_level_defaults(level, policy);
    if (rc == 0)
        rc = apply_keys(source, config, policy, err, err_len);
    if (rc == 0)
        rc = check_level_rules(source, policy, err, err_len);
    json_decref(config);
    return rc;
}
