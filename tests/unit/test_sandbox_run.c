/*
 * Sandbox runner, pure parts: the UTF-8 cleaning of captured output, the
 * JSON report's fields and types, the host id a root supervisor picks, and
 * the run options' defaults. Running commands is tested end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agentnet/common.h"
#include "agentnet/sandbox.h"
#include "sandbox/run_internal.h"

#define FFFD "\xEF\xBF\xBD"


/* Cleans the bytes of a string literal and compares the result with another literal. */
#define check_sanitized(input, expected) \
    check_sanitized_bytes(input, sizeof(input) - 1, expected, sizeof(expected) - 1)

static void check_sanitized_bytes(const char *input, size_t len, const char *expected,
                                  size_t expected_len)
{
    an_buf_t out = {0};
    assert_int_equal(an__sbx_utf8_sanitize(input, len, &out), 0);
    assert_non_null(out.data);
    assert_int_equal(out.len, expected_len);
    assert_memory_equal(out.data, expected, out.len);
    an_buf_free(&out);
}


static void utf8_keeps_valid_text(void **state)
{
    (void)state;
    check_sanitized("plain ascii", "plain ascii");
    check_sanitized("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
                    "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    check_sanitized("", "");
}


static void utf8_replaces_each_invalid_byte(void **state)
{
    (void)state;
    check_sanitized("a\xFF" "b", "a" FFFD "b");
    check_sanitized("\xFE\xFF", FFFD FFFD);
    /* A lone continuation byte. */
    check_sanitized("x\x80y", "x" FFFD "y");
}


static void utf8_replaces_truncated_sequence(void **state)
{
    (void)state;
    /* The first two bytes of the euro sign, then ASCII: both bytes are invalid. */
    check_sanitized("\xE2\x82" "A", FFFD FFFD "A");
    /* Cut at the end of the buffer, as output cut at the cap can be. */
    check_sanitized("ok\xF0\x9F\x98", "ok" FFFD FFFD FFFD);
}


static void utf8_rejects_overlong_and_surrogates(void **state)
{
    (void)state;
    check_sanitized("\xC0\x80", FFFD FFFD);
    check_sanitized("\xED\xA0\x80", FFFD FFFD FFFD);
}


static void utf8_keeps_nul_bytes(void **state)
{
    (void)state;
    check_sanitized("a\0b", "a\0b");
}


/* A report as a finished run would leave it, with captured output. */
static void fill_report(an_sandbox_report_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->run_id, sizeof(r->run_id), "0123456789abcdef0123456789abcdef");
    r->level = AN_SANDBOX_SANDBOXED;
    r->network = AN_SANDBOX_NET_NONE;
    r->captured = 1;
    an_buf_append(&r->stdout_data, "out\xFF", 4);
    an_buf_append(&r->stderr_data, "", 0);
    an_buf_reserve(&r->stderr_data, 1);
    r->wall_ms = 12;
    r->cpu_ms = 3;
    r->peak_rss_kb = 2048;
    snprintf(r->cpu_source, sizeof(r->cpu_source), "wait4 rusage");
    snprintf(r->memory_source, sizeof(r->memory_source), "wait4 ru_maxrss");
    r->limits[AN_SANDBOX_LIMIT_MEMORY].value = 512;
    snprintf(r->limits[AN_SANDBOX_LIMIT_MEMORY].mechanism, sizeof(r->limits[0].mechanism),
             "RLIMIT_AS (per process)");
    snprintf(r->workdir, sizeof(r->workdir), "/work");
    r->workdir_removed = 1;
}


static json_t *report_to_json(const an_sandbox_report_t *r)
{
    char *text = an_sandbox_report_json(r);
    assert_non_null(text);
    assert_null(strchr(text, '\n'));
    json_error_t error;
    json_t *root = json_loads(text, 0, &error);
    free(text);
    assert_non_null(root);
    return root;
}


static void report_exited_run_fields(void **state)
{
    (void)state;
    an_sandbox_report_t r;
    fill_report(&r);
    r.exited = 1;
    r.exit_code = 3;
    json_t *root = report_to_json(&r);

    assert_int_equal(json_integer_value(json_object_get(root, "exit_code")), 3);
    assert_true(json_is_null(json_object_get(root, "signal")));
    assert_true(json_is_null(json_object_get(root, "killed_reason")));
    assert_string_equal(json_string_value(json_object_get(root, "stdout")), "out" FFFD);
    assert_string_equal(json_string_value(json_object_get(root, "stderr")), "");
    assert_true(json_is_false(json_object_get(root, "stdout_truncated")));
    assert_int_equal(json_integer_value(json_object_get(root, "wall_ms")), 12);
    assert_int_equal(json_integer_value(json_object_get(root, "cpu_ms")), 3);
    assert_int_equal(json_integer_value(json_object_get(root, "peak_rss_kb")), 2048);
    assert_string_equal(json_string_value(json_object_get(root, "level")), "sandboxed");
    assert_true(json_is_array(json_object_get(root, "violations")));
    assert_true(json_is_true(json_object_get(root, "workdir_removed")));
    assert_true(json_is_null(json_object_get(root, "plugin")));

    json_decref(root);
    an_sandbox_report_free(&r);
}


static void report_killed_run_fields(void **state)
{
    (void)state;
    an_sandbox_report_t r;
    fill_report(&r);
    r.exited = 0;
    r.signal = 9;
    r.killed_reason = "timeout";
    r.stdout_truncated = 1;
    an__sbx_add_violation(&r, "syscall", "ptrace");
    json_t *root = report_to_json(&r);

    assert_true(json_is_null(json_object_get(root, "exit_code")));
    assert_int_equal(json_integer_value(json_object_get(root, "signal")), 9);
    assert_string_equal(json_string_value(json_object_get(root, "killed_reason")), "timeout");
    assert_true(json_is_true(json_object_get(root, "stdout_truncated")));
    json_t *violation = json_array_get(json_object_get(root, "violations"), 0);
    assert_string_equal(json_string_value(json_object_get(violation, "kind")), "syscall");
    assert_string_equal(json_string_value(json_object_get(violation, "detail")), "ptrace");

    json_decref(root);
    an_sandbox_report_free(&r);
}


static void report_lists_every_limit(void **state)
{
    (void)state;
    static const char *const keys[] = {"max_memory_mb", "max_cpu_time_seconds",
                                       "max_wall_time_seconds", "max_processes",
                                       "max_output_bytes", "max_file_size_mb", "max_open_files"};
    an_sandbox_report_t r;
    fill_report(&r);
    json_t *root = report_to_json(&r);
    json_t *limits = json_object_get(root, "limits");
    assert_int_equal(json_object_size(limits), 7);
    for (size_t i = 0; i < 7; i++)
        assert_non_null(json_object_get(limits, keys[i]));

    json_t *memory = json_object_get(limits, "max_memory_mb");
    assert_int_equal(json_integer_value(json_object_get(memory, "value")), 512);
    assert_string_equal(json_string_value(json_object_get(memory, "mechanism")),
                        "RLIMIT_AS (per process)");
    /* A limit of 0 is no limit: both fields are null. */
    json_t *files = json_object_get(limits, "max_open_files");
    assert_true(json_is_null(json_object_get(files, "value")));
    assert_true(json_is_null(json_object_get(files, "mechanism")));

    json_decref(root);
    an_sandbox_report_free(&r);
}


static void report_pass_through_output_is_null(void **state)
{
    (void)state;
    an_sandbox_report_t r;
    fill_report(&r);
    an_sandbox_report_free(&r);
    memset(&r.stdout_data, 0, sizeof(r.stdout_data));
    memset(&r.stderr_data, 0, sizeof(r.stderr_data));
    r.captured = 0;
    json_t *root = report_to_json(&r);
    assert_true(json_is_null(json_object_get(root, "stdout")));
    assert_true(json_is_null(json_object_get(root, "stderr")));
    json_decref(root);
}


static void violations_past_capacity_are_counted(void **state)
{
    (void)state;
    static an_sandbox_report_t r;
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < AN_SANDBOX_MAX_VIOLATIONS + 5; i++)
        an__sbx_add_violation(&r, "syscall", "keyctl");
    assert_int_equal(r.violation_count, AN_SANDBOX_MAX_VIOLATIONS);
    assert_int_equal(r.violations_total, AN_SANDBOX_MAX_VIOLATIONS + 5);
}


static void host_id_base_when_unused(void **state)
{
    (void)state;
    uint32_t id = 0;
    assert_int_equal(an__sbx_pick_host_id(NULL, NULL, NULL, NULL, &id), 0);
    assert_int_equal(id, AN__SBX_HOST_ID_BASE);
    assert_int_equal(an__sbx_pick_host_id("root:x:0:0:root:/root:/bin/bash\n", "", "", "", &id),
                     0);
    assert_int_equal(id, AN__SBX_HOST_ID_BASE);
}


static void host_id_skips_accounts(void **state)
{
    (void)state;
    uint32_t id = 0;
    const char *passwd = "a:x:100000:100:a:/home/a:/bin/sh\nb:x:1000:100001::/:/bin/sh\n";
    const char *group = "g:x:100002:\n";
    assert_int_equal(an__sbx_pick_host_id(passwd, group, NULL, NULL, &id), 0);
    assert_int_equal(id, 100003);
}


static void host_id_skips_subordinate_ranges(void **state)
{
    (void)state;
    uint32_t id = 0;
    /* useradd's usual layout: 65536 ids per user from 100000. */
    const char *subuid = "alice:100000:65536\nbob:165536:65536\n";
    const char *subgid = "alice:100000:65536\ncarol:231072:10\n";
    assert_int_equal(an__sbx_pick_host_id(NULL, NULL, subuid, subgid, &id), 0);
    assert_int_equal(id, 231082);
}


static void host_id_ignores_malformed_lines(void **state)
{
    (void)state;
    uint32_t id = 0;
    const char *passwd = "broken\nx:y:notanumber:1\n\n:::\nc:x:100000x:1:\n";
    assert_int_equal(an__sbx_pick_host_id(passwd, NULL, "d:100000\n", NULL, &id), 0);
    assert_int_equal(id, AN__SBX_HOST_ID_BASE);
}


static void host_id_full_range_is_error(void **state)
{
    (void)state;
    uint32_t id = 0;
    char subuid[64];
    snprintf(subuid, sizeof(subuid), "x:%u:%u\n", AN__SBX_HOST_ID_BASE,
             AN__SBX_HOST_ID_LIMIT - AN__SBX_HOST_ID_BASE);
    assert_int_equal(an__sbx_pick_host_id(NULL, NULL, subuid, NULL, &id), AN_EFULL);
}


static void run_options_defaults(void **state)
{
    (void)state;
    an_sandbox_run_options_t o = an_sandbox_run_options_default();
    assert_null(o.policy);
    assert_null(o.argv);
    assert_int_equal(o.capture, 0);
    assert_int_equal(o.stdin_fd, -1);
    assert_int_equal(o.stdout_fd, 1);
    assert_int_equal(o.stderr_fd, 2);
    assert_int_equal(o.cancel_fd, -1);
}


static void run_without_command_is_invalid(void **state)
{
    (void)state;
    static an_sandbox_policy_t policy;
    static an_sandbox_report_t report;
    an_sandbox_level_defaults(AN_SANDBOX_SANDBOXED, &policy);
    an_sandbox_run_options_t o = an_sandbox_run_options_default();
    o.policy = &policy;
    const char *argv[] = {NULL};
    o.argv = argv;
    char err[256] = "";
    assert_int_equal(an_sandbox_run(&o, &report, err, sizeof(err)), AN_EINVAL);
    assert_non_null(strstr(err, "missing command"));
    an_sandbox_report_free(&report);
}


static void run_host_network_when_isolated_is_invalid(void **state)
{
    (void)state;
    static an_sandbox_policy_t policy;
    static an_sandbox_report_t report;
    an_sandbox_level_defaults(AN_SANDBOX_SANDBOXED, &policy);
    policy.network = AN_SANDBOX_NET_HOST;
    an_sandbox_run_options_t o = an_sandbox_run_options_default();
    o.policy = &policy;
    const char *argv[] = {"/bin/true", NULL};
    o.argv = argv;
    char err[256] = "";
    assert_int_equal(an_sandbox_run(&o, &report, err, sizeof(err)), AN_EINVAL);
    assert_non_null(strstr(err, "host network"));
    an_sandbox_report_free(&report);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_keeps_valid_text),
        cmocka_unit_test(utf8_replaces_each_invalid_byte),
        cmocka_unit_test(utf8_replaces_truncated_sequence),
        cmocka_unit_test(utf8_rejects_overlong_and_surrogates),
        cmocka_unit_test(utf8_keeps_nul_bytes),
        cmocka_unit_test(report_exited_run_fields),
        cmocka_unit_test(report_killed_run_fields),
        cmocka_unit_test(report_lists_every_limit),
        cmocka_unit_test(report_pass_through_output_is_null),
        cmocka_unit_test(violations_past_capacity_are_counted),
        cmocka_unit_test(host_id_base_when_unused),
        cmocka_unit_test(host_id_skips_accounts),
        cmocka_unit_test(host_id_skips_subordinate_ranges),
        cmocka_unit_test(host_id_ignores_malformed_lines),
        cmocka_unit_test(host_id_full_range_is_error),
        cmocka_unit_test(run_options_defaults),
        cmocka_unit_test(run_without_command_is_invalid),
        cmocka_unit_test(run_host_network_when_isolated_is_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
