/*
 * The process-wide audit event sink and its default implementation, which
 * appends one JSON object per line to DATA_DIR/events.jsonl through a stdio
 * buffer (flushed on close, not fsynced per event).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/common.h"
#include "agentnet/event.h"
#include "agentnet/log.h"
#include "common/json_escape.h"

typedef struct {
    an_event_sink_t base;
    pthread_mutex_t lock; /* guards file */
    FILE *file;
} jsonl_sink_t;

static an_event_sink_t *process_sink; /* set once at startup, read afterwards */

static int jsonl_emit(an_event_sink_t *sink, const an_event_t *event)
{
    jsonl_sink_t *s = (jsonl_sink_t *)sink;
    an_buf_t line = {0};
    an_buf_appendf(&line, "{\"ts_ms\":%lld,\"module\":", (long long)event->ts_ms);
    an_json_escape(&line, event->module ? event->module : "");
    an_buf_append(&line, ",\"action\":", 10);
    an_json_escape(&line, event->action ? event->action : "");
    an_buf_append(&line, ",\"outcome\":", 11);
    an_json_escape(&line, event->outcome ? event->outcome : "");
    if (event->detail_json) {
        an_buf_append(&line, ",\"detail\":", 10);
        an_buf_append(&line, event->detail_json, strlen(event->detail_json));
    }
    an_buf_append(&line, "}\n", 2);

    pthread_mutex_lock(&s->lock);
    size_t written = fwrite(line.data, 1, line.len, s->file);
    pthread_mutex_unlock(&s->lock);

    int rc = written == line.len ? 0 : AN_EIO;
    an_buf_free(&line);
    return rc;
}

static void jsonl_close(an_event_sink_t *sink)
{
    jsonl_sink_t *s = (jsonl_sink_t *)sink;
    fclose(s->file);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int an_event_sink_open_jsonl(const char *data_dir, an_event_sink_t **out)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/events.jsonl", data_dir) >= (int)sizeof(path))
        return AN_EINVAL;

    jsonl_sink_t *s = calloc(1, sizeof(*s));
    if (!s)
        return AN_ENOMEM;
    s->file = fopen(path, "a");
    if (!s->file) {
        free(s);
        an_log(AN_LOG_ERROR, "events: cannot open event log; check the data dir's permissions",
               "path", path, (const char *)NULL);
        return AN_EIO;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->base.emit = jsonl_emit;
    s->base.close = jsonl_close;
    *out = &s->base;
    return 0;
}

void an_event_set_sink(an_event_sink_t *sink) { process_sink = sink; }
an_event_sink_t *an_event_get_sink(void) { return process_sink; }

void an_event_emit(const char *module, const char *action, const char *outcome,
                   const char *detail_json)
{
    an_event_sink_t *sink = process_sink;
    if (!sink)
        return;
    an_event_t event = {
        .ts_ms = an_now_ms(),
        .module = module,
        .action = action,
        .outcome = outcome,
        .detail_json = detail_json,
    };
    if (sink->emit(sink, &event) != 0)
        an_log(AN_LOG_WARN, "events: failed to record an audit event", "module", module,
               "action", action, (const char *)NULL);
}
