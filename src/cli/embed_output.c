/* jsonl and npy writers and the progress bar of agentnet embed. */
#include <stdio.h>
#include <string.h>

#include "agentnet/common.h"
#include "cli/embed_output.h"

/* Ten redraws a second are enough to follow by eye and keep terminal writes few. */
#define PROGRESS_REDRAW_NS 100000000ULL
#define PROGRESS_BAR_WIDTH 24

int embed_write_jsonl(FILE *out, const float *vectors, size_t count, size_t dims)
{
    for (size_t i = 0; i < count; i++) {
        const float *v = vectors + i * dims;
        putc('[', out);
        for (size_t d = 0; d < dims; d++) {
            if (d > 0)
                putc(',', out);
            /* 9 significant digits always read back as the same float32. */
            fprintf(out, "%.9g", (double)v[d]);
        }
        putc(']', out);
        putc('\n', out);
    }
    return ferror(out) ? -1 : 0;
}


int embed_write_npy_header(FILE *out, size_t rows, size_t dims)
{
    char dict[160];
    int dict_len = snprintf(dict, sizeof(dict),
                            "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                            rows, dims);
    size_t unpadded = 10 + (size_t)dict_len + 1; /* prefix, dict and the closing '\n' */
    size_t total = (unpadded + 63) / 64 * 64;
    size_t header_len = total - 10;

    unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                (unsigned char)(header_len & 0xff),
                                (unsigned char)(header_len >> 8)};
    fwrite(prefix, 1, sizeof(prefix), out);
    fwrite(dict, 1, (size_t)dict_len, out);
    for (size_t i = unpadded; i < total; i++)
        putc(' ', out);
    putc('\n', out);
    return ferror(out) ? -1 : 0;
}


int embed_write_npy_data(FILE *out, const float *vectors, size_t count, size_t dims)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < count * dims; i++) {
        unsigned char bytes[4];
        memcpy(bytes, &vectors[i], 4);
        unsigned char little[4] = {bytes[3], bytes[2], bytes[1], bytes[0]};
        fwrite(little, 1, 4, out);
    }
#else
    fwrite(vectors, sizeof(float), count * dims, out);
#endif
    return ferror(out) ? -1 : 0;
}


void embed_progress_start(embed_progress_t *progress, int enabled, size_t total)
{
    memset(progress, 0, sizeof(*progress));
    progress->enabled = enabled;
    progress->total = total;
    progress->start_ns = an_mono_ns();
}


/* Formats seconds as "42s", "3m05s" or "2h07m". */
static void format_duration(double seconds, char *out, size_t len)
{
    unsigned long s = seconds > 0 ? (unsigned long)(seconds + 0.5) : 0;
    if (s < 60)
        snprintf(out, len, "%lus", s);
    else if (s < 3600)
        snprintf(out, len, "%lum%02lus", s / 60, s % 60);
    else
        snprintf(out, len, "%luh%02lum", s / 3600, s % 3600 / 60);
}


void embed_progress_update(embed_progress_t *progress, size_t done)
{
    if (!progress->enabled)
        return;
    uint64_t now = an_mono_ns();
    int recent = progress->drawn && now - progress->last_draw_ns < PROGRESS_REDRAW_NS;
    if (recent && done < progress->total)
        return;
    progress->last_draw_ns = now;
    progress->drawn = 1;

    double elapsed = (double)(now - progress->start_ns) / 1e9;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    char left[32] = "?";
    if (rate > 0)
        format_duration((double)(progress->total - done) / rate, left, sizeof(left));

    char bar[PROGRESS_BAR_WIDTH + 1];
    size_t filled = progress->total ? done * PROGRESS_BAR_WIDTH / progress->total : 0;
    for (size_t i = 0; i < PROGRESS_BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_BAR_WIDTH] = '\0';

    /* \r returns to the start of the line and \033[K clears what a longer draw left. */
    fprintf(stderr, "\r[%s] %zu/%zu texts  %.0f texts/s  %s left\033[K", bar, done,
            progress->total, rate, left);
    fflush(stderr);
}


void embed_progress_finish(embed_progress_t *progress)
{
    if (!progress->enabled || !progress->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    progress->drawn = 0;
}
