/*
 * Shared between the tokenizer's loader (tokenizer.c), its encoder
 * (tokenizer_encode.c) and its vocabulary table (vocab.c). Nothing outside
 * those files includes this header; the BERT code uses tokenizer.h.
 */
#ifndef AGENTNET_EMBED_TOKENIZER_INTERNAL_H
#define AGENTNET_EMBED_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "embed/tokenizer.h"

/*
 * Token string -> id, an open-addressing hash table with linear probing.
 * The strings live in one arena, so a lookup touches the slot array and one
 * string. Adding a token that is already present replaces its id, as a
 * Python dict built line by line from vocab.txt does for duplicate lines.
 */
typedef struct {
    uint64_t hash;
    uint32_t offset; /* into strings */
    uint32_t len;    /* bytes */
    int32_t id;      /* -1 marks an empty slot */
} an__vocab_slot_t;

typedef struct {
    an__vocab_slot_t *slots;
    size_t slot_count; /* a power of two */
    size_t used;
    char *strings;
    size_t strings_len;
    size_t strings_cap;
} an__vocab_t;

int an__vocab_add(an__vocab_t *v, const char *token, size_t len, int32_t id);
int32_t an__vocab_find(const an__vocab_t *v, const char *token, size_t len);
void an__vocab_free(an__vocab_t *v);

/* A token matched verbatim in the input before any normalisation, like [CLS]. */
typedef struct {
    char *text;
    size_t len;
    int32_t id;
} an__added_token_t;

/* Longest WordPiece continuation prefix accepted; "##" in every BERT model. */
#define AN__WORDPIECE_PREFIX_MAX_BYTES 16
/*
 * Highest max_input_chars_per_word accepted. BERT models use 100; the
 * encoder keeps a word of this many characters on the stack.
 */
#define AN__MAX_CHARS_PER_WORD_LIMIT 512

struct an__tokenizer {
    an__vocab_t vocab;
    size_t vocab_size; /* highest id + 1 */
    int32_t cls_id, sep_id, pad_id, unk_id;

    int lowercase;       /* the model is uncased: lowercase in the normaliser */
    int strip_accents;   /* NFD and drop Mn after the optional lowercasing */
    int split_cjk;       /* pad CJK ideographs with spaces */
    int input_lowercase; /* sentence_bert_config.json do_lower_case: lowercase the raw text first */
    unsigned max_chars_per_word;
    char prefix[AN__WORDPIECE_PREFIX_MAX_BYTES];
    size_t prefix_len;

    an__added_token_t *added;
    size_t added_count;
    uint8_t added_first_byte[256]; /* 1 where some added token starts with that byte */
};

#endif
