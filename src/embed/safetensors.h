/*
 * Reader for the safetensors format: maps the file, validates its header and
 * hands out tensors by name. It has no BERT logic, because bert_model.c
 * decides which tensors a model needs and which dtypes it accepts.
 *
 * On-disk layout:
 *   bytes 0..7   header length N, unsigned 64-bit little-endian
 *   bytes 8..8+N a JSON object: for each tensor name
 *                {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]},
 *                plus an optional "__metadata__" object of string values.
 *                Writers may pad it with trailing spaces.
 *   the rest     the data section; begin and end are byte offsets into it,
 *                end - begin = prod(shape) * dtype size, and tensors do not overlap.
 * Numbers are little-endian.
 */
#ifndef AGENTNET_EMBED_SAFETENSORS_H
#define AGENTNET_EMBED_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* Largest rank the reader accepts; BERT weights have rank 1 or 2. */
#define AN__ST_MAX_DIMS 8

typedef enum {
    AN__ST_F32,
    AN__ST_F16,
    AN__ST_BF16,
    AN__ST_F64,
    AN__ST_I64,
    AN__ST_I32,
    AN__ST_I16,
    AN__ST_I8,
    AN__ST_U8,
    AN__ST_BOOL,
} an__st_dtype_t;

typedef struct {
    char *name;
    an__st_dtype_t dtype;
    unsigned ndim;
    uint64_t shape[AN__ST_MAX_DIMS];
    uint64_t elements;   /* prod(shape); 1 for a scalar */
    uint64_t begin;      /* byte offsets into the data section */
    uint64_t end;
    const void *data;    /* points into the mapping; may be unaligned */
} an__st_tensor_t;

typedef struct {
    char *path;
    void *map;
    size_t map_bytes;
    an__st_tensor_t *tensors; /* sorted by name */
    size_t count;
} an__st_file_t;

/*
 * Maps path and validates its header: the header length lies inside the
 * file, the header is a JSON object, each dtype is known, each shape matches
 * its byte range, each range lies inside the data section and no two ranges
 * overlap. On failure returns AN_EIO (cannot read) or AN_EINVAL (malformed)
 * with a message naming the file and the tensor. The caller owns *out and
 * closes it with an__st_close().
 */
int an__st_open(const char *path, an__st_file_t **out, char *err, size_t err_len);
void an__st_close(an__st_file_t *file);

/* Returns the tensor called name, or NULL. */
const an__st_tensor_t *an__st_find(const an__st_file_t *file, const char *name);

/* Returns the dtype's name as the format spells it ("F32", "BF16", ...). */
const char *an__st_dtype_name(an__st_dtype_t dtype);

/*
 * Converts a F32, F16 or BF16 tensor to float32 in dst (tensor->elements
 * floats). Returns AN_EINVAL for other dtypes.
 */
int an__st_to_f32(const an__st_tensor_t *tensor, float *dst);

#endif
