/*
 * The safetensors reader: mapping, header validation and dtype conversion.
 * Every check names the file and the tensor, because a truncated download
 * or a hand-edited header must give an error, never a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "agentnet/common.h"
#include "embed/safetensors.h"

/*
 * Headers list one short JSON entry per tensor, so even models with
 * thousands of tensors stay far below this; a larger length field means the
 * file is corrupt or not safetensors at all.
 */
#define ST_MAX_HEADER_BYTES (100u * 1024 * 1024)

static const struct {
    const char *name;
    an__st_dtype_t dtype;
    unsigned bytes;
} dtype_table[] = {
    {"F32", AN__ST_F32, 4}, {"F16", AN__ST_F16, 2}, {"BF16", AN__ST_BF16, 2},
    {"F64", AN__ST_F64, 8}, {"I64", AN__ST_I64, 8}, {"I32", AN__ST_I32, 4},
    {"I16", AN__ST_I16, 2}, {"I8", AN__ST_I8, 1},   {"U8", AN__ST_U8, 1},
    {"BOOL", AN__ST_BOOL, 1},
};


const char *an__st_dtype_name(an__st_dtype_t dtype)
{
    for (size_t i = 0; i < sizeof(dtype_table) / sizeof(dtype_table[0]); i++)
        if (dtype_table[i].dtype == dtype)
            return dtype_table[i].name;
    return "?";
}


static int lookup_dtype(const char *name, an__st_dtype_t *dtype, unsigned *bytes)
{
    for (size_t i = 0; i < sizeof(dtype_table) / sizeof(dtype_table[0]); i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *dtype = dtype_table[i].dtype;
            *bytes = dtype_table[i].bytes;
            return 0;
        }
    }
    return AN_EINVAL;
}


static int compare_by_name(const void *a, const void *b)
{
    return strcmp(((const an__st_tensor_t *)a)->name, ((const an__st_tensor_t *)b)->name);
}


static int compare_by_begin(const void *a, const void *b)
{
    const an__st_tensor_t *x = *(const an__st_tensor_t *const *)a;
    const an__st_tensor_t *y = *(const an__st_tensor_t *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}


/* Reads a JSON integer >= 0 into *value; JSON reals and negatives are rejected. */
static int json_to_u64(const json_t *j, uint64_t *value)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return AN_EINVAL;
    *value = (uint64_t)json_integer_value(j);
    return 0;
}


/*
 * Fills tensor from one header entry and checks it against the data
 * section of data_bytes bytes.
 */
static int parse_entry(const char *path, const char *name, json_t *entry, uint64_t data_bytes,
                       an__st_tensor_t *tensor, char *err, size_t err_len)
{
    if (!json_is_object(entry)) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\": header entry is not a JSON object; "
                 "the file is corrupt, download it again", path, name);
        return AN_EINVAL;
    }

    json_t *dtype = json_object_get(entry, "dtype");
    unsigned dtype_bytes = 0;
    if (!json_is_string(dtype) ||
        lookup_dtype(json_string_value(dtype), &tensor->dtype, &dtype_bytes) != 0) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\": unknown dtype %s; the reader knows "
                 "F32, F16, BF16, F64, I64, I32, I16, I8, U8 and BOOL", path, name,
                 json_is_string(dtype) ? json_string_value(dtype) : "(missing)");
        return AN_EINVAL;
    }

    json_t *shape = json_object_get(entry, "shape");
    if (!json_is_array(shape) || json_array_size(shape) > AN__ST_MAX_DIMS) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\": \"shape\" must be an array of at "
                 "most %d sizes; the file is corrupt, download it again", path, name,
                 AN__ST_MAX_DIMS);
        return AN_EINVAL;
    }
    tensor->ndim = (unsigned)json_array_size(shape);
    tensor->elements = 1;
    for (unsigned d = 0; d < tensor->ndim; d++) {
        uint64_t size = 0;
        if (json_to_u64(json_array_get(shape, d), &size) != 0 ||
            (size && tensor->elements > UINT64_MAX / 8 / size)) {
            snprintf(err, err_len, "embed: %s: tensor \"%s\": dimension %u of \"shape\" is not "
                     "a valid size; the file is corrupt, download it again", path, name, d);
            return AN_EINVAL;
        }
        tensor->shape[d] = size;
        tensor->elements *= size;
    }

    json_t *offsets = json_object_get(entry, "data_offsets");
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        json_to_u64(json_array_get(offsets, 0), &tensor->begin) != 0 ||
        json_to_u64(json_array_get(offsets, 1), &tensor->end) != 0 ||
        tensor->begin > tensor->end) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\": \"data_offsets\" must be [begin, end] "
                 "with begin <= end; the file is corrupt, download it again", path, name);
        return AN_EINVAL;
    }
    if (tensor->end > data_bytes) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\": data ends at byte %llu of the data "
                 "section, which has only %llu bytes; the file is truncated, download it again",
                 path, name, (unsigned long long)tensor->end, (unsigned long long)data_bytes);
        return AN_EINVAL;
    }
    uint64_t expected_bytes = tensor->elements * dtype_bytes;
    if (tensor->end - tensor->begin != expected_bytes) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\": %llu data bytes for %llu %s elements, "
                 "which need %llu; the file is corrupt, download it again", path, name,
                 (unsigned long long)(tensor->end - tensor->begin),
                 (unsigned long long)tensor->elements, json_string_value(dtype),
                 (unsigned long long)expected_bytes);
        return AN_EINVAL;
    }
    return 0;
}


/* Checks that no two tensors share bytes, naming the first overlapping pair. */
static int check_overlap(const an__st_file_t *file, char *err, size_t err_len)
{
    if (file->count < 2)
        return 0;
    const an__st_tensor_t **order = malloc(file->count * sizeof(*order));
    if (!order)
        return AN_ENOMEM;
    for (size_t i = 0; i < file->count; i++)
        order[i] = &file->tensors[i];
    qsort(order, file->count, sizeof(*order), compare_by_begin);

    int rc = 0;
    for (size_t i = 1; i < file->count; i++) {
        /* Empty tensors own no bytes, so they cannot overlap anything. */
        if (order[i]->begin == order[i]->end)
            continue;
        if (order[i]->begin < order[i - 1]->end) {
            snprintf(err, err_len, "embed: %s: tensors \"%s\" and \"%s\" overlap in the data "
                     "section (bytes %llu..%llu and %llu..%llu); the file is corrupt, download "
                     "it again", file->path, order[i - 1]->name, order[i]->name,
                     (unsigned long long)order[i - 1]->begin,
                     (unsigned long long)order[i - 1]->end, (unsigned long long)order[i]->begin,
                     (unsigned long long)order[i]->end);
            rc = AN_EINVAL;
            break;
        }
    }
    free(order);
    return rc;
}


static int parse_header(an__st_file_t *file, const char *header, size_t header_bytes,
                        uint64_t data_bytes, const uint8_t *data, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_loadb(header, header_bytes, 0, &jerr);
    if (!root) {
        snprintf(err, err_len, "embed: %s: the header is not a JSON object (%s at byte %d of "
                 "the file); the file is corrupt, download it again", file->path, jerr.text,
                 jerr.position + 8);
        return AN_EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, err_len, "embed: %s: the header is valid JSON but not a JSON object; the "
                 "file is corrupt, download it again", file->path);
        json_decref(root);
        return AN_EINVAL;
    }

    size_t entries = json_object_size(root);
    file->tensors = calloc(entries ? entries : 1, sizeof(*file->tensors));
    if (!file->tensors) {
        json_decref(root);
        return AN_ENOMEM;
    }

    int rc = 0;
    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry) {
        if (strcmp(name, "__metadata__") == 0)
            continue;
        an__st_tensor_t *tensor = &file->tensors[file->count];
        tensor->name = strdup(name);
        if (!tensor->name) {
            rc = AN_ENOMEM;
            break;
        }
        file->count++;
        rc = parse_entry(file->path, name, entry, data_bytes, tensor, err, err_len);
        if (rc != 0)
            break;
        tensor->data = data + tensor->begin;
    }
    json_decref(root);
    if (rc != 0)
        return rc;

    qsort(file->tensors, file->count, sizeof(*file->tensors), compare_by_name);
    return check_overlap(file, err, err_len);
}


int an__st_open(const char *path, an__st_file_t **out, char *err, size_t err_len)
{
    *out = NULL;
    an__st_file_t *file = calloc(1, sizeof(*file));
    if (!file)
        return AN_ENOMEM;
    file->path = strdup(path);
    if (!file->path) {
        free(file);
        return AN_ENOMEM;
    }

    int rc = AN_EIO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "embed: cannot open %s (%s)", path, strerror(errno));
        rc = errno == ENOENT ? AN_ENOTFOUND : AN_EIO;
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "embed: %s is not a regular file", path);
        close(fd);
        goto fail;
    }
    if (st.st_size < 8) {
        snprintf(err, err_len, "embed: %s: %lld bytes is too short for a safetensors file; the "
                 "file is truncated, download it again", path, (long long)st.st_size);
        close(fd);
        rc = AN_EINVAL;
        goto fail;
    }
    file->map_bytes = (size_t)st.st_size;
    file->map = mmap(NULL, file->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (file->map == MAP_FAILED) {
        file->map = NULL;
        snprintf(err, err_len, "embed: cannot map %s (%s)", path, strerror(errno));
        goto fail;
    }

    const uint8_t *bytes = file->map;
    uint64_t header_bytes = 0;
    for (int i = 7; i >= 0; i--)
        header_bytes = header_bytes << 8 | bytes[i];
    if (header_bytes > file->map_bytes - 8 || header_bytes > ST_MAX_HEADER_BYTES) {
        snprintf(err, err_len, "embed: %s: the header length field says %llu bytes, but the "
                 "file has %zu bytes after it; the file is truncated or not safetensors, "
                 "download it again", path, (unsigned long long)header_bytes,
                 file->map_bytes - 8);
        rc = AN_EINVAL;
        goto fail;
    }

    const uint8_t *data = bytes + 8 + header_bytes;
    uint64_t data_bytes = file->map_bytes - 8 - header_bytes;
    rc = parse_header(file, (const char *)bytes + 8, (size_t)header_bytes, data_bytes, data, err,
                      err_len);
    if (rc != 0)
        goto fail;
    *out = file;
    return 0;

fail:
    an__st_close(file);
    return rc;
}


void an__st_close(an__st_file_t *file)
{
    if (!file)
        return;
    for (size_t i = 0; i < file->count; i++)
        free(file->tensors[i].name);
    free(file->tensors);
    if (file->map)
        munmap(file->map, file->map_bytes);
    free(file->path);
    free(file);
}


const an__st_tensor_t *an__st_find(const an__st_file_t *file, const char *name)
{
    an__st_tensor_t key = {.name = (char *)name};
    return bsearch(&key, file->tensors, file->count, sizeof(*file->tensors), compare_by_name);
}


/* IEEE 754 binary16 to binary32, subnormals, infinities and NaN included. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;

    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | mantissa << 13;
    } else if (exponent != 0) {
        bits = sign | (exponent + 112) << 23 | mantissa << 13;
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        /* Subnormal: shift the mantissa up until its leading 1 is the implicit bit. */
        exponent = 113;
        while (!(mantissa & 0x400)) {
            mantissa <<= 1;
            exponent--;
        }
        bits = sign | exponent << 23 | (mantissa & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}


int an__st_to_f32(const an__st_tensor_t *tensor, float *dst)
{
    const uint8_t *src = tensor->data;
    switch (tensor->dtype) {
    case AN__ST_F32:
        memcpy(dst, src, tensor->elements * sizeof(float));
        return 0;
    case AN__ST_F16:
        for (uint64_t i = 0; i < tensor->elements; i++)
            dst[i] = f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        return 0;
    case AN__ST_BF16:
        for (uint64_t i = 0; i < tensor->elements; i++) {
            uint32_t bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &bits, sizeof(float));
        }
        return 0;
    default:
        return AN_EINVAL;
    }
}
