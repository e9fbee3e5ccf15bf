/*
 * Output side of agentnet embed: the jsonl and npy writers and the progress
 * bar on stderr. Reading input and running the model are cmd_embed.c's.
 */
#ifndef AGENTNET_CLI_EMBED_OUTPUT_H
#define AGENTNET_CLI_EMBED_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

/*
 * Writes one JSON array of dims floats per vector, one per line, without
 * spaces. Each float is printed with %.9g, which reads back as the same
 * float32. Returns 0, or -1 when out reports a write error.
 */
int embed_write_jsonl(FILE *out, const float *vectors, size_t count, size_t dims);

/*
 * Writes the header of a NumPy .npy version 1.0 file holding a C-order
 * float32 array of shape (rows, dims):
 *
 *   bytes 0-5   magic "\x93NUMPY"
 *   bytes 6-7   version 1, 0
 *   bytes 8-9   header length H, little-endian uint16
 *   bytes 10-   H bytes: "{'descr': '<f4', 'fortran_order': False,
 *               'shape': (ROWS, DIMS), }", spaces, then '\n', padded so that
 *               10 + H is a multiple of 64 and the data starts aligned
 *
 * rows * dims little-endian float32 values follow (embed_write_npy_data).
 */
int embed_write_npy_header(FILE *out, size_t rows, size_t dims);
int embed_write_npy_data(FILE *out, const float *vectors, size_t count, size_t dims);

/*
 * A progress bar on stderr: texts done of total, texts per second and the
 * time left, redrawn at most every PROGRESS_REDRAW_NS. It draws nothing
 * unless enabled, which the caller sets when stderr is a terminal.
 */
typedef struct {
    int enabled;
    int drawn;          /* something is on the line and needs clearing */
    size_t total;
    uint64_t start_ns;
    uint64_t last_draw_ns;
} embed_progress_t;

void embed_progress_start(embed_progress_t *progress, int enabled, size_t total);
void embed_progress_update(embed_progress_t *progress, size_t done);
/* Clears the bar, so that the shell prompt or an error starts on a clean line. */
void embed_progress_finish(embed_progress_t *progress);

#endif
