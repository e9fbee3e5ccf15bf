/* Quoting of C strings as JSON string literals. */
#include <stdio.h>
#include <string.h>

#include "common/json_escape.h"

int an_json_escape(an_buf_t *out, const char *text)
{
    if (an_buf_reserve(out, strlen(text) + 2) != 0)
        return AN_ENOMEM;
    an_buf_append(out, "\"", 1);

    const char *run = text;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        const char *escape = NULL;
        char unicode[8];
        switch (*p) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        default:
            if (*p < 0x20) {
                snprintf(unicode, sizeof(unicode), "\\u%04x", *p);
                escape = unicode;
            }
        }
        if (!escape)
            continue;
        an_buf_append(out, run, (size_t)((const char *)p - run));
        an_buf_append(out, escape, strlen(escape));
        run = (const char *)p + 1;
    }
    an_buf_append(out, run, strlen(run));
    return an_buf_append(out, "\"", 1);
}
