/* The weight-free "hash:DIMS" model. */
#include <stdio.h>

#include "embed/embed_internal.h"

int an__embed_open_hash(const char *spec, an_embed_model_t *model, char *err, size_t err_len)
{
    /* TODO: signed feature hashing of word unigrams, bigrams and character trigrams. */
    snprintf(err, err_len, "embed: \"%s\" is not supported yet", spec);
    return AN_EINVAL;
}
