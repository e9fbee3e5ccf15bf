/*
 * The WordPiece tokenizer against ids from Hugging Face's tokenizer
 * (tests/fixtures/tokenizer/expected.json, written by
 * scripts/embed/gen_tokenizer_fixtures.mjs), plus the UTF-8 checks, the
 * truncation of long texts and the loader's errors.
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
#include <jansson.h>

#include "agentnet/common.h"
#include "embed/tokenizer.h"

#define MAX_IDS 1024

/* tests/fixtures/tokenizer, from the build's definition or else from this file's path. */
static const char *fixture_dir(void)
{
    static char dir[4096];
    if (dir[0])
        return dir;
#ifdef AN_FIXTURES_DIR
    snprintf(dir, sizeof(dir), "%s/tokenizer", AN_FIXTURES_DIR);
#else
    /* CMake compiles with absolute paths: __FILE__ is .../tests/unit/test_embed_tokenizer.c. */
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *unit = strstr(dir, "/unit/test_embed_tokenizer.c");
    assert_non_null(unit);
    strcpy(unit, "/fixtures/tokenizer");
#endif
    return dir;
}


static an__tokenizer_t *open_dir(const char *path)
{
    char err[512] = "";
    an__tokenizer_t *t = NULL;
    int rc = an__tokenizer_open(path, &t, err, sizeof(err));
    if (rc != 0)
        fail_msg("opening %s failed: %s", path, err);
    return t;
}


static an__tokenizer_t *open_model(const char *model)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", fixture_dir(), model);
    return open_dir(path);
}


static json_t *load_expected(void)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/expected.json", fixture_dir());
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!root)
        fail_msg("cannot load %s: %s (line %d)", path, jerr.text, jerr.line);
    return root;
}


/*
 * Encodes every case of expected.json whose model is `only` (every case when
 * NULL), with the tokenizer opened from dir_override when that is not NULL,
 * and compares ids and the truncation flag.
 */
static void check_cases(const char *only, const char *dir_override)
{
    json_t *root = load_expected();
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_array_size(cases) > 100);

    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *model = json_string_value(json_object_get(c, "model"));
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *text = json_object_get(c, "text");
        json_t *expected = json_object_get(c, "ids");
        unsigned max_tokens = (unsigned)json_integer_value(json_object_get(c, "max_tokens"));
        int expected_truncated = json_is_true(json_object_get(c, "truncated"));

        if (only && strcmp(model, only) != 0)
            continue;
        an__tokenizer_t *t = dir_override ? open_dir(dir_override) : open_model(model);
        int32_t ids[MAX_IDS];
        size_t count = 0;
        int truncated = -1;
        assert_true(max_tokens <= MAX_IDS);
        int rc = an__tokenizer_encode(t, json_string_value(text), json_string_length(text),
                                      max_tokens, ids, &count, &truncated);
        an__tokenizer_close(t);

        if (rc != 0)
            fail_msg("%s/%s: encode returned %d", model, name, rc);
        if (count != json_array_size(expected))
            fail_msg("%s/%s: %zu ids, expected %zu", model, name, count,
                     json_array_size(expected));
        for (size_t k = 0; k < count; k++) {
            json_int_t want = json_integer_value(json_array_get(expected, k));
            if (ids[k] != want)
                fail_msg("%s/%s: id %zu is %d, expected %lld (%s)", model, name, k, ids[k],
                         (long long)want,
                         json_string_value(json_array_get(json_object_get(c, "tokens"), k)));
        }
        if (truncated != expected_truncated)
            fail_msg("%s/%s: truncated is %d, expected %d", model, name, truncated,
                     expected_truncated);
    }
    json_decref(root);
}


static void test_ids_match_hugging_face(void **state)
{
    check_cases(NULL, NULL);
}


static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}


/*
 * A directory with only vocab.txt and tokenizer_config.json, as older
 * models ship: the settings and the verbatim special tokens come from
 * tokenizer_config.json, and the ids must equal the uncased model's.
 */
static void test_vocab_txt_without_tokenizer_json(void **state)
{
    char dir[] = "/tmp/an-tokenizer-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"vocab.txt", "tokenizer_config.json"};
    char from[4200], to[4200];
    for (size_t i = 0; i < 2; i++) {
        snprintf(from, sizeof(from), "%s/uncased/%s", fixture_dir(), files[i]);
        snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
        copy_file(from, to);
    }

    check_cases("uncased", dir);

    for (size_t i = 0; i < 2; i++) {
        snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
        assert_int_equal(unlink(to), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}


static void test_special_ids_and_vocab_size(void **state)
{
    json_t *root = load_expected();
    size_t vocab_size = (size_t)json_integer_value(json_object_get(root, "vocab_size"));
    json_decref(root);

    /* "cased" has no vocab.txt, so its vocabulary comes from tokenizer.json. */
    const char *models[] = {"uncased", "cased"};
    for (size_t m = 0; m < 2; m++) {
        an__tokenizer_t *t = open_model(models[m]);
        assert_int_equal(an__tokenizer_pad_id(t), 0);
        assert_int_equal(an__tokenizer_unk_id(t), 1);
        assert_int_equal(an__tokenizer_cls_id(t), 2);
        assert_int_equal(an__tokenizer_sep_id(t), 3);
        assert_int_equal(an__tokenizer_token_id(t, "[MASK]"), 4);
        assert_int_equal(an__tokenizer_token_id(t, "not-a-token"), -1);
        assert_int_equal(an__tokenizer_vocab_size(t), vocab_size);
        an__tokenizer_close(t);
    }
}


typedef struct {
    const char *name;
    const char *bytes;
    size_t bad_offset;
} bad_utf8_t;

static void test_invalid_utf8_rejected(void **state)
{
    static const bad_utf8_t cases[] = {
        {"overlong_2_byte_slash", "ab\xC0\xAF", 2},
        {"overlong_3_byte_slash", "\xE0\x80\xAF", 0},
        {"overlong_4_byte", "x\xF0\x80\x80\xAF", 1},
        {"lone_continuation", "caf\x80", 3},
        {"truncated_3_byte_at_end", "abc\xE2\x82", 3},
        {"truncated_then_ascii", "\xE2\x82z", 0},
        {"high_surrogate", "a\xED\xA0\x80", 1},
        {"low_surrogate", "\xED\xBF\xBF", 0},
        {"above_u10ffff", "\xF4\x90\x80\x80", 0},
        {"byte_ff", "ok \xFF", 3},
    };
    an__tokenizer_t *t = open_model("uncased");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_utf8_t *c = &cases[i];
        int32_t ids[16];
        size_t count = 99;
        int truncated = -1;
        int rc = an__tokenizer_encode(t, c->bytes, strlen(c->bytes), 16, ids, &count, &truncated);
        if (rc != AN_EINVAL)
            fail_msg("%s: encode returned %d, expected AN_EINVAL", c->name, rc);
        assert_int_equal(count, 0);

        size_t offset = 999;
        assert_int_equal(an__tokenizer_validate_utf8(c->bytes, strlen(c->bytes), &offset),
                         AN_EINVAL);
        if (offset != c->bad_offset)
            fail_msg("%s: bad offset %zu, expected %zu", c->name, offset, c->bad_offset);
    }
    an__tokenizer_close(t);
}


/* The whole text is checked, not only the part that fits into the ids. */
static void test_invalid_utf8_after_truncation_rejected(void **state)
{
    an__tokenizer_t *t = open_model("uncased");
    static const char text[] = "the quick brown fox jumps over the lazy dog \xC3";
    int32_t ids[4];
    size_t count;
    int truncated;
    assert_int_equal(an__tokenizer_encode(t, text, strlen(text), 4, ids, &count, &truncated),
                     AN_EINVAL);
    an__tokenizer_close(t);
}


/*
 * Encoding reads len bytes and no further, so a text need not be
 * NUL-terminated. The text sits at the end of its own allocation, so an
 * over-read fails the sanitizer build.
 */
static void test_encode_stops_at_len(void **state)
{
    an__tokenizer_t *t = open_model("uncased");
    char *text = malloc(5);
    assert_non_null(text);
    memcpy(text, "hello", 5);
    int32_t ids[8];
    size_t count;
    int truncated;
    assert_int_equal(an__tokenizer_encode(t, text, 5, 8, ids, &count, &truncated), 0);
    assert_int_equal(count, 3);
    assert_int_equal(ids[1], an__tokenizer_token_id(t, "hello"));
    assert_int_equal(truncated, 0);

    /* A word cut at the end: "caf" and half of "\xC3\xA9" is invalid, all of it is "cafe". */
    char *word = malloc(5);
    assert_non_null(word);
    memcpy(word, "caf\xC3\xA9", 5);
    assert_int_equal(an__tokenizer_encode(t, word, 4, 8, ids, &count, &truncated), AN_EINVAL);
    assert_int_equal(an__tokenizer_encode(t, word, 5, 8, ids, &count, &truncated), 0);
    assert_int_equal(count, 3);
    assert_int_equal(ids[1], an__tokenizer_token_id(t, "cafe"));
    free(word);
    free(text);
    an__tokenizer_close(t);
}


static void test_max_tokens_below_two_rejected(void **state)
{
    an__tokenizer_t *t = open_model("uncased");
    int32_t ids[2];
    size_t count;
    int truncated;
    assert_int_equal(an__tokenizer_encode(t, "hi", 2, 1, ids, &count, &truncated), AN_EINVAL);
    assert_int_equal(an__tokenizer_encode(t, "hi", 2, 0, ids, &count, &truncated), AN_EINVAL);
    an__tokenizer_close(t);
}


static double seconds_since(uint64_t start_ns)
{
    return (double)(an_mono_ns() - start_ns) / 1e9;
}


/*
 * A 1 MB text is cut to max_tokens. The bound on time is loose (sanitizer
 * builds are slow); the encoder stops at the limit, so it takes a fraction
 * of it.
 */
static void test_megabyte_text_truncated_quickly(void **state)
{
    enum { TEXT_BYTES = 1 << 20, MAX_TOKENS = 256 };
    char *text = malloc(TEXT_BYTES);
    assert_non_null(text);
    static const char phrase[] = "hello world, caf\xC3\xA9 ";
    size_t phrase_len = strlen(phrase);
    for (size_t i = 0; i < TEXT_BYTES; i++)
        text[i] = phrase[i % phrase_len];

    an__tokenizer_t *t = open_model("uncased");
    int32_t ids[MAX_TOKENS];
    size_t count;
    int truncated;
    /* Cut the text where no multi-byte character is split. */
    size_t len = TEXT_BYTES - TEXT_BYTES % phrase_len;
    uint64_t start = an_mono_ns();
    assert_int_equal(an__tokenizer_encode(t, text, len, MAX_TOKENS, ids, &count, &truncated), 0);
    double elapsed = seconds_since(start);
    assert_int_equal(count, MAX_TOKENS);
    assert_int_equal(truncated, 1);
    assert_int_equal(ids[0], an__tokenizer_cls_id(t));
    assert_int_equal(ids[1], an__tokenizer_token_id(t, "hello"));
    assert_int_equal(ids[2], an__tokenizer_token_id(t, "world"));
    assert_int_equal(ids[3], an__tokenizer_token_id(t, ","));
    assert_int_equal(ids[4], an__tokenizer_token_id(t, "cafe"));
    assert_int_equal(ids[MAX_TOKENS - 1], an__tokenizer_sep_id(t));
    if (elapsed > 1.0)
        fail_msg("encoding 1 MB took %.3f s", elapsed);

    /* One 1 MB word: a single [UNK], found without matching pieces of it. */
    memset(text, 'a', TEXT_BYTES);
    start = an_mono_ns();
    assert_int_equal(an__tokenizer_encode(t, text, TEXT_BYTES, MAX_TOKENS, ids, &count,
                                          &truncated), 0);
    elapsed = seconds_since(start);
    assert_int_equal(count, 3);
    assert_int_equal(ids[1], an__tokenizer_unk_id(t));
    assert_int_equal(truncated, 0);
    if (elapsed > 1.0)
        fail_msg("encoding a 1 MB word took %.3f s", elapsed);

    an__tokenizer_close(t);
    free(text);
}


static void test_missing_directory_named_in_error(void **state)
{
    char err[512] = "";
    an__tokenizer_t *t = (an__tokenizer_t *)&err;
    int rc = an__tokenizer_open("/nonexistent/model-dir", &t, err, sizeof(err));
    assert_int_equal(rc, AN_ENOTFOUND);
    assert_null(t);
    assert_non_null(strstr(err, "\"/nonexistent/model-dir\""));
    assert_non_null(strstr(err, "vocab.txt"));
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_match_hugging_face),
        cmocka_unit_test(test_vocab_txt_without_tokenizer_json),
        cmocka_unit_test(test_special_ids_and_vocab_size),
        cmocka_unit_test(test_invalid_utf8_rejected),
        cmocka_unit_test(test_invalid_utf8_after_truncation_rejected),
        cmocka_unit_test(test_encode_stops_at_len),
        cmocka_unit_test(test_max_tokens_below_two_rejected),
        cmocka_unit_test(test_megabyte_text_truncated_quickly),
        cmocka_unit_test(test_missing_directory_named_in_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
