/*
 * Table-driven options shared by the subcommands: each option has a flag,
 * a YAML key, an AGENTNET_* environment variable, a unit and a default,
 * and --help is generated from the same table.
 */
#ifndef AGENTNET_CLI_OPTIONS_H
#define AGENTNET_CLI_OPTIONS_H

#include <stddef.h>

typedef enum {
    OPT_STRING,  /* const char * */
    OPT_UINT,    /* uint64_t */
    OPT_UINT32,  /* unsigned */
    OPT_ONOFF,   /* int: on = 1, off = 0 */
    OPT_BACKEND, /* an_cache_backend_t: lmdb or memory */
    OPT_FLAG,    /* int set to 1 by the bare flag */
} opt_type_t;

typedef struct {
    const char *flag;      /* "--listen" */
    const char *env;       /* "AGENTNET_LISTEN", or NULL */
    opt_type_t type;
    size_t offset;         /* into the subcommand's settings struct */
    const char *value;     /* placeholder in --help, such as "HOST:PORT" */
    const char *help;      /* what it sets, with unit and default */
} opt_t;

/*
 * Applies the YAML file (when config_path is set), then the environment,
 * then argv, to settings. Returns 0, 1 when --help was printed, or -1 after
 * printing an error that names the option and the fix.
 */
int opt_parse(const char *command, const opt_t *table, size_t count, void *settings,
              int argc, char **argv, size_t config_offset);

/*
 * Prints "Usage: agentnet COMMAND [OPTIONS]", summary and the options. A
 * command that prints its own usage lines first passes NULL as command.
 */
void opt_print_help(const char *command, const char *summary, const opt_t *table, size_t count);

/* A short form of a flag in the same table, such as -m for --model. */
typedef struct {
    const char *alias; /* "-m" */
    const char *flag;  /* "--model" */
} opt_alias_t;

/* opt_parse and opt_print_help for a table whose flags also have short forms. */
int opt_parse_aliased(const char *command, const opt_t *table, size_t count,
                      const opt_alias_t *aliases, size_t alias_count, void *settings, int argc,
                      char **argv, size_t config_offset);
void opt_print_help_aliased(const char *command, const char *summary, const opt_t *table,
                            size_t count, const opt_alias_t *aliases, size_t alias_count);

#endif
