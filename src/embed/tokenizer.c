/*
 * Loads a BERT tokenizer from a sentence-transformers model directory: the
 * vocabulary (vocab.txt or tokenizer.json), the casing settings and the
 * special tokens. Encoding lives in tokenizer_encode.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "embed/tokenizer_internal.h"

/* BertTokenizer's default for max_input_chars_per_word. */
#define DEFAULT_MAX_CHARS_PER_WORD 100

/* Setting read from a JSON file: unset (key absent or null), false or true. */
enum { SETTING_UNSET = -1, SETTING_FALSE = 0, SETTING_TRUE = 1 };

typedef struct {
    int do_lower_case;
    int strip_accents;
    int tokenize_chinese_chars;
    char *special[5]; /* unk, sep, pad, cls, mask token strings; NULL when unset */
} casing_t;

static const char *const special_names[5] = {"unk_token", "sep_token", "pad_token", "cls_token",
                                              "mask_token"};
static const char *const special_defaults[5] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};


/* Reads path into a NUL-terminated buffer the caller frees. Returns AN_ENOTFOUND when absent. */
static int read_file(const char *path, char **out, size_t *out_len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return AN_ENOTFOUND;
        snprintf(err, err_len, "embed: cannot read \"%s\" (%s); check its permissions", path,
                 strerror(errno));
        return AN_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 262144;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return AN_ENOMEM;
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, 65536, f);
        len += n;
        if (n < 65536)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        snprintf(err, err_len, "embed: reading \"%s\" failed; check the file", path);
        return AN_EIO;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}


/* Loads path as JSON into *out; AN_ENOTFOUND when the file is absent. */
static int load_json(const char *dir, const char *name, json_t **out, char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, err, err_len);
    if (rc != 0)
        return rc;
    json_error_t jerr;
    *out = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!*out) {
        snprintf(err, err_len, "embed: \"%s\" is not valid JSON (line %d: %s); fix or re-download it",
                 path, jerr.line, jerr.text);
        return AN_EINVAL;
    }
    return 0;
}


/* Reads a boolean-or-null key into *setting, leaving it as is when the key is absent or null. */
static void read_setting(json_t *obj, const char *key, int *setting)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_boolean(v))
        *setting = json_is_true(v) ? SETTING_TRUE : SETTING_FALSE;
}


/* A special token is a string, or an object with "content" (an AddedToken). */
static const char *token_string(json_t *v)
{
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}


/*
 * vocab.txt: one token per line, the id being the line number from 0. Only
 * "\n" ends a line, so a "\r" stays part of the token, as in
 * BertTokenizer's load_vocab.
 */
static int load_vocab_txt(an__tokenizer_t *t, const char *path, char *err, size_t err_len)
{
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, err, err_len);
    if (rc != 0)
        return rc;

    size_t pos = 0;
    int32_t id = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        if (id == INT32_MAX) {
            rc = AN_ETOOBIG;
            break;
        }
        rc = an__vocab_add(&t->vocab, line, line_len, id++);
        if (rc != 0)
            break;
        pos += line_len + 1;
    }
    free(text);
    if (rc != 0) {
        snprintf(err, err_len, "embed: loading vocabulary \"%s\" failed (%s)", path,
                 an_strerror(rc));
        return rc;
    }
    if (id == 0) {
        snprintf(err, err_len, "embed: vocabulary \"%s\" is empty; re-download the model", path);
        return AN_EINVAL;
    }
    t->vocab_size = (size_t)id;
    return 0;
}


/* The WordPiece model's vocab object of tokenizer.json: token -> id. */
static int load_vocab_json(an__tokenizer_t *t, json_t *model, const char *path, char *err,
                           size_t err_len)
{
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0) {
        snprintf(err, err_len, "embed: \"%s\" has no model.vocab object and there is no "
                 "vocab.txt; add vocab.txt or a WordPiece tokenizer.json", path);
        return AN_EINVAL;
    }
    const char *token;
    json_t *value;
    json_object_foreach(vocab, token, value) {
        json_int_t id = json_integer_value(value);
        if (!json_is_integer(value) || id < 0 || id >= INT32_MAX) {
            snprintf(err, err_len, "embed: \"%s\" gives token \"%s\" an invalid id; fix the file",
                     path, token);
            return AN_EINVAL;
        }
        int rc = an__vocab_add(&t->vocab, token, strlen(token), (int32_t)id);
        if (rc != 0)
            return rc;
        if ((size_t)id + 1 > t->vocab_size)
            t->vocab_size = (size_t)id + 1;
    }
    return 0;
}


/*
 * Adds a token that is matched verbatim in the raw input, before
 * normalisation, the way the Hugging Face tokenizers split out special
 * tokens such as [CLS] and [MASK]. A token already added is skipped.
 */
static int add_verbatim_token(an__tokenizer_t *t, const char *text, int32_t id)
{
    size_t len = strlen(text);
    if (len == 0)
        return 0;
    for (size_t k = 0; k < t->added_count; k++) {
        if (t->added[k].len == len && memcmp(t->added[k].text, text, len) == 0)
            return 0;
    }
    an__added_token_t *grown = realloc(t->added, (t->added_count + 1) * sizeof(*grown));
    if (!grown)
        return AN_ENOMEM;
    t->added = grown;
    char *copy = strdup(text);
    if (!copy)
        return AN_ENOMEM;
    t->added[t->added_count++] = (an__added_token_t){.text = copy, .len = len, .id = id};
    t->added_first_byte[(unsigned char)text[0]] = 1;
    return 0;
}


/*
 * tokenizer.json's added_tokens. NOTE: tokens with "normalized": true are
 * matched against normalised text by Hugging Face; they are not matched at
 * all here. BERT sentence-transformers models only add the special tokens,
 * which are not normalised.
 */
static int load_added_tokens(an__tokenizer_t *t, json_t *added)
{
    size_t i;
    json_t *entry;
    json_array_foreach(added, i, entry) {
        const char *content = json_string_value(json_object_get(entry, "content"));
        json_t *id = json_object_get(entry, "id");
        int special = json_is_true(json_object_get(entry, "special"));
        json_t *normalized = json_object_get(entry, "normalized");
        int is_normalized = json_is_boolean(normalized) ? json_is_true(normalized) : !special;
        if (!content || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= INT32_MAX || is_normalized)
            continue;
        int32_t token_id = (int32_t)json_integer_value(id);
        int rc = add_verbatim_token(t, content, token_id);
        if (rc != 0)
            return rc;
        if ((size_t)token_id + 1 > t->vocab_size)
            t->vocab_size = (size_t)token_id + 1;
        rc = an__vocab_add(&t->vocab, content, strlen(content), token_id);
        if (rc != 0)
            return rc;
    }
    return 0;
}


/* Reads tokenizer.json's WordPiece model settings and, without vocab.txt, its vocabulary. */
static int load_tokenizer_json(an__tokenizer_t *t, json_t *root, int need_vocab,
                               casing_t *from_normalizer, const char *path, char *err,
                               size_t err_len)
{
    json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && strcmp(type, "WordPiece") != 0) {
        snprintf(err, err_len, "embed: \"%s\" has a %s model; only WordPiece (BERT-family) "
                 "tokenizers are supported", path, type);
        return AN_EINVAL;
    }

    const char *prefix = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    if (prefix) {
        if (strlen(prefix) > AN__WORDPIECE_PREFIX_MAX_BYTES) {
            snprintf(err, err_len, "embed: \"%s\" continuing_subword_prefix is longer than %d "
                     "bytes", path, AN__WORDPIECE_PREFIX_MAX_BYTES);
            return AN_EINVAL;
        }
        t->prefix_len = strlen(prefix);
        memcpy(t->prefix, prefix, t->prefix_len);
    }
    json_t *max_chars = json_object_get(model, "max_input_chars_per_word");
    if (json_is_integer(max_chars)) {
        json_int_t v = json_integer_value(max_chars);
        if (v < 1 || v > AN__MAX_CHARS_PER_WORD_LIMIT) {
            snprintf(err, err_len, "embed: \"%s\" max_input_chars_per_word %lld is outside 1..%d",
                     path, (long long)v, AN__MAX_CHARS_PER_WORD_LIMIT);
            return AN_EINVAL;
        }
        t->max_chars_per_word = (unsigned)v;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk && !from_normalizer->special[0])
        from_normalizer->special[0] = strdup(unk);

    json_t *normalizer = json_object_get(root, "normalizer");
    const char *ntype = json_string_value(json_object_get(normalizer, "type"));
    if (ntype && strcmp(ntype, "BertNormalizer") == 0) {
        read_setting(normalizer, "lowercase", &from_normalizer->do_lower_case);
        read_setting(normalizer, "strip_accents", &from_normalizer->strip_accents);
        read_setting(normalizer, "handle_chinese_chars", &from_normalizer->tokenize_chinese_chars);
    }

    if (need_vocab) {
        int rc = load_vocab_json(t, model, path, err, err_len);
        if (rc != 0)
            return rc;
    }
    json_t *added = json_object_get(root, "added_tokens");
    if (json_is_array(added)) {
        int rc = load_added_tokens(t, added);
        if (rc != 0) {
            snprintf(err, err_len, "embed: loading added_tokens of \"%s\" failed (%s)", path,
                     an_strerror(rc));
            return rc;
        }
    }
    return 0;
}


static void free_casing(casing_t *c)
{
    for (int k = 0; k < 5; k++)
        free(c->special[k]);
}


int an__tokenizer_open(const char *dir, an__tokenizer_t **out, char *err, size_t err_len)
{
    *out = NULL;
    an__tokenizer_t *t = calloc(1, sizeof(*t));
    if (!t)
        return AN_ENOMEM;
    t->max_chars_per_word = DEFAULT_MAX_CHARS_PER_WORD;
    memcpy(t->prefix, "##", 2);
    t->prefix_len = 2;

    casing_t config = {SETTING_UNSET, SETTING_UNSET, SETTING_UNSET, {0}};
    casing_t normalizer = {SETTING_UNSET, SETTING_UNSET, SETTING_UNSET, {0}};
    json_t *tokenizer_json = NULL, *tokenizer_config = NULL, *st_config = NULL;
    char path[4096];
    int rc;

    /* The vocabulary: vocab.txt, else tokenizer.json's model.vocab. */
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    rc = load_vocab_txt(t, path, err, err_len);
    int have_vocab_txt = rc == 0;
    if (rc != 0 && rc != AN_ENOTFOUND)
        goto fail;
    rc = load_json(dir, "tokenizer.json", &tokenizer_json, err, err_len);
    if (rc == AN_ENOTFOUND && !have_vocab_txt) {
        snprintf(err, err_len, "embed: \"%s\" has neither vocab.txt nor tokenizer.json; pass "
                 "the directory of a sentence-transformers model", dir);
        goto fail;
    }
    if (rc != 0 && rc != AN_ENOTFOUND)
        goto fail;
    if (tokenizer_json) {
        snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
        rc = load_tokenizer_json(t, tokenizer_json, !have_vocab_txt, &normalizer, path, err,
                                 err_len);
        if (rc != 0)
            goto fail;
    }

    /* Casing and special tokens: tokenizer_config.json wins over tokenizer.json's normalizer. */
    rc = load_json(dir, "tokenizer_config.json", &tokenizer_config, err, err_len);
    if (rc != 0 && rc != AN_ENOTFOUND)
        goto fail;
    if (tokenizer_config) {
        read_setting(tokenizer_config, "do_lower_case", &config.do_lower_case);
        read_setting(tokenizer_config, "strip_accents", &config.strip_accents);
        read_setting(tokenizer_config, "tokenize_chinese_chars", &config.tokenize_chinese_chars);
        for (int k = 0; k < 5; k++) {
            const char *s = token_string(json_object_get(tokenizer_config, special_names[k]));
            if (s && !(config.special[k] = strdup(s))) {
                rc = AN_ENOMEM;
                goto fail;
            }
        }
    }
    rc = load_json(dir, "sentence_bert_config.json", &st_config, err, err_len);
    if (rc != 0 && rc != AN_ENOTFOUND)
        goto fail;
    t->input_lowercase = st_config && json_is_true(json_object_get(st_config, "do_lower_case"));

    int lower = config.do_lower_case != SETTING_UNSET ? config.do_lower_case
                : normalizer.do_lower_case != SETTING_UNSET ? normalizer.do_lower_case
                : SETTING_TRUE; /* BertTokenizer's default */
    int strip = config.strip_accents != SETTING_UNSET ? config.strip_accents
                : normalizer.strip_accents;
    int cjk = config.tokenize_chinese_chars != SETTING_UNSET ? config.tokenize_chinese_chars
              : normalizer.tokenize_chinese_chars;
    t->lowercase = lower == SETTING_TRUE;
    t->strip_accents = strip == SETTING_UNSET ? t->lowercase : strip == SETTING_TRUE;
    t->split_cjk = cjk != SETTING_FALSE;

    /* Special tokens; without tokenizer.json they are also split out of the raw text. */
    int32_t ids[5];
    for (int k = 0; k < 5; k++) {
        const char *token = config.special[k]       ? config.special[k]
                            : normalizer.special[k] ? normalizer.special[k]
                                                    : special_defaults[k];
        ids[k] = an__vocab_find(&t->vocab, token, strlen(token));
        if (ids[k] < 0 && k < 4) {
            snprintf(err, err_len, "embed: the %s \"%s\" is not in the vocabulary of \"%s\"; "
                     "set %s in tokenizer_config.json to a token of the vocabulary",
                     special_names[k], token, dir, special_names[k]);
            rc = AN_EINVAL;
            goto fail;
        }
        if (ids[k] >= 0 && !tokenizer_json && (rc = add_verbatim_token(t, token, ids[k])) != 0)
            goto fail;
    }
    t->unk_id = ids[0];
    t->sep_id = ids[1];
    t->pad_id = ids[2];
    t->cls_id = ids[3];

    json_decref(tokenizer_json);
    json_decref(tokenizer_config);
    json_decref(st_config);
    free_casing(&config);
    free_casing(&normalizer);
    *out = t;
    return 0;

fail:
    if (rc == AN_ENOMEM)
        snprintf(err, err_len, "embed: out of memory loading the tokenizer of \"%s\"", dir);
    json_decref(tokenizer_json);
    json_decref(tokenizer_config);
    json_decref(st_config);
    free_casing(&config);
    free_casing(&normalizer);
    an__tokenizer_close(t);
    return rc;
}


void an__tokenizer_close(an__tokenizer_t *t)
{
    if (!t)
        return;
    for (size_t k = 0; k < t->added_count; k++)
        free(t->added[k].text);
    free(t->added);
    an__vocab_free(&t->vocab);
    free(t);
}


int32_t an__tokenizer_cls_id(const an__tokenizer_t *t) { return t->cls_id; }
int32_t an__tokenizer_sep_id(const an__tokenizer_t *t) { return t->sep_id; }
int32_t an__tokenizer_pad_id(const an__tokenizer_t *t) { return t->pad_id; }
int32_t an__tokenizer_unk_id(const an__tokenizer_t *t) { return t->unk_id; }
size_t an__tokenizer_vocab_size(const an__tokenizer_t *t) { return t->vocab_size; }


int32_t an__tokenizer_token_id(const an__tokenizer_t *t, const char *token)
{
    return an__vocab_find(&t->vocab, token, strlen(token));
}
