/*
 * escape_probe: a test helper that the escape suite runs inside the sandbox.
 * Each subcommand tries one way out (a socket, a host file, a syscall the
 * filter denies, a limit) and prints one JSON line with what it tried and the
 * errno it got. It exits 0 when every attempt failed and 1 when one
 * succeeded. Built statically so it runs with only its own file bound in.
 *
 *   escape_probe [--tag TOKEN] SUBCOMMAND [ARG...]
 *
 * The tag is ignored by the probe: it only marks the command line, so the
 * suite can find stray processes of one run in the host's /proc.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe.h"

typedef struct {
    const char *name;
    probe_op_fn run;
    const char *args;
} probe_command_t;

static const probe_command_t commands[] = {
    {"tcp-connect", probe_tcp_connect, "PORT"},
    {"dns", probe_dns, "PORT"},
    {"read", probe_read, "PATH..."},
    {"write", probe_write, "PATH..."},
    {"symlink", probe_symlink, "LINK TARGET"},
    {"workdir", probe_workdir, "MARKER_NAME HOST_DIR"},
    {"write-proc-exe", probe_write_proc_exe, ""},
    {"fork-bomb", probe_fork_bomb, "MAX_FORKS"},
    {"mem-bomb", probe_mem_bomb, "MAX_MB"},
    {"cpu-spin", probe_cpu_spin, "MAX_SECONDS"},
    {"flood", probe_flood, "MAX_MB"},
    {"ignore-term", probe_ignore_term, "SECONDS"},
    {"ptrace-sibling", probe_ptrace_sibling, ""},
    {"mount", probe_mount, ""},
    {"unshare", probe_unshare, ""},
    {"tiocsti", probe_tiocsti, ""},
    {"kill", probe_kill, "PID"},
    {"keyctl", probe_keyctl, ""},
    {"x32", probe_x32, ""},
    {"i386", probe_i386, ""},
    {"ids", probe_ids, "SECONDS"},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))


const char *probe_errno_name(int err)
{
    static char number[32];
    const char *name = strerrorname_np(err);
    if (name)
        return name;
    snprintf(number, sizeof(number), "%d", err);
    return number;
}


json_t *probe_attempt(int ok, int err)
{
    json_t *result = json_object();
    json_object_set_new(result, "ok", json_boolean(ok));
    json_object_set_new(result, "errno", ok ? json_null() : json_string(probe_errno_name(err)));
    return result;
}


int probe_parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}


int probe_require_filter(json_t *out)
{
    FILE *file = fopen("/proc/self/status", "r");
    char line[256];
    int mode = -1;
    while (file && fgets(line, sizeof(line), file)) {
        if (sscanf(line, "Seccomp: %d", &mode) == 1)
            break;
    }
    if (file)
        fclose(file);
    if (mode == 2)
        return 0;
    json_object_set_new(out, "error", json_string("this subcommand runs only under a seccomp "
                                                  "filter, inside the sandbox"));
    return -1;
}


double probe_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}


static void print_usage(FILE *stream)
{
    fprintf(stream, "usage: escape_probe [--tag TOKEN] SUBCOMMAND [ARG...]\nsubcommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(stream, "  %s %s\n", commands[i].name, commands[i].args);
}


/*
 * Prints out as one line. The flood subcommand fills stdout, so its result
 * goes to stderr.
 */
static void print_result(const char *name, json_t *out)
{
    FILE *stream = strcmp(name, "flood") == 0 ? stderr : stdout;
    char *text = json_dumps(out, JSON_COMPACT);
    if (text) {
        fprintf(stream, "%s\n", text);
        free(text);
    }
    fflush(stream);
}


int main(int argc, char **argv)
{
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--tag") == 0)
        first = 3;
    if (argc <= first) {
        print_usage(stderr);
        return PROBE_USAGE;
    }

    const char *name = argv[first];
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        json_t *out = json_object();
        json_object_set_new(out, "op", json_string(name));
        int status = commands[i].run(argc - first - 1, argv + first + 1, out);
        if (status != PROBE_USAGE)
            json_object_set_new(out, "contained", json_boolean(status == PROBE_CONTAINED));
        print_result(name, out);
        json_decref(out);
        return status;
    }

    fprintf(stderr, "escape_probe: unknown subcommand \"%s\"\n", name);
    print_usage(stderr);
    return PROBE_USAGE;
}
