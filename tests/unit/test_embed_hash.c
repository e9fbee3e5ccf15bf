/*
 * The weight-free hash:DIMS model: exact golden values that must not change
 * between runs, builds or platforms, the properties the vectors promise, and
 * the errors for bad specs, devices and input.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agentnet/embed.h"

#define DIMS 384

static an_embed_model_t *open_model(const char *spec, const an_embed_options_t *opts)
{
    an_embed_model_t *model = NULL;
    char err[512] = "";
    int rc = an_embed_open(spec, opts, &model, err, sizeof(err));
    if (rc != 0)
        fail_msg("an_embed_open(\"%s\") failed: %s", spec, err);
    return model;
}


/* Embeds one NUL-terminated text into out, which has room for the model's dims floats. */
static void embed_one(an_embed_model_t *model, const char *text, float *out,
                      an_embed_info_t *info)
{
    size_t len = strlen(text);
    char err[512] = "";
    int rc = an_embed_texts(model, &text, &len, 1, out, info, NULL, NULL, err, sizeof(err));
    if (rc != 0)
        fail_msg("embedding \"%s\" failed: %s", text, err);
}


static double norm_of(const float *v, size_t dims)
{
    double squares = 0.0;
    for (size_t i = 0; i < dims; i++)
        squares += (double)v[i] * v[i];
    return sqrt(squares);
}


static size_t nonzero_count(const float *v, size_t dims)
{
    size_t n = 0;
    for (size_t i = 0; i < dims; i++)
        n += v[i] != 0.0f;
    return n;
}


typedef struct {
    size_t index;
    float value;
} golden_entry_t;

typedef struct {
    const char *text;
    size_t nonzero;
    golden_entry_t entries[5];
} golden_case_t;

/*
 * Computed once with hash:384 and kept: a change here changes every stored
 * vector that users have, so it needs a new model name, not new numbers.
 * "the" repeats (tf 2, weight 1 + ln 2), the second text needs NFKC
 * (fullwidth C) and keeps its accents, the third is Cyrillic.
 */
static const golden_case_t GOLDEN[] = {
    {"the cat sat on the mat", 21,
     {{11, -0.216658518f}, {25, -0.127962008f}, {214, -0.255924016f}, {285, -0.433317035f},
      {326, -0.268542647f}}},
    {"\xef\xbc\xa3" "af\xc3\xa9 d\xc3\xa9j\xc3\xa0-vu 2024", 19,
     {{2, 0.171802029f}, {46, -0.343604058f}, {196, -0.240522847f}, {338, 0.240522847f},
      {367, -0.240522847f}}},
    {"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80", 12,
     {{58, 0.321520656f}, {60, 0.229657605f}, {183, -0.229657605f}, {186, -0.459315211f},
      {278, 0.459315211f}}},
};


static void hash_golden_values(void **state)
{
    an_embed_model_t *model = open_model("hash:384", NULL);
    float v[DIMS];
    for (size_t c = 0; c < sizeof(GOLDEN) / sizeof(GOLDEN[0]); c++) {
        embed_one(model, GOLDEN[c].text, v, NULL);
        size_t nonzero = nonzero_count(v, DIMS);
        if (nonzero != GOLDEN[c].nonzero)
            fail_msg("case %zu: %zu non-zero entries, expected %zu", c, nonzero,
                     GOLDEN[c].nonzero);
        for (size_t e = 0; e < 5; e++) {
            const golden_entry_t *g = &GOLDEN[c].entries[e];
            if (v[g->index] != g->value)
                fail_msg("case %zu: v[%zu] = %.9g, expected %.9g", c, g->index, v[g->index],
                         g->value);
        }
    }
    an_embed_close(model);
}


static void hash_vectors_have_unit_norm(void **state)
{
    static const char *texts[] = {"a", "hello world", "the cat sat on the mat",
                                  "one, two; three! 4 5 6", "\xe4\xb8\xad\xe6\x96\x87"};
    an_embed_model_t *model = open_model("hash:384", NULL);
    float v[DIMS];
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        embed_one(model, texts[i], v, NULL);
        double norm = norm_of(v, DIMS);
        if (fabs(norm - 1.0) > 1e-6)
            fail_msg("\"%s\": norm %.9g, expected 1", texts[i], norm);
    }
    an_embed_close(model);
}


/* The same text gives bit-identical vectors from a fresh model, in a batch and at any position. */
static void hash_same_text_same_vector(void **state)
{
    const char *texts[] = {"first text", "the same words", "third", "the same words"};
    size_t lengths[4];
    for (size_t i = 0; i < 4; i++)
        lengths[i] = strlen(texts[i]);

    an_embed_options_t opts = an_embed_options_default();
    opts.threads = 3;
    opts.batch_size = 1;
    an_embed_model_t *a = open_model("hash:384", NULL);
    an_embed_model_t *b = open_model("hash:384", &opts);
    float batch[4 * DIMS];
    float alone[DIMS];
    char err[512] = "";
    assert_int_equal(an_embed_texts(a, texts, lengths, 4, batch, NULL, NULL, NULL, err,
                                    sizeof(err)), 0);
    embed_one(b, "the same words", alone, NULL);

    assert_memory_equal(batch + 1 * DIMS, alone, sizeof(alone));
    assert_memory_equal(batch + 3 * DIMS, alone, sizeof(alone));
    an_embed_close(a);
    an_embed_close(b);
}


static void hash_word_order_changes_bigrams(void **state)
{
    an_embed_model_t *model = open_model("hash:384", NULL);
    float ab[DIMS], ba[DIMS];
    embed_one(model, "hello world", ab, NULL);
    embed_one(model, "world hello", ba, NULL);
    assert_memory_not_equal(ab, ba, sizeof(ab));

    /* Same unigrams and trigrams, one bigram each: most of the vector is shared. */
    double dot = 0.0;
    for (size_t i = 0; i < DIMS; i++)
        dot += (double)ab[i] * ba[i];
    if (dot < 0.8 || dot > 0.99)
        fail_msg("cosine of reordered words is %.6f, expected between 0.8 and 0.99", dot);
    an_embed_close(model);
}


/* Case, compatibility forms and punctuation between words do not change the vector. */
static void hash_normalises_case_width_punctuation(void **state)
{
    an_embed_model_t *model = open_model("hash:384", NULL);
    float plain[DIMS], other[DIMS];
    embed_one(model, "hello world", plain, NULL);

    embed_one(model, "HELLO World", other, NULL);
    assert_memory_equal(plain, other, sizeof(plain));
    embed_one(model, "\xef\xbd\x88\xef\xbd\x85\xef\xbd\x8c\xef\xbd\x8c\xef\xbd\x8f world", other,
              NULL); /* fullwidth "hello" */
    assert_memory_equal(plain, other, sizeof(plain));
    embed_one(model, "  hello,\t...world!\n", other, NULL);
    assert_memory_equal(plain, other, sizeof(plain));
    embed_one(model, "hel\xc2\xadlo world", other, NULL); /* soft hyphen is ignorable */
    assert_memory_equal(plain, other, sizeof(plain));

    /* Accents are kept. */
    float cafe[DIMS], cafe_accent[DIMS];
    embed_one(model, "cafe", cafe, NULL);
    embed_one(model, "caf\xc3\xa9", cafe_accent, NULL);
    assert_memory_not_equal(cafe, cafe_accent, sizeof(cafe));
    an_embed_close(model);
}


static void hash_textless_input_gives_zeros(void **state)
{
    static const char *texts[] = {"", " ", " \t\r\n ", "!!! ... ---", "\xe2\x80\x83"};
    an_embed_model_t *model = open_model("hash:384", NULL);
    float v[DIMS];
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        an_embed_info_t info = {.tokens = 99, .truncated = 99};
        memset(v, 0xff, sizeof(v));
        embed_one(model, texts[i], v, &info);
        if (nonzero_count(v, DIMS) != 0)
            fail_msg("text %zu: %zu non-zero entries, expected none", i,
                     nonzero_count(v, DIMS));
        assert_int_equal(info.tokens, 0);
        assert_int_equal(info.truncated, 0);
    }
    an_embed_close(model);
}


static void hash_info_counts_words(void **state)
{
    an_embed_model_t *model = open_model("hash:384", NULL);
    float v[DIMS];
    an_embed_info_t info;
    embed_one(model, "the cat sat on the mat", v, &info);
    assert_int_equal(info.tokens, 6);
    assert_int_equal(info.truncated, 0);
    embed_one(model, "e-mail: a.b@c.d 3.14", v, &info);
    assert_int_equal(info.tokens, 8); /* e mail a b c d 3 14 */
    an_embed_close(model);
}


/* A NUL byte is text: a control character, so it separates words. */
static void hash_nul_byte_separates_words(void **state)
{
    an_embed_model_t *model = open_model("hash:384", NULL);
    const char *text = "hello\0world";
    size_t len = 11;
    float with_nul[DIMS], with_space[DIMS];
    an_embed_info_t info;
    char err[512] = "";
    assert_int_equal(an_embed_texts(model, &text, &len, 1, with_nul, &info, NULL, NULL, err,
                                    sizeof(err)), 0);
    assert_int_equal(info.tokens, 2);
    embed_one(model, "hello world", with_space, NULL);
    assert_memory_equal(with_nul, with_space, sizeof(with_nul));
    an_embed_close(model);
}


static void hash_invalid_utf8_names_input(void **state)
{
    const char *texts[] = {"fine", "also fine", "bad \xff byte", "never reached"};
    size_t lengths[4];
    for (size_t i = 0; i < 4; i++)
        lengths[i] = strlen(texts[i]);
    an_embed_model_t *model = open_model("hash:384", NULL);
    float out[4 * DIMS];
    char err[512] = "";
    assert_int_equal(an_embed_texts(model, texts, lengths, 4, out, NULL, NULL, NULL, err,
                                    sizeof(err)), AN_EINVAL);
    assert_string_equal(err, "embed: input 2 is not valid UTF-8 (byte 4); convert it to UTF-8, "
                        "for example with iconv -t UTF-8");

    /* A UTF-16 surrogate encoded as UTF-8 (CESU-8) is invalid too. */
    const char *surrogate = "\xed\xa0\x80";
    size_t len = 3;
    assert_int_equal(an_embed_texts(model, &surrogate, &len, 1, out, NULL, NULL, NULL, err,
                                    sizeof(err)), AN_EINVAL);
    an_embed_close(model);
}


static void hash_spec_rejects_bad_dims(void **state)
{
    static const char *bad[] = {"hash:", "hash:abc", "hash:0", "hash:7", "hash:65537",
                                "hash:-384", "hash:+384", "hash: 384", "hash:384 ",
                                "hash:99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        an_embed_model_t *model = (an_embed_model_t *)1;
        char err[512] = "";
        int rc = an_embed_open(bad[i], NULL, &model, err, sizeof(err));
        if (rc != AN_EINVAL)
            fail_msg("\"%s\": rc %d, expected AN_EINVAL", bad[i], rc);
        assert_null(model);
        char expected[512];
        snprintf(expected, sizeof(expected), "embed: model \"%s\" is invalid; use hash:DIMS with "
                 "DIMS a whole number from 8 to 65536, such as hash:384", bad[i]);
        assert_string_equal(err, expected);
    }
}


static void hash_spec_accepts_range_ends(void **state)
{
    an_embed_model_t *small = open_model("hash:8", NULL);
    an_embed_model_t *large = open_model("hash:65536", NULL);
    assert_int_equal(an_embed_dims(small), 8);
    assert_int_equal(an_embed_dims(large), 65536);
    assert_int_equal(an_embed_max_seq_length(small), 0);
    an_embed_close(small);
    an_embed_close(large);
}


static void hash_runs_on_cpu_only(void **state)
{
    an_embed_options_t opts = an_embed_options_default();
    an_embed_model_t *model = open_model("hash:384", &opts);
    assert_string_equal(an_embed_device(model), "cpu");
    an_embed_close(model);

    opts.device = "cpu";
    model = open_model("hash:384", &opts);
    assert_string_equal(an_embed_device(model), "cpu");
    an_embed_close(model);

    char err[512] = "";
    opts.device = "cuda:0";
    assert_int_equal(an_embed_open("hash:384", &opts, &model, err, sizeof(err)), AN_EINVAL);
    assert_string_equal(err, "embed: hash:384 runs on the CPU only, not on device \"cuda:0\"; "
                        "pass --device cpu or auto");

    opts.device = "tpu";
    assert_int_equal(an_embed_open("hash:384", &opts, &model, err, sizeof(err)), AN_EINVAL);
    assert_string_equal(err, "embed: device \"tpu\" is invalid; use auto, cpu or cuda:N");
}


static void hash_rejects_token_ids(void **state)
{
    an_embed_model_t *model = open_model("hash:384", NULL);
    int32_t ids[] = {101, 102};
    const int32_t *inputs[] = {ids};
    size_t lengths[] = {2};
    float v[DIMS];
    char err[512] = "";
    assert_int_equal(an_embed_token_ids(model, inputs, lengths, 1, v, NULL, NULL, NULL, err,
                                        sizeof(err)), AN_EINVAL);
    assert_non_null(strstr(err, "hash model has no vocabulary"));
    an_embed_close(model);
}


typedef struct {
    size_t calls;
    size_t done[8];
    size_t total[8];
} progress_log_t;

static void record_progress(size_t done, size_t total, void *ctx)
{
    progress_log_t *log = ctx;
    if (log->calls < 8) {
        log->done[log->calls] = done;
        log->total[log->calls] = total;
    }
    log->calls++;
}


static void hash_progress_after_each_batch(void **state)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.batch_size = 2;
    an_embed_model_t *model = open_model("hash:16", &opts);
    const char *texts[] = {"a", "b", "c", "d", "e"};
    size_t lengths[] = {1, 1, 1, 1, 1};
    float out[5 * 16];
    progress_log_t log = {0};
    char err[512] = "";
    assert_int_equal(an_embed_texts(model, texts, lengths, 5, out, NULL, record_progress, &log,
                                    err, sizeof(err)), 0);
    assert_int_equal(log.calls, 3);
    assert_int_equal(log.done[0], 2);
    assert_int_equal(log.done[1], 4);
    assert_int_equal(log.done[2], 5);
    assert_int_equal(log.total[0], 5);
    assert_int_equal(log.total[2], 5);
    an_embed_close(model);
}


/*
 * A 1 MB text of about 196,000 words. The 10 s bound catches work that grows
 * faster than the text, with room for sanitizer builds on a slow machine.
 */
static void hash_megabyte_text_is_fast(void **state)
{
    size_t len = 1024 * 1024;
    char *text = malloc(len);
    assert_non_null(text);
    static const char words[] = "lorem ipsum dolor sit amet \xc3\xa9t\xc3\xa9 ";
    for (size_t i = 0; i < len; i++)
        text[i] = words[i % (sizeof(words) - 1)];
    text[len - 1] = 'x'; /* do not end inside a two-byte sequence */
    for (size_t i = len - 2; (unsigned char)text[i] >= 0x80; i--)
        text[i] = 'x';

    an_embed_model_t *model = open_model("hash:384", NULL);
    float v[DIMS];
    an_embed_info_t info;
    char err[512] = "";
    const char *input = text;
    uint64_t start = an_mono_ns();
    assert_int_equal(an_embed_texts(model, &input, &len, 1, v, &info, NULL, NULL, err,
                                    sizeof(err)), 0);
    double seconds = (double)(an_mono_ns() - start) / 1e9;
    if (seconds > 10.0)
        fail_msg("a 1 MB text took %.2f s, expected under 10 s", seconds);
    assert_true(info.tokens > 150000);
    assert_true(fabs(norm_of(v, DIMS) - 1.0) < 1e-6);
    an_embed_close(model);
    free(text);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_golden_values),
        cmocka_unit_test(hash_vectors_have_unit_norm),
        cmocka_unit_test(hash_same_text_same_vector),
        cmocka_unit_test(hash_word_order_changes_bigrams),
        cmocka_unit_test(hash_normalises_case_width_punctuation),
        cmocka_unit_test(hash_textless_input_gives_zeros),
        cmocka_unit_test(hash_info_counts_words),
        cmocka_unit_test(hash_nul_byte_separates_words),
        cmocka_unit_test(hash_invalid_utf8_names_input),
        cmocka_unit_test(hash_spec_rejects_bad_dims),
        cmocka_unit_test(hash_spec_accepts_range_ends),
        cmocka_unit_test(hash_runs_on_cpu_only),
        cmocka_unit_test(hash_rejects_token_ids),
        cmocka_unit_test(hash_progress_after_each_batch),
        cmocka_unit_test(hash_megabyte_text_is_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
