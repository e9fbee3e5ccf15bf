/* Sentence-transformers directories (BERT family). */
#include <stdio.h>

#include "embed/embed_internal.h"

int an__embed_open_bert(const char *dir, an_embed_model_t *model, char *err, size_t err_len)
{
    /* TODO: load config.json, model.safetensors and the tokenizer, and run the encoder. */
    snprintf(err, err_len, "embed: model directories are not supported yet (\"%s\"); use -m "
             "hash:DIMS", dir);
    return AN_EINVAL;
}
