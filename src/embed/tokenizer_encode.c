/*
 * Text to WordPiece ids, the way Hugging Face's BertTokenizer does it:
 * clean the text, pad CJK ideographs, lowercase and strip accents when the
 * model is uncased, split on whitespace and punctuation, then match each
 * word greedily, longest piece first. One pass over the text, one code
 * point at a time, stopping as soon as the id buffer is full. The only
 * allocation is the lowercased copy of the text that
 * sentence_bert_config.json's do_lower_case requires.
 */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "embed/tokenizer_internal.h"

/* Decodes one code point at s[i]; returns its length in bytes, or 0 when invalid. */
static size_t decode_utf8(const unsigned char *s, size_t len, size_t i, int32_t *cp)
{
    unsigned char c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }

    size_t n;
    int32_t value, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, value = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, value = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, value = c & 0x07, min = 0x10000;
    } else {
        return 0; /* a continuation byte, an overlong 2-byte lead (C0, C1) or F5..FF */
    }
    if (len - i < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return 0;
        value = (value << 6) | (s[i + k] & 0x3F);
    }
    if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
        return 0;
    *cp = value;
    return n;
}


int an__tokenizer_validate_utf8(const char *text, size_t len, size_t *bad_offset)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        /* ASCII runs are the common case; skip them without decoding. */
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        size_t n = decode_utf8(s, len, i, &cp);
        if (n == 0) {
            if (bad_offset)
                *bad_offset = i;
            return AN_EINVAL;
        }
        i += n;
    }
    return 0;
}


/* Character classes, as BertTokenizer's _is_control, _is_whitespace and friends define them. */

static int is_control(int32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return 0;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CN:
        return 1;
    default:
        return 0;
    }
}


/* Dropped by the cleaning step: NUL, U+FFFD and control characters. */
static int is_removed(int32_t cp)
{
    return cp == 0 || cp == 0xFFFD || is_control(cp);
}


/*
 * Space separators, plus the line and paragraph separators U+2028 and
 * U+2029, which Python's str.split() and Rust's char::is_whitespace() also
 * split on. The other Unicode white space characters are Cc and were dropped.
 */
static int is_whitespace(int32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r')
        return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}


/* Every non-alphanumeric ASCII character, and the Unicode P* categories. */
static int is_punctuation(int32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
        (cp >= 123 && cp <= 126))
        return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}


/* The CJK Unified Ideographs blocks, extensions A to E, and the compatibility ideographs. */
static int is_cjk_ideograph(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}


/*
 * Unicode's Cased and Case_Ignorable properties, which decide whether a
 * capital sigma ends a word. NOTE: both are approximated from the general
 * category, because utf8proc exposes neither property. Cased here means a
 * letter of category Lu, Ll or Lt or one with a case mapping. Case-ignorable
 * means Mn, Me, Cf, Lm, Sk, or the word-internal punctuation of Word_Break
 * MidLetter, MidNumLet and Single_Quote.
 */
static int is_cased(int32_t cp)
{
    utf8proc_category_t cat = utf8proc_category(cp);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
        return 1;
    return utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp;
}


static int is_case_ignorable(int32_t cp)
{
    switch (cp) {
    case 0x0027: case 0x002E: case 0x003A: case 0x00B7: case 0x0387: case 0x055F:
    case 0x05F4: case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13:
    case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
        return 1;
    default:
        break;
    }
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
        return 1;
    default:
        return 0;
    }
}


/*
 * Decides the Final_Sigma condition for a capital sigma whose encoding ends
 * at s[pos]: it lowercases to final ς when a cased letter comes before it
 * (prev_cased) and none comes after, case-ignorable characters skipped.
 * skip_removed also skips what the cleaning step drops, because the model's
 * lowercasing runs on cleaned text.
 */
static int is_final_sigma(const unsigned char *s, size_t len, size_t pos, int prev_cased,
                          int skip_removed)
{
    if (!prev_cased)
        return 0;
    while (pos < len) {
        int32_t cp;
        size_t n = decode_utf8(s, len, pos, &cp);
        if (n == 0)
            return 1;
        pos += n;
        if (is_case_ignorable(cp) || (skip_removed && is_removed(cp)))
            continue;
        return !is_cased(cp);
    }
    return 1;
}


/*
 * Writes the full lowercase mapping of one code point into out (room for 2)
 * and returns the count. utf8proc provides the simple mappings. The two full
 * mappings that apply without a language are added here: U+0130 (to i and a
 * combining dot above) and the final sigma.
 */
static size_t lowercase_cp(int32_t cp, int final_sigma, int32_t *out)
{
    if (cp == 0x0130) {
        out[0] = 'i';
        out[1] = 0x0307;
        return 2;
    }
    if (cp == 0x03A3) {
        out[0] = final_sigma ? 0x03C2 : 0x03C3;
        return 1;
    }
    out[0] = utf8proc_tolower(cp);
    return 1;
}


static size_t encode_utf8(int32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}


/*
 * Lowercases all of text into a new buffer (the caller frees it), for
 * sentence_bert_config.json's do_lower_case, which makes sentence-transformers
 * call Python's str.lower() on the input before tokenizing it. Lowercasing can
 * grow a character (U+0130) or shrink it (U+2126 to U+03C9), so the buffer
 * allows for 3/2 of the input length.
 */
static char *lowercase_text(const unsigned char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len + len / 2 + 4);
    if (!out)
        return NULL;
    size_t pos = 0, o = 0;
    int prev_cased = 0;
    while (pos < len) {
        int32_t cp;
        size_t n = decode_utf8(s, len, pos, &cp);
        pos += n;
        int final = cp == 0x03A3 && is_final_sigma(s, len, pos, prev_cased, 0);
        if (!is_case_ignorable(cp))
            prev_cased = is_cased(cp);
        int32_t lower[2];
        size_t count = lowercase_cp(cp, final, lower);
        for (size_t k = 0; k < count; k++)
            o += encode_utf8(lower[k], out + o);
    }
    *out_len = o;
    return out;
}


/* The longest word the encoder stores; longer limits are rejected at open. */
#define WORD_MAX_CHARS AN__MAX_CHARS_PER_WORD_LIMIT

typedef struct {
    const an__tokenizer_t *t;
    int32_t *ids;    /* content ids go to ids[1..] */
    size_t count;    /* content ids written */
    size_t limit;    /* content ids that fit: max_tokens - 2 */
    int truncated;
    int32_t word[WORD_MAX_CHARS + 1];
    size_t word_chars; /* may exceed the stored chars, which stop at max_chars_per_word + 1 */
} encoder_t;


/* Appends one id; when the buffer is full, marks the text as truncated instead. */
static void emit(encoder_t *e, int32_t id)
{
    if (e->count == e->limit) {
        e->truncated = 1;
        return;
    }
    e->ids[1 + e->count++] = id;
}


/*
 * WordPiece on the pending word: from each start, the longest vocabulary
 * entry (with the continuation prefix after the first piece) wins. A word
 * with a part that no entry matches, or longer than max_chars_per_word,
 * becomes one [UNK].
 */
static void flush_word(encoder_t *e)
{
    const an__tokenizer_t *t = e->t;
    size_t n = e->word_chars;
    if (n == 0)
        return;
    e->word_chars = 0;
    if (n > t->max_chars_per_word) {
        emit(e, t->unk_id);
        return;
    }

    /*
     * bytes contains the prefix and then the word's UTF-8; offsets[k] is where
     * character k starts. A piece that starts at character k > 0 gets the
     * prefix written just before it, over characters already matched.
     */
    char bytes[AN__WORDPIECE_PREFIX_MAX_BYTES + 4 * WORD_MAX_CHARS];
    size_t offsets[WORD_MAX_CHARS + 1];
    size_t p = t->prefix_len;
    for (size_t k = 0; k < n; k++) {
        offsets[k] = p;
        p += encode_utf8(e->word[k], bytes + p);
    }
    offsets[n] = p;

    int32_t pieces[WORD_MAX_CHARS];
    size_t piece_count = 0;
    size_t start = 0;
    while (start < n) {
        const char *candidate = bytes + offsets[start];
        if (start > 0) {
            candidate -= t->prefix_len;
            memcpy((char *)candidate, t->prefix, t->prefix_len);
        }
        int32_t id = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t bytes_len = offsets[end] - (size_t)(candidate - bytes);
            id = an__vocab_find(&t->vocab, candidate, bytes_len);
            if (id >= 0)
                break;
        }
        if (id < 0) {
            emit(e, t->unk_id);
            return;
        }
        pieces[piece_count++] = id;
        start = end;
    }
    for (size_t k = 0; k < piece_count; k++)
        emit(e, pieces[k]);
}


static void push_char(encoder_t *e, int32_t cp)
{
    if (e->word_chars <= e->t->max_chars_per_word)
        e->word[e->word_chars] = cp;
    e->word_chars++;
}


/* Runs one normalised character through the punctuation split. */
static void add_normalized(encoder_t *e, int32_t cp)
{
    if (is_punctuation(cp)) {
        flush_word(e);
        push_char(e, cp);
        flush_word(e);
        return;
    }
    push_char(e, cp);
}


/* Lowercases (when uncased) and strips accents (NFD, Mn dropped) from one character. */
static void add_char(encoder_t *e, int32_t cp, int final_sigma)
{
    const an__tokenizer_t *t = e->t;
    int32_t lower[2];
    size_t count = 1;
    lower[0] = cp;
    if (t->lowercase)
        count = lowercase_cp(cp, final_sigma, lower);

    for (size_t k = 0; k < count; k++) {
        if (!t->strip_accents) {
            add_normalized(e, lower[k]);
            continue;
        }
        /*
         * NOTE: decomposes one character at a time, without the canonical
         * reordering of NFD. Only the order of combining marks other than
         * Mn can differ from Python's, as the Mn marks are dropped.
         */
        utf8proc_int32_t decomposed[8];
        int boundclass = 0;
        utf8proc_ssize_t m = utf8proc_decompose_char(lower[k], decomposed, 8, UTF8PROC_DECOMPOSE,
                                                     &boundclass);
        if (m < 0 || m > 8) {
            add_normalized(e, lower[k]);
            continue;
        }
        for (utf8proc_ssize_t j = 0; j < m; j++) {
            if (utf8proc_category(decomposed[j]) != UTF8PROC_CATEGORY_MN)
                add_normalized(e, decomposed[j]);
        }
    }
}


/* Returns the added token that starts at s[pos] (the longest one), or NULL. */
static const an__added_token_t *match_added(const an__tokenizer_t *t, const unsigned char *s,
                                            size_t len, size_t pos)
{
    const an__added_token_t *best = NULL;
    for (size_t k = 0; k < t->added_count; k++) {
        const an__added_token_t *a = &t->added[k];
        if (a->len <= len - pos && memcmp(s + pos, a->text, a->len) == 0 &&
            (!best || a->len > best->len))
            best = a;
    }
    return best;
}


int an__tokenizer_encode(const an__tokenizer_t *t, const char *text, size_t len,
                         unsigned max_tokens, int32_t *ids, size_t *count, int *truncated)
{
    *count = 0;
    *truncated = 0;
    if (max_tokens < 2 || (len > 0 && !text))
        return AN_EINVAL;
    if (an__tokenizer_validate_utf8(text, len, NULL) != 0)
        return AN_EINVAL;

    const unsigned char *s = (const unsigned char *)text;
    char *lowered = NULL;
    if (t->input_lowercase && len > 0) {
        lowered = lowercase_text(s, len, &len);
        if (!lowered)
            return AN_ENOMEM;
        s = (const unsigned char *)lowered;
    }

    encoder_t state;
    encoder_t *e = &state;
    e->t = t;
    e->ids = ids;
    e->count = 0;
    e->limit = max_tokens - 2;
    e->truncated = 0;
    e->word_chars = 0;

    size_t pos = 0;
    int prev_cased = 0;
    while (pos < len && !e->truncated) {
        if (t->added_count && t->added_first_byte[s[pos]]) {
            const an__added_token_t *a = match_added(t, s, len, pos);
            if (a) {
                flush_word(e);
                emit(e, a->id);
                prev_cased = 0;
                pos += a->len;
                continue;
            }
        }

        int32_t cp;
        pos += decode_utf8(s, len, pos, &cp);
        if (is_removed(cp))
            continue;
        int final_sigma = t->lowercase && cp == 0x03A3 && is_final_sigma(s, len, pos, prev_cased, 1);
        if (!is_case_ignorable(cp))
            prev_cased = is_cased(cp);

        if (is_whitespace(cp)) {
            flush_word(e);
        } else if (t->split_cjk && is_cjk_ideograph(cp)) {
            flush_word(e);
            add_char(e, cp, 0);
            flush_word(e);
        } else {
            add_char(e, cp, final_sigma);
        }
    }
    if (!e->truncated)
        flush_word(e);

    ids[0] = t->cls_id;
    ids[1 + e->count] = t->sep_id;
    *count = e->count + 2;
    *truncated = e->truncated;
    free(lowered);
    return 0;
}
