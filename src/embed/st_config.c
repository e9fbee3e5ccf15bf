/*
 * Loading of config.json and the sentence-transformers pipeline files. Only
 * keys that change the output are read; the rest, such as the tokenizer's
 * settings, are left to their owners.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agentnet/common.h"
#include "agentnet/log.h"
#include "embed/st_config.h"

/* Reads path as a JSON object; AN_ENOTFOUND when the file does not exist. */
static int load_json_object(const char *path, json_t **out, char *err, size_t err_len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int saved = errno;
        snprintf(err, err_len, "embed: cannot open %s (%s)", path, strerror(saved));
        return saved == ENOENT ? AN_ENOTFOUND : AN_EIO;
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, 0, &jerr);
    fclose(f);
    if (!root) {
        snprintf(err, err_len, "embed: %s is not valid JSON (%s, line %d); download the model "
                 "again", path, jerr.text, jerr.line);
        return AN_EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, err_len, "embed: %s is not a JSON object; download the model again", path);
        json_decref(root);
        return AN_EINVAL;
    }
    *out = root;
    return 0;
}


/*
 * Reads key as a positive integer. A missing key takes fallback, or is an
 * error when fallback is 0.
 */
static int get_positive(const char *path, json_t *root, const char *key, unsigned fallback,
                        unsigned *value, char *err, size_t err_len)
{
    json_t *j = json_object_get(root, key);
    if (!j && fallback) {
        *value = fallback;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) <= 0 || json_integer_value(j) > INT_MAX) {
        snprintf(err, err_len, "embed: %s: \"%s\" is %s; it must be a positive integer", path,
                 key, j ? "not a positive integer" : "missing");
        return AN_EINVAL;
    }
    *value = (unsigned)json_integer_value(j);
    return 0;
}


int an__bert_config_load(const char *dir, an__bert_config_t *config, char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    json_t *root;
    int rc = load_json_object(path, &root, err, err_len);
    if (rc == AN_ENOTFOUND)
        snprintf(err, err_len, "embed: %s not found; a sentence-transformers model directory "
                 "has config.json next to model.safetensors, download the model again", path);
    if (rc != 0)
        return rc;

    memset(config, 0, sizeof(*config));
    /* Checked first: other model types lack BERT's keys, and "hidden_size is missing" misleads. */
    json_t *type = json_object_get(root, "model_type");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "bert") != 0)) {
        snprintf(err, err_len, "embed: %s: model_type %s is not supported; the encoder runs BERT "
                 "models (model_type \"bert\"), such as all-MiniLM-L6-v2", path,
                 json_is_string(type) ? json_string_value(type) : "(not a string)");
        rc = AN_EINVAL;
        goto out;
    }
    if ((rc = get_positive(path, root, "hidden_size", 0, &config->hidden_size, err, err_len)) ||
        (rc = get_positive(path, root, "num_hidden_layers", 0, &config->num_hidden_layers, err,
                           err_len)) ||
        (rc = get_positive(path, root, "num_attention_heads", 0, &config->num_attention_heads,
                           err, err_len)) ||
        (rc = get_positive(path, root, "intermediate_size", 0, &config->intermediate_size, err,
                           err_len)) ||
        (rc = get_positive(path, root, "vocab_size", 0, &config->vocab_size, err, err_len)) ||
        (rc = get_positive(path, root, "max_position_embeddings", 0,
                           &config->max_position_embeddings, err, err_len)) ||
        (rc = get_positive(path, root, "type_vocab_size", 2, &config->type_vocab_size, err,
                           err_len)))
        goto out;

    rc = AN_EINVAL;
    if (config->hidden_size % config->num_attention_heads != 0) {
        snprintf(err, err_len, "embed: %s: hidden_size %u is not a multiple of "
                 "num_attention_heads %u", path, config->hidden_size,
                 config->num_attention_heads);
        goto out;
    }

    json_t *eps = json_object_get(root, "layer_norm_eps");
    config->layer_norm_eps = 1e-12f;
    if (eps) {
        if (!json_is_number(eps) || json_number_value(eps) <= 0) {
            snprintf(err, err_len, "embed: %s: \"layer_norm_eps\" must be a positive number",
                     path);
            goto out;
        }
        config->layer_norm_eps = (float)json_number_value(eps);
    }

    /* "gelu" is the erf form in transformers; the tanh approximations would differ. */
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "gelu") != 0)) {
        snprintf(err, err_len, "embed: %s: hidden_act %s is not supported; the encoder runs "
                 "\"gelu\" (erf form) only", path,
                 json_is_string(act) ? json_string_value(act) : "(not a string)");
        goto out;
    }

    json_t *pos_type = json_object_get(root, "position_embedding_type");
    if (pos_type && (!json_is_string(pos_type) ||
                     strcmp(json_string_value(pos_type), "absolute") != 0)) {
        snprintf(err, err_len, "embed: %s: position_embedding_type %s is not supported; the "
                 "encoder runs \"absolute\" position embeddings only", path,
                 json_is_string(pos_type) ? json_string_value(pos_type) : "(not a string)");
        goto out;
    }
    rc = 0;

out:
    json_decref(root);
    return rc;
}


static int read_bool(json_t *root, const char *key)
{
    return json_is_true(json_object_get(root, key));
}


static int load_pooling(const char *dir, const char *module_path, unsigned hidden_size,
                        an__st_pipeline_t *pipeline, char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/config.json", dir, module_path);
    json_t *root;
    int rc = load_json_object(path, &root, err, err_len);
    if (rc == AN_ENOTFOUND)
        snprintf(err, err_len, "embed: %s not found, but modules.json lists a Pooling module "
                 "at \"%s\"; download the model again", path, module_path);
    if (rc != 0)
        return rc;

    rc = AN_EINVAL;
    json_t *dims = json_object_get(root, "word_embedding_dimension");
    if (dims && (!json_is_integer(dims) || json_integer_value(dims) != (json_int_t)hidden_size)) {
        snprintf(err, err_len, "embed: %s: word_embedding_dimension does not match config.json's "
                 "hidden_size %u; the files come from different models", path, hidden_size);
        goto out;
    }

    static const char *const unsupported[] = {
        "pooling_mode_weightedmean_tokens",
        "pooling_mode_lasttoken",
    };
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        if (read_bool(root, unsupported[i])) {
            snprintf(err, err_len, "embed: %s: %s is not supported; the encoder pools with "
                     "CLS, max, mean and mean_sqrt_len", path, unsupported[i]);
            goto out;
        }
    }

    pipeline->pooling_modes = 0;
    if (read_bool(root, "pooling_mode_cls_token"))
        pipeline->pooling_modes |= AN__POOL_CLS;
    if (read_bool(root, "pooling_mode_max_tokens"))
        pipeline->pooling_modes |= AN__POOL_MAX;
    if (read_bool(root, "pooling_mode_mean_tokens"))
        pipeline->pooling_modes |= AN__POOL_MEAN;
    if (read_bool(root, "pooling_mode_mean_sqrt_len_tokens"))
        pipeline->pooling_modes |= AN__POOL_MEAN_SQRT_LEN;
    if (!pipeline->pooling_modes) {
        snprintf(err, err_len, "embed: %s: no pooling mode is set; set one of "
                 "pooling_mode_mean_tokens, pooling_mode_cls_token or pooling_mode_max_tokens "
                 "to true", path);
        goto out;
    }
    rc = 0;

out:
    json_decref(root);
    return rc;
}


/* Returns the class name after the last dot of a module type. */
static const char *module_class(const char *type)
{
    const char *dot = strrchr(type, '.');
    return dot ? dot + 1 : type;
}


static int load_modules(const char *dir, unsigned hidden_size, an__st_pipeline_t *pipeline,
                        char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/modules.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) {
            snprintf(err, err_len, "embed: cannot open %s (%s)", path, strerror(errno));
            return AN_EIO;
        }
        /* What sentence-transformers does for a plain Hugging Face model directory. */
        an_log(AN_LOG_INFO, "modules.json not found; using mean pooling without normalisation",
               "path", path, NULL);
        pipeline->pooling_modes = AN__POOL_MEAN;
        return 0;
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, 0, &jerr);
    fclose(f);
    if (!json_is_array(root)) {
        snprintf(err, err_len, "embed: %s is not a JSON array of modules (%s); download the "
                 "model again", path, root ? "wrong type" : jerr.text);
        json_decref(root);
        return AN_EINVAL;
    }

    int rc = 0;
    int have_pooling = 0;
    size_t i;
    json_t *module;
    json_array_foreach(root, i, module) {
        const char *type = json_string_value(json_object_get(module, "type"));
        const char *module_path = json_string_value(json_object_get(module, "path"));
        if (!type || !module_path) {
            snprintf(err, err_len, "embed: %s: module %zu lacks a \"type\" or \"path\" string; "
                     "download the model again", path, i);
            rc = AN_EINVAL;
            break;
        }
        const char *cls = module_class(type);
        if (strcmp(cls, "Transformer") == 0) {
            continue;
        } else if (strcmp(cls, "Pooling") == 0) {
            rc = load_pooling(dir, module_path, hidden_size, pipeline, err, err_len);
            if (rc != 0)
                break;
            have_pooling = 1;
        } else if (strcmp(cls, "Normalize") == 0) {
            pipeline->normalize = 1;
        } else {
            snprintf(err, err_len, "embed: %s: module %zu has type %s, which is not supported; "
                     "the pipeline runs Transformer, Pooling and Normalize modules only", path, i,
                     type);
            rc = AN_EINVAL;
            break;
        }
    }
    json_decref(root);
    if (rc == 0 && !have_pooling)
        pipeline->pooling_modes = AN__POOL_MEAN;
    return rc;
}


int an__st_pipeline_load(const char *dir, unsigned hidden_size, an__st_pipeline_t *pipeline,
                         char *err, size_t err_len)
{
    memset(pipeline, 0, sizeof(*pipeline));

    char path[4096];
    snprintf(path, sizeof(path), "%s/sentence_bert_config.json", dir);
    json_t *root;
    int rc = load_json_object(path, &root, err, err_len);
    if (rc == 0) {
        json_t *msl = json_object_get(root, "max_seq_length");
        if (msl && (!json_is_integer(msl) || json_integer_value(msl) < 3 ||
                    json_integer_value(msl) > INT_MAX)) {
            snprintf(err, err_len, "embed: %s: \"max_seq_length\" must be an integer of at least "
                     "3 ([CLS], one token, [SEP])", path);
            json_decref(root);
            return AN_EINVAL;
        }
        if (msl)
            pipeline->max_seq_length = (unsigned)json_integer_value(msl);
        json_decref(root);
    } else if (rc != AN_ENOTFOUND) {
        return rc;
    }

    return load_modules(dir, hidden_size, pipeline, err, err_len);
}
