/*
 * Structured logging to stderr: JSON lines (default) or text. Lines may be
 * buffered (an_log_set_buffered) so a busy server writes in large blocks.
 * The buffer is flushed when it fills, on every warning or error, and by
 * an_log_flush(), which the server calls once a second.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentnet/common.h"
#include "agentnet/log.h"
#include "common/json_escape.h"

/* Flush threshold of the buffered mode: big enough to batch hundreds of lines. */
#define LOG_BUFFER_FLUSH_BYTES (64 * 1024)

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* All fields below are guarded by log_lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static an_log_level_t log_level = AN_LOG_INFO;
static an_log_format_t log_format = AN_LOG_FORMAT_JSON;
static an_log_writer_t log_writer;
static void *log_writer_ctx;
static int log_buffered;
static an_buf_t log_pending;

void an_log_set_level(an_log_level_t level) { log_level = level; }
void an_log_set_format(an_log_format_t format) { log_format = format; }

void an_log_set_writer(an_log_writer_t writer, void *ctx)
{
    pthread_mutex_lock(&log_lock);
    log_writer = writer;
    log_writer_ctx = ctx;
    pthread_mutex_unlock(&log_lock);
}

int an_log_enabled(an_log_level_t level) { return level >= log_level; }

int an_log_parse_level(const char *name, an_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (an_log_level_t)i;
            return 0;
        }
    }
    return AN_EINVAL;
}

static void write_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, data, len);
        if (n <= 0)
            return; /* nowhere left to report a failed log write */
        data += n;
        len -= (size_t)n;
    }
}

static void flush_locked(void)
{
    if (log_pending.len) {
        write_all(log_pending.data, log_pending.len);
        an_buf_reset(&log_pending);
    }
}

void an_log_set_buffered(int on)
{
    pthread_mutex_lock(&log_lock);
    if (!on)
        flush_locked();
    log_buffered = on;
    pthread_mutex_unlock(&log_lock);
}

void an_log_flush(void)
{
    pthread_mutex_lock(&log_lock);
    flush_locked();
    pthread_mutex_unlock(&log_lock);
}

void an_log_raw(an_log_level_t level, const char *line)
{
    pthread_mutex_lock(&log_lock);
    if (log_writer) {
        log_writer(level, line, log_writer_ctx);
    } else if (log_buffered && level < AN_LOG_WARN) {
        an_buf_append(&log_pending, line, strlen(line));
        an_buf_append(&log_pending, "\n", 1);
        if (log_pending.len >= LOG_BUFFER_FLUSH_BYTES)
            flush_locked();
    } else {
        flush_locked();
        size_t len = strlen(line);
        char stack[1024];
        if (len + 1 <= sizeof(stack)) {
            memcpy(stack, line, len);
            stack[len] = '\n';
            write_all(stack, len + 1);
        } else {
            write_all(line, len);
            write_all("\n", 1);
        }
    }
    pthread_mutex_unlock(&log_lock);
}

void an_log_timestamp(char *out, size_t len)
{
    int64_t ms = an_now_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char text[40];
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%s.%03dZ", text, (int)(ms % 1000));
}

static void append_timestamp(an_buf_t *line)
{
    char text[48];
    an_log_timestamp(text, sizeof(text));
    an_buf_append(line, text, strlen(text));
}

static void format_line(an_buf_t *line, an_log_level_t level, const char *msg, va_list fields)
{
    if (log_format == AN_LOG_FORMAT_TEXT) {
        append_timestamp(line);
        an_buf_appendf(line, " %-5s %s", level_names[level], msg);
        for (const char *key = va_arg(fields, const char *); key; key = va_arg(fields, const char *)) {
            const char *value = va_arg(fields, const char *);
            an_buf_appendf(line, " %s=%s", key, value ? value : "");
        }
        return;
    }

    an_buf_append(line, "{\"ts\":\"", 7);
    append_timestamp(line);
    an_buf_appendf(line, "\",\"level\":\"%s\",\"msg\":", level_names[level]);
    an_json_escape(line, msg);
    for (const char *key = va_arg(fields, const char *); key; key = va_arg(fields, const char *)) {
        const char *value = va_arg(fields, const char *);
        an_buf_append(line, ",", 1);
        an_json_escape(line, key);
        an_buf_append(line, ":", 1);
        an_json_escape(line, value ? value : "");
    }
    an_buf_append(line, "}", 1);
}

void an_log(an_log_level_t level, const char *msg, ...)
{
    if (!an_log_enabled(level))
        return;
    an_buf_t line = {0};
    va_list fields;
    va_start(fields, msg);
    format_line(&line, level, msg, fields);
    va_end(fields);
    if (line.data)
        an_log_raw(level, line.data);
    an_buf_free(&line);
}

void an_logf(an_log_level_t level, const char *fmt, ...)
{
    if (!an_log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    an_log(level, msg, (const char *)NULL);
}
