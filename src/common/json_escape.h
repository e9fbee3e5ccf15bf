/* JSON string escaping for hot paths that write JSON text by hand (logs). */
#ifndef AGENTNET_COMMON_JSON_ESCAPE_H
#define AGENTNET_COMMON_JSON_ESCAPE_H

#include "agentnet/common.h"

/* Appends text as a quoted JSON string; bytes >= 0x80 pass through as is. */
int an_json_escape(an_buf_t *out, const char *text);

#endif
