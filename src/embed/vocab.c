/* The tokenizer's vocabulary: an arena of token strings and a hash table over it. */
#include <stdlib.h>
#include <string.h>

#include "embed/tokenizer_internal.h"

/* FNV-1a, 64 bit: vocabulary tokens are short, and this needs no seed or tables. */
static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}


static int grow_slots(an__vocab_t *v)
{
    size_t count = v->slot_count ? v->slot_count * 2 : 1024;
    an__vocab_slot_t *slots = malloc(count * sizeof(*slots));
    if (!slots)
        return AN_ENOMEM;
    for (size_t i = 0; i < count; i++)
        slots[i].id = -1;

    for (size_t i = 0; i < v->slot_count; i++) {
        if (v->slots[i].id < 0)
            continue;
        size_t j = v->slots[i].hash & (count - 1);
        while (slots[j].id >= 0)
            j = (j + 1) & (count - 1);
        slots[j] = v->slots[i];
    }
    free(v->slots);
    v->slots = slots;
    v->slot_count = count;
    return 0;
}


static an__vocab_slot_t *find_slot(const an__vocab_t *v, const char *token, size_t len,
                                   uint64_t hash)
{
    size_t j = hash & (v->slot_count - 1);
    for (;;) {
        an__vocab_slot_t *s = &v->slots[j];
        if (s->id < 0)
            return s;
        if (s->hash == hash && s->len == len && memcmp(v->strings + s->offset, token, len) == 0)
            return s;
        j = (j + 1) & (v->slot_count - 1);
    }
}


int an__vocab_add(an__vocab_t *v, const char *token, size_t len, int32_t id)
{
    /* A load factor of at most 1/2 keeps linear probes short. */
    if ((v->used + 1) * 2 > v->slot_count) {
        int rc = grow_slots(v);
        if (rc != 0)
            return rc;
    }
    if (len > UINT32_MAX || v->strings_len + len > UINT32_MAX)
        return AN_ETOOBIG;

    uint64_t hash = hash_bytes(token, len);
    an__vocab_slot_t *slot = find_slot(v, token, len, hash);
    if (slot->id >= 0) {
        slot->id = id;
        return 0;
    }

    if (v->strings_len + len > v->strings_cap) {
        size_t cap = v->strings_cap ? v->strings_cap : 65536;
        while (cap < v->strings_len + len)
            cap *= 2;
        char *strings = realloc(v->strings, cap);
        if (!strings)
            return AN_ENOMEM;
        v->strings = strings;
        v->strings_cap = cap;
    }
    if (len)
        memcpy(v->strings + v->strings_len, token, len);
    slot->hash = hash;
    slot->offset = (uint32_t)v->strings_len;
    slot->len = (uint32_t)len;
    slot->id = id;
    v->strings_len += len;
    v->used++;
    return 0;
}


int32_t an__vocab_find(const an__vocab_t *v, const char *token, size_t len)
{
    if (v->slot_count == 0)
        return -1;
    return find_slot(v, token, len, hash_bytes(token, len))->id;
}


void an__vocab_free(an__vocab_t *v)
{
    free(v->slots);
    free(v->strings);
    memset(v, 0, sizeof(*v));
}
