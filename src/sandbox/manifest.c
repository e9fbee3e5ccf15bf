/*
 * Plugin manifests: what a plugin is (name, version, entry command and the
 * SHA-256 of its entry file) and the permissions it requests. Loading only
 * checks the shape; can_load.c decides whether a policy grants the request.
 */
#include <stdio.h>
#include <string.h>

#include "agentnet/common.h"
#include "agentnet/config.h"
#include "agentnet/sandbox.h"
#include "sandbox/sandbox_internal.h"

/* Copies a required string field, or writes an error naming the key. */
static int read_string(const char *source, const json_t *config, const char *key, char *out,
                       size_t out_len, const char *hint, char *err, size_t err_len)
{
    json_t *value = json_object_get(config, key);
    if (!value) {
        snprintf(err, err_len, "%s: %s is missing; add %s", source, key, hint);
        return AN_EINVAL;
    }
    if (!json_is_string(value) || json_string_length(value) == 0) {
        snprintf(err, err_len, "%s: %s is %s; expected a non-empty string (quote it, as in "
                 "version: \"1.0\")", source, key,
                 json_is_string(value) ? "empty" : an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    if (json_string_length(value) >= out_len) {
        snprintf(err, err_len, "%s: %s is %zu bytes long, more than the maximum %zu", source, key,
                 json_string_length(value), out_len - 1);
        return AN_EINVAL;
    }
    snprintf(out, out_len, "%s", json_string_value(value));
    return 0;
}


static int name_is_valid(const char *name)
{
    for (const char *p = name; *p; p++) {
        int ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                 (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.';
        if (!ok)
            return 0;
    }
    return 1;
}


static int add_arg(const char *source, an_sandbox_manifest_t *m, const char *arg, size_t len,
                   char *err, size_t err_len)
{
    if (m->argc >= AN_SANDBOX_MAX_ARGS || len >= AN_SANDBOX_MAX_ARG_LEN) {
        snprintf(err, err_len, "%s: entry has more than %d arguments or one longer than %d "
                 "bytes; move the arguments into the entry file", source, AN_SANDBOX_MAX_ARGS,
                 AN_SANDBOX_MAX_ARG_LEN - 1);
        return AN_EINVAL;
    }
    memcpy(m->argv[m->argc], arg, len);
    m->argv[m->argc][len] = '\0';
    m->argc++;
    return 0;
}


/* entry: a string split on spaces ("python3 main.py") or a list of strings. */
static int read_entry(const char *source, const json_t *value, an_sandbox_manifest_t *m,
                      char *err, size_t err_len)
{
    m->argc = 0;
    if (json_is_string(value)) {
        for (const char *p = json_string_value(value); *p; ) {
            p += strspn(p, " ");
            size_t len = strcspn(p, " ");
            if (len && add_arg(source, m, p, len, err, err_len) != 0)
                return AN_EINVAL;
            p += len;
        }
    } else if (json_is_array(value)) {
        size_t i;
        json_t *item;
        json_array_foreach(value, i, item) {
            if (!json_is_string(item)) {
                snprintf(err, err_len, "%s: entry[%zu] is %s; expected a string argument",
                         source, i, an__sandbox_json_kind(item));
                return AN_EINVAL;
            }
            if (add_arg(source, m, json_string_value(item), json_string_length(item), err,
                        err_len) != 0)
                return AN_EINVAL;
        }
    } else {
        snprintf(err, err_len, "%s: entry is %s; expected a command such as \"python3 main.py\" "
                 "or a list of arguments", source, an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    if (m->argc == 0) {
        snprintf(err, err_len, "%s: entry is empty; give the command that starts the plugin",
                 source);
        return AN_EINVAL;
    }
    return 0;
}


/* The entry file must stay inside the plugin's directory. */
static int check_entry_file(const char *source, const char *file, char *err, size_t err_len)
{
    int bad = file[0] == '/';
    for (const char *p = file; *p && !bad; ) {
        size_t len = strcspn(p, "/");
        bad = len == 2 && p[0] == '.' && p[1] == '.';
        p += len;
        p += strspn(p, "/");
    }
    if (bad) {
        snprintf(err, err_len, "%s: entry_file \"%s\" leaves the manifest's directory; give a "
                 "path relative to it without .. parts", source, file);
        return AN_EINVAL;
    }
    return 0;
}


static int check_sha256(const char *source, const char *hex, char *err, size_t err_len)
{
    size_t len = strlen(hex);
    size_t digits = strspn(hex, "0123456789abcdef");
    if (len != 64 || digits != 64) {
        snprintf(err, err_len, "%s: sha256 \"%s\" is not 64 lowercase hex digits; compute it "
                 "with sha256sum ENTRY_FILE", source, hex);
        return AN_EINVAL;
    }
    return 0;
}


static int read_filesystem(const char *source, const json_t *value, an_sandbox_manifest_t *m,
                           char *err, size_t err_len)
{
    if (!json_is_object(value)) {
        snprintf(err, err_len, "%s: permissions.filesystem is %s; expected a mapping with "
                 "read_only and read_write lists", source, an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    const char *key;
    json_t *item;
    json_object_foreach((json_t *)value, key, item) {
        int rc;
        if (strcmp(key, "read_only") == 0)
            rc = an__sandbox_read_paths(source, "permissions.filesystem.read_only", item,
                                        &m->read_only, err, err_len);
        else if (strcmp(key, "read_write") == 0)
            rc = an__sandbox_read_paths(source, "permissions.filesystem.read_write", item,
                                        &m->read_write, err, err_len);
        else {
            snprintf(err, err_len, "%s: unknown key permissions.filesystem.%s; use read_only or "
                     "read_write", source, key);
            rc = AN_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}


static int read_limits(const char *source, const json_t *value, an_sandbox_manifest_t *m,
                       char *err, size_t err_len)
{
    if (!json_is_object(value)) {
        snprintf(err, err_len, "%s: permissions.limits is %s; expected a mapping such as "
                 "{max_memory_mb: 256}", source, an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    const char *key;
    json_t *item;
    json_object_foreach((json_t *)value, key, item) {
        const an__sandbox_limit_t *limit = NULL;
        for (size_t i = 0; i < an__sandbox_limit_count; i++)
            if (strcmp(key, an__sandbox_limits[i].key) == 0)
                limit = &an__sandbox_limits[i];
        if (!limit) {
            snprintf(err, err_len, "%s: unknown key permissions.limits.%s; use the max_* keys "
                     "of a policy, such as max_memory_mb", source, key);
            return AN_EINVAL;
        }
        int rc = an__sandbox_read_limit(source, limit, item,
                                        (uint64_t *)((char *)m + limit->manifest_offset), err,
                                        err_len);
        if (rc != 0)
            return rc;
    }
    return 0;
}


static int read_permissions(const char *source, const json_t *value, an_sandbox_manifest_t *m,
                            char *err, size_t err_len)
{
    if (!json_is_object(value)) {
        snprintf(err, err_len, "%s: permissions is %s; expected a mapping of network, "
                 "filesystem, env and limits", source, an__sandbox_json_kind(value));
        return AN_EINVAL;
    }
    const char *key;
    json_t *item;
    json_object_foreach((json_t *)value, key, item) {
        int rc;
        if (strcmp(key, "network") == 0)
            rc = an__sandbox_read_network(source, "permissions.network", item, &m->network, err,
                                          err_len);
        else if (strcmp(key, "filesystem") == 0)
            rc = read_filesystem(source, item, m, err, err_len);
        else if (strcmp(key, "env") == 0)
            rc = an__sandbox_read_env(source, "permissions.env", item, m->env, &m->env_count,
                                      err, err_len);
        else if (strcmp(key, "limits") == 0)
            rc = read_limits(source, item, m, err, err_len);
        else {
            snprintf(err, err_len, "%s: unknown key permissions.%s; use network, filesystem, "
                     "env or limits", source, key);
            rc = AN_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}


static int read_manifest(const char *source, const json_t *config, an_sandbox_manifest_t *m,
                         char *err, size_t err_len)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)config, key, value) {
        static const char *const known[] = {"name", "version", "entry", "entry_file", "sha256",
                                            "level", "permissions"};
        int found = 0;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            found |= strcmp(key, known[i]) == 0;
        if (!found) {
            snprintf(err, err_len, "%s: unknown key \"%s\"; a manifest takes name, version, "
                     "entry, entry_file, sha256, level and permissions", source, key);
            return AN_EINVAL;
        }
    }

    if (read_string(source, config, "name", m->name, sizeof(m->name), "name: my-plugin", err,
                    err_len) != 0 ||
        read_string(source, config, "version", m->version, sizeof(m->version),
                    "version: \"1.0.0\"", err, err_len) != 0 ||
        read_string(source, config, "entry_file", m->entry_file, sizeof(m->entry_file),
                    "entry_file: main.py (relative to the manifest)", err, err_len) != 0 ||
        read_string(source, config, "sha256", m->sha256, sizeof(m->sha256),
                    "sha256: the output of sha256sum ENTRY_FILE", err, err_len) != 0)
        return AN_EINVAL;
    if (!name_is_valid(m->name)) {
        snprintf(err, err_len, "%s: name \"%s\" is invalid; use letters, digits, ., _ and -",
                 source, m->name);
        return AN_EINVAL;
    }
    if (check_entry_file(source, m->entry_file, err, err_len) != 0 ||
        check_sha256(source, m->sha256, err, err_len) != 0)
        return AN_EINVAL;

    json_t *entry = json_object_get(config, "entry");
    if (!entry) {
        snprintf(err, err_len, "%s: entry is missing; add the command that starts the plugin, "
                 "such as entry: python3 main.py", source);
        return AN_EINVAL;
    }
    if (read_entry(source, entry, m, err, err_len) != 0)
        return AN_EINVAL;

    json_t *level = json_object_get(config, "level");
    if (level) {
        if (an__sandbox_read_level(source, "level", level, &m->level, err, err_len) != 0)
            return AN_EINVAL;
        m->has_level = 1;
    }
    json_t *permissions = json_object_get(config, "permissions");
    if (permissions && read_permissions(source, permissions, m, err, err_len) != 0)
        return AN_EINVAL;
    return 0;
}


int an_sandbox_manifest_load(const char *path, an_sandbox_manifest_t *manifest, char *err,
                             size_t err_len)
{
    json_t *config = NULL;
    int rc = an_config_load(path, &config, err, err_len);
    if (rc != 0)
        return rc;
    char source[600];
    snprintf(source, sizeof(source), "manifest \"%s\"", path);

    memset(manifest, 0, sizeof(*manifest));
    manifest->network = AN_SANDBOX_NET_NONE;
    rc = read_manifest(source, config, manifest, err, err_len);
    json_decref(config);
    return rc;
}
