/*
 * agentnet sandbox run: resolves the restrictions (a policy file or a
 * level's defaults, then the flags, then a plugin manifest's narrowing)
 * and runs the command isolated. It prints the JSON report, or passes the
 * output through and exits with the command's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <jansson.h>

#include "agentnet/common.h"
#include "agentnet/event.h"
#include "agentnet/sandbox.h"
#include "cli/commands.h"
#include "cli/options.h"

typedef struct {
    const char *level;
    const char *policy;
    const char *memory;
    const char *cpu_time;
    const char *wall_time;
    const char *network;
    const char *plugin;
    const char *workdir_from;
    const char *data_dir;
    int json;
} run_settings_t;

#define R(field) offsetof(run_settings_t, field)

static const opt_t run_options[] = {
    {"--level", NULL, OPT_STRING, R(level), "unrestricted|sandboxed|restricted|minimal",
     "security level (default sandboxed, or the policy's); with --policy it must not be below "
     "the policy's min_level"},
    {"--policy", NULL, OPT_STRING, R(policy), "FILE", "policy YAML file (default: the level's "
     "defaults, listed by agentnet sandbox levels)"},
    {"--memory", NULL, OPT_STRING, R(memory), "MB", "memory limit of the whole run, which also "
     "sizes the workdir tmpfs (default: the policy's)"},
    {"--cpu-time", NULL, OPT_STRING, R(cpu_time), "SECONDS", "CPU time limit (default: the "
     "policy's)"},
    {"--wall-time", NULL, OPT_STRING, R(wall_time), "SECONDS", "wall-clock limit; then SIGTERM, "
     "and SIGKILL 1 s later (default: the policy's)"},
    {"--network", NULL, OPT_STRING, R(network), "none|loopback", "network namespace with no "
     "interface, or with lo up (default: the policy's, none)"},
    {"--json", NULL, OPT_FLAG, R(json), "", "capture stdout and stderr and print one JSON report "
     "line; exit 0 whenever the command ran"},
    {"--plugin", NULL, OPT_STRING, R(plugin), "MANIFEST", "run a plugin: check its manifest "
     "against the policy (as sandbox check does), copy its directory into the workdir and run "
     "its entry; no COMMAND then"},
    {"--workdir-from", NULL, OPT_STRING, R(workdir_from), "DIR", "copy DIR's contents into the "
     "workdir before the command starts (symlinks are copied, not followed)"},
    {"--data-dir", "AGENTNET_DATA_DIR", OPT_STRING, R(data_dir), "DIR", "where events.jsonl "
     "records the run and its violations, created when missing (default ./var/agentnet)"},
};

#define RUN_OPTION_COUNT (sizeof(run_options) / sizeof(run_options[0]))

/* Sanity bounds of the flags; they catch a value in the wrong unit. */
#define MAX_MEMORY_FLAG_MB (1024u * 1024u)
#define MAX_SECONDS_FLAG (7u * 24u * 3600u)

/* Both structs are tens of kilobytes, too large for the stack of a small thread. */
static an_sandbox_policy_t policy, effective;
static an_sandbox_manifest_t manifest;
static an_sandbox_reasons_t reasons;
static an_sandbox_report_t report;

static int cancel_pipe[2] = {-1, -1};


static void on_stop_signal(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t ignored = write(cancel_pipe[1], "x", 1);
    (void)ignored;
    errno = saved;
}


/* SIGINT, SIGTERM and SIGHUP stop the run (and its tree) instead of this process. */
static int install_stop_handlers(void)
{
    if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}


static int parse_limit(const char *flag, const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || value == 0 || value > max) {
        fprintf(stderr, "agentnet sandbox run: %s \"%s\" is invalid; expected a whole number "
                "from 1 to %" PRIu64 "\n", flag, text, max);
        return -1;
    }
    *out = value;
    return 0;
}


/* Moves the policy to level, with the network each kind of level can have. */
static int set_level(const char *name)
{
    an_sandbox_level_t level;
    if (an_sandbox_level_parse(name, &level) != 0) {
        fprintf(stderr, "agentnet sandbox run: --level \"%s\" is invalid; use unrestricted, "
                "sandboxed, restricted or minimal\n", name);
        return -1;
    }
    if (level < policy.min_level) {
        fprintf(stderr, "agentnet sandbox run: --level %s is below the policy's min_level %s; "
                "pick %s or tighter\n", name, an_sandbox_level_name(policy.min_level),
                an_sandbox_level_name(policy.min_level));
        return -1;
    }
    /* The same rules the policy loader applies to a level read from the file. */
    if (level >= AN_SANDBOX_RESTRICTED && policy.read_write.count > 0) {
        fprintf(stderr, "agentnet sandbox run: --level %s allows no read_write paths, and the "
                "policy has %zu; pick sandboxed or drop them\n", name, policy.read_write.count);
        return -1;
    }
    if (level == AN_SANDBOX_MINIMAL && policy.network == AN_SANDBOX_NET_LOOPBACK) {
        fprintf(stderr, "agentnet sandbox run: --level minimal allows no network, and the policy "
                "has loopback; pick restricted or set network: none\n");
        return -1;
    }
    policy.level = level;
    if (level == AN_SANDBOX_UNRESTRICTED)
        policy.network = AN_SANDBOX_NET_HOST;
    else if (policy.network == AN_SANDBOX_NET_HOST)
        policy.network = AN_SANDBOX_NET_NONE;
    return 0;
}


/* The policy file or the level's defaults, then the flags on top. */
static int resolve_policy(const run_settings_t *s)
{
    char err[1024];
    if (s->policy) {
        if (an_sandbox_policy_load(s->policy, &policy, err, sizeof(err)) != 0) {
            fprintf(stderr, "agentnet sandbox run: %s\n", err);
            return -1;
        }
        if (s->level && set_level(s->level) != 0)
            return -1;
    } else {
        an_sandbox_level_t level = AN_SANDBOX_SANDBOXED;
        if (s->level && an_sandbox_level_parse(s->level, &level) != 0) {
            fprintf(stderr, "agentnet sandbox run: --level \"%s\" is invalid; use unrestricted, "
                    "sandboxed, restricted or minimal\n", s->level);
            return -1;
        }
        an_sandbox_level_defaults(level, &policy);
    }

    if (s->memory && parse_limit("--memory", s->memory, MAX_MEMORY_FLAG_MB,
                                 &policy.max_memory_mb) != 0)
        return -1;
    if (s->cpu_time && parse_limit("--cpu-time", s->cpu_time, MAX_SECONDS_FLAG,
                                   &policy.max_cpu_time_seconds) != 0)
        return -1;
    if (s->wall_time && parse_limit("--wall-time", s->wall_time, MAX_SECONDS_FLAG,
                                    &policy.max_wall_time_seconds) != 0)
        return -1;
    if (s->network) {
        if (policy.level == AN_SANDBOX_UNRESTRICTED) {
            fprintf(stderr, "agentnet sandbox run: --network applies to the isolated levels; "
                    "unrestricted runs on the host network\n");
            return -1;
        }
        if (strcmp(s->network, "none") == 0) {
            policy.network = AN_SANDBOX_NET_NONE;
        } else if (strcmp(s->network, "loopback") == 0) {
            if (policy.level == AN_SANDBOX_MINIMAL) {
                fprintf(stderr, "agentnet sandbox run: --network loopback is not available at "
                        "level minimal, which allows no sockets\n");
                return -1;
            }
            policy.network = AN_SANDBOX_NET_LOOPBACK;
        } else {
            fprintf(stderr, "agentnet sandbox run: --network \"%s\" is invalid; use none or "
                    "loopback\n", s->network);
            return -1;
        }
    }
    return 0;
}


static void emit_rejection(void)
{
    json_t *list = json_array();
    for (size_t i = 0; i < reasons.count; i++)
        json_array_append_new(list, json_string(reasons.text[i]));
    json_t *detail = json_pack("{s:s, s:s, s:o}", "plugin", manifest.name, "version",
                               manifest.version, "reasons", list);
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    an_event_emit("sandbox", "load", "denied", text);
    free(text);
    json_decref(detail);
}


/*
 * Loads the manifest and decides with an_sandbox_can_load. On success the
 * policy becomes the effective one and *plugin_dir the manifest's
 * directory (static storage). Returns 0, 1 when rejected, -1 on errors.
 */
static int resolve_plugin(const char *path, const char **plugin_dir)
{
    char err[1024];
    if (an_sandbox_manifest_load(path, &manifest, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentnet sandbox run: %s\n", err);
        return -1;
    }
    char path_copy[4096];
    static char dir[4096];
    snprintf(path_copy, sizeof(path_copy), "%s", path);
    snprintf(dir, sizeof(dir), "%s", dirname(path_copy));
    if (!an_sandbox_can_load(&policy, &manifest, dir, &effective, &reasons)) {
        fprintf(stderr, "agentnet sandbox run: plugin %s %s rejected:\n", manifest.name,
                manifest.version);
        for (size_t i = 0; i < reasons.count; i++)
            fprintf(stderr, "  %s\n", reasons.text[i]);
        emit_rejection();
        return 1;
    }
    policy = effective;
    *plugin_dir = dir;
    return 0;
}


/* Opens DATA_DIR/events.jsonl as the process's event sink. */
static int open_events(const char *data_dir, an_event_sink_t **sink)
{
    if (an_mkdir_p(data_dir) != 0) {
        fprintf(stderr, "agentnet sandbox run: data dir \"%s\" cannot be created (%s); pass "
                "--data-dir or fix its permissions\n", data_dir, strerror(errno));
        return -1;
    }
    if (an_event_sink_open_jsonl(data_dir, sink) != 0) {
        fprintf(stderr, "agentnet sandbox run: cannot open %s/events.jsonl for the audit "
                "events; pass --data-dir or fix its permissions\n", data_dir);
        return -1;
    }
    an_event_set_sink(*sink);
    return 0;
}


/* Pass-through mode: prints on stderr why the run was stopped and what was denied. */
static void print_summary(const an_sandbox_report_t *r)
{
    for (size_t i = 0; i < r->violation_count; i++)
        fprintf(stderr, "agentnet sandbox: denied (%s): %s\n", r->violations[i].kind,
                r->violations[i].detail);
    if (r->violations_total > r->violation_count)
        fprintf(stderr, "agentnet sandbox: %" PRIu64 " more violations not listed\n",
                r->violations_total - r->violation_count);
    if (r->stdout_truncated || r->stderr_truncated)
        fprintf(stderr, "agentnet sandbox: %s passed max_output_bytes (%" PRIu64 ")\n",
                r->stdout_truncated ? "stdout" : "stderr",
                r->limits[AN_SANDBOX_LIMIT_OUTPUT].value);
    if (r->killed_reason)
        fprintf(stderr, "agentnet sandbox: the command was stopped: %s\n", r->killed_reason);
}


/*
 * With --json, a run that could not start still prints one JSON line, so a
 * caller that parses stdout gets the reason and the exit status.
 */
static void print_json_error(const char *message, int status)
{
    json_t *object = json_pack("{s:s, s:i}", "error", message, "exit_status", status);
    char *text = object ? json_dumps(object, JSON_COMPACT) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(object);
}


/* The --json line of a rejected plugin: its reasons joined by "; ". */
static void print_json_rejection(void)
{
    char message[4096];
    size_t used = (size_t)snprintf(message, sizeof(message), "plugin %s %s rejected: ",
                                   manifest.name, manifest.version);
    for (size_t i = 0; i < reasons.count && used < sizeof(message); i++)
        used += (size_t)snprintf(message + used, sizeof(message) - used, "%s%s",
                                 i ? "; " : "", reasons.text[i]);
    print_json_error(message, 2);
}


static void print_usage_help(void)
{
    printf("Usage: agentnet sandbox run [OPTIONS] -- COMMAND [ARG...]\n"
           "       agentnet sandbox run [OPTIONS] --plugin MANIFEST\n\n");
    opt_print_help(NULL,
                   "Runs COMMAND isolated: new namespaces, a read-only root with the level's "
                   "system directories, a private tmpfs workdir (" AN_SANDBOX_WORKDIR
                   ", also HOME) as the current directory, seccomp, rlimits and a cgroup. "
                   "Without --json the output passes through and the exit status is the "
                   "command's (128+N when signal N ended it). Exit status 2: the run was "
                   "refused or could not be set up; 126 or 127: the command could not be "
                   "executed or was not found.",
                   run_options, RUN_OPTION_COUNT);
}


/* Splits argv at "--" into options and the command. */
static void split_command(int argc, char **argv, int *option_count, char ***command)
{
    *option_count = argc;
    *command = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            *option_count = i;
            *command = argv + i + 1;
            return;
        }
    }
}


static int run_command(const run_settings_t *s, const char *const *argv, const char *plugin_dir)
{
    an_sandbox_run_options_t o = an_sandbox_run_options_default();
    o.policy = &policy;
    o.argv = argv;
    o.capture = s->json;
    /* A terminal stays out of the sandbox (it could type into it); a pipe or file goes in. */
    o.stdin_fd = isatty(0) ? -1 : 0;
    o.cancel_fd = cancel_pipe[0];
    o.workdir_from = plugin_dir ? plugin_dir : s->workdir_from;
    if (plugin_dir) {
        o.plugin_name = manifest.name;
        o.plugin_version = manifest.version;
        o.verify_file = manifest.entry_file;
        o.verify_sha256 = manifest.sha256;
    }

    char err[2048] = "";
    int rc = an_sandbox_run(&o, &report, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "agentnet sandbox run: %s\n", err);
        int status = 2;
        if (report.exec_errno == ENOENT)
            status = 127;
        else if (report.exec_errno)
            status = 126;
        if (s->json)
            print_json_error(err, status);
        an_sandbox_report_free(&report);
        return status;
    }

    int status;
    if (s->json) {
        char *text = an_sandbox_report_json(&report);
        if (text) {
            printf("%s\n", text);
            status = 0;
        } else {
            fprintf(stderr, "agentnet sandbox run: out of memory formatting the report\n");
            status = 2;
        }
        free(text);
    } else {
        print_summary(&report);
        status = report.exited ? report.exit_code : 128 + report.signal;
    }
    an_sandbox_report_free(&report);
    fflush(stdout);
    return status;
}


/*
 * Opens /dev/null on whichever of descriptors 0-2 is closed. Otherwise the
 * first file opened here (events.jsonl) would take its number and reach
 * the sandbox as its stdin, or receive its output.
 */
static int fill_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int opened = open("/dev/null", O_RDWR);
        if (opened != fd) {
            if (opened >= 0)
                close(opened);
            return -1;
        }
    }
    return 0;
}


int cli_sandbox_run(int argc, char **argv)
{
    if (fill_standard_fds() != 0)
        return 2;
    int option_count;
    char **command;
    split_command(argc, argv, &option_count, &command);

    run_settings_t s = {.data_dir = "./var/agentnet"};
    int rc = opt_parse("sandbox run", run_options, RUN_OPTION_COUNT, &s, option_count, argv,
                       (size_t)-1);
    if (rc == 1) {
        print_usage_help();
        return 0;
    }
    if (rc != 0)
        return 2;
    int has_command = command && command[0];
    if (s.plugin && (has_command || s.workdir_from)) {
        fprintf(stderr, "agentnet sandbox run: --plugin runs the manifest's entry in a copy of "
                "its directory; drop the %s\n", has_command ? "command after --" : "--workdir-from");
        return 2;
    }
    if (!s.plugin && !has_command) {
        fprintf(stderr, "agentnet sandbox run: missing command; run agentnet sandbox run [OPTIONS] "
                "-- COMMAND [ARG...], or --plugin MANIFEST\n");
        return 2;
    }
    if (resolve_policy(&s) != 0)
        return 2;

    an_event_sink_t *sink = NULL;
    if (open_events(s.data_dir, &sink) != 0)
        return 2;

    const char *plugin_dir = NULL;
    const char *plugin_argv[AN_SANDBOX_MAX_ARGS + 1] = {NULL};
    const char *const *run_argv = (const char *const *)command;
    int status = 2;
    if (s.plugin) {
        rc = resolve_plugin(s.plugin, &plugin_dir);
        if (rc == 1 && s.json)
            print_json_rejection();
        if (rc != 0)
            goto done;
        for (size_t i = 0; i < manifest.argc; i++)
            plugin_argv[i] = manifest.argv[i];
        run_argv = plugin_argv;
    }
    if (install_stop_handlers() != 0) {
        fprintf(stderr, "agentnet sandbox run: cannot create a pipe (%s)\n", strerror(errno));
        goto done;
    }
    status = run_command(&s, run_argv, plugin_dir);

done:
    an_event_set_sink(NULL);
    sink->close(sink);
    return status;
}
