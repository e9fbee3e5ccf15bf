/*
 * agentnet embed: reads one text per input line, embeds the lines in
 * batches with the embed module and writes jsonl or npy. The writers and the
 * progress bar live in embed_output.c.
 *
 * Input lines: the input is split at '\n'. Each line is one text, empty
 * lines included, and the final '\n' starts no text, so "a\n\nb\n" is three
 * texts. One '\r' at the end of a line is dropped, so CRLF files give the
 * same texts as LF files. A '\r' anywhere else is text. A UTF-8 byte order
 * mark at the start of the input is dropped too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <utf8proc.h>

#include "agentnet/embed.h"
#include "agentnet/log.h"
#include "cli/commands.h"
#include "cli/embed_output.h"
#include "cli/options.h"

/* Bounds the batch buffer, batch_size * dims floats, to 16 GiB at hash:65536. */
#define EMBED_MAX_BATCH_SIZE 65536
#define EMBED_MAX_THREADS 4096

/* Exit statuses: 2 for a usage error, 1 for bad input or a model that fails. */
#define EXIT_USAGE 2
#define EXIT_FAILED 1

typedef struct {
    const char *model;
    const char *input;
    const char *output;
    const char *format;
    unsigned batch_size;
    unsigned threads;
    const char *device;
} embed_settings_t;

#define E(field) offsetof(embed_settings_t, field)

static const opt_t embed_options[] = {
    {"--model", "AGENTNET_EMBED_MODEL", OPT_STRING, E(model), "MODEL",
     "sentence-transformers directory or hash:DIMS (default hash:384, which is lexical, not "
     "semantic: it matches words and spellings, not meaning)"},
    {"--input", NULL, OPT_STRING, E(input), "FILE",
     "read texts from FILE, one per line, - for standard input (default standard input)"},
    {"--format", NULL, OPT_STRING, E(format), "jsonl|npy",
     "jsonl: one JSON array of floats per line; npy: one float32 array of shape (lines, dims) "
     "(default jsonl)"},
    {"--output", NULL, OPT_STRING, E(output), "FILE",
     "write to FILE (default standard output, which must not be a terminal for npy)"},
    {"--batch-size", "AGENTNET_EMBED_BATCH_SIZE", OPT_UINT32, E(batch_size), "N",
     "texts per model call, 1 to 65536 (default 32)"},
    {"--threads", "AGENTNET_EMBED_THREADS", OPT_UINT32, E(threads), "N",
     "compute threads, BLAS included (default 0 = number of online CPUs)"},
    {"--device", "AGENTNET_EMBED_DEVICE", OPT_STRING, E(device), "auto|cpu|cuda:N",
     "where the model runs; auto takes a GPU when the model can use one, else the CPU "
     "(default auto)"},
};

static const opt_alias_t embed_aliases[] = {
    {"-m", "--model"},
    {"-i", "--input"},
    {"-o", "--output"},
};

#define EMBED_OPTION_COUNT (sizeof(embed_options) / sizeof(embed_options[0]))
#define EMBED_ALIAS_COUNT (sizeof(embed_aliases) / sizeof(embed_aliases[0]))

/* The input, split into lines that point into data. */
typedef struct {
    char *data;
    const char **texts;
    size_t *lengths;
    size_t count;
} embed_input_t;


static int is_valid_device(const char *device)
{
    if (strcmp(device, "auto") == 0 || strcmp(device, "cpu") == 0)
        return 1;
    if (strncmp(device, "cuda:", 5) != 0 || !device[5])
        return 0;
    for (const char *p = device + 5; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}


/* Checks the settings that opt_parse cannot; prints the error and returns -1 on a bad one. */
static int check_settings(const embed_settings_t *s)
{
    if (strcmp(s->format, "jsonl") != 0 && strcmp(s->format, "npy") != 0) {
        fprintf(stderr, "agentnet embed: --format \"%s\" is invalid; use jsonl or npy\n",
                s->format);
        return -1;
    }
    if (s->batch_size < 1 || s->batch_size > EMBED_MAX_BATCH_SIZE) {
        fprintf(stderr, "agentnet embed: --batch-size %u is invalid; use 1 to %d\n",
                s->batch_size, EMBED_MAX_BATCH_SIZE);
        return -1;
    }
    if (s->threads > EMBED_MAX_THREADS) {
        fprintf(stderr, "agentnet embed: --threads %u is invalid; use 0 (one per online CPU) "
                "to %d\n", s->threads, EMBED_MAX_THREADS);
        return -1;
    }
    if (!is_valid_device(s->device)) {
        fprintf(stderr, "agentnet embed: --device \"%s\" is invalid; use auto, cpu or cuda:N "
                "(such as cuda:0)\n", s->device);
        return -1;
    }
    int to_stdout = !s->output || strcmp(s->output, "-") == 0;
    if (strcmp(s->format, "npy") == 0 && to_stdout && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "agentnet embed: npy output is binary and standard output is a "
                "terminal; pass -o FILE.npy or redirect standard output\n");
        return -1;
    }
    return 0;
}


/* Reads all of path ("-" or NULL for standard input) into *data; returns 0 or -1 after an error. */
static int read_all(const char *path, char **data, size_t *len)
{
    int from_stdin = !path || strcmp(path, "-") == 0;
    FILE *in = from_stdin ? stdin : fopen(path, "rb");
    if (!in) {
        fprintf(stderr, "agentnet embed: opening input \"%s\" failed: %s; check the path "
                "given to -i\n", path, strerror(errno));
        return -1;
    }

    size_t cap = 1 << 16;
    size_t used = 0;
    char *buf = malloc(cap);
    while (buf) {
        used += fread(buf + used, 1, cap - used, in);
        if (used < cap)
            break;
        char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = !buf || ferror(in);
    int saved_errno = errno;
    if (!from_stdin)
        fclose(in);
    if (failed) {
        fprintf(stderr, "agentnet embed: reading input \"%s\" failed: %s\n",
                from_stdin ? "-" : path, buf ? strerror(saved_errno) : "out of memory");
        free(buf);
        return -1;
    }
    *data = buf;
    *len = used;
    return 0;
}


/* Splits data into lines as the file comment describes. */
static int split_lines(embed_input_t *input, size_t len)
{
    char *p = input->data;
    char *end = p + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;

    size_t count = 0;
    for (char *q = p; q < end; q++)
        count += *q == '\n';
    if (end > p && end[-1] != '\n')
        count++; /* a last line without '\n' */

    input->texts = malloc((count ? count : 1) * sizeof(*input->texts));
    input->lengths = malloc((count ? count : 1) * sizeof(*input->lengths));
    if (!input->texts || !input->lengths) {
        fprintf(stderr, "agentnet embed: out of memory for %zu input lines\n", count);
        return -1;
    }

    for (size_t i = 0; i < count; i++) {
        char *newline = memchr(p, '\n', (size_t)(end - p));
        char *line_end = newline ? newline : end;
        size_t line_len = (size_t)(line_end - p);
        if (line_len > 0 && p[line_len - 1] == '\r')
            line_len--;
        input->texts[i] = p;
        input->lengths[i] = line_len;
        p = newline ? newline + 1 : end;
    }
    input->count = count;
    return 0;
}


/* Rejects the first line that is not UTF-8, naming it by its 1-based number. */
static int check_utf8(const embed_input_t *input)
{
    for (size_t i = 0; i < input->count; i++) {
        const utf8proc_uint8_t *text = (const utf8proc_uint8_t *)input->texts[i];
        size_t pos = 0;
        while (pos < input->lengths[i]) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t n = utf8proc_iterate(text + pos,
                                                  (utf8proc_ssize_t)(input->lengths[i] - pos), &cp);
            if (n <= 0) {
                fprintf(stderr, "agentnet embed: line %zu is not valid UTF-8 (byte %zu of the "
                        "line); convert the file to UTF-8, for example with iconv -t UTF-8\n",
                        i + 1, pos + 1);
                return -1;
            }
            pos += (size_t)n;
        }
    }
    return 0;
}


static void free_input(embed_input_t *input)
{
    free(input->data);
    free(input->texts);
    free(input->lengths);
}


/*
 * Embeds a batch that failed as a whole one text at a time, so that the
 * error names the input line, and prints it.
 */
static void report_batch_error(an_embed_model_t *model, const embed_input_t *input,
                               size_t first, size_t count, float *vector, const char *batch_err)
{
    char err[1024];
    for (size_t i = first; i < first + count; i++) {
        if (an_embed_texts(model, &input->texts[i], &input->lengths[i], 1, vector, NULL, NULL,
                           NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "agentnet embed: line %zu: %s\n", i + 1, err);
            return;
        }
    }
    fprintf(stderr, "agentnet embed: lines %zu to %zu: %s\n", first + 1, first + count,
            batch_err);
}


/* Count and first line of the lines that the model cut to max_seq_length. */
typedef struct {
    size_t count;
    size_t first_line;          /* 1-based, and 0 while count is 0 */
} truncation_t;


static void count_truncated(truncation_t *cut, const an_embed_info_t *info, size_t first,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!info[i].truncated)
            continue;
        if (cut->count++ == 0)
            cut->first_line = first + i + 1;
    }
}


/* Prints one notice on stderr, as the gateway reports usage.truncated_inputs. */
static void report_truncated(const truncation_t *cut, unsigned max_seq_length)
{
    if (cut->count == 0)
        return;
    if (cut->count == 1)
        fprintf(stderr, "agentnet embed: line %zu was longer than the model's max_seq_length "
                "(%u tokens, [CLS] and [SEP] included) and was cut to it\n", cut->first_line,
                max_seq_length);
    else
        fprintf(stderr, "agentnet embed: %zu lines were longer than the model's max_seq_length "
                "(%u tokens, [CLS] and [SEP] included) and were cut to it; the first is line "
                "%zu\n", cut->count, max_seq_length, cut->first_line);
}


/* Embeds every line batch by batch and writes each batch as it is done. */
static int embed_and_write(an_embed_model_t *model, const embed_input_t *input,
                           const embed_settings_t *s, FILE *out, const char *out_name)
{
    size_t dims = an_embed_dims(model);
    int npy = strcmp(s->format, "npy") == 0;
    float *vectors = calloc((size_t)s->batch_size * dims, sizeof(float));
    an_embed_info_t *info = calloc(s->batch_size, sizeof(*info));
    if (!vectors || !info) {
        fprintf(stderr, "agentnet embed: out of memory for a batch of %u texts of %zu floats; "
                "pass a smaller --batch-size\n", s->batch_size, dims);
        free(vectors);
        free(info);
        return -1;
    }
    truncation_t cut = {0, 0};

    if (npy && embed_write_npy_header(out, input->count, dims) != 0)
        goto write_failed;

    /* Vectors printed on a terminal would land on the bar's line, and show progress anyway. */
    int to_terminal = isatty(STDERR_FILENO) && !isatty(fileno(out));
    embed_progress_t progress;
    embed_progress_start(&progress, to_terminal, input->count);
    for (size_t first = 0; first < input->count; first += s->batch_size) {
        size_t n = input->count - first < s->batch_size ? input->count - first : s->batch_size;
        char err[1024];
        if (an_embed_texts(model, input->texts + first, input->lengths + first, n, vectors,
                           info, NULL, NULL, err, sizeof(err)) != 0) {
            embed_progress_finish(&progress);
            report_batch_error(model, input, first, n, vectors, err);
            free(vectors);
            free(info);
            return -1;
        }
        count_truncated(&cut, info, first, n);
        int rc = npy ? embed_write_npy_data(out, vectors, n, dims)
                     : embed_write_jsonl(out, vectors, n, dims);
        if (rc != 0) {
            embed_progress_finish(&progress);
            goto write_failed;
        }
        embed_progress_update(&progress, first + n);
    }
    embed_progress_finish(&progress);
    report_truncated(&cut, an_embed_max_seq_length(model));
    free(vectors);
    free(info);
    return 0;

write_failed:
    fprintf(stderr, "agentnet embed: writing %s failed: %s\n", out_name, strerror(errno));
    free(vectors);
    free(info);
    return -1;
}


static void print_help(void)
{
    opt_print_help_aliased(
        "embed",
        "Embeds each input line as one text and writes the vectors in input order. Every line "
        "is a text,\nempty lines included; a final newline starts no text, and CRLF line ends "
        "are read as LF.\nA progress bar is drawn on stderr when it is a terminal and the "
        "vectors do not go to one.\nLines longer than the model's max_seq_length are cut to it, "
        "and a notice on stderr counts them.\nAGENTNET_EMBED_AVX512=0 runs a directory model on "
        "OpenBLAS even where the CPU has AVX-512\n(default 1: AgentNet's AVX-512 kernels where "
        "the CPU has them).",
        embed_options, EMBED_OPTION_COUNT, embed_aliases, EMBED_ALIAS_COUNT);
}


int cli_embed(int argc, char **argv)
{
    /* The command's stdout is data, so its few log lines go to stderr as plain text. */
    an_log_set_format(AN_LOG_FORMAT_TEXT);
    embed_settings_t s = {
        .model = AN_EMBED_DEFAULT_MODEL,
        .format = "jsonl",
        .batch_size = AN_EMBED_DEFAULT_BATCH_SIZE,
        .threads = 0,
        .device = "auto",
    };
    int rc = opt_parse_aliased("embed", embed_options, EMBED_OPTION_COUNT, embed_aliases,
                               EMBED_ALIAS_COUNT, &s, argc, argv, (size_t)-1);
    if (rc == 1) {
        print_help();
        return 0;
    }
    if (rc != 0 || check_settings(&s) != 0)
        return EXIT_USAGE;

    /* Input first, so that a bad line fails before a model loads or an output file is truncated. */
    embed_input_t input = {0};
    size_t len = 0;
    if (read_all(s.input, &input.data, &len) != 0)
        return EXIT_FAILED;
    if (split_lines(&input, len) != 0 || check_utf8(&input) != 0) {
        free_input(&input);
        return EXIT_FAILED;
    }

    an_embed_options_t opts = an_embed_options_default();
    opts.device = s.device;
    opts.threads = s.threads;
    opts.batch_size = s.batch_size;
    an_embed_model_t *model = NULL;
    char err[1024];
    if (an_embed_open(s.model, &opts, &model, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentnet %s\n", err);
        free_input(&input);
        return EXIT_FAILED;
    }

    int to_stdout = !s.output || strcmp(s.output, "-") == 0;
    FILE *out = to_stdout ? stdout : fopen(s.output, "wb");
    if (!out) {
        fprintf(stderr, "agentnet embed: opening output \"%s\" failed: %s; check that its "
                "directory exists and is writable\n", s.output, strerror(errno));
        an_embed_close(model);
        free_input(&input);
        return EXIT_FAILED;
    }

    char out_name[512] = "standard output";
    if (!to_stdout)
        snprintf(out_name, sizeof(out_name), "\"%s\"", s.output);
    if (!to_stdout && strcmp(s.format, "npy") == 0 && isatty(fileno(out))) {
        fprintf(stderr, "agentnet embed: npy output is binary and %s is a terminal; pass -o "
                "FILE.npy\n", out_name);
        fclose(out);
        an_embed_close(model);
        free_input(&input);
        return EXIT_USAGE;
    }
    rc = embed_and_write(model, &input, &s, out, out_name);
    if (fflush(out) != 0 && rc == 0) {
        fprintf(stderr, "agentnet embed: writing %s failed: %s\n", out_name, strerror(errno));
        rc = -1;
    }
    if (!to_stdout && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "agentnet embed: writing %s failed: %s\n", out_name, strerror(errno));
        rc = -1;
    }
    an_embed_close(model);
    free_input(&input);
    return rc == 0 ? 0 : EXIT_FAILED;
}
