/*
 * The JSON files of a sentence-transformers directory that shape the model:
 * config.json (the BERT encoder), sentence_bert_config.json (max_seq_length),
 * modules.json (the module pipeline) and the Pooling module's config.json.
 * Tokenizer files are the tokenizer's business, not this file's.
 */
#ifndef AGENTNET_EMBED_ST_CONFIG_H
#define AGENTNET_EMBED_ST_CONFIG_H

#include <stddef.h>

/* The encoder's hyperparameters, from config.json. */
typedef struct {
    unsigned hidden_size;
    unsigned num_hidden_layers;
    unsigned num_attention_heads;
    unsigned intermediate_size;
    unsigned vocab_size;
    unsigned max_position_embeddings;
    unsigned type_vocab_size;
    float layer_norm_eps; /* 1e-12 when absent, as in transformers' BertConfig */
} an__bert_config_t;

/* Pooling modes; a Pooling module with several set concatenates them in this order. */
enum {
    AN__POOL_CLS = 1u << 0,
    AN__POOL_MAX = 1u << 1,
    AN__POOL_MEAN = 1u << 2,
    AN__POOL_MEAN_SQRT_LEN = 1u << 3,
};

/* The sentence-transformers pipeline around the encoder. */
typedef struct {
    unsigned max_seq_length;  /* sentence_bert_config.json; 0 when absent */
    unsigned pooling_modes;   /* AN__POOL_* bits */
    int normalize;            /* 1 when modules.json lists a Normalize module */
} an__st_pipeline_t;

/*
 * Reads DIR/config.json. Returns AN_ENOTFOUND when it is missing and
 * AN_EINVAL when it is malformed or describes a model this encoder cannot
 * run, with a message naming the file, the key and the fix.
 */
int an__bert_config_load(const char *dir, an__bert_config_t *config, char *err, size_t err_len);

/*
 * Reads sentence_bert_config.json, modules.json and the Pooling module's
 * config.json under dir. Each is optional: without modules.json the pipeline
 * is the encoder and mean pooling, as sentence-transformers builds it, and
 * without a Pooling config the pooling is mean. A module type other than
 * Transformer, Pooling and Normalize is rejected with AN_EINVAL, because
 * skipping it would give wrong embeddings without a word.
 */
int an__st_pipeline_load(const char *dir, unsigned hidden_size, an__st_pipeline_t *pipeline,
                         char *err, size_t err_len);

#endif
