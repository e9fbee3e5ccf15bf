/*
 * Device selection of BERT models: "auto" falling back to the CPU with one
 * log line, and "cuda:N" rejected with the device and the fix named when
 * no GPU (or no CUDA build) can serve it. On a machine with a GPU the
 * fallback test checks that "auto" picked cuda:0 instead; the numerics of
 * the CUDA encoder are checked by tests/gpu/test_embed_cuda.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agentnet/embed.h"
#include "agentnet/log.h"
#include "embed/cuda_backend.h"

#define FIXTURE_DIR AN_FIXTURES_DIR "/bert-tiny/f32"
#define HIDDEN 32
/* A GPU sums in another order than the CPU; exact equality holds only CPU against CPU. */
#define CUDA_TOLERANCE 1e-4

/* Every log line written while a test runs. */
static char log_lines[8][1024];
static size_t log_line_count;

static void capture_log(an_log_level_t level, const char *line, void *ctx)
{
    if (log_line_count < sizeof(log_lines) / sizeof(log_lines[0]))
        snprintf(log_lines[log_line_count], sizeof(log_lines[0]), "%s", line);
    log_line_count++;
}


static int start_capture(void **state)
{
    log_line_count = 0;
    an_log_set_writer(capture_log, NULL);
    return 0;
}


static int stop_capture(void **state)
{
    an_log_set_writer(NULL, NULL);
    return 0;
}


static int open_on(const char *device, an_embed_model_t **model, char *err, size_t err_len)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.device = device;
    *model = NULL;
    return an_embed_open(FIXTURE_DIR, &opts, model, err, err_len);
}


static void embed_fixture_texts(an_embed_model_t *model, float *out, size_t *count)
{
    static const char *const texts[] = {
        "the cat sat on the mat",
        "",
        "a longer sentence, with punctuation and several more words than the others",
        "x",
    };
    size_t lengths[sizeof(texts) / sizeof(texts[0])];
    *count = sizeof(texts) / sizeof(texts[0]);
    for (size_t i = 0; i < *count; i++)
        lengths[i] = strlen(texts[i]);
    char err[512] = "";
    int rc = an_embed_texts(model, texts, lengths, *count, out, NULL, NULL, NULL, err,
                            sizeof(err));
    if (rc != 0)
        fail_msg("an_embed_texts on %s failed: %s", an_embed_device(model), err);
}


static void auto_without_gpu_falls_back_to_cpu(void **state)
{
    int gpus = an__cuda_device_count(NULL, 0);
    char err[512] = "";
    an_embed_model_t *automatic, *cpu;
    assert_int_equal(open_on("auto", &automatic, err, sizeof(err)), 0);
    size_t lines_after_auto = log_line_count;
    assert_int_equal(open_on("cpu", &cpu, err, sizeof(err)), 0);
    assert_int_equal(log_line_count, lines_after_auto);
    assert_string_equal(an_embed_device(cpu), "cpu");

    float a[4 * HIDDEN], b[4 * HIDDEN];
    size_t count;
    embed_fixture_texts(automatic, a, &count);
    embed_fixture_texts(cpu, b, &count);

    if (gpus > 0) {
        assert_string_equal(an_embed_device(automatic), "cuda:0");
        assert_int_equal(lines_after_auto, 0);
        for (size_t i = 0; i < count * HIDDEN; i++)
            if (fabs((double)a[i] - b[i]) > CUDA_TOLERANCE)
                fail_msg("float %zu: cuda:0 gives %.8g, the CPU %.8g", i, a[i], b[i]);
    } else {
        assert_string_equal(an_embed_device(automatic), "cpu");
#ifdef AN_HAVE_CUDA
        assert_int_equal(lines_after_auto, 1);
        assert_non_null(strstr(log_lines[0], "no CUDA device found; using the CPU"));
#else
        assert_int_equal(lines_after_auto, 0);
#endif
        assert_memory_equal(a, b, sizeof(float) * count * HIDDEN);
    }
    an_embed_close(automatic);
    an_embed_close(cpu);
}


static void cuda_without_gpu_is_rejected(void **state)
{
    if (an__cuda_device_count(NULL, 0) > 0)
        skip();
    char err[512] = "";
    an_embed_model_t *model;
    assert_int_equal(open_on("cuda:0", &model, err, sizeof(err)), AN_EINVAL);
    assert_null(model);
    assert_non_null(strstr(err, "\"cuda:0\""));
    assert_non_null(strstr(err, "--device cpu"));
#ifdef AN_HAVE_CUDA
    assert_non_null(strstr(err, "no CUDA device is available"));
#else
    assert_non_null(strstr(err, "this build has no CUDA back end"));
#endif

    assert_int_equal(open_on("cuda:3", &model, err, sizeof(err)), AN_EINVAL);
    assert_null(model);
    assert_non_null(strstr(err, "\"cuda:3\""));
}


static void cuda_index_past_last_gpu_is_rejected(void **state)
{
    int gpus = an__cuda_device_count(NULL, 0);
    if (gpus == 0)
        skip();
    char device[32], err[512] = "";
    snprintf(device, sizeof(device), "cuda:%d", gpus);
    an_embed_model_t *model;
    assert_int_equal(open_on(device, &model, err, sizeof(err)), AN_EINVAL);
    assert_null(model);
    assert_non_null(strstr(err, "does not exist"));
    assert_non_null(strstr(err, device));
}


static void malformed_device_is_rejected(void **state)
{
    static const char *const devices[] = {"cuda", "cuda:", "cuda:x", "cuda:-1", "cuda:0x",
                                          "cuda0", "gpu", "CPU", ""};
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
        char err[512] = "";
        an_embed_model_t *model;
        int rc = open_on(devices[i], &model, err, sizeof(err));
        if (rc != AN_EINVAL)
            fail_msg("device \"%s\": an_embed_open returned %d, expected AN_EINVAL", devices[i],
                     rc);
        assert_null(model);
        if (!strstr(err, "use auto, cpu or cuda:N"))
            fail_msg("device \"%s\": the error does not list the valid devices: %s",
                     devices[i], err);
    }
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(auto_without_gpu_falls_back_to_cpu, start_capture,
                                        stop_capture),
        cmocka_unit_test(cuda_without_gpu_is_rejected),
        cmocka_unit_test(cuda_index_past_last_gpu_is_rejected),
        cmocka_unit_test(malformed_device_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
