/*
 * The BERT encoder and pooling against tests/fixtures/bert-tiny, whose
 * expected embeddings come from PyTorch (scripts/embed/make_fixture.py):
 * every weight dtype and pooling mode, packed against one-at-a-time
 * batches, truncation, and the device and token-id checks. The CUDA
 * device choice is tested in test_embed_device.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agentnet/embed.h"
#include "embed/gemm_packed.h"

#define FIXTURE_DIR AN_FIXTURES_DIR "/bert-tiny"
#define HIDDEN 32
#define MAX_INPUTS 16

/* The PyTorch reference and the C encoder run float32 in a different order of operations. */
#define PYTORCH_TOLERANCE 1e-5
/* Packing changes only which other sentences share a GEMM, so results barely move. */
#define PACKING_TOLERANCE 1e-6

typedef struct {
    json_t *root;
    size_t count;
    const char *texts[MAX_INPUTS];
    size_t text_lengths[MAX_INPUTS];
    int32_t *ids[MAX_INPUTS];
    size_t id_counts[MAX_INPUTS];
    unsigned tokens[MAX_INPUTS];
    int truncated[MAX_INPUTS];
} fixture_t;

static fixture_t fx;


static int load_fixture(void **state)
{
    json_error_t jerr;
    fx.root = json_load_file(FIXTURE_DIR "/expected.json", 0, &jerr);
    if (!fx.root) {
        fprintf(stderr, "cannot load %s/expected.json: %s\n", FIXTURE_DIR, jerr.text);
        return -1;
    }
    json_t *inputs = json_object_get(fx.root, "inputs");
    fx.count = json_array_size(inputs);
    if (fx.count == 0 || fx.count > MAX_INPUTS)
        return -1;
    for (size_t i = 0; i < fx.count; i++) {
        json_t *input = json_array_get(inputs, i);
        json_t *ids = json_object_get(input, "ids");
        fx.texts[i] = json_string_value(json_object_get(input, "text"));
        fx.text_lengths[i] = strlen(fx.texts[i]);
        fx.id_counts[i] = json_array_size(ids);
        fx.ids[i] = calloc(fx.id_counts[i] + 1, sizeof(int32_t));
        for (size_t t = 0; t < fx.id_counts[i]; t++)
            fx.ids[i][t] = (int32_t)json_integer_value(json_array_get(ids, t));
        fx.tokens[i] = (unsigned)json_integer_value(json_object_get(input, "tokens"));
        fx.truncated[i] = json_is_true(json_object_get(input, "truncated"));
    }
    return 0;
}


static int free_fixture(void **state)
{
    for (size_t i = 0; i < fx.count; i++)
        free(fx.ids[i]);
    json_decref(fx.root);
    return 0;
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


static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}


static const char *const model_files[] = {
    "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
    "sentence_bert_config.json", "modules.json", "1_Pooling/config.json",
};
#define MODEL_FILE_COUNT (sizeof(model_files) / sizeof(model_files[0]))


/* Copies the fixture's f32 model into a fresh temporary directory, written to dir. */
static void copy_f32_model(char *dir, size_t dir_len)
{
    snprintf(dir, dir_len, "/tmp/an-bert-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[512], from[512];
    snprintf(path, sizeof(path), "%s/1_Pooling", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (size_t i = 0; i < MODEL_FILE_COUNT; i++) {
        snprintf(from, sizeof(from), "%s/f32/%s", FIXTURE_DIR, model_files[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, model_files[i]);
        copy_file(from, path);
    }
}


static void remove_model_copy(const char *dir)
{
    char path[512];
    for (size_t i = 0; i < MODEL_FILE_COUNT; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, model_files[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/1_Pooling", dir);
    rmdir(path);
    rmdir(dir);
}


/* Rewrites a model copy's Pooling config and modules.json for one pooling mode. */
static void set_pooling(const char *dir, const char *mode, int normalize)
{
    char path[512], text[1024];
    snprintf(path, sizeof(path), "%s/1_Pooling/config.json", dir);
    snprintf(text, sizeof(text),
             "{\"word_embedding_dimension\": %d, \"pooling_mode_cls_token\": %s, "
             "\"pooling_mode_mean_tokens\": %s, \"pooling_mode_max_tokens\": %s}\n",
             HIDDEN, strcmp(mode, "cls") == 0 ? "true" : "false",
             strcmp(mode, "mean") == 0 ? "true" : "false",
             strcmp(mode, "max") == 0 ? "true" : "false");
    write_text(path, text);

    snprintf(path, sizeof(path), "%s/modules.json", dir);
    snprintf(text, sizeof(text),
             "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", "
             "\"type\": \"sentence_transformers.models.Transformer\"},\n"
             " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", "
             "\"type\": \"sentence_transformers.models.Pooling\"}%s]\n",
             normalize ? ",\n {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", "
                         "\"type\": \"sentence_transformers.models.Normalize\"}"
                       : "");
    write_text(path, text);
}


/* Opens dir on the CPU, even where a GPU would serve "auto": the tolerances here are the CPU's. */
static an_embed_model_t *open_model(const char *dir, const an_embed_options_t *opts)
{
    an_embed_options_t cpu = opts ? *opts : an_embed_options_default();
    cpu.device = "cpu";
    an_embed_model_t *model = NULL;
    char err[512] = "";
    int rc = an_embed_open(dir, &cpu, &model, err, sizeof(err));
    if (rc != 0)
        fail_msg("an_embed_open(%s) failed: %s", dir, err);
    return model;
}


static void embed_all_ids(an_embed_model_t *model, float *out, an_embed_info_t *info)
{
    char err[512] = "";
    int rc = an_embed_token_ids(model, (const int32_t *const *)fx.ids, fx.id_counts, fx.count,
                                out, info, NULL, NULL, err, sizeof(err));
    if (rc != 0)
        fail_msg("an_embed_token_ids failed: %s", err);
}


/* Asserts every component of out is within tolerance of the variant's expected rows. */
static void assert_matches_expected(const char *variant, const float *out, double tolerance)
{
    json_t *rows = json_object_get(json_object_get(json_object_get(fx.root, "variants"),
                                                   variant),
                                   "embeddings");
    assert_int_equal(json_array_size(rows), fx.count);
    for (size_t i = 0; i < fx.count; i++) {
        json_t *row = json_array_get(rows, i);
        assert_int_equal(json_array_size(row), HIDDEN);
        for (size_t c = 0; c < HIDDEN; c++) {
            double expected = json_number_value(json_array_get(row, c));
            double got = out[i * HIDDEN + c];
            if (fabs(got - expected) > tolerance)
                fail_msg("variant %s, input %zu, component %zu: got %.9g, PyTorch %.9g "
                         "(difference %.3g > %.0e)", variant, i, c, got, expected,
                         fabs(got - expected), tolerance);
        }
    }
}


static void check_variant_in_dir(const char *variant, const char *dir)
{
    an_embed_model_t *model = open_model(dir, NULL);
    assert_int_equal(an_embed_dims(model), HIDDEN);
    float out[MAX_INPUTS * HIDDEN];
    an_embed_info_t info[MAX_INPUTS];
    embed_all_ids(model, out, info);
    assert_matches_expected(variant, out, PYTORCH_TOLERANCE);
    for (size_t i = 0; i < fx.count; i++) {
        assert_int_equal(info[i].tokens, fx.tokens[i]);
        assert_int_equal(info[i].truncated, fx.truncated[i]);
    }
    an_embed_close(model);
}


static void check_committed_variant(const char *variant)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", FIXTURE_DIR, variant);
    check_variant_in_dir(variant, dir);
}


static void check_pooling_variant(const char *variant, const char *mode, int normalize)
{
    char dir[64];
    copy_f32_model(dir, sizeof(dir));
    set_pooling(dir, mode, normalize);
    check_variant_in_dir(variant, dir);
    remove_model_copy(dir);
}


static void f32_weights_match_pytorch(void **state) { check_committed_variant("f32"); }
static void f16_weights_match_pytorch(void **state) { check_committed_variant("f16"); }
static void bf16_weights_match_pytorch(void **state) { check_committed_variant("bf16"); }
static void bert_prefixed_names_match_pytorch(void **state)
{
    check_committed_variant("prefixed");
}
static void cls_pooling_matches_pytorch(void **state) { check_pooling_variant("cls", "cls", 1); }
static void max_pooling_matches_pytorch(void **state) { check_pooling_variant("max", "max", 1); }
static void unnormalized_mean_matches_pytorch(void **state)
{
    check_pooling_variant("mean_unnormalized", "mean", 0);
}


static void texts_match_pytorch(void **state)
{
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", NULL);
    float out[MAX_INPUTS * HIDDEN];
    an_embed_info_t info[MAX_INPUTS];
    char err[512] = "";
    int rc = an_embed_texts(model, fx.texts, fx.text_lengths, fx.count, out, info, NULL, NULL,
                            err, sizeof(err));
    if (rc != 0)
        fail_msg("an_embed_texts failed: %s", err);
    assert_matches_expected("f32", out, PYTORCH_TOLERANCE);
    for (size_t i = 0; i < fx.count; i++) {
        assert_int_equal(info[i].tokens, fx.tokens[i]);
        assert_int_equal(info[i].truncated, fx.truncated[i]);
    }
    an_embed_close(model);
}


static void empty_text_embeds_cls_and_sep(void **state)
{
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", NULL);
    const char *text = "";
    size_t len = 0;
    float out[HIDDEN];
    an_embed_info_t info;
    char err[512] = "";
    assert_int_equal(an_embed_texts(model, &text, &len, 1, out, &info, NULL, NULL, err,
                                    sizeof(err)), 0);
    assert_int_equal(info.tokens, 2);
    assert_int_equal(info.truncated, 0);

    /* Input 0 of the fixture is the empty text. */
    assert_int_equal(fx.id_counts[0], 0);
    json_t *row = json_array_get(json_object_get(json_object_get(json_object_get(
        fx.root, "variants"), "f32"), "embeddings"), 0);
    for (size_t c = 0; c < HIDDEN; c++)
        assert_float_equal(out[c], json_number_value(json_array_get(row, c)), PYTORCH_TOLERANCE);
    an_embed_close(model);
}


/* Embeds the fixture's inputs one call per input: batches of one, no packing. */
static void embed_one_at_a_time(an_embed_model_t *model, float *out)
{
    char err[512] = "";
    for (size_t i = 0; i < fx.count; i++) {
        const int32_t *ids = fx.ids[i];
        assert_int_equal(an_embed_token_ids(model, &ids, &fx.id_counts[i], 1, out + i * HIDDEN,
                                            NULL, NULL, NULL, err, sizeof(err)), 0);
    }
}


static void assert_rows_close(const float *a, const float *b, size_t n, double tolerance)
{
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > tolerance)
            fail_msg("input %zu, component %zu: %.9g vs %.9g", i / HIDDEN, i % HIDDEN, a[i],
                     b[i]);
}


static void packed_batch_matches_single_inputs(void **state)
{
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", NULL);
    float packed[MAX_INPUTS * HIDDEN], single[MAX_INPUTS * HIDDEN];
    embed_all_ids(model, packed, NULL);
    embed_one_at_a_time(model, single);
    assert_rows_close(packed, single, fx.count * HIDDEN, PACKING_TOLERANCE);
    an_embed_close(model);
}


static void batch_size_one_matches_batch_size_32(void **state)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.batch_size = 1;
    an_embed_model_t *one = open_model(FIXTURE_DIR "/f32", &opts);
    opts.batch_size = 32;
    an_embed_model_t *many = open_model(FIXTURE_DIR "/f32", &opts);
    float a[MAX_INPUTS * HIDDEN], b[MAX_INPUTS * HIDDEN];
    embed_all_ids(one, a, NULL);
    embed_all_ids(many, b, NULL);
    assert_rows_close(a, b, fx.count * HIDDEN, PACKING_TOLERANCE);
    an_embed_close(one);
    an_embed_close(many);
}


static size_t progress_calls;
static size_t progress_last_done;

static void count_progress(size_t done, size_t total, void *ctx)
{
    assert_true(done > progress_last_done);
    assert_int_equal(total, fx.count);
    progress_last_done = done;
    progress_calls++;
}


static void max_batch_tokens_splits_batches(void **state)
{
    /* 60 tokens per batch: the 48-token inputs run alone, the short ones together. */
    an_embed_options_t opts = an_embed_options_default();
    opts.max_batch_tokens = 60;
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", &opts);
    float out[MAX_INPUTS * HIDDEN];
    char err[512] = "";
    progress_calls = 0;
    progress_last_done = 0;
    assert_int_equal(an_embed_token_ids(model, (const int32_t *const *)fx.ids, fx.id_counts,
                                        fx.count, out, NULL, count_progress, NULL, err,
                                        sizeof(err)), 0);
    assert_matches_expected("f32", out, PYTORCH_TOLERANCE);
    assert_int_equal(progress_last_done, fx.count);
    assert_true(progress_calls >= 4);
    an_embed_close(model);

    /* A limit below every input's length runs each input alone. */
    opts.max_batch_tokens = 1;
    model = open_model(FIXTURE_DIR "/f32", &opts);
    progress_calls = 0;
    progress_last_done = 0;
    assert_int_equal(an_embed_token_ids(model, (const int32_t *const *)fx.ids, fx.id_counts,
                                        fx.count, out, NULL, count_progress, NULL, err,
                                        sizeof(err)), 0);
    assert_matches_expected("f32", out, PYTORCH_TOLERANCE);
    assert_int_equal(progress_calls, fx.count);
    an_embed_close(model);
}


static void one_thread_matches_two_threads(void **state)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.threads = 1;
    an_embed_model_t *one = open_model(FIXTURE_DIR "/f32", &opts);
    opts.threads = 2;
    an_embed_model_t *two = open_model(FIXTURE_DIR "/f32", &opts);
    float a[MAX_INPUTS * HIDDEN], b[MAX_INPUTS * HIDDEN];
    embed_all_ids(one, a, NULL);
    embed_all_ids(two, b, NULL);
    assert_rows_close(a, b, fx.count * HIDDEN, PACKING_TOLERANCE);
    an_embed_close(one);
    an_embed_close(two);
}


static void max_seq_length_comes_from_sentence_bert_config(void **state)
{
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", NULL);
    assert_int_equal(an_embed_max_seq_length(model),
                     json_integer_value(json_object_get(fx.root, "max_seq_length")));
    assert_string_equal(an_embed_device(model), "cpu");
    an_embed_close(model);

    /* A larger option does not raise it. */
    an_embed_options_t opts = an_embed_options_default();
    opts.max_seq_length = 100;
    model = open_model(FIXTURE_DIR "/f32", &opts);
    assert_int_equal(an_embed_max_seq_length(model), 48);
    an_embed_close(model);
}


static void max_seq_length_is_capped_by_positions(void **state)
{
    char dir[64], path[128];
    copy_f32_model(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/sentence_bert_config.json", dir);
    write_text(path, "{\"max_seq_length\": 1000}\n");
    an_embed_model_t *model = open_model(dir, NULL);
    assert_int_equal(an_embed_max_seq_length(model), 64);
    an_embed_close(model);

    /* Without the file the default of 512 is capped the same way. */
    unlink(path);
    model = open_model(dir, NULL);
    assert_int_equal(an_embed_max_seq_length(model), 64);
    an_embed_close(model);
    remove_model_copy(dir);
}


static void max_seq_length_option_truncates(void **state)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.max_seq_length = 16;
    an_embed_model_t *short_model = open_model(FIXTURE_DIR "/f32", &opts);
    an_embed_model_t *full_model = open_model(FIXTURE_DIR "/f32", NULL);
    assert_int_equal(an_embed_max_seq_length(short_model), 16);

    /* Input 5 has 33 ids; at 16 tokens only its first 14 remain. */
    assert_true(fx.id_counts[5] > 14);
    const int32_t *ids = fx.ids[5];
    size_t all = fx.id_counts[5], first14 = 14;
    float truncated[HIDDEN], reference[HIDDEN];
    an_embed_info_t info;
    char err[512] = "";
    assert_int_equal(an_embed_token_ids(short_model, &ids, &all, 1, truncated, &info, NULL,
                                        NULL, err, sizeof(err)), 0);
    assert_int_equal(info.tokens, 16);
    assert_int_equal(info.truncated, 1);
    assert_int_equal(an_embed_token_ids(full_model, &ids, &first14, 1, reference, &info, NULL,
                                        NULL, err, sizeof(err)), 0);
    assert_int_equal(info.tokens, 16);
    assert_int_equal(info.truncated, 0);
    assert_rows_close(truncated, reference, HIDDEN, PACKING_TOLERANCE);
    an_embed_close(short_model);
    an_embed_close(full_model);
}


/*
 * AGENTNET_EMBED_AVX512=0 keeps OpenBLAS and the AVX2 kernels even on a CPU
 * with AVX-512, which the other tests here run on where it has one. Both
 * must match PyTorch, packed batches and single inputs alike.
 */
static void openblas_kernels_match_pytorch(void **state)
{
    assert_int_equal(setenv("AGENTNET_EMBED_AVX512", "0", 1), 0);
    check_committed_variant("f32");
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", NULL);
    float packed[MAX_INPUTS * HIDDEN], single[MAX_INPUTS * HIDDEN];
    embed_all_ids(model, packed, NULL);
    embed_one_at_a_time(model, single);
    assert_matches_expected("f32", single, PYTORCH_TOLERANCE);
    assert_rows_close(packed, single, fx.count * HIDDEN, PACKING_TOLERANCE);
    an_embed_close(model);
    unsetenv("AGENTNET_EMBED_AVX512");
}


/*
 * On the AVX-512 path every output is summed in the same order whichever
 * rows share a product, so batching and threads leave the bits unchanged.
 */
static void avx512_vectors_do_not_depend_on_batching(void **state)
{
    if (!an__gemm_packed_supported()) {
        print_message("this CPU has no AVX-512F, so the encoder runs on OpenBLAS\n");
        skip();
        return;
    }
    an_embed_options_t opts = an_embed_options_default();
    opts.batch_size = 1;
    opts.threads = 1;
    an_embed_model_t *single = open_model(FIXTURE_DIR "/f32", &opts);
    opts.batch_size = 32;
    opts.threads = 2;
    an_embed_model_t *batched = open_model(FIXTURE_DIR "/f32", &opts);
    float a[MAX_INPUTS * HIDDEN], b[MAX_INPUTS * HIDDEN];
    embed_all_ids(single, a, NULL);
    embed_all_ids(batched, b, NULL);
    assert_memory_equal(a, b, fx.count * HIDDEN * sizeof(float));
    an_embed_close(single);
    an_embed_close(batched);
}


static void avx512_setting_is_checked(void **state)
{
    assert_int_equal(setenv("AGENTNET_EMBED_AVX512", "yes", 1), 0);
    an_embed_options_t opts = an_embed_options_default();
    opts.device = "cpu";
    an_embed_model_t *model = NULL;
    char err[512] = "";
    int rc = an_embed_open(FIXTURE_DIR "/f32", &opts, &model, err, sizeof(err));
    unsetenv("AGENTNET_EMBED_AVX512");
    assert_int_equal(rc, AN_EINVAL);
    assert_null(model);
    assert_non_null(strstr(err, "AGENTNET_EMBED_AVX512 \"yes\" is invalid"));
    assert_non_null(strstr(err, "set it to 1"));

    /* Empty counts as unset. */
    assert_int_equal(setenv("AGENTNET_EMBED_AVX512", "", 1), 0);
    rc = an_embed_open(FIXTURE_DIR "/f32", &opts, &model, err, sizeof(err));
    unsetenv("AGENTNET_EMBED_AVX512");
    assert_int_equal(rc, 0);
    an_embed_close(model);
}


static void unknown_device_is_rejected(void **state)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.device = "tpu";
    an_embed_model_t *model = NULL;
    char err[512] = "";
    assert_int_equal(an_embed_open(FIXTURE_DIR "/f32", &opts, &model, err, sizeof(err)),
                     AN_EINVAL);
    assert_null(model);
    assert_non_null(strstr(err, "\"tpu\""));
}


static void token_id_outside_vocab_is_rejected(void **state)
{
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", NULL);
    int32_t good[] = {7, 8};
    int32_t bad[] = {7, 100000};
    const int32_t *ids[] = {good, bad};
    size_t lengths[] = {2, 2};
    float out[2 * HIDDEN];
    char err[512] = "";
    assert_int_equal(an_embed_token_ids(model, ids, lengths, 2, out, NULL, NULL, NULL, err,
                                        sizeof(err)), AN_EINVAL);
    assert_non_null(strstr(err, "input 1"));
    assert_non_null(strstr(err, "100000"));
    an_embed_close(model);
}


static void invalid_utf8_names_the_input(void **state)
{
    an_embed_model_t *model = open_model(FIXTURE_DIR "/f32", NULL);
    const char *texts[] = {"cat", "dog \xff"};
    size_t lengths[] = {3, 5};
    float out[2 * HIDDEN];
    char err[512] = "";
    assert_int_equal(an_embed_texts(model, texts, lengths, 2, out, NULL, NULL, NULL, err,
                                    sizeof(err)), AN_EINVAL);
    assert_non_null(strstr(err, "input 1"));
    an_embed_close(model);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(f32_weights_match_pytorch),
        cmocka_unit_test(f16_weights_match_pytorch),
        cmocka_unit_test(bf16_weights_match_pytorch),
        cmocka_unit_test(bert_prefixed_names_match_pytorch),
        cmocka_unit_test(cls_pooling_matches_pytorch),
        cmocka_unit_test(max_pooling_matches_pytorch),
        cmocka_unit_test(unnormalized_mean_matches_pytorch),
        cmocka_unit_test(texts_match_pytorch),
        cmocka_unit_test(empty_text_embeds_cls_and_sep),
        cmocka_unit_test(packed_batch_matches_single_inputs),
        cmocka_unit_test(batch_size_one_matches_batch_size_32),
        cmocka_unit_test(max_batch_tokens_splits_batches),
        cmocka_unit_test(one_thread_matches_two_threads),
        cmocka_unit_test(max_seq_length_comes_from_sentence_bert_config),
        cmocka_unit_test(max_seq_length_is_capped_by_positions),
        cmocka_unit_test(max_seq_length_option_truncates),
        cmocka_unit_test(openblas_kernels_match_pytorch),
        cmocka_unit_test(avx512_setting_is_checked),
        cmocka_unit_test(avx512_vectors_do_not_depend_on_batching),
        cmocka_unit_test(unknown_device_is_rejected),
        cmocka_unit_test(token_id_outside_vocab_is_rejected),
        cmocka_unit_test(invalid_utf8_names_the_input),
    };
    return cmocka_run_group_tests(tests, load_fixture, free_fixture);
}
