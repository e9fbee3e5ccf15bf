/*
 * Configuration files: a YAML document loaded into a jansson object, so
 * that every module reads settings through one JSON API. Precedence
 * (file, then AGENTNET_* environment, then flags) is applied by callers.
 */
#ifndef AGENTNET_CONFIG_H
#define AGENTNET_CONFIG_H

#include <stddef.h>

#include <jansson.h>

/*
 * Loads path (YAML 1.2 or JSON) and stores its top-level mapping in *out,
 * owned by the caller (json_decref). On failure writes a message naming the
 * file and the problem into err and returns AN_EINVAL or AN_EIO.
 */
int an_config_load(const char *path, json_t **out, char *err, size_t err_len);

#endif
