/*
 * Shared parts of escape_probe, the test helper that tries one way out of
 * the sandbox per subcommand and prints what happened as one JSON line.
 * The probe only observes: it never retries, widens or hides an attempt.
 */
#ifndef AGENTNET_TESTS_PROBE_H
#define AGENTNET_TESTS_PROBE_H

#include <jansson.h>

/* Exit codes of the probe, read by the escape suite. */
#define PROBE_CONTAINED 0 /* every attempt failed */
#define PROBE_ESCAPED 1   /* at least one attempt succeeded */
#define PROBE_USAGE 2     /* bad arguments or a setup step failed */

/*
 * One subcommand: fills out (a JSON object the caller owns) and returns a
 * PROBE_* code. argv[0] is the subcommand's first argument.
 */
typedef int (*probe_op_fn)(int argc, char **argv, json_t *out);

/* The symbolic name of an errno value ("EPERM"), or its number as text. */
const char *probe_errno_name(int err);

/*
 * Builds {"ok": ok, "errno": NAME or null}; err is ignored when ok. The
 * caller owns the result.
 */
json_t *probe_attempt(int ok, int err);

/* Parses a decimal argument in [min, max]; returns 0, or -1 when invalid. */
int probe_parse_long(const char *text, long min, long max, long *out);

/*
 * Checks that a seccomp filter is installed ("Seccomp: 2" in
 * /proc/self/status). Subcommands that write host paths or send signals
 * call it first, so that running the probe by hand outside the sandbox
 * cannot change the host: they then stop with PROBE_USAGE and an "error".
 * Returns 0 when filtered, -1 otherwise.
 */
int probe_require_filter(json_t *out);

/* Seconds on the monotonic clock. */
double probe_now(void);

int probe_tcp_connect(int argc, char **argv, json_t *out);
int probe_dns(int argc, char **argv, json_t *out);

int probe_read(int argc, char **argv, json_t *out);
int probe_write(int argc, char **argv, json_t *out);
int probe_symlink(int argc, char **argv, json_t *out);
int probe_workdir(int argc, char **argv, json_t *out);
int probe_write_proc_exe(int argc, char **argv, json_t *out);

int probe_fork_bomb(int argc, char **argv, json_t *out);
int probe_mem_bomb(int argc, char **argv, json_t *out);
int probe_cpu_spin(int argc, char **argv, json_t *out);
int probe_flood(int argc, char **argv, json_t *out);
int probe_ignore_term(int argc, char **argv, json_t *out);

int probe_ptrace_sibling(int argc, char **argv, json_t *out);
int probe_mount(int argc, char **argv, json_t *out);
int probe_unshare(int argc, char **argv, json_t *out);
int probe_tiocsti(int argc, char **argv, json_t *out);
int probe_kill(int argc, char **argv, json_t *out);
int probe_keyctl(int argc, char **argv, json_t *out);
int probe_x32(int argc, char **argv, json_t *out);
int probe_i386(int argc, char **argv, json_t *out);
int probe_ids(int argc, char **argv, json_t *out);

#endif
