/* Helpers shared by the policy and manifest loaders of the sandbox module. */
#ifndef AGENTNET_SANDBOX_INTERNAL_H
#define AGENTNET_SANDBOX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agentnet/sandbox.h"

/*
 * One max_* limit: its YAML key, where it sits in a policy and in a
 * manifest, its unit for messages, and the largest value accepted. The
 * bounds only catch typos such as a value in bytes where MB is expected.
 */
typedef struct {
    const char *key;
    size_t policy_offset;
    size_t manifest_offset;
    const char *unit;
    uint64_t max;
} an__sandbox_limit_t;

extern const an__sandbox_limit_t an__sandbox_limits[];
extern const size_t an__sandbox_limit_count;

/*
 * Reads value as limit: a whole number from 1 to limit->max. source names
 * the file for the message. Returns 0 or AN_EINVAL.
 */
int an__sandbox_read_limit(const char *source, const an__sandbox_limit_t *limit,
                           const json_t *value, uint64_t *out, char *err, size_t err_len);

/* Reads a list of absolute paths without ".." parts, such as filesystem.read_only. */
int an__sandbox_read_paths(const char *source, const char *key, const json_t *value,
                           an_sandbox_paths_t *out, char *err, size_t err_len);

/* Reads a list of environment variable names. */
int an__sandbox_read_env(const char *source, const char *key, const json_t *value,
                         char env[][AN_SANDBOX_MAX_ENV_NAME], size_t *count, char *err,
                         size_t err_len);

/* Reads "none" or "loopback"; the host network cannot be asked for in a file. */
int an__sandbox_read_network(const char *source, const char *key, const json_t *value,
                             an_sandbox_network_t *out, char *err, size_t err_len);

/* Reads a level name. */
int an__sandbox_read_level(const char *source, const char *key, const json_t *value,
                           an_sandbox_level_t *out, char *err, size_t err_len);

/* Describes a JSON value's type for messages: "a string", "a list", ... */
const char *an__sandbox_json_kind(const json_t *value);

#endif
