/*
 * Shared vocabulary of every AgentNet module: error codes, the growable byte
 * buffer, clock helpers and the version string. Nothing here allocates behind
 * the caller's back except an_buf_t, whose owner is the struct's holder.
 */
#ifndef AGENTNET_COMMON_H
#define AGENTNET_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define AN_VERSION "0.1.0"

/* Error codes: functions that can fail return 0 or one of these (negative). */
#define AN_OK 0
#define AN_EINVAL -1    /* invalid argument or input */
#define AN_ENOMEM -2    /* allocation failed */
#define AN_EIO -3       /* I/O or storage failure */
#define AN_ENOTFOUND -4 /* key, file or route not found */
#define AN_EEXIST -5    /* already exists */
#define AN_EFULL -6     /* a bound was reached and nothing could be evicted */
#define AN_ETIMEDOUT -7 /* an operation timed out */
#define AN_EUPSTREAM -8 /* the upstream failed or could not be reached */
#define AN_ETOOBIG -9   /* a value is larger than a configured limit */
#define AN_ECLOSED -10  /* the object is shutting down */

/* Returns a static English description of an AN_E* code. */
const char *an_strerror(int code);

/*
 * A growable byte buffer. The holder of the struct owns data and frees it
 * with an_buf_free(). data is always NUL-terminated past len when non-NULL,
 * so text can be used as a C string.
 */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} an_buf_t;

int an_buf_reserve(an_buf_t *buf, size_t extra);
int an_buf_append(an_buf_t *buf, const void *data, size_t len);
int an_buf_appendf(an_buf_t *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void an_buf_reset(an_buf_t *buf);
void an_buf_free(an_buf_t *buf);

/* Wall-clock time in milliseconds since the Unix epoch. */
int64_t an_now_ms(void);
/* Monotonic time in nanoseconds, for durations. */
uint64_t an_mono_ns(void);

/* Writes the lowercase hex form of len bytes to out (2 * len + 1 bytes). */
void an_hex_encode(const uint8_t *bytes, size_t len, char *out);

/* Creates dir and its missing parents with mode 0755, like mkdir -p. */
int an_mkdir_p(const char *dir);

#endif
