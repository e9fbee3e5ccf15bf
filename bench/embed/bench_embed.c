/*
 * AgentNet side of the embedding benchmark (bench/embed/run.sh): sentences
 * per second of an_embed_token_ids on synthetic token ids, and the float32
 * GEMM ceiling of this machine. torch_runner.py builds the same inputs with
 * the same formulas, so both sides embed identical token ids.
 *
 * Usage:
 *   bench_embed gemm [THREADS]
 *       best GFLOP/s of a 2048^3 cblas_sgemm over GEMM_REPEATS runs ("gemm"),
 *       then of the same product on the packed AVX-512 kernel ("gemm-packed")
 *   bench_embed rows MODEL_DIR THREADS MIN_SECONDS ROW...
 *       ROW is NAME:BATCH:COUNT:LENGTH. LENGTH counts [CLS] and [SEP]; 0
 *       means the mixed lengths of mixed_length(). BATCH 1 embeds the COUNT
 *       sentences one call each; otherwise one call embeds all COUNT with
 *       batch_size BATCH. Prints "NAME SENTENCES_PER_SECOND REPEATS" per row.
 *
 * Each row runs once to warm up, then at least MIN_REPEATS times and until
 * MIN_SECONDS have passed, and reports its fastest repetition: other load on
 * the machine only ever slows a repetition down.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "agentnet/common.h"
#include "agentnet/embed.h"
#include "embed/gemm_packed.h"

#define GEMM_SIZE 2048
#define GEMM_REPEATS 5
#define MIN_REPEATS 3
#define MAX_REPEATS 50

/* First id after [PAD] [UNK] [CLS] [SEP] [MASK] in the benchmark vocabulary. */
#define FIRST_WORD_ID 5
#define VOCAB_SIZE 30522

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}


/* Token count, [CLS] and [SEP] included, of sentence i of the mixed workload: 8 to 128. */
static size_t mixed_length(size_t i)
{
    return 8 + (i * 53) % 121;
}


/* Vocabulary id of token t (0 = first after [CLS]) of sentence s. */
static int32_t token_id(size_t s, size_t t)
{
    return (int32_t)(FIRST_WORD_ID + (s * 131 + t * 31) % (VOCAB_SIZE - FIRST_WORD_ID));
}


typedef struct {
    const float *a, *packed;
    float *c;
    size_t first_row, rows;
    an__gemm_epilogue_t epilogue;
} packed_slice_t;


static void *packed_slice(void *arg)
{
    packed_slice_t *s = arg;
    size_t n = GEMM_SIZE;
    an__gemm_packed(s->rows, n, n, s->a + s->first_row * n, n, s->packed, 0,
                    an__gemm_packed_panels(n), &s->epilogue, s->c + s->first_row * n, n);
    return NULL;
}


/*
 * Times the same product on AgentNet's packed AVX-512 kernel, the encoder's
 * kernel on such CPUs, with rows split evenly over threads. b serves as the
 * [n][k] weight matrix. Packing is not timed, because the encoder packs at
 * load. Prints "gemm-packed GFLOPS", or "gemm-packed none" without AVX-512F.
 */
static int run_packed_gemm(int threads, const float *a, const float *b, float *c)
{
    size_t n = GEMM_SIZE;
    if (!an__gemm_packed_supported()) {
        printf("gemm-packed none\n");
        return 0;
    }
    int rc = 1;
    float *packed = aligned_alloc(64, an__gemm_packed_floats(n, n) * sizeof(float));
    float *zero_bias = calloc(n, sizeof(float));
    packed_slice_t *slices = calloc((size_t)threads, sizeof(*slices));
    pthread_t *ids = calloc((size_t)threads, sizeof(*ids));
    if (!packed || !zero_bias || !slices || !ids) {
        fprintf(stderr, "bench_embed: out of memory for the packed %zux%zu matrix\n", n, n);
        goto out;
    }
    an__gemm_pack(b, n, n, packed);

    double best = 0;
    for (int r = 0; r < GEMM_REPEATS + 1; r++) {
        double start = now_seconds();
        int started = 0;
        for (; started < threads; started++) {
            size_t first = n * (size_t)started / (size_t)threads;
            size_t rows = n * (size_t)(started + 1) / (size_t)threads - first;
            slices[started] = (packed_slice_t){a, packed, c, first, rows,
                                               {zero_bias, NULL, 0, false}};
            int err = pthread_create(&ids[started], NULL, packed_slice, &slices[started]);
            if (err != 0) {
                fprintf(stderr, "bench_embed: starting a thread failed: %s\n", strerror(err));
                break;
            }
        }
        for (int t = 0; t < started; t++)
            pthread_join(ids[t], NULL);
        if (started < threads)
            goto out;
        double gflops = 2.0 * (double)n * n * n / (now_seconds() - start) * 1e-9;
        if (r > 0 && gflops > best) /* run 0 is the warm-up */
            best = gflops;
    }
    printf("gemm-packed %.1f\n", best);
    rc = 0;

out:
    free(packed);
    free(zero_bias);
    free(slices);
    free(ids);
    return rc;
}


static int run_gemm(int threads)
{
    size_t n = GEMM_SIZE;
    float *a = malloc(n * n * sizeof(float));
    float *b = malloc(n * n * sizeof(float));
    float *c = malloc(n * n * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "bench_embed: out of memory for three %zux%zu matrices\n", n, n);
        return 1;
    }
    for (size_t i = 0; i < n * n; i++) {
        a[i] = (float)(i % 17) * 0.01f;
        b[i] = (float)(i % 13) * 0.01f;
    }
    openblas_set_num_threads(threads);

    double best = 0;
    for (int r = 0; r < GEMM_REPEATS + 1; r++) {
        double start = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a,
                    (int)n, b, (int)n, 0.0f, c, (int)n);
        double gflops = 2.0 * (double)n * n * n / (now_seconds() - start) * 1e-9;
        if (r > 0 && gflops > best) /* run 0 is the warm-up */
            best = gflops;
    }
    printf("gemm %.1f\n", best);
    int rc = run_packed_gemm(threads, a, b, c);
    free(a);
    free(b);
    free(c);
    return rc;
}


typedef struct {
    char name[64];
    size_t batch;
    size_t count;
    size_t length;
} row_t;


static int parse_row(const char *arg, row_t *row)
{
    char tail;
    if (sscanf(arg, "%63[^:]:%zu:%zu:%zu%c", row->name, &row->batch, &row->count, &row->length,
               &tail) != 4 || row->batch == 0 || row->count == 0 ||
        (row->length != 0 && row->length < 2)) {
        fprintf(stderr, "bench_embed: invalid row '%s': expected NAME:BATCH:COUNT:LENGTH with "
                "BATCH and COUNT >= 1 and LENGTH 0 or >= 2\n", arg);
        return -1;
    }
    return 0;
}


/* Embeds the row's sentences once; returns 0 or prints the error and returns -1. */
static int embed_row(an_embed_model_t *model, const row_t *row, const int32_t *const *ids,
                     const size_t *lengths, float *out)
{
    char err[512] = "";
    size_t dims = an_embed_dims(model);
    int rc = 0;
    if (row->batch == 1) {
        for (size_t s = 0; s < row->count && rc == 0; s++)
            rc = an_embed_token_ids(model, ids + s, lengths + s, 1, out + s * dims, NULL, NULL,
                                    NULL, err, sizeof(err));
    } else {
        rc = an_embed_token_ids(model, ids, lengths, row->count, out, NULL, NULL, NULL, err,
                                sizeof(err));
    }
    if (rc != 0)
        fprintf(stderr, "bench_embed: row %s: %s (%s)\n", row->name, err, an_strerror(rc));
    return rc == 0 ? 0 : -1;
}


static int run_row(const char *model_dir, unsigned threads, double min_seconds, const row_t *row)
{
    an_embed_options_t opts = an_embed_options_default();
    opts.device = "cpu";
    opts.threads = threads;
    opts.batch_size = (unsigned)row->batch;
    an_embed_model_t *model = NULL;
    char err[512] = "";
    int rc = an_embed_open(model_dir, &opts, &model, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "bench_embed: %s (%s)\n", err, an_strerror(rc));
        return -1;
    }

    int32_t **ids = calloc(row->count, sizeof(*ids));
    size_t *lengths = calloc(row->count, sizeof(*lengths));
    float *out = malloc(row->count * an_embed_dims(model) * sizeof(float));
    int status = ids && lengths && out ? 0 : -1;
    for (size_t s = 0; s < row->count && status == 0; s++) {
        size_t total = row->length ? row->length : mixed_length(s);
        lengths[s] = total - 2; /* the encoder adds [CLS] and [SEP] */
        ids[s] = malloc((lengths[s] + 1) * sizeof(int32_t));
        if (!ids[s]) {
            status = -1;
            break;
        }
        for (size_t t = 0; t < lengths[s]; t++)
            ids[s][t] = token_id(s, t);
    }
    if (status != 0)
        fprintf(stderr, "bench_embed: out of memory for row %s\n", row->name);

    double best = 0;
    int repeats = 0;
    if (status == 0)
        status = embed_row(model, row, (const int32_t *const *)ids, lengths, out);
    double deadline = now_seconds() + min_seconds;
    while (status == 0 && repeats < MAX_REPEATS &&
           (repeats < MIN_REPEATS || now_seconds() < deadline)) {
        double start = now_seconds();
        status = embed_row(model, row, (const int32_t *const *)ids, lengths, out);
        double rate = (double)row->count / (now_seconds() - start);
        best = rate > best ? rate : best;
        repeats++;
    }
    if (status == 0)
        printf("%s %.2f %d\n", row->name, best, repeats);
    fflush(stdout);

    for (size_t s = 0; ids && s < row->count; s++)
        free(ids[s]);
    free(ids);
    free(lengths);
    free(out);
    an_embed_close(model);
    return status;
}


int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "gemm") == 0)
        return run_gemm(argc >= 3 ? atoi(argv[2]) : 1);
    if (argc < 6 || strcmp(argv[1], "rows") != 0) {
        fprintf(stderr, "usage: bench_embed gemm [THREADS]\n"
                        "       bench_embed rows MODEL_DIR THREADS MIN_SECONDS "
                        "NAME:BATCH:COUNT:LENGTH...\n");
        return 2;
    }
    unsigned threads = (unsigned)atoi(argv[3]);
    double min_seconds = atof(argv[4]);
    for (int i = 5; i < argc; i++) {
        row_t row;
        if (parse_row(argv[i], &row) != 0 || run_row(argv[2], threads, min_seconds, &row) != 0)
            return 1;
    }
    return 0;
}
