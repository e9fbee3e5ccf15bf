/*
 * Sandbox policy side: level defaults, policy and manifest loading with
 * their error messages, and the load decision with every refusal reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentnet/common.h"
#include "agentnet/sandbox.h"

#define ENTRY_TEXT "print(1)\n"
/* SHA-256 of ENTRY_TEXT, as printed by sha256sum. */
#define ENTRY_SHA256 "cc42155088fca5730758db72b2a5bca33112a941dfaa2d43098ec422ce4ea213"

static char dir[256];
static an_sandbox_policy_t policy, effective;
static an_sandbox_manifest_t manifest;
static an_sandbox_reasons_t reasons;
static char entry_sha256[65];


static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *file = fopen(path, "w");
    if (!file)
        fail_msg("cannot create test file %s", path);
    fputs(text, file);
    fclose(file);
}


static int load_policy_text(const char *text, char *err, size_t err_len)
{
    write_file("policy.yaml", text);
    char path[512];
    snprintf(path, sizeof(path), "%s/policy.yaml", dir);
    return an_sandbox_policy_load(path, &policy, err, err_len);
}


static int load_manifest_text(const char *text, char *err, size_t err_len)
{
    write_file("plugin.yaml", text);
    char path[512];
    snprintf(path, sizeof(path), "%s/plugin.yaml", dir);
    return an_sandbox_manifest_load(path, &manifest, err, err_len);
}


/* Loads a manifest with a correct sha256, followed by extra YAML lines. */
static void load_good_manifest(const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "name: word-count\nversion: \"1.2.0\"\nentry: python3 main.py\n"
             "entry_file: main.py\nsha256: %s\n%s", entry_sha256, extra);
    char err[1024] = "";
    int rc = load_manifest_text(text, err, sizeof(err));
    if (rc != 0)
        fail_msg("manifest did not load: %s", err);
}


static void load_good_policy(const char *text)
{
    char err[1024] = "";
    if (load_policy_text(text, err, sizeof(err)) != 0)
        fail_msg("policy did not load: %s", err);
}


static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/agentnet-sandbox-test-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    write_file("main.py", ENTRY_TEXT);
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/main.py", dir);
    return an_sandbox_sha256_file(path, entry_sha256, err, sizeof(err));
}


static int teardown(void **state)
{
    const char *names[] = {"main.py", "policy.yaml", "plugin.yaml"};
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}


static void sha256_of_file_matches_known_digest(void **state)
{
    assert_string_equal(entry_sha256, ENTRY_SHA256);
}


static void level_defaults_match_table(void **state)
{
    static const struct {
        an_sandbox_level_t level;
        an_sandbox_network_t network;
        uint64_t memory_mb, cpu_s, wall_s, processes, output_bytes, file_mb, open_files;
    } rows[] = {
        {AN_SANDBOX_UNRESTRICTED, AN_SANDBOX_NET_HOST, 0, 0, 0, 0, 0, 0, 0},
        {AN_SANDBOX_SANDBOXED, AN_SANDBOX_NET_NONE, 512, 60, 300, 64, 1048576, 64, 256},
        {AN_SANDBOX_RESTRICTED, AN_SANDBOX_NET_NONE, 256, 30, 120, 16, 262144, 16, 64},
        {AN_SANDBOX_MINIMAL, AN_SANDBOX_NET_NONE, 128, 10, 60, 1, 65536, 8, 32},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        an_sandbox_policy_t p;
        assert_int_equal(an_sandbox_level_defaults(rows[i].level, &p), 0);
        assert_int_equal(p.level, rows[i].level);
        assert_int_equal(p.min_level, rows[i].level);
        assert_int_equal(p.network, rows[i].network);
        assert_int_equal(p.max_memory_mb, rows[i].memory_mb);
        assert_int_equal(p.max_cpu_time_seconds, rows[i].cpu_s);
        assert_int_equal(p.max_wall_time_seconds, rows[i].wall_s);
        assert_int_equal(p.max_processes, rows[i].processes);
        assert_int_equal(p.max_output_bytes, rows[i].output_bytes);
        assert_int_equal(p.max_file_size_mb, rows[i].file_mb);
        assert_int_equal(p.max_open_files, rows[i].open_files);
        assert_int_equal(p.read_only.count, 0);
        assert_int_equal(p.read_write.count, 0);
        assert_int_equal(p.env_count, 0);
    }
    an_sandbox_policy_t p;
    assert_int_equal(an_sandbox_level_defaults((an_sandbox_level_t)7, &p), AN_EINVAL);
}


static void level_names_round_trip(void **state)
{
    const char *names[] = {"unrestricted", "sandboxed", "restricted", "minimal"};
    for (unsigned i = 0; i < 4; i++) {
        an_sandbox_level_t level;
        assert_int_equal(an_sandbox_level_parse(names[i], &level), 0);
        assert_int_equal(level, i);
        assert_string_equal(an_sandbox_level_name(level), names[i]);
    }
    an_sandbox_level_t level;
    assert_int_equal(an_sandbox_level_parse("strict", &level), AN_EINVAL);
    assert_null(an_sandbox_level_system_dirs(AN_SANDBOX_UNRESTRICTED));
    assert_string_equal(an_sandbox_level_system_dirs(AN_SANDBOX_SANDBOXED)[0], "/usr");
}


static void policy_empty_file_is_sandboxed(void **state)
{
    load_good_policy("# nothing set\n");
    assert_int_equal(policy.level, AN_SANDBOX_SANDBOXED);
    assert_int_equal(policy.min_level, AN_SANDBOX_SANDBOXED);
    assert_int_equal(policy.network, AN_SANDBOX_NET_NONE);
    assert_int_equal(policy.max_memory_mb, 512);
}


static void policy_overrides_level_defaults(void **state)
{
    load_good_policy("level: restricted\nmin_level: sandboxed\nnetwork: loopback\n"
                     "max_memory_mb: 1024\nmax_cpu_time_seconds: 5\nmax_wall_time_seconds: 9\n"
                     "max_processes: 3\nmax_output_bytes: 4096\nmax_file_size_mb: 2\n"
                     "max_open_files: 20\nenv: [LANG, TZ]\n"
                     "filesystem:\n  read_only: [/data/corpus, /opt/models]\n");
    assert_int_equal(policy.level, AN_SANDBOX_RESTRICTED);
    assert_int_equal(policy.min_level, AN_SANDBOX_SANDBOXED);
    assert_int_equal(policy.network, AN_SANDBOX_NET_LOOPBACK);
    assert_int_equal(policy.max_memory_mb, 1024);
    assert_int_equal(policy.max_cpu_time_seconds, 5);
    assert_int_equal(policy.max_wall_time_seconds, 9);
    assert_int_equal(policy.max_processes, 3);
    assert_int_equal(policy.max_output_bytes, 4096);
    assert_int_equal(policy.max_file_size_mb, 2);
    assert_int_equal(policy.max_open_files, 20);
    assert_int_equal(policy.env_count, 2);
    assert_string_equal(policy.env[0], "LANG");
    assert_string_equal(policy.env[1], "TZ");
    assert_int_equal(policy.read_only.count, 2);
    assert_string_equal(policy.read_only.items[1], "/opt/models");
    assert_int_equal(policy.read_write.count, 0);
}


/* Each bad policy must fail with AN_EINVAL and a message containing every fragment. */
static void policy_bad_inputs_name_key_and_fix(void **state)
{
    static const struct {
        const char *yaml;
        const char *fragments[3];
    } cases[] = {
        {"colour: red\n", {"unknown key \"colour\"", "max_memory_mb", NULL}},
        {"level: strict\n", {"level \"strict\" is not a level", "minimal", NULL}},
        {"level: 3\n", {"level is an integer", "sandboxed", NULL}},
        {"min_level: lax\n", {"min_level \"lax\"", NULL, NULL}},
        {"network: host\n", {"network \"host\" is invalid", "none or loopback", NULL}},
        {"max_memory_mb: -5\n", {"max_memory_mb -5 is out of range", "from 1 to 1048576", NULL}},
        {"max_memory_mb: 0\n", {"max_memory_mb 0 is out of range", NULL, NULL}},
        {"max_processes: 99999999\n", {"max_processes 99999999 is out of range", NULL, NULL}},
        {"max_output_bytes: 1MiB\n", {"max_output_bytes is a string", "whole number", NULL}},
        {"max_cpu_time_seconds: 1.5\n", {"max_cpu_time_seconds is a number with a fraction",
                                          NULL, NULL}},
        {"env: LANG\n", {"env is a string", "list of variable names", NULL}},
        {"env: [\"A=1\"]\n", {"env[0] \"A=1\" is not a variable name", NULL, NULL}},
        {"filesystem: /data\n", {"filesystem is a string", "read_only", NULL}},
        {"filesystem:\n  read_only: [data]\n",
         {"filesystem.read_only[0] \"data\" is not an absolute path", NULL, NULL}},
        {"filesystem:\n  read_only: [/data/../etc]\n", {"\"/data/../etc\"", NULL, NULL}},
        {"filesystem:\n  writable: [/data]\n", {"unknown key filesystem.writable", NULL, NULL}},
        {"level: restricted\nfilesystem:\n  read_write: [/scratch]\n",
         {"read_write lists \"/scratch\"", "level restricted allows no writes", NULL}},
        {"level: minimal\nnetwork: loopback\n", {"network loopback is invalid at level minimal",
                                                  NULL, NULL}},
        {"level: minimal\nmax_processes: 4\n", {"max_processes 4 is invalid at level minimal",
                                                 NULL, NULL}},
        {"- a\n- b\n", {"must be a mapping", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[1024] = "";
        int rc = load_policy_text(cases[i].yaml, err, sizeof(err));
        if (rc != AN_EINVAL)
            fail_msg("policy %zu (%s) returned %d, expected AN_EINVAL", i, cases[i].yaml, rc);
        for (size_t f = 0; f < 3 && cases[i].fragments[f]; f++)
            if (!strstr(err, cases[i].fragments[f]))
                fail_msg("policy %zu: message \"%s\" lacks \"%s\"", i, err,
                         cases[i].fragments[f]);
    }
}


static void policy_missing_file_is_eio(void **state)
{
    char err[1024] = "";
    assert_int_equal(an_sandbox_policy_load("/nonexistent/policy.yaml", &policy, err,
                                            sizeof(err)), AN_EIO);
    assert_non_null(strstr(err, "/nonexistent/policy.yaml"));
}


static void manifest_loads_every_field(void **state)
{
    load_good_manifest("level: restricted\npermissions:\n  network: loopback\n"
                       "  filesystem:\n    read_only: [/data/corpus]\n"
                       "    read_write: [/scratch/out]\n  env: [LANG]\n"
                       "  limits:\n    max_memory_mb: 100\n    max_open_files: 10\n");
    assert_string_equal(manifest.name, "word-count");
    assert_string_equal(manifest.version, "1.2.0");
    assert_int_equal(manifest.argc, 2);
    assert_string_equal(manifest.argv[0], "python3");
    assert_string_equal(manifest.argv[1], "main.py");
    assert_string_equal(manifest.entry_file, "main.py");
    assert_string_equal(manifest.sha256, ENTRY_SHA256);
    assert_int_equal(manifest.has_level, 1);
    assert_int_equal(manifest.level, AN_SANDBOX_RESTRICTED);
    assert_int_equal(manifest.network, AN_SANDBOX_NET_LOOPBACK);
    assert_string_equal(manifest.read_only.items[0], "/data/corpus");
    assert_string_equal(manifest.read_write.items[0], "/scratch/out");
    assert_string_equal(manifest.env[0], "LANG");
    assert_int_equal(manifest.max_memory_mb, 100);
    assert_int_equal(manifest.max_open_files, 10);
    assert_int_equal(manifest.max_processes, 0);
}


static void manifest_entry_list_keeps_spaces(void **state)
{
    char text[1024];
    snprintf(text, sizeof(text), "name: p\nversion: \"1\"\nentry: [python3, \"my file.py\"]\n"
             "entry_file: main.py\nsha256: %s\n", entry_sha256);
    char err[1024] = "";
    assert_int_equal(load_manifest_text(text, err, sizeof(err)), 0);
    assert_int_equal(manifest.argc, 2);
    assert_string_equal(manifest.argv[1], "my file.py");
    assert_int_equal(manifest.has_level, 0);
    assert_int_equal(manifest.network, AN_SANDBOX_NET_NONE);
}


static void manifest_bad_inputs_name_key_and_fix(void **state)
{
    static const struct {
        const char *yaml;
        const char *fragment;
    } cases[] = {
        {"version: \"1\"\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256 "\n",
         "name is missing"},
        {"name: p\nversion: 1.0\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256 "\n",
         "version is a number with a fraction"},
        {"name: \"a b\"\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: "
         ENTRY_SHA256 "\n", "name \"a b\" is invalid"},
        {"name: p\nversion: \"1\"\nentry_file: main.py\nsha256: " ENTRY_SHA256 "\n",
         "entry is missing"},
        {"name: p\nversion: \"1\"\nentry: \"  \"\nentry_file: main.py\nsha256: "
         ENTRY_SHA256 "\n", "entry is empty"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: ../main.py\nsha256: " ENTRY_SHA256
         "\n", "entry_file \"../main.py\" leaves the manifest's directory"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: /bin/sh\nsha256: " ENTRY_SHA256 "\n",
         "entry_file \"/bin/sh\" leaves"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: ABC\n",
         "sha256 \"ABC\" is not 64 lowercase hex digits"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256
         "\nauthor: me\n", "unknown key \"author\""},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256
         "\nlevel: tight\n", "level \"tight\" is not a level"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256
         "\npermissions:\n  network: internet\n", "permissions.network \"internet\" is invalid"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256
         "\npermissions:\n  gpu: true\n", "unknown key permissions.gpu"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256
         "\npermissions:\n  limits:\n    max_memory_mb: -1\n", "max_memory_mb -1 is out of range"},
        {"name: p\nversion: \"1\"\nentry: x\nentry_file: main.py\nsha256: " ENTRY_SHA256
         "\npermissions:\n  limits:\n    max_gpus: 1\n", "unknown key permissions.limits.max_gpus"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[1024] = "";
        int rc = load_manifest_text(cases[i].yaml, err, sizeof(err));
        if (rc != AN_EINVAL)
            fail_msg("manifest %zu returned %d, expected AN_EINVAL", i, rc);
        if (!strstr(err, cases[i].fragment))
            fail_msg("manifest %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].fragment);
    }
}


static int decide(void)
{
    return an_sandbox_can_load(&policy, &manifest, dir, &effective, &reasons);
}


static void can_load_narrows_policy(void **state)
{
    load_good_policy("network: loopback\nenv: [LANG, TZ]\nfilesystem:\n"
                     "  read_only: [/data]\n  read_write: [/scratch]\n");
    load_good_manifest("level: restricted\npermissions:\n  filesystem:\n"
                       "    read_only: [/data/corpus, /usr/share/dict]\n"
                       "    read_write: [/scratch/out]\n  env: [TZ]\n"
                       "  limits: {max_memory_mb: 100, max_wall_time_seconds: 20}\n");
    assert_int_equal(decide(), 1);
    assert_int_equal(reasons.count, 0);
    assert_int_equal(effective.level, AN_SANDBOX_RESTRICTED);
    assert_int_equal(effective.network, AN_SANDBOX_NET_NONE);
    assert_int_equal(effective.read_only.count, 2);
    assert_string_equal(effective.read_only.items[0], "/data/corpus");
    assert_int_equal(effective.read_write.count, 1);
    assert_string_equal(effective.read_write.items[0], "/scratch/out");
    assert_int_equal(effective.env_count, 1);
    assert_string_equal(effective.env[0], "TZ");
    assert_int_equal(effective.max_memory_mb, 100);
    assert_int_equal(effective.max_wall_time_seconds, 20);
    assert_int_equal(effective.max_cpu_time_seconds, 60);
    assert_int_equal(effective.max_processes, 64);
}


static void can_load_never_widens_level(void **state)
{
    load_good_policy("level: restricted\nmin_level: sandboxed\n");
    load_good_manifest("level: sandboxed\n");
    assert_int_equal(decide(), 1);
    assert_int_equal(effective.level, AN_SANDBOX_RESTRICTED);
    assert_int_equal(effective.max_memory_mb, 256);
}


static void can_load_rejects_each_request(void **state)
{
    static const struct {
        const char *policy;
        const char *manifest_extra;
        const char *reason;
    } cases[] = {
        {"network: none\n", "permissions: {network: loopback}\n",
         "network: the manifest requests loopback, but the policy allows none"},
        {"filesystem: {read_only: [/data]}\n",
         "permissions: {filesystem: {read_only: [/home/user]}}\n",
         "asks to read \"/home/user\", which the policy does not grant"},
        {"filesystem: {read_only: [/data]}\n",
         "permissions: {filesystem: {read_only: [/database]}}\n",
         "asks to read \"/database\""},
        {"filesystem: {read_only: [/data]}\n",
         "permissions: {filesystem: {read_write: [/data/out]}}\n",
         "asks to write \"/data/out\", which the policy does not grant"},
        {"level: restricted\n", "permissions: {filesystem: {read_write: [/usr/lib]}}\n",
         "asks to write \"/usr/lib\""},
        {"max_memory_mb: 256\n", "permissions: {limits: {max_memory_mb: 257}}\n",
         "max_memory_mb 257 MB, above the policy's 256"},
        {"", "permissions: {limits: {max_open_files: 1000}}\n",
         "max_open_files 1000 files, above the policy's 256"},
        {"env: [LANG]\n", "permissions: {env: [AWS_SECRET_ACCESS_KEY]}\n",
         "requests AWS_SECRET_ACCESS_KEY, which is not in the policy's env allow list"},
        {"level: restricted\n", "level: sandboxed\n",
         "requests sandboxed, below the policy's floor restricted"},
        {"level: sandboxed\nmin_level: restricted\n", "",
         "requests sandboxed, below the policy's floor restricted"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        load_good_policy(cases[i].policy);
        load_good_manifest(cases[i].manifest_extra);
        int loadable = decide();
        if (loadable != 0 || reasons.count != 1)
            fail_msg("case %zu: loadable %d with %zu reasons, expected rejected with 1", i,
                     loadable, reasons.count);
        if (!strstr(reasons.text[0], cases[i].reason))
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, reasons.text[0],
                     cases[i].reason);
    }
}


static void can_load_lists_every_reason(void **state)
{
    load_good_policy("env: [LANG]\n");
    load_good_manifest("permissions:\n  network: loopback\n  env: [HOME]\n"
                       "  limits: {max_processes: 65}\n");
    assert_int_equal(decide(), 0);
    assert_int_equal(reasons.count, 3);
    assert_non_null(strstr(reasons.text[0], "network:"));
    assert_non_null(strstr(reasons.text[1], "env:"));
    assert_non_null(strstr(reasons.text[2], "limits:"));
}


static void can_load_rejects_changed_entry(void **state)
{
    load_good_policy("");
    load_good_manifest("");
    write_file("main.py", "print(2)\n");
    int loadable = decide();
    write_file("main.py", ENTRY_TEXT);
    assert_int_equal(loadable, 0);
    assert_int_equal(reasons.count, 1);
    assert_non_null(strstr(reasons.text[0], "sha256:"));
    assert_non_null(strstr(reasons.text[0], "the manifest says " ENTRY_SHA256));

    assert_int_equal(decide(), 1);
}


static void can_load_rejects_missing_entry(void **state)
{
    load_good_policy("");
    char text[1024];
    snprintf(text, sizeof(text), "name: p\nversion: \"1\"\nentry: x\nentry_file: gone.py\n"
             "sha256: %s\n", entry_sha256);
    char err[1024] = "";
    assert_int_equal(load_manifest_text(text, err, sizeof(err)), 0);
    assert_int_equal(decide(), 0);
    assert_int_equal(reasons.count, 1);
    assert_non_null(strstr(reasons.text[0], "gone.py\" does not exist"));
}


static void unrestricted_policy_grants_host_paths(void **state)
{
    load_good_policy("level: unrestricted\n");
    load_good_manifest("permissions: {filesystem: {read_write: [/home/user]}, "
                       "limits: {max_memory_mb: 4096}}\n");
    assert_int_equal(decide(), 1);
    assert_int_equal(effective.level, AN_SANDBOX_UNRESTRICTED);
    assert_int_equal(effective.network, AN_SANDBOX_NET_NONE);
    assert_int_equal(effective.max_memory_mb, 4096);
    assert_int_equal(effective.max_cpu_time_seconds, 0);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_of_file_matches_known_digest),
        cmocka_unit_test(level_defaults_match_table),
        cmocka_unit_test(level_names_round_trip),
        cmocka_unit_test(policy_empty_file_is_sandboxed),
        cmocka_unit_test(policy_overrides_level_defaults),
        cmocka_unit_test(policy_bad_inputs_name_key_and_fix),
        cmocka_unit_test(policy_missing_file_is_eio),
        cmocka_unit_test(manifest_loads_every_field),
        cmocka_unit_test(manifest_entry_list_keeps_spaces),
        cmocka_unit_test(manifest_bad_inputs_name_key_and_fix),
        cmocka_unit_test(can_load_narrows_policy),
        cmocka_unit_test(can_load_never_widens_level),
        cmocka_unit_test(can_load_rejects_each_request),
        cmocka_unit_test(can_load_lists_every_reason),
        cmocka_unit_test(can_load_rejects_changed_entry),
        cmocka_unit_test(can_load_rejects_missing_entry),
        cmocka_unit_test(unrestricted_policy_grants_host_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
