/*
 * Resource attempts: a fork bomb, a memory bomb, a CPU spin, unbounded
 * output and a process tree that ignores SIGTERM. Each stops by itself at a
 * bound given on the command line, so a sandbox that fails to stop it costs
 * the host a bounded amount and the probe reports the escape.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define MAX_FORKS 4096
#define FORK_BOMB_SECONDS 3.0
#define CHILD_LIFETIME_SECONDS 5
#define MEM_BOMB_MAX_MB 1024
#define MEM_BOMB_CHUNK_BYTES (1024 * 1024)
#define CPU_SPIN_MAX_SECONDS 30
#define FLOOD_MAX_MB 64
#define FLOOD_BLOCK_BYTES 65536
#define IGNORE_TERM_MAX_SECONDS 30


/* Points fds 0, 1 and 2 at /dev/null, so a child keeps no pipe of the runner open. */
static void detach_stdio(void)
{
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        return;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
}


/* Sleeps whole seconds, resuming after signals that are ignored or handled. */
static void sleep_seconds(long seconds)
{
    struct timespec left = {.tv_sec = seconds};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}


static int parse_bound(int argc, char **argv, long max, const char *what, long *out, json_t *json)
{
    if (argc == 1 && probe_parse_long(argv[0], 1, max, out) == 0)
        return 0;
    char message[128];
    snprintf(message, sizeof(message), "expected %s in 1..%ld", what, max);
    json_object_set_new(json, "error", json_string(message));
    return -1;
}


/*
 * Forks children that sleep until MAX_FORKS exist, a fork fails or
 * FORK_BOMB_SECONDS pass. It then kills and reaps them before reporting, so
 * the count is what the limit allowed and nothing outlives the probe.
 */
int probe_fork_bomb(int argc, char **argv, json_t *out)
{
    long max = 0;
    if (parse_bound(argc, argv, MAX_FORKS, "MAX_FORKS", &max, out) != 0)
        return PROBE_USAGE;

    static pid_t children[MAX_FORKS];
    long forked = 0;
    int err = 0;
    double start = probe_now();
    while (forked < max && probe_now() - start < FORK_BOMB_SECONDS) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            detach_stdio();
            alarm(CHILD_LIFETIME_SECONDS);
            for (;;)
                pause();
        }
        children[forked++] = pid;
    }

    for (long i = 0; i < forked; i++)
        kill(children[i], SIGKILL);
    for (long i = 0; i < forked; i++)
        waitpid(children[i], NULL, 0);

    json_object_set_new(out, "forked", json_integer(forked));
    json_object_set_new(out, "max_forks", json_integer(max));
    json_object_update_new(out, probe_attempt(forked == max, err));
    return forked == max ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/* Maps and touches 1 MiB chunks until MAX_MB are resident or a mapping fails. */
int probe_mem_bomb(int argc, char **argv, json_t *out)
{
    long max_mb = 0;
    if (parse_bound(argc, argv, MEM_BOMB_MAX_MB, "MAX_MB", &max_mb, out) != 0)
        return PROBE_USAGE;

    long touched_mb = 0;
    int err = 0;
    while (touched_mb < max_mb) {
        void *chunk = mmap(NULL, MEM_BOMB_CHUNK_BYTES, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunk == MAP_FAILED) {
            err = errno;
            break;
        }
        memset(chunk, 0x5a, MEM_BOMB_CHUNK_BYTES);
        touched_mb++;
    }

    json_object_set_new(out, "touched_mb", json_integer(touched_mb));
    json_object_update_new(out, probe_attempt(touched_mb == max_mb, err));
    return touched_mb == max_mb ? PROBE_ESCAPED : PROBE_CONTAINED;
}


static double cpu_seconds(void)
{
    struct timespec used;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    return (double)used.tv_sec + (double)used.tv_nsec / 1e9;
}


/* Spins until MAX_SECONDS of CPU time are used; a CPU limit should end it first. */
int probe_cpu_spin(int argc, char **argv, json_t *out)
{
    long max_seconds = 0;
    if (parse_bound(argc, argv, CPU_SPIN_MAX_SECONDS, "MAX_SECONDS", &max_seconds, out) != 0)
        return PROBE_USAGE;

    volatile unsigned long counter = 0;
    while (cpu_seconds() < (double)max_seconds) {
        for (int i = 0; i < 1000000; i++)
            counter++;
    }

    json_object_set_new(out, "cpu_seconds", json_real(cpu_seconds()));
    json_object_update_new(out, probe_attempt(1, 0));
    return PROBE_ESCAPED;
}


/* Writes to stdout until MAX_MB are out or a write fails; reports on stderr. */
int probe_flood(int argc, char **argv, json_t *out)
{
    long max_mb = 0;
    if (parse_bound(argc, argv, FLOOD_MAX_MB, "MAX_MB", &max_mb, out) != 0)
        return PROBE_USAGE;

    static char block[FLOOD_BLOCK_BYTES];
    memset(block, 'A', sizeof(block));
    long long total = max_mb * 1024LL * 1024LL;
    long long written = 0;
    int err = 0;
    while (written < total) {
        ssize_t n = write(STDOUT_FILENO, block, sizeof(block));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        written += n;
    }

    json_object_set_new(out, "bytes_written", json_integer(written));
    json_object_update_new(out, probe_attempt(written >= total, err));
    return written >= total ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/*
 * Ignores SIGTERM, starts a detached grandchild in its own session (stdio on
 * /dev/null, SIGTERM ignored too) and sleeps SECONDS. Only SIGKILL of the
 * whole tree ends both before SECONDS; the suite looks for the grandchild
 * in the host's /proc after the run.
 */
int probe_ignore_term(int argc, char **argv, json_t *out)
{
    long seconds = 0;
    if (parse_bound(argc, argv, IGNORE_TERM_MAX_SECONDS, "SECONDS", &seconds, out) != 0)
        return PROBE_USAGE;
    signal(SIGTERM, SIG_IGN);

    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
        json_object_set_new(out, "error", json_string("pipe failed"));
        return PROBE_USAGE;
    }
    pid_t child = fork();
    if (child == 0) {
        close(pipe_fds[0]);
        setsid();
        pid_t grandchild = fork();
        if (grandchild == 0) {
            close(pipe_fds[1]);
            detach_stdio();
            sleep_seconds(seconds);
            _exit(0);
        }
        ssize_t ignored = write(pipe_fds[1], &grandchild, sizeof(grandchild));
        (void)ignored;
        _exit(0);
    }
    close(pipe_fds[1]);
    pid_t grandchild = -1;
    if (child < 0 || read(pipe_fds[0], &grandchild, sizeof(grandchild)) != sizeof(grandchild))
        grandchild = -1;
    close(pipe_fds[0]);
    if (child > 0)
        waitpid(child, NULL, 0);

    /* The ready line shows in the report's stdout even when the probe is killed. */
    printf("{\"op\":\"ignore-term\",\"ready\":true,\"detached_pid\":%d}\n", (int)grandchild);
    fflush(stdout);
    sleep_seconds(seconds);

    json_object_set_new(out, "detached_pid", json_integer(grandchild));
    json_object_set_new(out, "slept_seconds", json_integer(seconds));
    json_object_update_new(out, probe_attempt(1, 0));
    return PROBE_ESCAPED;
}
