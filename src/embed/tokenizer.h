/*
 * The WordPiece tokenizer of BERT-family sentence-transformers models: the
 * same ids as Hugging Face's BertTokenizer (basic tokenization, then greedy
 * longest-match-first WordPiece). It loads the vocabulary and the
 * normalisation settings from a model directory. Tensors and weights are
 * the BERT model's business, not this file's.
 */
#ifndef AGENTNET_EMBED_TOKENIZER_H
#define AGENTNET_EMBED_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "agentnet/common.h"

typedef struct an__tokenizer an__tokenizer_t;

/*
 * Opens the tokenizer of model_dir. The vocabulary comes from vocab.txt,
 * or from tokenizer.json's WordPiece vocab when vocab.txt is absent. The
 * casing comes from tokenizer_config.json (do_lower_case, strip_accents,
 * special tokens), else from tokenizer.json's normalizer. An uncased model
 * strips accents unless strip_accents is false. sentence_bert_config.json's
 * do_lower_case adds a lowercasing of the input text before all of that.
 * On failure returns an AN_E* code and writes a message naming the file and
 * the fix into err. The caller owns *out and frees it with an__tokenizer_close.
 */
int an__tokenizer_open(const char *model_dir, an__tokenizer_t **out, char *err, size_t err_len);
void an__tokenizer_close(an__tokenizer_t *t);

/*
 * Encodes text (len bytes of UTF-8; NUL bytes are text and get dropped) as
 * [CLS] tokens... [SEP] into ids, which has room for max_tokens ids. At most
 * max_tokens ids are written, both special tokens included, so max_tokens
 * must be at least 2. Sets *count to the ids written and *truncated to 1 when
 * tokens were dropped to fit, else 0. Returns AN_EINVAL on invalid UTF-8
 * (overlong forms, surrogates, stray or missing continuation bytes) or when
 * max_tokens < 2; nothing past text[len - 1] is read. Thread-safe: a
 * tokenizer is read-only after open. Encoding stops once ids is full, so a
 * long text costs a UTF-8 check of all of it and little more. Nothing is
 * allocated unless sentence_bert_config.json sets do_lower_case, which takes
 * a lowercased copy of the text.
 */
int an__tokenizer_encode(const an__tokenizer_t *t, const char *text, size_t len,
                         unsigned max_tokens, int32_t *ids, size_t *count, int *truncated);

/*
 * Checks that text is valid UTF-8 (no overlong forms, surrogates, code
 * points above U+10FFFF, stray or missing continuation bytes). Returns 0, or
 * AN_EINVAL with the offset of the first invalid byte in *bad_offset when
 * bad_offset is not NULL.
 */
int an__tokenizer_validate_utf8(const char *text, size_t len, size_t *bad_offset);

int32_t an__tokenizer_cls_id(const an__tokenizer_t *t);
int32_t an__tokenizer_sep_id(const an__tokenizer_t *t);
int32_t an__tokenizer_pad_id(const an__tokenizer_t *t);
int32_t an__tokenizer_unk_id(const an__tokenizer_t *t);
size_t an__tokenizer_vocab_size(const an__tokenizer_t *t);

/* Returns the id of token, or -1 when the vocabulary does not contain it. */
int32_t an__tokenizer_token_id(const an__tokenizer_t *t, const char *token);

#endif
