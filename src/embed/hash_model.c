/*
 * The weight-free "hash:DIMS" model: signed feature hashing of normalised
 * words, word bigrams and character trigrams. It is lexical, not semantic:
 * two texts are close when they share words and spellings, not meaning.
 * Model directories are bert_model.c's.
 *
 * One text becomes one vector in six fixed steps:
 *
 * 1. Normalise to NFKC_Casefold as utf8proc implements it (UTF8PROC_COMPOSE
 *    | COMPAT | CASEFOLD | IGNORE | STABLE): compatibility forms are folded,
 *    case is folded and default-ignorable code points such as U+00AD SOFT
 *    HYPHEN are dropped. Accents are kept, so "café" and "cafe" differ.
 * 2. Split into words. A word is a maximal run of code points of general
 *    category L (letter), M (mark) or N (number). Every other code point
 *    separates words and is dropped. Scripts written without spaces give one
 *    word per run, which the character trigrams still cover.
 * 3. List the features. Each one is a byte string: a one-byte kind tag, then
 *    UTF-8 text.
 *      'w' WORD                          one per word
 *      'b' WORD[i] ' ' WORD[i+1]         one per pair of adjacent words
 *      'c' three code points of "<" WORD ">", one per code point of WORD,
 *          so "ab" gives "<ab" and "ab>"
 * 4. Hash each feature with FNV-1a 64 over its bytes, followed by the
 *    MurmurHash3 fmix64 finaliser, giving h. The feature goes to index
 *    h % DIMS with sign -1 when bit 63 of h is set, else +1.
 * 5. Weight: each distinct feature adds sign * kind_weight * (1 + ln tf) to
 *    its index, where tf is the feature's count in the text (sublinear term
 *    frequency) and kind_weight is HASH_WEIGHT_* below.
 * 6. L2-normalise. A text without words (empty, whitespace or punctuation
 *    only) gives the all-zero vector: it shares nothing with any text, so its
 *    dot product with every vector, its own kind included, is 0.
 *
 * Determinism: features are summed in sorted (hash, kind) order in double
 * precision, ln is computed from basic arithmetic (log_portable), and the
 * result is rounded to float once at the end. A vector therefore depends
 * only on IEEE-754 double arithmetic and on the Unicode tables of the
 * utf8proc it was built with (2.8.0 here): code points that a later Unicode
 * version assigns or re-folds can change their texts' vectors.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "embed/embed_internal.h"

/*
 * Below 8 dimensions nearly every pair of words collides. Above 65536 the
 * vectors are almost all zeros, so output files grow with no gain for a
 * lexical model.
 */
#define HASH_MIN_DIMS 8
#define HASH_MAX_DIMS 65536

/*
 * Words carry the most weight. Bigrams add word order and trigrams add
 * spelling variants (plural, typo, compound) at lower weights, so that a
 * shared word counts for more than a shared fragment. A word of n code
 * points brings n trigrams, which is why their weight is halved.
 */
#define HASH_WEIGHT_WORD 1.0
#define HASH_WEIGHT_BIGRAM 0.7
#define HASH_WEIGHT_TRIGRAM 0.5

#define HASH_NORMALISE (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | \
                        UTF8PROC_CASEFOLD | UTF8PROC_IGNORE)

enum { KIND_WORD, KIND_BIGRAM, KIND_TRIGRAM };

static const uint8_t KIND_TAG[] = {'w', 'b', 'c'};
static const double KIND_WEIGHT[] = {HASH_WEIGHT_WORD, HASH_WEIGHT_BIGRAM, HASH_WEIGHT_TRIGRAM};

typedef struct {
    uint64_t hash; /* after the finaliser */
    uint32_t kind;
} feature_t;

typedef struct {
    size_t start; /* byte offset into hash_backend_t.word_bytes */
    size_t len;
} word_span_t;

/*
 * Buffers reused across texts and calls, grown as needed and never shrunk.
 * The model's lock guards them, because embed.c serialises calls.
 */
typedef struct {
    utf8proc_int32_t *codepoints;
    size_t codepoints_cap;
    uint8_t *word_bytes; /* every word's UTF-8, back to back */
    size_t word_bytes_cap;
    word_span_t *words;
    size_t words_cap;
    feature_t *features;
    size_t features_cap;
    double *sums; /* dims entries */
} hash_backend_t;

/* A piece of UTF-8 that one feature hashes: a code point or a whole word. */
typedef struct {
    const uint8_t *bytes;
    size_t len;
} piece_t;

#define FNV_OFFSET_BASIS 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a_update(uint64_t h, const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= bytes[i];
        h *= FNV_PRIME;
    }
    return h;
}


/* MurmurHash3's fmix64: spreads FNV's weak high bits over the whole word. */
static uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}


static feature_t hash_feature(uint32_t kind, const piece_t *pieces, size_t count)
{
    uint64_t h = fnv1a_update(FNV_OFFSET_BASIS, &KIND_TAG[kind], 1);
    for (size_t i = 0; i < count; i++)
        h = fnv1a_update(h, pieces[i].bytes, pieces[i].len);
    return (feature_t){.hash = fmix64(h), .kind = kind};
}


/*
 * Returns ln(x) for x >= 1 using only frexp and the four basic operations,
 * which IEEE-754 rounds exactly, so every platform gets the same double
 * (libm's log may differ in the last bit between C libraries). The series
 * ln(m) = 2 (s + s^3/3 + s^5/5 + ...) with s = (m-1)/(m+1) and m in
 * [sqrt(1/2), sqrt(2)) has |s| <= 0.172, so 13 terms reach double precision.
 */
static double log_portable(double x)
{
    int exponent;
    double m = frexp(x, &exponent);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        exponent--;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double term = s;
    double sum = 0.0;
    for (int k = 1; k <= 25; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return 2.0 * sum + exponent * 0.69314718055994530942;
}


static int is_word_codepoint(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}


static int grow(void **buf, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 0;
    size_t cap_new = *cap ? *cap : 64;
    while (cap_new < need)
        cap_new *= 2;
    if (cap_new > SIZE_MAX / elem_size)
        return AN_ENOMEM;
    void *p = realloc(*buf, cap_new * elem_size);
    if (!p)
        return AN_ENOMEM;
    *buf = p;
    *cap = cap_new;
    return 0;
}


/* Returns the byte offset of the first invalid UTF-8 sequence in text. */
static size_t first_invalid_byte(const uint8_t *text, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(text + pos, (utf8proc_ssize_t)(len - pos), &cp);
        if (n <= 0)
            return pos;
        pos += (size_t)n;
    }
    return len;
}


/*
 * Normalises text into backend->codepoints and returns their count, or a
 * negative utf8proc error.
 */
static utf8proc_ssize_t normalise(hash_backend_t *b, const uint8_t *text, size_t len)
{
    if (grow((void **)&b->codepoints, &b->codepoints_cap, len + 1, sizeof(utf8proc_int32_t)))
        return UTF8PROC_ERROR_NOMEM;

    /* Compatibility decompositions can outgrow the input, so retry at the size reported. */
    utf8proc_ssize_t n;
    for (;;) {
        n = utf8proc_decompose(text, (utf8proc_ssize_t)len, b->codepoints,
                               (utf8proc_ssize_t)b->codepoints_cap, HASH_NORMALISE);
        if (n < 0 || (size_t)n <= b->codepoints_cap)
            break;
        if (grow((void **)&b->codepoints, &b->codepoints_cap, (size_t)n,
                 sizeof(utf8proc_int32_t)))
            return UTF8PROC_ERROR_NOMEM;
    }
    if (n < 0)
        return n;
    return utf8proc_normalize_utf32(b->codepoints, n, HASH_NORMALISE);
}


/*
 * Splits the normalised code points into words, stored as UTF-8 in
 * backend->word_bytes with their spans in backend->words. Sets *word_count
 * and *word_codepoints (the code points inside words).
 */
static int split_words(hash_backend_t *b, size_t codepoint_count, size_t *word_count,
                       size_t *word_codepoints)
{
    if (grow((void **)&b->word_bytes, &b->word_bytes_cap, 4 * codepoint_count + 1, 1) ||
        grow((void **)&b->words, &b->words_cap, codepoint_count + 1, sizeof(word_span_t)))
        return AN_ENOMEM;

    size_t bytes = 0;
    size_t words = 0;
    size_t inside = 0;
    int in_word = 0;
    for (size_t i = 0; i < codepoint_count; i++) {
        utf8proc_int32_t cp = b->codepoints[i];
        if (!is_word_codepoint(cp)) {
            in_word = 0;
            continue;
        }
        if (!in_word) {
            b->words[words++] = (word_span_t){.start = bytes, .len = 0};
            in_word = 1;
        }
        utf8proc_ssize_t n = utf8proc_encode_char(cp, b->word_bytes + bytes);
        bytes += (size_t)n;
        b->words[words - 1].len += (size_t)n;
        inside++;
    }
    *word_count = words;
    *word_codepoints = inside;
    return 0;
}


static size_t utf8_sequence_len(uint8_t lead)
{
    if (lead < 0x80)
        return 1;
    if (lead < 0xE0)
        return 2;
    if (lead < 0xF0)
        return 3;
    return 4;
}


/* Writes the trigrams of "<" word ">" to out: one per code point of word. */
static size_t add_trigrams(const uint8_t *word, size_t len, feature_t *out)
{
    static const uint8_t left[] = "<";
    static const uint8_t right[] = ">";
    piece_t window[3] = {{left, 1}};
    size_t pos = 0;
    size_t count = 0;

    window[1] = (piece_t){word, utf8_sequence_len(word[0])};
    pos = window[1].len;
    for (;;) {
        int last = pos >= len;
        if (last) {
            window[2] = (piece_t){right, 1};
        } else {
            window[2] = (piece_t){word + pos, utf8_sequence_len(word[pos])};
            pos += window[2].len;
        }
        out[count++] = hash_feature(KIND_TRIGRAM, window, 3);
        if (last)
            return count;
        window[0] = window[1];
        window[1] = window[2];
    }
}


static int compare_features(const void *pa, const void *pb)
{
    const feature_t *a = pa;
    const feature_t *b = pb;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return 0;
}


/* Lists every feature of the split text in backend->features; returns their count. */
static size_t list_features(hash_backend_t *b, size_t word_count)
{
    static const uint8_t space[] = " ";
    size_t count = 0;
    for (size_t i = 0; i < word_count; i++) {
        piece_t word = {b->word_bytes + b->words[i].start, b->words[i].len};
        b->features[count++] = hash_feature(KIND_WORD, &word, 1);
        if (i + 1 < word_count) {
            piece_t pair[3] = {word, {space, 1},
                               {b->word_bytes + b->words[i + 1].start, b->words[i + 1].len}};
            b->features[count++] = hash_feature(KIND_BIGRAM, pair, 3);
        }
        count += add_trigrams(word.bytes, word.len, b->features + count);
    }
    return count;
}


/* Embeds one valid UTF-8 text into out (dims floats); *word_count gets its words. */
static int embed_one(an_embed_model_t *model, const uint8_t *text, size_t len, float *out,
                     size_t *word_count)
{
    hash_backend_t *b = model->backend;
    size_t dims = model->dims;

    utf8proc_ssize_t codepoint_count = normalise(b, text, len);
    if (codepoint_count < 0)
        return codepoint_count == UTF8PROC_ERROR_INVALIDUTF8 ? AN_EINVAL : AN_ENOMEM;

    size_t words = 0;
    size_t word_codepoints = 0;
    if (split_words(b, (size_t)codepoint_count, &words, &word_codepoints) != 0)
        return AN_ENOMEM;
    *word_count = words;
    if (words == 0) {
        memset(out, 0, dims * sizeof(float));
        return 0;
    }

    /* words unigrams, words - 1 bigrams and one trigram per code point inside a word */
    size_t feature_count = words + (words - 1) + word_codepoints;
    if (grow((void **)&b->features, &b->features_cap, feature_count, sizeof(feature_t)))
        return AN_ENOMEM;
    size_t listed = list_features(b, words);
    assert(listed == feature_count);
    (void)listed;
    qsort(b->features, feature_count, sizeof(feature_t), compare_features);

    memset(b->sums, 0, dims * sizeof(double));
    for (size_t i = 0; i < feature_count;) {
        size_t run = 1;
        while (i + run < feature_count &&
               compare_features(&b->features[i], &b->features[i + run]) == 0)
            run++;
        uint64_t h = b->features[i].hash;
        double weight = KIND_WEIGHT[b->features[i].kind] * (1.0 + log_portable((double)run));
        b->sums[h % dims] += (h >> 63) ? -weight : weight;
        i += run;
    }

    double squares = 0.0;
    for (size_t d = 0; d < dims; d++)
        squares += b->sums[d] * b->sums[d];
    double norm = sqrt(squares);
    /* Opposite signs can cancel every index, which leaves nothing to normalise. */
    for (size_t d = 0; d < dims; d++)
        out[d] = norm > 0.0 ? (float)(b->sums[d] / norm) : 0.0f;
    return 0;
}


static int hash_embed_texts(an_embed_model_t *model, const char *const *texts,
                            const size_t *lengths, size_t count, float *out, an_embed_info_t *info,
                            an_embed_progress_fn progress, void *progress_ctx, char *err,
                            size_t err_len)
{
    size_t batch_size = model->opts.batch_size;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *text = (const uint8_t *)texts[i];
        size_t words = 0;
        int rc = embed_one(model, text, lengths[i], out + i * model->dims, &words);
        if (rc == AN_EINVAL) {
            snprintf(err, err_len, "embed: input %zu is not valid UTF-8 (byte %zu); convert it "
                     "to UTF-8, for example with iconv -t UTF-8", i,
                     first_invalid_byte(text, lengths[i]));
            return rc;
        }
        if (rc != 0) {
            snprintf(err, err_len, "embed: out of memory embedding input %zu (%zu bytes)", i,
                     lengths[i]);
            return rc;
        }
        if (info) {
            info[i].tokens = words > UINT32_MAX ? UINT32_MAX : (uint32_t)words;
            info[i].truncated = 0;
        }
        if (progress && ((i + 1) % batch_size == 0 || i + 1 == count))
            progress(i + 1, count, progress_ctx);
    }
    return 0;
}


static void hash_close(an_embed_model_t *model)
{
    hash_backend_t *b = model->backend;
    if (!b)
        return;
    free(b->codepoints);
    free(b->word_bytes);
    free(b->words);
    free(b->features);
    free(b->sums);
    free(b);
    model->backend = NULL;
}


static const an__embed_ops_t hash_ops = {
    .kind = "hash",
    .embed_texts = hash_embed_texts,
    .embed_token_ids = NULL,
    .close = hash_close,
};


/* Parses the DIMS of "hash:DIMS"; returns 0 or AN_EINVAL. */
static int parse_dims(const char *spec, size_t *dims)
{
    const char *digits = spec + strlen("hash:");
    size_t n = strlen(digits);
    if (n == 0 || n > 6)
        return AN_EINVAL;
    size_t value = 0;
    for (size_t i = 0; i < n; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return AN_EINVAL;
        value = value * 10 + (size_t)(digits[i] - '0');
    }
    if (value < HASH_MIN_DIMS || value > HASH_MAX_DIMS)
        return AN_EINVAL;
    *dims = value;
    return 0;
}


int an__embed_open_hash(const char *spec, an_embed_model_t *model, char *err, size_t err_len)
{
    size_t dims = 0;
    if (parse_dims(spec, &dims) != 0) {
        snprintf(err, err_len, "embed: model \"%s\" is invalid; use hash:DIMS with DIMS a whole "
                 "number from %d to %d, such as hash:384", spec, HASH_MIN_DIMS, HASH_MAX_DIMS);
        return AN_EINVAL;
    }

    const char *device = model->opts.device;
    if (strncmp(device, "cuda", 4) == 0) {
        snprintf(err, err_len, "embed: %s runs on the CPU only, not on device \"%s\"; pass "
                 "--device cpu or auto", spec, device);
        return AN_EINVAL;
    }
    if (strcmp(device, "auto") != 0 && strcmp(device, "cpu") != 0) {
        snprintf(err, err_len, "embed: device \"%s\" is invalid; use auto, cpu or cuda:N",
                 device);
        return AN_EINVAL;
    }

    hash_backend_t *b = calloc(1, sizeof(*b));
    if (!b || !(b->sums = calloc(dims, sizeof(double)))) {
        free(b);
        snprintf(err, err_len, "embed: out of memory opening %s", spec);
        return AN_ENOMEM;
    }

    model->ops = &hash_ops;
    model->backend = b;
    model->dims = dims;
    /* NOTE: texts are embedded one after another on the calling thread; opts.threads is unused. */
    model->max_seq_length = 0; /* no limit: the hash model never truncates */
    snprintf(model->device, sizeof(model->device), "cpu");
    return 0;
}
