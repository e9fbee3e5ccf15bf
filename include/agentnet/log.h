/*
 * Structured logging: one JSON object per line on stderr by default, or
 * human-readable text. The host program can replace the writer with a
 * callback. Messages never contain secrets: callers pass ids, not bodies.
 */
#ifndef AGENTNET_LOG_H
#define AGENTNET_LOG_H

#include <stddef.h>

typedef enum {
    AN_LOG_DEBUG = 0,
    AN_LOG_INFO = 1,
    AN_LOG_WARN = 2,
    AN_LOG_ERROR = 3,
} an_log_level_t;

typedef enum {
    AN_LOG_FORMAT_JSON = 0,
    AN_LOG_FORMAT_TEXT = 1,
} an_log_format_t;

/* Receives each finished line (without the newline). */
typedef void (*an_log_writer_t)(an_log_level_t level, const char *line, void *ctx);

void an_log_set_level(an_log_level_t level);
void an_log_set_format(an_log_format_t format);
void an_log_set_writer(an_log_writer_t writer, void *ctx);
int an_log_parse_level(const char *name, an_log_level_t *out);
int an_log_enabled(an_log_level_t level);

/*
 * Logs msg with extra fields given as alternating key and value strings,
 * ended by NULL: an_log(AN_LOG_INFO, "listening", "addr", "127.0.0.1:8080",
 * NULL). Values are escaped as JSON strings.
 */
void an_log(an_log_level_t level, const char *msg, ...) __attribute__((sentinel));

/* Like an_log, with a printf-formatted message and no extra fields. */
void an_logf(an_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Buffers info and debug lines in memory until an_log_flush(), 64 KiB of
 * lines, or a warning or error, whichever comes first. Off by default.
 */
void an_log_set_buffered(int on);
void an_log_flush(void);

/* Writes the current time as RFC 3339 UTC with milliseconds (the "ts" field). */
void an_log_timestamp(char *out, size_t len);

/* Writes a line that is already a complete JSON object, as is. */
void an_log_raw(an_log_level_t level, const char *line);

#endif
