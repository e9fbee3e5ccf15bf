/*
 * The safetensors reader and model-directory loading on broken input: each
 * case damages a copy of tests/fixtures/bert-tiny/f32 in a temporary
 * directory and checks that opening it fails with a message naming the file
 * and the tensor or key. Also dtype conversion on hand-built files.
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
#include "embed/safetensors.h"

#define FIXTURE_DIR AN_FIXTURES_DIR "/bert-tiny"

static const char *const model_files[] = {
    "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
    "sentence_bert_config.json", "modules.json", "1_Pooling/config.json",
};
#define MODEL_FILE_COUNT (sizeof(model_files) / sizeof(model_files[0]))

/* The model copy each test damages; set up and removed around every test. */
static char model_dir[64];
static char st_path[128];


static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    data[size] = '\0';
    *len = (size_t)size;
    return data;
}


static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}


static int copy_model(void **state)
{
    snprintf(model_dir, sizeof(model_dir), "/tmp/an-st-XXXXXX");
    if (!mkdtemp(model_dir))
        return -1;
    char path[256], from[256];
    snprintf(path, sizeof(path), "%s/1_Pooling", model_dir);
    mkdir(path, 0755);
    for (size_t i = 0; i < MODEL_FILE_COUNT; i++) {
        snprintf(from, sizeof(from), "%s/f32/%s", FIXTURE_DIR, model_files[i]);
        snprintf(path, sizeof(path), "%s/%s", model_dir, model_files[i]);
        size_t len;
        void *data = read_file(from, &len);
        write_file(path, data, len);
        free(data);
    }
    snprintf(st_path, sizeof(st_path), "%s/model.safetensors", model_dir);
    return 0;
}


static int remove_model(void **state)
{
    char path[256];
    for (size_t i = 0; i < MODEL_FILE_COUNT; i++) {
        snprintf(path, sizeof(path), "%s/%s", model_dir, model_files[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/pytorch_model.bin", model_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/1_Pooling", model_dir);
    rmdir(path);
    rmdir(model_dir);
    return 0;
}


/* Opens the model copy, expecting failure with rc; returns the message. */
static const char *open_fails(int rc)
{
    static char err[1024];
    err[0] = '\0';
    an_embed_model_t *model = NULL;
    assert_int_equal(an_embed_open(model_dir, NULL, &model, err, sizeof(err)), rc);
    assert_null(model);
    return err;
}


static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("message \"%s\" does not contain \"%s\"", text, part);
}


/* Parses the header of the model copy's safetensors file, returning it and the data section. */
static json_t *load_header(void **data, size_t *data_len)
{
    size_t len;
    uint8_t *file = read_file(st_path, &len);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | file[i];
    json_t *header = json_loadb((const char *)file + 8, (size_t)header_len, 0, NULL);
    assert_non_null(header);
    *data_len = len - 8 - (size_t)header_len;
    *data = malloc(*data_len);
    memcpy(*data, file + 8 + header_len, *data_len);
    free(file);
    return header;
}


/* Writes header and data back as the model copy's safetensors file. */
static void store_header(json_t *header, void *data, size_t data_len)
{
    char *text = json_dumps(header, JSON_COMPACT);
    size_t text_len = strlen(text);
    size_t total = 8 + text_len + data_len;
    uint8_t *file = malloc(total);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)text_len >> (8 * i));
    memcpy(file + 8, text, text_len);
    memcpy(file + 8 + text_len, data, data_len);
    write_file(st_path, file, total);
    free(file);
    free(text);
    free(data);
    json_decref(header);
}


static json_t *tensor_entry(json_t *header, const char *name)
{
    json_t *entry = json_object_get(header, name);
    assert_non_null(entry);
    return entry;
}


static void truncated_file_is_rejected(void **state)
{
    size_t len;
    void *data = read_file(st_path, &len);
    write_file(st_path, data, len - 100);
    free(data);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "tensor \"");
    assert_contains(err, "truncated");
}


static void header_length_past_eof_is_rejected(void **state)
{
    size_t len;
    uint8_t *data = read_file(st_path, &len);
    uint64_t past_end = len;
    for (int i = 0; i < 8; i++)
        data[i] = (uint8_t)(past_end >> (8 * i));
    write_file(st_path, data, len);
    free(data);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "header length");
}


static void short_file_is_rejected(void **state)
{
    write_file(st_path, "\x10\0\0", 3);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "too short");
}


static void bad_json_header_is_rejected(void **state)
{
    size_t len;
    uint8_t *data = read_file(st_path, &len);
    assert_int_equal(data[8], '{');
    data[8] = '[';
    write_file(st_path, data, len);
    free(data);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "not a JSON object");
}


static void unknown_dtype_is_rejected(void **state)
{
    void *data;
    size_t data_len;
    json_t *header = load_header(&data, &data_len);
    json_object_set_new(tensor_entry(header, "encoder.layer.1.output.dense.bias"), "dtype",
                        json_string("F8"));
    store_header(header, data, data_len);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "\"encoder.layer.1.output.dense.bias\"");
    assert_contains(err, "unknown dtype F8");
}


static void integer_weight_dtype_is_rejected(void **state)
{
    /* I32 has F32's size, so the header is valid and the loader must catch it. */
    void *data;
    size_t data_len;
    json_t *header = load_header(&data, &data_len);
    json_object_set_new(tensor_entry(header, "encoder.layer.0.output.dense.bias"), "dtype",
                        json_string("I32"));
    store_header(header, data, data_len);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "\"encoder.layer.0.output.dense.bias\"");
    assert_contains(err, "dtype I32");
}


static void overlapping_tensors_are_rejected(void **state)
{
    void *data;
    size_t data_len;
    json_t *header = load_header(&data, &data_len);
    json_t *query = tensor_entry(header, "encoder.layer.0.attention.self.query.bias");
    json_t *key = tensor_entry(header, "encoder.layer.0.attention.self.key.bias");
    json_object_set(key, "data_offsets", json_object_get(query, "data_offsets"));
    store_header(header, data, data_len);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "\"encoder.layer.0.attention.self.query.bias\"");
    assert_contains(err, "\"encoder.layer.0.attention.self.key.bias\"");
    assert_contains(err, "overlap");
}


static void offsets_past_data_are_rejected(void **state)
{
    void *data;
    size_t data_len;
    json_t *header = load_header(&data, &data_len);
    json_t *offsets = json_pack("[I, I]", (json_int_t)data_len, (json_int_t)data_len + 128);
    json_object_set_new(tensor_entry(header, "encoder.layer.1.output.LayerNorm.bias"),
                        "data_offsets", offsets);
    store_header(header, data, data_len);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, "\"encoder.layer.1.output.LayerNorm.bias\"");
    assert_contains(err, "data section");
}


static void byte_count_mismatch_is_rejected(void **state)
{
    void *data;
    size_t data_len;
    json_t *header = load_header(&data, &data_len);
    json_object_set_new(tensor_entry(header, "embeddings.LayerNorm.weight"), "shape",
                        json_pack("[i]", 33));
    store_header(header, data, data_len);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, "\"embeddings.LayerNorm.weight\"");
    assert_contains(err, "128 data bytes for 33 F32 elements, which need 132");
}


static void shape_mismatch_with_config_is_rejected(void **state)
{
    /* [16, 64] has [32, 32]'s byte count, so only the config check can catch it. */
    void *data;
    size_t data_len;
    json_t *header = load_header(&data, &data_len);
    json_object_set_new(tensor_entry(header, "encoder.layer.1.attention.self.value.weight"),
                        "shape", json_pack("[i, i]", 16, 64));
    store_header(header, data, data_len);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "\"encoder.layer.1.attention.self.value.weight\" has shape [16, 64], "
                         "but config.json implies [32, 32]");
}


static void config_from_other_model_is_rejected(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", model_dir);
    json_t *config = json_load_file(path, 0, NULL);
    assert_non_null(config);
    json_object_set_new(config, "intermediate_size", json_integer(128));
    assert_int_equal(json_dump_file(config, path, 0), 0);
    json_decref(config);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, "\"encoder.layer.0.intermediate.dense.weight\" has shape [64, 32], "
                         "but config.json implies [128, 32]");
}


static void missing_tensor_is_named(void **state)
{
    void *data;
    size_t data_len;
    json_t *header = load_header(&data, &data_len);
    json_t *entry = tensor_entry(header, "encoder.layer.1.output.LayerNorm.weight");
    json_object_set(header, "renamed", entry);
    json_object_del(header, "encoder.layer.1.output.LayerNorm.weight");
    store_header(header, data, data_len);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, st_path);
    assert_contains(err, "tensor \"encoder.layer.1.output.LayerNorm.weight\" is missing");
}


static void missing_config_is_named(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", model_dir);
    unlink(path);
    const char *err = open_fails(AN_ENOTFOUND);
    assert_contains(err, path);
    assert_contains(err, "not found");
}


static void corrupt_config_is_named(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", model_dir);
    write_file(path, "{\"hidden_size\": 32,", 19);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, path);
    assert_contains(err, "not valid JSON");
}


static void missing_config_key_is_named(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", model_dir);
    json_t *config = json_load_file(path, 0, NULL);
    json_object_del(config, "num_attention_heads");
    assert_int_equal(json_dump_file(config, path, 0), 0);
    json_decref(config);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, path);
    assert_contains(err, "\"num_attention_heads\" is missing");
}


/* Sets one key of the copy's config.json to a JSON value given as text. */
static void set_config_key(const char *key, const char *json_value)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", model_dir);
    json_t *config = json_load_file(path, 0, NULL);
    assert_non_null(config);
    json_object_set_new(config, key, json_loads(json_value, JSON_DECODE_ANY, NULL));
    assert_int_equal(json_dump_file(config, path, 0), 0);
    json_decref(config);
}


static void other_model_type_is_named(void **state)
{
    set_config_key("model_type", "\"xlm-roberta\"");
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, "config.json: model_type xlm-roberta is not supported");
    assert_contains(err, "model_type \"bert\"");
}


static void unsupported_activation_is_named(void **state)
{
    set_config_key("hidden_act", "\"gelu_new\"");
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, "hidden_act gelu_new is not supported");
}


static void relative_positions_are_named(void **state)
{
    set_config_key("position_embedding_type", "\"relative_key\"");
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, "position_embedding_type relative_key is not supported");
}


static void pytorch_bin_only_names_conversion(void **state)
{
    char path[256];
    unlink(st_path);
    snprintf(path, sizeof(path), "%s/pytorch_model.bin", model_dir);
    write_file(path, "PK\x03\x04", 4);
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, path);
    assert_contains(err, "PyTorch pickle, which AgentNet does not load; convert it to "
                         "model.safetensors");
}


static void missing_safetensors_is_named(void **state)
{
    unlink(st_path);
    const char *err = open_fails(AN_ENOTFOUND);
    assert_contains(err, st_path);
    assert_contains(err, "not found");
}


static void missing_model_dir_is_named(void **state)
{
    char err[512] = "";
    an_embed_model_t *model = NULL;
    assert_int_equal(an_embed_open("/nonexistent/an-model", NULL, &model, err, sizeof(err)),
                     AN_ENOTFOUND);
    assert_null(model);
    assert_contains(err, "\"/nonexistent/an-model\"");
}


static void unsupported_module_is_named(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/modules.json", model_dir);
    const char *modules =
        "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", "
        "\"type\": \"sentence_transformers.models.Transformer\"},"
        " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", "
        "\"type\": \"sentence_transformers.models.Pooling\"},"
        " {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Dense\", "
        "\"type\": \"sentence_transformers.models.Dense\"}]";
    write_file(path, modules, strlen(modules));
    const char *err = open_fails(AN_EINVAL);
    assert_contains(err, path);
    assert_contains(err, "sentence_transformers.models.Dense");
}


static void missing_pooling_config_is_named(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/1_Pooling/config.json", model_dir);
    unlink(path);
    const char *err = open_fails(AN_ENOTFOUND);
    assert_contains(err, path);
}


/* Writes a safetensors file of the given header text and data to st_path. */
static void write_safetensors(const char *header, const void *data, size_t data_len)
{
    size_t header_len = strlen(header);
    uint8_t *file = malloc(8 + header_len + data_len);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    memcpy(file + 8, header, header_len);
    memcpy(file + 8 + header_len, data, data_len);
    write_file(st_path, file, 8 + header_len + data_len);
    free(file);
}


static void half_precision_converts_exactly(void **state)
{
    /* F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), +inf, -0. BF16: 1, -3. */
    const uint16_t f16[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000};
    const uint16_t bf16[] = {0x3f80, 0xc040};
    uint8_t data[16];
    for (int i = 0; i < 6; i++) {
        data[2 * i] = (uint8_t)f16[i];
        data[2 * i + 1] = (uint8_t)(f16[i] >> 8);
    }
    for (int i = 0; i < 2; i++) {
        data[12 + 2 * i] = (uint8_t)bf16[i];
        data[12 + 2 * i + 1] = (uint8_t)(bf16[i] >> 8);
    }
    write_safetensors("{\"__metadata__\": {\"format\": \"pt\"}, "
                      "\"h\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [0, 12]}, "
                      "\"b\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [12, 16]}, "
                      "\"e\": {\"dtype\": \"I64\", \"shape\": [0], \"data_offsets\": [16, 16]}}  ",
                      data, sizeof(data));

    an__st_file_t *file = NULL;
    char err[512] = "";
    assert_int_equal(an__st_open(st_path, &file, err, sizeof(err)), 0);
    assert_int_equal(file->count, 3);

    const an__st_tensor_t *h = an__st_find(file, "h");
    assert_non_null(h);
    assert_int_equal(h->ndim, 2);
    assert_int_equal(h->elements, 6);
    float out[6];
    assert_int_equal(an__st_to_f32(h, out), 0);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -2.0f);
    assert_true(out[2] == 65504.0f);
    assert_true(out[3] == 0x1p-24f);
    assert_true(out[4] > 3.4e38f);
    assert_true(out[5] == 0.0f && signbit(out[5]));

    const an__st_tensor_t *b = an__st_find(file, "b");
    assert_non_null(b);
    assert_int_equal(an__st_to_f32(b, out), 0);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -3.0f);

    const an__st_tensor_t *e = an__st_find(file, "e");
    assert_non_null(e);
    assert_int_equal(e->elements, 0);
    assert_int_equal(an__st_to_f32(e, out), AN_EINVAL);
    assert_null(an__st_find(file, "__metadata__"));
    an__st_close(file);
}


int main(void)
{
#define CASE(fn) cmocka_unit_test_setup_teardown(fn, copy_model, remove_model)
    const struct CMUnitTest tests[] = {
        CASE(truncated_file_is_rejected),
        CASE(header_length_past_eof_is_rejected),
        CASE(short_file_is_rejected),
        CASE(bad_json_header_is_rejected),
        CASE(unknown_dtype_is_rejected),
        CASE(integer_weight_dtype_is_rejected),
        CASE(overlapping_tensors_are_rejected),
        CASE(offsets_past_data_are_rejected),
        CASE(byte_count_mismatch_is_rejected),
        CASE(shape_mismatch_with_config_is_rejected),
        CASE(config_from_other_model_is_rejected),
        CASE(missing_tensor_is_named),
        CASE(missing_config_is_named),
        CASE(corrupt_config_is_named),
        CASE(missing_config_key_is_named),
        CASE(other_model_type_is_named),
        CASE(unsupported_activation_is_named),
        CASE(relative_positions_are_named),
        CASE(pytorch_bin_only_names_conversion),
        CASE(missing_safetensors_is_named),
        CASE(missing_model_dir_is_named),
        CASE(unsupported_module_is_named),
        CASE(missing_pooling_config_is_named),
        CASE(half_precision_converts_exactly),
    };
#undef CASE
    return cmocka_run_group_tests(tests, NULL, NULL);
}
