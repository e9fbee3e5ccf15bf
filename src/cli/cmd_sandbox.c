/*
 * agentnet sandbox levels|check|run: prints the security levels, decides
 * whether a plugin manifest may load under a policy, and hands run to
 * cmd_sandbox_run.c.
 */
#include <inttypes.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agentnet/common.h"
#include "agentnet/sandbox.h"
#include "cli/commands.h"
#include "cli/options.h"

typedef struct {
    const char *policy;
    int json;
} sandbox_settings_t;

static const opt_t check_options[] = {
    {"--policy", NULL, OPT_STRING, offsetof(sandbox_settings_t, policy), "FILE",
     "policy YAML file (required)"},
    {"--json", NULL, OPT_FLAG, offsetof(sandbox_settings_t, json), "",
     "print the verdict, reasons and effective restrictions as one JSON object"},
};

static const opt_t levels_options[] = {
    {"--json", NULL, OPT_FLAG, offsetof(sandbox_settings_t, json), "",
     "print one JSON array instead of a table"},
};

#define COUNT(table) (sizeof(table) / sizeof((table)[0]))


/* Formats a limit for the table: "-" for none, else the number and unit. */
static const char *limit_text(char *out, size_t len, uint64_t value, const char *unit)
{
    if (value == 0)
        snprintf(out, len, "-");
    else if (strcmp(unit, "B") == 0 && value % 1024 == 0 && value >= 1024 * 1024)
        snprintf(out, len, "%" PRIu64 " MiB", value / (1024 * 1024));
    else if (strcmp(unit, "B") == 0 && value % 1024 == 0)
        snprintf(out, len, "%" PRIu64 " KiB", value / 1024);
    else
        snprintf(out, len, "%" PRIu64 "%s%s", value, unit[0] ? " " : "", unit);
    return out;
}


/* null for unrestricted, which binds nothing because it runs on the whole host. */
static json_t *dirs_json(const char *const *dirs)
{
    if (!dirs)
        return json_null();
    json_t *list = json_array();
    for (size_t i = 0; dirs && dirs[i]; i++)
        json_array_append_new(list, json_string(dirs[i]));
    return list;
}


static json_t *paths_json(const an_sandbox_paths_t *paths)
{
    json_t *list = json_array();
    for (size_t i = 0; i < paths->count; i++)
        json_array_append_new(list, json_string(paths->items[i]));
    return list;
}


/* The restrictions as JSON; limits of 0 (none) become null. */
static json_t *policy_json(const an_sandbox_policy_t *p)
{
    json_t *env = json_array();
    for (size_t i = 0; i < p->env_count; i++)
        json_array_append_new(env, json_string(p->env[i]));
#define LIMIT(v) ((v) ? json_integer((json_int_t)(v)) : json_null())
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "level", an_sandbox_level_name(p->level),
                     "min_level", an_sandbox_level_name(p->min_level),
                     "network", an_sandbox_network_name(p->network),
                     "system_dirs", dirs_json(an_sandbox_level_system_dirs(p->level)),
                     "read_only", paths_json(&p->read_only),
                     "read_write", paths_json(&p->read_write),
                     "max_memory_mb", LIMIT(p->max_memory_mb),
                     "max_cpu_time_seconds", LIMIT(p->max_cpu_time_seconds),
                     "max_wall_time_seconds", LIMIT(p->max_wall_time_seconds),
                     "max_processes", LIMIT(p->max_processes),
                     "max_output_bytes", LIMIT(p->max_output_bytes),
                     "max_file_size_mb", LIMIT(p->max_file_size_mb),
                     "max_open_files", LIMIT(p->max_open_files),
                     "env", env);
#undef LIMIT
}


static void print_json_line(json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(value);
}


static int run_levels(int argc, char **argv)
{
    sandbox_settings_t s = {0};
    int rc = opt_parse("sandbox levels", levels_options, COUNT(levels_options), &s, argc, argv,
                       (size_t)-1);
    if (rc == 1) {
        opt_print_help("sandbox levels", "Prints the default restrictions of every security "
                       "level, loosest first. A dash means no limit.",
                       levels_options, COUNT(levels_options));
        return 0;
    }
    if (rc != 0)
        return 2;

    if (s.json) {
        json_t *list = json_array();
        for (unsigned i = 0; i < AN_SANDBOX_LEVEL_COUNT; i++) {
            an_sandbox_policy_t p;
            an_sandbox_level_defaults((an_sandbox_level_t)i, &p);
            json_array_append_new(list, policy_json(&p));
        }
        print_json_line(list);
        return 0;
    }

    printf("%-13s %-8s %-7s %-6s %-6s %-6s %-8s %-6s %-6s %s\n", "level", "network", "memory",
           "cpu", "wall", "procs", "output", "file", "files", "read-only system dirs");
    for (unsigned i = 0; i < AN_SANDBOX_LEVEL_COUNT; i++) {
        an_sandbox_policy_t p;
        an_sandbox_level_defaults((an_sandbox_level_t)i, &p);
        char mem[32], cpu[32], wall[32], procs[32], out[32], file[32], files[32];
        char dirs[256] = "";
        const char *const *list = an_sandbox_level_system_dirs(p.level);
        for (size_t d = 0; list && list[d]; d++)
            snprintf(dirs + strlen(dirs), sizeof(dirs) - strlen(dirs), "%s%s", d ? " " : "",
                     list[d]);
        printf("%-13s %-8s %-7s %-6s %-6s %-6s %-8s %-6s %-6s %s\n",
               an_sandbox_level_name(p.level), an_sandbox_network_name(p.network),
               limit_text(mem, sizeof(mem), p.max_memory_mb, "MB"),
               limit_text(cpu, sizeof(cpu), p.max_cpu_time_seconds, "s"),
               limit_text(wall, sizeof(wall), p.max_wall_time_seconds, "s"),
               limit_text(procs, sizeof(procs), p.max_processes, ""),
               limit_text(out, sizeof(out), p.max_output_bytes, "B"),
               limit_text(file, sizeof(file), p.max_file_size_mb, "MB"),
               limit_text(files, sizeof(files), p.max_open_files, ""),
               list ? dirs : "(whole host, no isolation)");
    }
    printf("\nLimits: memory, CPU and wall time per run; output per stream (stdout and stderr "
           "each);\nfile is the largest file the command may write. No level passes host "
           "environment\nvariables unless a policy's env list names them.\n");
    return 0;
}


/* Splits argv into options and the one MANIFEST argument. */
static int split_manifest(int argc, char **argv, char **options, int *option_count,
                          const char **manifest)
{
    *option_count = 0;
    *manifest = NULL;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-') {
            options[(*option_count)++] = argv[i];
            if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
                options[(*option_count)++] = argv[++i];
            continue;
        }
        if (*manifest) {
            fprintf(stderr, "agentnet sandbox check: more than one manifest (\"%s\" and \"%s\"); "
                    "check one manifest at a time\n", *manifest, argv[i]);
            return -1;
        }
        *manifest = argv[i];
    }
    return 0;
}


static void print_verdict_text(int loadable, const an_sandbox_manifest_t *m,
                               const an_sandbox_policy_t *e, const an_sandbox_reasons_t *reasons)
{
    if (!loadable) {
        printf("rejected: %s %s\n", m->name, m->version);
        for (size_t i = 0; i < reasons->count; i++)
            printf("  %s\n", reasons->text[i]);
        return;
    }

    char text[32];
    printf("loadable: %s %s\n", m->name, m->version);
    printf("  level                  %s\n", an_sandbox_level_name(e->level));
    printf("  network                %s\n", an_sandbox_network_name(e->network));
    for (size_t i = 0; i < e->read_only.count; i++)
        printf("  read-only              %s\n", e->read_only.items[i]);
    for (size_t i = 0; i < e->read_write.count; i++)
        printf("  read-write             %s\n", e->read_write.items[i]);
    printf("  max_memory_mb          %s\n", limit_text(text, sizeof(text), e->max_memory_mb, ""));
    printf("  max_cpu_time_seconds   %s\n",
           limit_text(text, sizeof(text), e->max_cpu_time_seconds, ""));
    printf("  max_wall_time_seconds  %s\n",
           limit_text(text, sizeof(text), e->max_wall_time_seconds, ""));
    printf("  max_processes          %s\n", limit_text(text, sizeof(text), e->max_processes, ""));
    printf("  max_output_bytes       %s\n",
           limit_text(text, sizeof(text), e->max_output_bytes, ""));
    printf("  max_file_size_mb       %s\n",
           limit_text(text, sizeof(text), e->max_file_size_mb, ""));
    printf("  max_open_files         %s\n", limit_text(text, sizeof(text), e->max_open_files, ""));
    for (size_t i = 0; i < e->env_count; i++)
        printf("  env                    %s\n", e->env[i]);
}


static int run_check(int argc, char **argv)
{
    char **options = calloc((size_t)argc + 1, sizeof(char *));
    const char *manifest_path = NULL;
    int option_count = 0;
    if (!options || split_manifest(argc, argv, options, &option_count, &manifest_path) != 0) {
        free(options);
        return 2;
    }
    sandbox_settings_t s = {0};
    int rc = opt_parse("sandbox check", check_options, COUNT(check_options), &s, option_count,
                       options, (size_t)-1);
    free(options);
    if (rc == 1) {
        printf("Usage: agentnet sandbox check --policy FILE [--json] MANIFEST\n\n");
        opt_print_help("sandbox check", "Decides whether the plugin MANIFEST may load under the "
                       "policy. Exit status: 0 loadable, 1 rejected (one reason a line), 2 usage "
                       "or file errors.", check_options, COUNT(check_options));
        return 0;
    }
    if (rc != 0)
        return 2;
    if (!s.policy || !manifest_path) {
        fprintf(stderr, "agentnet sandbox check: %s is missing; run agentnet sandbox check "
                "--policy FILE MANIFEST\n", !s.policy ? "--policy FILE" : "MANIFEST");
        return 2;
    }

    /* Static: both structs are tens of kilobytes. */
    static an_sandbox_policy_t policy, effective;
    static an_sandbox_manifest_t manifest;
    static an_sandbox_reasons_t reasons;
    char err[1024];
    if (an_sandbox_policy_load(s.policy, &policy, err, sizeof(err)) != 0 ||
        an_sandbox_manifest_load(manifest_path, &manifest, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentnet sandbox check: %s\n", err);
        return 2;
    }

    char dir_copy[4096];
    snprintf(dir_copy, sizeof(dir_copy), "%s", manifest_path);
    int loadable = an_sandbox_can_load(&policy, &manifest, dirname(dir_copy), &effective,
                                       &reasons);
    if (s.json) {
        json_t *list = json_array();
        for (size_t i = 0; i < reasons.count; i++)
            json_array_append_new(list, json_string(reasons.text[i]));
        print_json_line(json_pack("{s:s, s:s, s:b, s:o, s:o}", "plugin", manifest.name,
                                  "version", manifest.version, "loadable", loadable, "reasons",
                                  list, "effective",
                                  loadable ? policy_json(&effective) : json_null()));
    } else {
        print_verdict_text(loadable, &manifest, &effective, &reasons);
    }
    return loadable ? 0 : 1;
}


static void print_usage(FILE *out)
{
    fprintf(out, "Usage: agentnet sandbox levels [--json]\n"
                 "       agentnet sandbox check --policy FILE [--json] MANIFEST\n"
                 "       agentnet sandbox run [OPTIONS] -- COMMAND [ARG...]\n"
                 "       agentnet sandbox run [OPTIONS] --plugin MANIFEST\n\n"
                 "COMMAND --help shows a command's options.\n");
}


int cli_sandbox(int argc, char **argv)
{
    const char *action = argc > 0 ? argv[0] : NULL;
    if (!action) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(action, "levels") == 0)
        return run_levels(argc - 1, argv + 1);
    if (strcmp(action, "check") == 0)
        return run_check(argc - 1, argv + 1);
    if (strcmp(action, "run") == 0)
        return cli_sandbox_run(argc - 1, argv + 1);
    fprintf(stderr, "agentnet sandbox: unknown action \"%s\"; use levels, check or run\n", action);
    return 2;
}
