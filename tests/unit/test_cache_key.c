/*
 * Request keys and canonical JSON: which request changes move the key,
 * which do not, and the exact bytes the key is computed over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "agentnet/cache.h"

#define CHAT "/v1/chat/completions"

/* A request that sets every field the key must depend on. */
static const char BASE_BODY[] =
    "{\"model\":\"gpt-4o-mini\","
    "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
    "{\"role\":\"user\",\"content\":\"hi\"}],"
    "\"temperature\":0.7,\"top_p\":1,\"seed\":7,"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
    "\"tool_choice\":\"auto\",\"response_format\":{\"type\":\"text\"},"
    "\"max_tokens\":16,\"n\":1,\"stop\":[\"\\n\"],\"top_k\":40,"
    "\"repetition_penalty\":1.1,\"stream\":false}";

static const an_cache_key_scope_t BASE_SCOPE = {
    .route = CHAT,
    .namespace_ = "team-a",
    .tenant = "acme",
    .authorization = "Bearer sk-test",
};

typedef struct {
    const char *name;
    const char *body;
} body_case_t;


static json_t *parse(const char *text)
{
    json_error_t error;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &error);
    if (!value)
        fail_msg("test JSON does not parse: %s: %s", error.text, text);
    return value;
}


static an_cache_key_t key_of(const an_cache_key_scope_t *scope, const char *body_text)
{
    json_t *body = parse(body_text);
    an_cache_key_t key;
    assert_int_equal(an_cache_key_request(scope, body, &key), 0);
    json_decref(body);
    return key;
}


static int keys_equal(const an_cache_key_t *a, const an_cache_key_t *b)
{
    return memcmp(a->bytes, b->bytes, AN_CACHE_KEY_BYTES) == 0;
}


static void key_ignores_layout_and_number_form(void **state)
{
    (void)state;
    static const body_case_t cases[] = {
        {"keys in another order",
         "{\"stream\":false,\"repetition_penalty\":1.1,\"top_k\":40,\"stop\":[\"\\n\"],\"n\":1,"
         "\"max_tokens\":16,\"response_format\":{\"type\":\"text\"},\"tool_choice\":\"auto\","
         "\"tools\":[{\"function\":{\"parameters\":{},\"name\":\"f\"},\"type\":\"function\"}],"
         "\"seed\":7,\"top_p\":1,\"temperature\":0.7,"
         "\"messages\":[{\"content\":\"be brief\",\"role\":\"system\"},"
         "{\"content\":\"hi\",\"role\":\"user\"}],\"model\":\"gpt-4o-mini\"}"},
        {"whitespace",
         "{ \"model\" : \"gpt-4o-mini\" ,\n \"messages\" : [ { \"role\" : \"system\" , "
         "\"content\" : \"be brief\" } ,\n { \"role\" : \"user\" , \"content\" : \"hi\" } ] ,\t"
         "\"temperature\" : 0.7 , \"top_p\" : 1 , \"seed\" : 7 , \"tools\" : [ { \"type\" : "
         "\"function\" , \"function\" : { \"name\" : \"f\" , \"parameters\" : { } } } ] , "
         "\"tool_choice\" : \"auto\" , \"response_format\" : { \"type\" : \"text\" } , "
         "\"max_tokens\" : 16 , \"n\" : 1 , \"stop\" : [ \"\\n\" ] , \"top_k\" : 40 , "
         "\"repetition_penalty\" : 1.1 , \"stream\" : false }\n"},
        {"integral floats",
         "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
         "{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.70,\"top_p\":1.0,\"seed\":7.0,"
         "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
         "\"tool_choice\":\"auto\",\"response_format\":{\"type\":\"text\"},\"max_tokens\":1.6e1,"
         "\"n\":1.0,\"stop\":[\"\\n\"],\"top_k\":40.0,\"repetition_penalty\":11e-1,"
         "\"stream\":false}"},
        {"escaped characters",
         "{\"model\":\"gpt-4o\\u002dmini\",\"messages\":[{\"role\":\"system\",\"content\":"
         "\"be brief\"},{\"role\":\"user\",\"content\":\"\\u0068i\"}],\"temperature\":0.7,"
         "\"top_p\":1,\"seed\":7,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
         "\"parameters\":{}}}],\"tool_choice\":\"auto\",\"response_format\":{\"type\":\"text\"},"
         "\"max_tokens\":16,\"n\":1,\"stop\":[\"\\u000a\"],\"top_k\":40,"
         "\"repetition_penalty\":1.1,\"stream\":false}"},
    };

    an_cache_key_t base = key_of(&BASE_SCOPE, BASE_BODY);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        an_cache_key_t other = key_of(&BASE_SCOPE, cases[i].body);
        if (!keys_equal(&base, &other))
            fail_msg("key changed for %s", cases[i].name);
    }
}


static void key_skips_ignored_top_level_fields(void **state)
{
    (void)state;
    static const char *const additions[] = {
        "\"user\":\"user-1234\"",
        "\"metadata\":{\"trace\":\"abc\"}",
        "\"stream_options\":{\"include_usage\":true}",
        "\"store\":true",
        "\"service_tier\":\"flex\"",
        "\"safety_identifier\":\"s-1\"",
        "\"prompt_cache_key\":\"pck\"",
    };

    an_cache_key_t base = key_of(&BASE_SCOPE, BASE_BODY);
    for (size_t i = 0; i < sizeof(additions) / sizeof(additions[0]); i++) {
        char body[2048];
        snprintf(body, sizeof(body), "{%s,%s", additions[i], BASE_BODY + 1);
        an_cache_key_t other = key_of(&BASE_SCOPE, body);
        if (!keys_equal(&base, &other))
            fail_msg("key changed when adding ignored field %s", additions[i]);
    }

    size_t listed = 0;
    while (an_cache_key_ignored_fields[listed])
        listed++;
    assert_int_equal(listed, sizeof(additions) / sizeof(additions[0]));
}


/* Replaces the first occurrence of from in BASE_BODY with to. */
static void replace_in_base(const char *from, const char *to, char *out, size_t out_len)
{
    const char *at = strstr(BASE_BODY, from);
    if (!at)
        fail_msg("\"%s\" is not in the base body", from);
    snprintf(out, out_len, "%.*s%s%s", (int)(at - BASE_BODY), BASE_BODY, to, at + strlen(from));
}


static void key_changes_with_each_answer_field(void **state)
{
    (void)state;
    static const struct {
        const char *field;
        const char *from;
        const char *to;
    } cases[] = {
        {"model", "\"gpt-4o-mini\"", "\"gpt-4o\""},
        {"messages", "\"content\":\"hi\"", "\"content\":\"hi!\""},
        {"message role", "\"role\":\"user\"", "\"role\":\"assistant\""},
        {"message order", "{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\","
                          "\"content\":\"hi\"}",
         "{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"system\",\"content\":\"be brief\"}"},
        {"temperature", "\"temperature\":0.7", "\"temperature\":0.8"},
        {"top_p", "\"top_p\":1", "\"top_p\":0.9"},
        {"seed", "\"seed\":7", "\"seed\":8"},
        {"tools", "\"name\":\"f\"", "\"name\":\"g\""},
        {"tool_choice", "\"tool_choice\":\"auto\"", "\"tool_choice\":\"none\""},
        {"response_format", "{\"type\":\"text\"}", "{\"type\":\"json_object\"}"},
        {"max_tokens", "\"max_tokens\":16", "\"max_tokens\":17"},
        {"n", "\"n\":1", "\"n\":2"},
        {"stop", "\"stop\":[\"\\n\"]", "\"stop\":[\"END\"]"},
        {"top_k", "\"top_k\":40", "\"top_k\":41"},
        {"repetition_penalty", "\"repetition_penalty\":1.1", "\"repetition_penalty\":1.2"},
        {"stream", "\"stream\":false", "\"stream\":true"},
        {"integer vs string", "\"seed\":7", "\"seed\":\"7\""},
        {"stream null", "\"stream\":false", "\"stream\":null"},
        {"provider option", "\"stream\":false", "\"stream\":false,\"logit_bias\":{\"50256\":-100}"},
        {"nested user field is not ignored", "\"role\":\"user\",",
         "\"role\":\"user\",\"user\":\"x\","},
    };

    an_cache_key_t base = key_of(&BASE_SCOPE, BASE_BODY);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[2048];
        replace_in_base(cases[i].from, cases[i].to, body, sizeof(body));
        an_cache_key_t other = key_of(&BASE_SCOPE, body);
        if (keys_equal(&base, &other))
            fail_msg("key did not change with %s", cases[i].field);
    }
}


static void key_changes_with_each_scope_field(void **state)
{
    (void)state;
    an_cache_key_scope_t scopes[] = {
        {"/v1/completions", "team-a", "acme", "Bearer sk-test"},
        {CHAT, "team-b", "acme", "Bearer sk-test"},
        {CHAT, NULL, "acme", "Bearer sk-test"},
        {CHAT, "team-a", "other", "Bearer sk-test"},
        {CHAT, "team-a", NULL, "Bearer sk-test"},
        {CHAT, "team-a", "acme", "Bearer sk-other"},
        {CHAT, "team-a", "acme", NULL},
    };
    static const char *const names[] = {
        "route", "namespace", "no namespace", "tenant", "no tenant", "authorization",
        "no authorization",
    };

    an_cache_key_t base = key_of(&BASE_SCOPE, BASE_BODY);
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        an_cache_key_t other = key_of(&scopes[i], BASE_BODY);
        if (keys_equal(&base, &other))
            fail_msg("key did not change with %s", names[i]);
    }
}


static void key_treats_null_and_empty_scope_alike(void **state)
{
    (void)state;
    an_cache_key_scope_t with_null = {CHAT, NULL, NULL, NULL};
    an_cache_key_scope_t with_empty = {CHAT, "", "", ""};
    an_cache_key_t a = key_of(&with_null, "{}");
    an_cache_key_t b = key_of(&with_empty, "{}");
    assert_true(keys_equal(&a, &b));
}


/* Digests the documented key material directly, to pin the format. */
static void sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int out_len = 0;
    assert_int_equal(EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL), 1);
    assert_int_equal(out_len, 32);
}


static void key_matches_documented_material(void **state)
{
    (void)state;
    uint8_t auth_digest[32];
    char auth_hex[65];
    sha256("Bearer sk-test", strlen("Bearer sk-test"), auth_digest);
    an_hex_encode(auth_digest, sizeof(auth_digest), auth_hex);

    an_buf_t material = {0};
    static const char prefix[] = "agentnet-cache-v1\0" CHAT "\0team-a\0acme";
    an_buf_append(&material, prefix, sizeof(prefix)); /* sizeof keeps the final NUL */
    an_buf_append(&material, auth_hex, strlen(auth_hex) + 1);
    an_buf_append(&material, "{\"a\":1,\"b\":[true,null]}", 23);

    an_cache_key_t expected;
    sha256(material.data, material.len, expected.bytes);
    an_buf_free(&material);

    an_cache_key_t actual = key_of(&BASE_SCOPE, "{\"b\": [true, null], \"a\": 1.0, \"user\": \"u\"}");
    char expected_hex[65], actual_hex[65];
    an_cache_key_hex(&expected, expected_hex);
    an_cache_key_hex(&actual, actual_hex);
    assert_string_equal(actual_hex, expected_hex);
}


static void key_rejects_non_object_body(void **state)
{
    (void)state;
    static const char *const bodies[] = {"[]", "\"text\"", "1", "null"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        json_t *body = parse(bodies[i]);
        an_cache_key_t key;
        assert_int_equal(an_cache_key_request(&BASE_SCOPE, body, &key), AN_EINVAL);
        json_decref(body);
    }
    an_cache_key_t key;
    assert_int_equal(an_cache_key_request(&BASE_SCOPE, NULL, &key), AN_EINVAL);
}


static void key_hex_is_64_lowercase_digits(void **state)
{
    (void)state;
    an_cache_key_t key;
    for (int i = 0; i < AN_CACHE_KEY_BYTES; i++)
        key.bytes[i] = (uint8_t)(0xa0 + i);
    char hex[2 * AN_CACHE_KEY_BYTES + 1];
    an_cache_key_hex(&key, hex);
    assert_string_equal(hex, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
}


static void canonical_json_table(void **state)
{
    (void)state;
    static const struct {
        const char *input;
        int skip_ignored;
        const char *expected;
    } cases[] = {
        {"{\"b\":1,\"a\":[1.5,2,\"x\"]}", 0, "{\"a\":[1.5,2,\"x\"],\"b\":1}"},
        {"{\"a\":{\"d\":1,\"c\":{\"f\":2,\"e\":3}}}", 0, "{\"a\":{\"c\":{\"e\":3,\"f\":2},\"d\":1}}"},
        {"[1.0, -0.0, 2.50, 1e2, 0.1, 1e300, -3.0]", 0, "[1,0,2.5,100,0.1,1e+300,-3]"},
        {"[9007199254740993, -9223372036854775808]", 0, "[9007199254740993,-9223372036854775808]"},
        {"[1.7976931348623157e308, 5e-324]", 0, "[1.7976931348623157e+308,5e-324]"},
        {"{\"B\":1,\"a\":2,\"\\u00e9\":3,\"Z\":4,\"aa\":5}", 0,
         "{\"B\":1,\"Z\":4,\"a\":2,\"aa\":5,\"\xc3\xa9\":3}"},
        {"\"q\\\"b\\\\s\\/n\\nt\\tc\\u0001d\\u007f\\u00e9\\ud83d\\ude00\"", 0,
         "\"q\\\"b\\\\s/n\\nt\\tc\\u0001d\x7f\xc3\xa9\xf0\x9f\x98\x80\""},
        {"\"\\b\\f\\r\\u001f\"", 0, "\"\\b\\f\\r\\u001f\""},
        {"[true,false,null,{},[]]", 0, "[true,false,null,{},[]]"},
        {"{\"user\":\"u\",\"model\":\"m\",\"metadata\":{}}", 1, "{\"model\":\"m\"}"},
        {"{\"user\":\"u\",\"model\":\"m\"}", 0, "{\"model\":\"m\",\"user\":\"u\"}"},
        {"{\"x\":{\"user\":\"u\"}}", 1, "{\"x\":{\"user\":\"u\"}}"},
    };

    an_buf_t out = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *value = parse(cases[i].input);
        assert_int_equal(an_cache_canonical_json(value, cases[i].skip_ignored, &out), 0);
        if (strcmp(out.data, cases[i].expected) != 0)
            fail_msg("canonical form of %s is %s, expected %s", cases[i].input, out.data,
                     cases[i].expected);
        json_decref(value);
    }
    an_buf_free(&out);
}


static void canonical_json_sorts_large_objects(void **state)
{
    (void)state;
    /* More members than the writer sorts on the stack, inserted in reverse order. */
    json_t *object = json_object();
    for (int i = 99; i >= 0; i--) {
        char name[8];
        snprintf(name, sizeof(name), "k%02d", i);
        json_object_set_new(object, name, json_integer(i));
    }

    an_buf_t out = {0};
    assert_int_equal(an_cache_canonical_json(object, 0, &out), 0);
    an_buf_t expected = {0};
    an_buf_append(&expected, "{", 1);
    for (int i = 0; i < 100; i++)
        an_buf_appendf(&expected, "%s\"k%02d\":%d", i ? "," : "", i, i);
    an_buf_append(&expected, "}", 1);
    assert_string_equal(out.data, expected.data);

    an_buf_free(&expected);
    an_buf_free(&out);
    json_decref(object);
}


static void canonical_json_keeps_nul_in_keys(void **state)
{
    (void)state;
    json_t *object = json_object();
    json_object_setn_new(object, "a\0b", 3, json_integer(1));
    json_object_set_new(object, "a", json_integer(2));

    an_buf_t out = {0};
    assert_int_equal(an_cache_canonical_json(object, 0, &out), 0);
    static const char expected[] = "{\"a\":2,\"a\\u0000b\":1}";
    assert_int_equal(out.len, strlen(expected));
    assert_memory_equal(out.data, expected, out.len);
    an_buf_free(&out);
    json_decref(object);
}


static void canonical_json_replaces_buffer_contents(void **state)
{
    (void)state;
    an_buf_t out = {0};
    an_buf_append(&out, "stale", 5);
    json_t *value = parse("{\"a\":1}");
    assert_int_equal(an_cache_canonical_json(value, 0, &out), 0);
    assert_string_equal(out.data, "{\"a\":1}");
    json_decref(value);
    an_buf_free(&out);
}


static an_cache_key_t raw_key_of(const an_cache_key_scope_t *scope, const char *body_text)
{
    an_cache_key_t key;
    assert_int_equal(an_cache_key_raw(scope, body_text, strlen(body_text), &key), 0);
    return key;
}


static void raw_key_equal_only_for_same_bytes(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"m\",\"n\":1}";
    an_cache_key_t first = raw_key_of(&BASE_SCOPE, body);
    an_cache_key_t again = raw_key_of(&BASE_SCOPE, body);
    assert_true(keys_equal(&first, &again));

    /* Canonically equal, but not the same bytes. */
    an_cache_key_t spaced = raw_key_of(&BASE_SCOPE, "{\"model\": \"m\", \"n\": 1}");
    assert_false(keys_equal(&first, &spaced));

    /* Never equal to the canonical key of the same body. */
    an_cache_key_t canonical = key_of(&BASE_SCOPE, body);
    assert_false(keys_equal(&first, &canonical));
}


static void raw_key_changes_with_scope(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"m\"}";
    an_cache_key_t base = raw_key_of(&BASE_SCOPE, body);
    an_cache_key_scope_t scopes[] = {
        {.route = "/v1/completions", .namespace_ = "team-a", .tenant = "acme",
         .authorization = "Bearer sk-test"},
        {.route = CHAT, .namespace_ = "team-b", .tenant = "acme",
         .authorization = "Bearer sk-test"},
        {.route = CHAT, .namespace_ = "team-a", .tenant = "other",
         .authorization = "Bearer sk-test"},
        {.route = CHAT, .namespace_ = "team-a", .tenant = "acme",
         .authorization = "Bearer sk-other"},
        {.route = CHAT, .namespace_ = "team-a", .tenant = "acme", .authorization = NULL},
    };
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        an_cache_key_t changed = raw_key_of(&scopes[i], body);
        if (keys_equal(&base, &changed))
            fail_msg("raw key did not change with scope case %zu", i);
    }
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_ignores_layout_and_number_form),
        cmocka_unit_test(key_skips_ignored_top_level_fields),
        cmocka_unit_test(key_changes_with_each_answer_field),
        cmocka_unit_test(key_changes_with_each_scope_field),
        cmocka_unit_test(key_treats_null_and_empty_scope_alike),
        cmocka_unit_test(key_matches_documented_material),
        cmocka_unit_test(key_rejects_non_object_body),
        cmocka_unit_test(key_hex_is_64_lowercase_digits),
        cmocka_unit_test(canonical_json_table),
        cmocka_unit_test(canonical_json_sorts_large_objects),
        cmocka_unit_test(canonical_json_keeps_nul_in_keys),
        cmocka_unit_test(canonical_json_replaces_buffer_contents),
        cmocka_unit_test(raw_key_equal_only_for_same_bytes),
        cmocka_unit_test(raw_key_changes_with_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
