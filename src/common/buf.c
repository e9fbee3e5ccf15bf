/* The growable byte buffer behind an_buf_t. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/common.h"

int an_buf_reserve(an_buf_t *buf, size_t extra)
{
    size_t need = buf->len + extra + 1; /* + 1 keeps room for the NUL */
    if (need <= buf->cap)
        return 0;

    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = realloc(buf->data, cap);
    if (!data)
        return AN_ENOMEM;
    buf->data = data;
    buf->cap = cap;
    return 0;
}

int an_buf_append(an_buf_t *buf, const void *data, size_t len)
{
    if (an_buf_reserve(buf, len) != 0)
        return AN_ENOMEM;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

int an_buf_appendf(an_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return AN_EINVAL;
    if (an_buf_reserve(buf, (size_t)n) != 0)
        return AN_ENOMEM;

    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

void an_buf_reset(an_buf_t *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

void an_buf_free(an_buf_t *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}
