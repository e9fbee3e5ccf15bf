/*
 * The CUDA encoder against the CPU encoder on tests/fixtures/bert-tiny:
 * every weight dtype, every pooling mode with and without normalisation,
 * and batches that pack several sentences. Needs a CUDA device: without one
 * it prints "no CUDA device: skipped" and exits 77, which CTest reports as
 * Skipped (SKIP_RETURN_CODE).
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

#include "agentnet/embed.h"
#include "embed/cuda_backend.h"

#define FIXTURE_DIR AN_FIXTURES_DIR "/bert-tiny"
#define HIDDEN 32
/* All four pooling modes side by side. */
#define MAX_DIMS (4 * HIDDEN)
/* The GPU sums in another order than the CPU, and float32 rounding differs with it. */
#define CUDA_TOLERANCE 1e-4
#define SKIP_EXIT_CODE 77

/* Texts from 2 tokens (the empty one) to past max_seq_length (48), which truncates the longest. */
static const char *const texts[] = {
    "the cat sat on the mat",
    "",
    "x",
    "a dog ran across the park, and the cat watched it from the window",
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three "
    "twenty-four twenty-five twenty-six twenty-seven twenty-eight twenty-nine thirty",
    "the end.",
};
#define TEXT_COUNT (sizeof(texts) / sizeof(texts[0]))


static an_embed_model_t *open_on(const char *dir, const char *device, unsigned batch_size)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.device = device;
    opts.batch_size = batch_size;
    an_embed_model_t *model = NULL;
    char err[512] = "";
    if (an_embed_open(dir, &opts, &model, err, sizeof(err)) != 0)
        fail_msg("an_embed_open(%s) on %s failed: %s", dir, device, err);
    return model;
}


static void embed(an_embed_model_t *model, float *out)
{
    size_t lengths[TEXT_COUNT];
    for (size_t i = 0; i < TEXT_COUNT; i++)
        lengths[i] = strlen(texts[i]);
    char err[512] = "";
    if (an_embed_texts(model, texts, lengths, TEXT_COUNT, out, NULL, NULL, NULL, err,
                       sizeof(err)) != 0)
        fail_msg("an_embed_texts on %s failed: %s", an_embed_device(model), err);
}


/* Embeds texts with dir on the CPU and on cuda:0, batch_size at a time, and compares. */
static void check_dir(const char *dir, unsigned batch_size)
{
    an_embed_model_t *cpu = open_on(dir, "cpu", batch_size);
    an_embed_model_t *gpu = open_on(dir, "cuda:0", batch_size);
    assert_string_equal(an_embed_device(gpu), "cuda:0");
    size_t dims = an_embed_dims(cpu);
    assert_int_equal(an_embed_dims(gpu), dims);
    assert_true(dims <= MAX_DIMS);

    float expected[TEXT_COUNT * MAX_DIMS], got[TEXT_COUNT * MAX_DIMS];
    embed(cpu, expected);
    embed(gpu, got);
    for (size_t i = 0; i < TEXT_COUNT * dims; i++)
        if (fabs((double)got[i] - expected[i]) > CUDA_TOLERANCE)
            fail_msg("%s, batch size %u: text %zu, float %zu: cuda:0 gives %.8g, the CPU %.8g",
                     dir, batch_size, i / dims, i % dims, got[i], expected[i]);
    an_embed_close(cpu);
    an_embed_close(gpu);
}


static void f32_matches_cpu(void **state) { check_dir(FIXTURE_DIR "/f32", 32); }
static void f16_matches_cpu(void **state) { check_dir(FIXTURE_DIR "/f16", 32); }
static void bf16_matches_cpu(void **state) { check_dir(FIXTURE_DIR "/bf16", 32); }
static void batch_size_one_matches_cpu(void **state) { check_dir(FIXTURE_DIR "/f32", 1); }


static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}


/*
 * Copies the f32 model with every pooling mode switched on, normalised or
 * not, and compares; the copy is removed afterwards.
 */
static void check_all_pooling_modes(int normalize)
{
    char dir[64], command[256], path[128];
    snprintf(dir, sizeof(dir), "/tmp/an-cuda-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(command, sizeof(command), "cp -r '%s/f32/.' '%s'", FIXTURE_DIR, dir);
    assert_int_equal(system(command), 0);

    snprintf(path, sizeof(path), "%s/1_Pooling/config.json", dir);
    write_text(path, "{\"word_embedding_dimension\": 32, \"pooling_mode_cls_token\": true, "
                     "\"pooling_mode_mean_tokens\": true, \"pooling_mode_max_tokens\": true, "
                     "\"pooling_mode_mean_sqrt_len_tokens\": true}\n");
    if (!normalize) {
        snprintf(path, sizeof(path), "%s/modules.json", dir);
        write_text(path, "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", "
                         "\"type\": \"sentence_transformers.models.Transformer\"},\n"
                         " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", "
                         "\"type\": \"sentence_transformers.models.Pooling\"}]\n");
    }
    check_dir(dir, 32);

    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    assert_int_equal(system(command), 0);
}


static void all_pooling_modes_match_cpu(void **state) { check_all_pooling_modes(1); }
static void unnormalized_pooling_matches_cpu(void **state) { check_all_pooling_modes(0); }


int main(void)
{
    char why[160] = "";
    if (an__cuda_device_count(why, sizeof(why)) == 0) {
        printf("no CUDA device: skipped (%s)\n", why);
        return SKIP_EXIT_CODE;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(f32_matches_cpu),
        cmocka_unit_test(f16_matches_cpu),
        cmocka_unit_test(bf16_matches_cpu),
        cmocka_unit_test(batch_size_one_matches_cpu),
        cmocka_unit_test(all_pooling_modes_match_cpu),
        cmocka_unit_test(unnormalized_pooling_matches_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
