/*
 * Audit events: every module reports what it did (a cache purge, a sandbox
 * run, a policy violation) to one event sink. The default sink appends JSON
 * lines to DATA_DIR/events.jsonl; tests install an in-memory sink instead.
 */
#ifndef AGENTNET_EVENT_H
#define AGENTNET_EVENT_H

#include <stdint.h>

typedef struct {
    int64_t ts_ms;           /* when it happened, Unix epoch milliseconds */
    const char *module;      /* "cache", "server", "sandbox", ... */
    const char *action;      /* "purge", "start", "stop", ... */
    const char *outcome;     /* "ok", "denied", "error" */
    const char *detail_json; /* a JSON object with the specifics, or NULL */
} an_event_t;

typedef struct an_event_sink an_event_sink_t;

struct an_event_sink {
    /* Records one event. Must be thread-safe; the event is borrowed. */
    int (*emit)(an_event_sink_t *sink, const an_event_t *event);
    /* Flushes and frees the sink. */
    void (*close)(an_event_sink_t *sink);
};

/*
 * Opens the default sink appending to DATA_DIR/events.jsonl (buffered, no
 * fsync per event). The caller owns the sink and closes it.
 */
int an_event_sink_open_jsonl(const char *data_dir, an_event_sink_t **out);

/* Sets and returns the process-wide sink (NULL drops events). */
void an_event_set_sink(an_event_sink_t *sink);
an_event_sink_t *an_event_get_sink(void);

/* Emits through the process-wide sink with the current time. */
void an_event_emit(const char *module, const char *action, const char *outcome,
                   const char *detail_json);

#endif
