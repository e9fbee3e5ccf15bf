/*
 * The public embed API: option defaults, model kind dispatch, argument
 * checks and the per-model lock. The model kinds live in hash_model.c and
 * bert_model.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embed/embed_internal.h"

an_embed_options_t an_embed_options_default(void)
{
    an_embed_options_t o = {
        .device = "auto",
        .threads = 0,
        .batch_size = AN_EMBED_DEFAULT_BATCH_SIZE,
        .max_batch_tokens = 0,
        .max_seq_length = 0,
    };
    return o;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int an_embed_open(const char *spec, const an_embed_options_t *opts, an_embed_model_t **out,
                  char *err, size_t err_len)
{
    *out = NULL;
    if (!spec || !spec[0]) {
        snprintf(err, err_len, "embed: no model given; pass -m DIR or -m hash:DIMS");
        return AN_EINVAL;
    }
    an_embed_model_t *model = calloc(1, sizeof(*model));
    if (!model)
        return AN_ENOMEM;
    model->opts = opts ? *opts : an_embed_options_default();
    if (!model->opts.device)
        model->opts.device = "auto";
    if (model->opts.threads == 0)
        model->opts.threads = online_cpus();
    if (model->opts.batch_size == 0)
        model->opts.batch_size = AN_EMBED_DEFAULT_BATCH_SIZE;
    pthread_mutex_init(&model->lock, NULL);

    int rc = strncmp(spec, "hash:", 5) == 0 ? an__embed_open_hash(spec, model, err, err_len)
                                              : an__embed_open_bert(spec, model, err, err_len);
    if (rc != 0) {
        pthread_mutex_destroy(&model->lock);
        free(model);
        return rc;
    }
    *out = model;
    return 0;
}

void an_embed_close(an_embed_model_t *model)
{
    if (!model)
        return;
    if (model->ops && model->ops->close)
        model->ops->close(model);
    pthread_mutex_destroy(&model->lock);
    free(model);
}

size_t an_embed_dims(const an_embed_model_t *model) { return model->dims; }
unsigned an_embed_max_seq_length(const an_embed_model_t *model) { return model->max_seq_length; }
const char *an_embed_device(const an_embed_model_t *model) { return model->device; }

int an_embed_texts(an_embed_model_t *model, const char *const *texts, const size_t *lengths,
                   size_t count, float *out, an_embed_info_t *info,
                   an_embed_progress_fn progress, void *progress_ctx, char *err, size_t err_len)
{
    if (!model || (count && (!texts || !lengths || !out))) {
        snprintf(err, err_len, "embed: texts, lengths and out are required");
        return AN_EINVAL;
    }
    pthread_mutex_lock(&model->lock);
    int rc = model->ops->embed_texts(model, texts, lengths, count, out, info, progress,
                                     progress_ctx, err, err_len);
    pthread_mutex_unlock(&model->lock);
    return rc;
}

int an_embed_token_ids(an_embed_model_t *model, const int32_t *const *ids, const size_t *lengths,
                       size_t count, float *out, an_embed_info_t *info,
                       an_embed_progress_fn progress, void *progress_ctx, char *err,
                       size_t err_len)
{
    if (!model || (count && (!ids || !lengths || !out))) {
        snprintf(err, err_len, "embed: ids, lengths and out are required");
        return AN_EINVAL;
    }
    if (!model->ops->embed_token_ids) {
        snprintf(err, err_len, "embed: the %s model has no vocabulary, so it cannot embed token "
                 "ids; send text", model->ops->kind);
        return AN_EINVAL;
    }
    pthread_mutex_lock(&model->lock);
    int rc = model->ops->embed_token_ids(model, ids, lengths, count, out, info, progress,
                                         progress_ctx, err, err_len);
    pthread_mutex_unlock(&model->lock);
    return rc;
}
