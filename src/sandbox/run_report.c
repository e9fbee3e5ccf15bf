/*
 * The run report: violations and notes as the supervisor collects them,
 * the JSON form printed by `agentnet sandbox run --json`, and the audit
 * events of a run. Captured output is made valid UTF-8 here, with each
 * invalid byte replaced by U+FFFD, because JSON strings must be UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "agentnet/event.h"
#include "agentnet/log.h"
#include "sandbox/run_internal.h"

static const char replacement_char[] = "\xEF\xBF\xBD"; /* U+FFFD in UTF-8 */

/* Keys of the report's "limits", in an_sandbox_limit_t order: the policy's keys. */
static const char *const limit_keys[AN_SANDBOX_LIMIT_COUNT] = {
    "max_memory_mb",    "max_cpu_time_seconds", "max_wall_time_seconds", "max_processes",
    "max_output_bytes", "max_file_size_mb",     "max_open_files",
};


int an__sbx_utf8_sanitize(const char *text, size_t len, an_buf_t *out)
{
    const uint8_t *bytes = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        /* Runs of ASCII are copied as they are, without decoding. */
        size_t run = i;
        while (run < len && bytes[run] < 0x80)
            run++;
        if (run > i && an_buf_append(out, text + i, run - i) != 0)
            return AN_ENOMEM;
        i = run;
        if (i >= len)
            break;

        utf8proc_int32_t codepoint;
        utf8proc_ssize_t used =
            utf8proc_iterate(bytes + i, (utf8proc_ssize_t)(len - i), &codepoint);
        int rc = used > 0 ? an_buf_append(out, text + i, (size_t)used)
                          : an_buf_append(out, replacement_char, 3);
        if (rc != 0)
            return AN_ENOMEM;
        i += used > 0 ? (size_t)used : 1;
    }
    /* An empty result still gets a buffer, so the JSON writer prints "" and not null. */
    return an_buf_reserve(out, 1) == 0 ? 0 : AN_ENOMEM;
}


void an__sbx_add_violation(an_sandbox_report_t *report, const char *kind, const char *detail)
{
    report->violations_total++;
    if (report->violation_count >= AN_SANDBOX_MAX_VIOLATIONS)
        return;
    an_sandbox_violation_t *v = &report->violations[report->violation_count++];
    snprintf(v->kind, sizeof(v->kind), "%s", kind);
    snprintf(v->detail, sizeof(v->detail), "%s", detail);
}


void an__sbx_add_note(an_sandbox_report_t *report, const char *note)
{
    an_log(AN_LOG_DEBUG, note, "run_id", report->run_id, (const char *)NULL);
    if (report->note_count < AN_SANDBOX_MAX_NOTES)
        snprintf(report->notes[report->note_count++], sizeof(report->notes[0]), "%s", note);
}


void an_sandbox_report_free(an_sandbox_report_t *report)
{
    if (!report)
        return;
    an_buf_free(&report->stdout_data);
    an_buf_free(&report->stderr_data);
}


/* A captured stream as a JSON string, or null when output was passed through. */
static json_t *output_json(const an_buf_t *data, int captured)
{
    if (!captured)
        return json_null();
    an_buf_t clean = {0};
    if (an__sbx_utf8_sanitize(data->data ? data->data : "", data->len, &clean) != 0) {
        an_buf_free(&clean);
        return NULL;
    }
    json_t *text = json_stringn(clean.data, clean.len);
    an_buf_free(&clean);
    return text;
}


static json_t *limits_json(const an_sandbox_report_t *report)
{
    json_t *limits = json_object();
    for (int i = 0; i < AN_SANDBOX_LIMIT_COUNT; i++) {
        const an_sandbox_limit_use_t *limit = &report->limits[i];
        json_t *entry = json_pack(
            "{s:o, s:o}", "value",
            limit->value ? json_integer((json_int_t)limit->value) : json_null(), "mechanism",
            limit->mechanism[0] ? json_string(limit->mechanism) : json_null());
        json_object_set_new(limits, limit_keys[i], entry);
    }
    return limits;
}


static json_t *violations_json(const an_sandbox_report_t *report)
{
    json_t *list = json_array();
    for (size_t i = 0; i < report->violation_count; i++)
        json_array_append_new(list, json_pack("{s:s, s:s}", "kind", report->violations[i].kind,
                                               "detail", report->violations[i].detail));
    return list;
}


static json_t *notes_json(const an_sandbox_report_t *report)
{
    json_t *list = json_array();
    for (size_t i = 0; i < report->note_count; i++)
        json_array_append_new(list, json_string(report->notes[i]));
    return list;
}


char *an_sandbox_report_json(const an_sandbox_report_t *report)
{
    json_t *out = output_json(&report->stdout_data, report->captured);
    json_t *err = output_json(&report->stderr_data, report->captured);
    json_t *plugin = report->plugin_name[0]
                         ? json_pack("{s:s, s:s}", "name", report->plugin_name, "version",
                                     report->plugin_version)
                         : json_null();

    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:b, s:b, s:o, s:I, s:o, "
        "s:{s:s, s:s}, s:I, s:I, s:s, s:b, s:o}",
        "run_id", report->run_id,
        "level", an_sandbox_level_name(report->level),
        "network", an_sandbox_network_name(report->network),
        "plugin", plugin,
        "exit_code", report->exited ? json_integer(report->exit_code) : json_null(),
        "signal", report->exited ? json_null() : json_integer(report->signal),
        "killed_reason", report->killed_reason ? json_string(report->killed_reason) : json_null(),
        "wall_ms", (json_int_t)report->wall_ms,
        "cpu_ms", (json_int_t)report->cpu_ms,
        "peak_rss_kb", (json_int_t)report->peak_rss_kb,
        "stdout", out,
        "stderr", err,
        "stdout_truncated", report->stdout_truncated,
        "stderr_truncated", report->stderr_truncated,
        "violations", violations_json(report),
        "violations_total", (json_int_t)report->violations_total,
        "limits", limits_json(report),
        "measured_by", "cpu", report->cpu_source, "memory", report->memory_source,
        "host_uid", (json_int_t)report->host_uid,
        "host_gid", (json_int_t)report->host_gid,
        "workdir", report->workdir,
        "workdir_removed", report->workdir_removed,
        "notes", notes_json(report));
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}


void an__sbx_emit_events(const an_sandbox_report_t *report, const char *command,
                         const char *outcome, const char *error)
{
    if (!an_event_get_sink())
        return;
    const char *plugin = report->plugin_name[0] ? report->plugin_name : NULL;

    for (size_t i = 0; i < report->violation_count; i++) {
        json_t *detail = json_pack("{s:s, s:s*, s:s, s:s}", "run_id", report->run_id, "plugin",
                                   plugin, "kind", report->violations[i].kind, "detail",
                                   report->violations[i].detail);
        char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
        an_event_emit("sandbox", "violation", "denied", text);
        free(text);
        json_decref(detail);
    }

    json_t *detail = json_pack(
        "{s:s, s:s*, s:s, s:s, s:o, s:o, s:s*, s:I, s:I, s:I, s:I, s:s*}", "run_id", report->run_id,
        "plugin", plugin, "level", an_sandbox_level_name(report->level), "command",
        command ? command : "", "exit_code",
        report->exited ? json_integer(report->exit_code) : json_null(), "signal",
        report->exited || !report->signal ? json_null() : json_integer(report->signal),
        "killed_reason", report->killed_reason, "wall_ms", (json_int_t)report->wall_ms,
        "cpu_ms", (json_int_t)report->cpu_ms, "peak_rss_kb", (json_int_t)report->peak_rss_kb,
        "violations", (json_int_t)report->violations_total, "error", error);
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    an_event_emit("sandbox", "run", outcome, text);
    free(text);
    json_decref(detail);
}
