/* YAML configuration files, converted to JSON through libfyaml's emitter. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "agentnet/common.h"
#include "agentnet/config.h"

int an_config_load(const char *path, json_t **out, char *err, size_t err_len)
{
    FILE *probe = fopen(path, "r");
    if (!probe) {
        snprintf(err, err_len, "cannot read \"%s\" (%s); check the path and its permissions", path,
                 strerror(errno));
        return AN_EIO;
    }
    /* A file of only blank lines and comments is a valid YAML file that sets nothing. */
    int has_content = 0;
    char line[4096];
    while (!has_content && fgets(line, sizeof(line), probe)) {
        size_t skip = strspn(line, " \t\r\n");
        has_content = line[skip] != '\0' && line[skip] != '#';
    }
    fclose(probe);
    if (!has_content) {
        *out = json_object();
        return *out ? 0 : AN_ENOMEM;
    }

    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct fy_document *doc = fy_document_build_from_file(&cfg, path);
    if (!doc) {
        snprintf(err, err_len, "config: \"%s\" is not valid YAML; fix the syntax", path);
        return AN_EINVAL;
    }

    struct fy_node *root = fy_document_root(doc);
    if (!root) {
        fy_document_destroy(doc);
        *out = json_object(); /* an empty file sets nothing */
        return 0;
    }
    if (!fy_node_is_mapping(root)) {
        fy_document_destroy(doc);
        snprintf(err, err_len, "config: \"%s\" must be a mapping of option: value", path);
        return AN_EINVAL;
    }

    char *text = fy_emit_document_to_string(doc, FYECF_MODE_JSON_ONELINE);
    fy_document_destroy(doc);
    if (!text) {
        snprintf(err, err_len, "config: cannot convert \"%s\" to JSON", path);
        return AN_EINVAL;
    }

    json_error_t jerr;
    json_t *root_json = json_loads(text, 0, &jerr);
    free(text);
    if (!json_is_object(root_json)) {
        json_decref(root_json);
        snprintf(err, err_len, "config: \"%s\" could not be read as a mapping (%s)", path, jerr.text);
        return AN_EINVAL;
    }
    *out = root_json;
    return 0;
}
