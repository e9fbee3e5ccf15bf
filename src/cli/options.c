/* Parsing of option tables from a YAML file, AGENTNET_* variables and flags. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/cache.h"
#include "agentnet/config.h"
#include "cli/options.h"

static int set_value(const opt_t *opt, void *settings, const char *text, const char *source)
{
    char *field = (char *)settings + opt->offset;
    char *end = NULL;
    switch (opt->type) {
    case OPT_STRING:
        *(const char **)field = text;
        return 0;
    case OPT_FLAG:
        *(int *)field = 1;
        return 0;
    case OPT_UINT:
    case OPT_UINT32: {
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end || text[0] == '-' ||
            (opt->type == OPT_UINT32 && v > UINT32_MAX)) {
            fprintf(stderr, "agentnet: %s %s \"%s\" is invalid; expected a whole number\n", source,
                    opt->flag, text);
            return -1;
        }
        if (opt->type == OPT_UINT)
            *(uint64_t *)field = v;
        else
            *(unsigned *)field = (unsigned)v;
        return 0;
    }
    case OPT_ONOFF:
        if (strcmp(text, "on") == 0 || strcmp(text, "true") == 0) {
            *(int *)field = 1;
        } else if (strcmp(text, "off") == 0 || strcmp(text, "false") == 0) {
            *(int *)field = 0;
        } else {
            fprintf(stderr, "agentnet: %s %s \"%s\" is invalid; expected on or off\n", source,
                    opt->flag, text);
            return -1;
        }
        return 0;
    case OPT_BACKEND:
        if (strcmp(text, "lmdb") == 0) {
            *(an_cache_backend_t *)field = AN_CACHE_LMDB;
        } else if (strcmp(text, "memory") == 0) {
            *(an_cache_backend_t *)field = AN_CACHE_MEMORY;
        } else {
            fprintf(stderr, "agentnet: %s %s \"%s\" is invalid; expected lmdb or memory\n",
                    source, opt->flag, text);
            return -1;
        }
        return 0;
    }
    return -1;
}

static const opt_t *find_flag(const opt_t *table, size_t count, const char *flag)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(table[i].flag, flag) == 0)
            return &table[i];
    return NULL;
}

/* Turns "--max-body-bytes" into the YAML key "max_body_bytes". */
static void yaml_key(const char *flag, char *out, size_t len)
{
    snprintf(out, len, "%s", flag + 2);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
}

static int apply_config(const char *path, const opt_t *table, size_t count, void *settings)
{
    json_t *config = NULL;
    char err[512];
    if (an_config_load(path, &config, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentnet: %s\n", err);
        return -1;
    }

    const char *key;
    json_t *value;
    json_object_foreach(config, key, value) {
        const opt_t *opt = NULL;
        for (size_t i = 0; i < count && !opt; i++) {
            char name[64];
            yaml_key(table[i].flag, name, sizeof(name));
            if (strcmp(name, key) == 0 && table[i].type != OPT_FLAG)
                opt = &table[i];
        }
        if (!opt) {
            fprintf(stderr, "agentnet: config \"%s\": unknown option \"%s\"; see --help for the "
                    "option names (flags without -- and with _ for -)\n", path, key);
            json_decref(config);
            return -1;
        }

        char number[32];
        const char *text = NULL;
        if (json_is_string(value))
            text = json_string_value(value);
        else if (json_is_integer(value) && json_integer_value(value) >= 0)
            text = (snprintf(number, sizeof(number), "%lld", (long long)json_integer_value(value)), number);
        else if (json_is_boolean(value))
            text = json_is_true(value) ? "on" : "off";
        if (!text) {
            fprintf(stderr, "agentnet: config \"%s\": option \"%s\" needs a string or a whole "
                    "number\n", path, key);
            json_decref(config);
            return -1;
        }
        /* The settings keep the string, so the config document is never freed. */
        char *copy = strdup(text);
        char source[600];
        snprintf(source, sizeof(source), "config \"%s\":", path);
        if (!copy || set_value(opt, settings, copy, source) != 0) {
            json_decref(config);
            return -1;
        }
    }
    json_decref(config);
    return 0;
}

/* Returns the long flag of a short form, or its argument when no short form matches. */
static const char *resolve_alias(const opt_alias_t *aliases, size_t alias_count,
                                 const char *alias)
{
    for (size_t i = 0; i < alias_count; i++)
        if (strcmp(aliases[i].alias, alias) == 0)
            return aliases[i].flag;
    return alias;
}


int opt_parse(const char *command, const opt_t *table, size_t count, void *settings, int argc,
              char **argv, size_t config_offset)
{
    return opt_parse_aliased(command, table, count, NULL, 0, settings, argc, argv,
                             config_offset);
}


int opt_parse_aliased(const char *command, const opt_t *table, size_t count,
                      const opt_alias_t *aliases, size_t alias_count, void *settings, int argc,
                      char **argv, size_t config_offset)
{
    /* The config file is named by a flag or AGENTNET_CONFIG, and read first. */
    const char *config_path = getenv("AGENTNET_CONFIG");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_path = argv[i] + 9;
    }
    if (config_offset != (size_t)-1 && config_path && config_path[0]) {
        *(const char **)((char *)settings + config_offset) = config_path;
        if (apply_config(config_path, table, count, settings) != 0)
            return -1;
    }

    for (size_t i = 0; i < count; i++) {
        const char *value = table[i].env ? getenv(table[i].env) : NULL;
        if (value && value[0] && set_value(&table[i], settings, value, table[i].env) != 0)
            return -1;
    }

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        char flag[64];
        const char *value = NULL;
        const char *equals = strchr(arg, '=');
        if (equals && (size_t)(equals - arg) < sizeof(flag)) {
            memcpy(flag, arg, (size_t)(equals - arg));
            flag[equals - arg] = '\0';
            value = equals + 1;
        } else {
            snprintf(flag, sizeof(flag), "%s", arg);
        }

        const opt_t *opt = find_flag(table, count, resolve_alias(aliases, alias_count, flag));
        if (!opt && arg[0] != '-') {
            fprintf(stderr, "agentnet %s: unexpected argument \"%s\"; options start with -, "
                    "and a command to run goes after -- (see agentnet %s --help)\n",
                    command, arg, command);
            return -1;
        }
        if (!opt) {
            fprintf(stderr, "agentnet %s: unknown option \"%s\"; see agentnet %s --help\n",
                    command, arg, command);
            return -1;
        }
        if (opt->type != OPT_FLAG && !value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "agentnet %s: %s needs a value (%s)\n", command, flag,
                        opt->value);
                return -1;
            }
            value = argv[++i];
        }
        if (set_value(opt, settings, value ? value : "", "option") != 0)
            return -1;
    }
    return 0;
}

void opt_print_help(const char *command, const char *summary, const opt_t *table, size_t count)
{
    opt_print_help_aliased(command, summary, table, count, NULL, 0);
}


void opt_print_help_aliased(const char *command, const char *summary, const opt_t *table,
                            size_t count, const opt_alias_t *aliases, size_t alias_count)
{
    /* A command that prints its own usage lines first passes NULL. */
    if (command)
        printf("Usage: agentnet %s [OPTIONS]\n\n", command);
    printf("%s\n\nOptions (flag, then environment variable):\n", summary);
    for (size_t i = 0; i < count; i++) {
        const char *alias = NULL;
        for (size_t a = 0; a < alias_count; a++)
            if (strcmp(aliases[a].flag, table[i].flag) == 0)
                alias = aliases[a].alias;
        char left[80];
        snprintf(left, sizeof(left), "%s%s%s %s", alias ? alias : "", alias ? ", " : "",
                 table[i].flag, table[i].value ? table[i].value : "");
        printf("  %-32s %s\n", left, table[i].help);
        if (table[i].env)
            printf("  %-32s   env: %s\n", "", table[i].env);
    }
    printf("  %-32s %s\n", "-h, --help", "show this help");
}
