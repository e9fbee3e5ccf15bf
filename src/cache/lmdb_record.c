/*
 * Encoding of the lmdb backend's records, access values and LRU index keys,
 * byte by byte as laid out in lmdb_internal.h. Pure functions: no LMDB
 * calls, no locks.
 */
#include <string.h>

#include "cache/lmdb_internal.h"

const char *const an__lmdb_meta_names[AN__LMDB_META_COUNT] = {
    [AN__LMDB_META_FORMAT] = "format",
    [AN__LMDB_META_ENTRIES] = "entries",
    [AN__LMDB_META_BYTES] = "bytes",
    [AN__LMDB_META_LRU_SEQ] = "lru_seq",
    [AN__LMDB_META_HITS] = "hits",
    [AN__LMDB_META_MISSES] = "misses",
    [AN__LMDB_META_STORES] = "stores",
    [AN__LMDB_META_EVICTIONS] = "evictions",
    [AN__LMDB_META_EXPIRATIONS] = "expirations",
};


uint64_t an__lmdb_u64_load(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}


void an__lmdb_u64_store(void *p, uint64_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}


static void u64_store_be(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}


size_t an__lmdb_record_size(size_t content_type_len, size_t namespace_len, size_t value_len)
{
    return AN__LMDB_HEADER_BYTES + content_type_len + namespace_len + value_len;
}


void an__lmdb_record_encode(const an__lmdb_record_t *rec, void *out)
{
    uint8_t *p = out;
    memset(p, 0, AN__LMDB_HEADER_BYTES);
    p[0] = AN__LMDB_RECORD_VERSION;
    p[1] = (uint8_t)rec->content_type_len;
    p[2] = (uint8_t)rec->namespace_len;
    an__lmdb_u64_store(p + 8, (uint64_t)rec->created_ms);
    an__lmdb_u64_store(p + 16, (uint64_t)rec->expires_ms);
    an__lmdb_u64_store(p + 24, rec->value_len);

    p += AN__LMDB_HEADER_BYTES;
    memcpy(p, rec->content_type, rec->content_type_len);
    p += rec->content_type_len;
    memcpy(p, rec->namespace_, rec->namespace_len);
    p += rec->namespace_len;
    if (rec->value_len)
        memcpy(p, rec->value, rec->value_len);
}


/*
 * Decodes a record in place. Returns AN_EIO for an unknown version or for
 * lengths that disagree with the record size, which means the data is not
 * a record this build wrote. Every length is checked against len before
 * use, so a damaged record cannot send a reader past its end.
 */
int an__lmdb_record_decode(const void *data, size_t len, an__lmdb_record_t *rec)
{
    const uint8_t *p = data;
    if (len < AN__LMDB_HEADER_BYTES || p[0] != AN__LMDB_RECORD_VERSION)
        return AN_EIO;

    rec->content_type_len = p[1];
    rec->namespace_len = p[2];
    rec->created_ms = (int64_t)an__lmdb_u64_load(p + 8);
    rec->expires_ms = (int64_t)an__lmdb_u64_load(p + 16);
    uint64_t value_len = an__lmdb_u64_load(p + 24);
    size_t fixed_len = an__lmdb_record_size(rec->content_type_len, rec->namespace_len, 0);
    if (rec->content_type_len >= AN_CACHE_MAX_CONTENT_TYPE ||
        rec->namespace_len >= AN_CACHE_MAX_NAMESPACE || len < fixed_len ||
        value_len != len - fixed_len)
        return AN_EIO;

    rec->value_len = (size_t)value_len;
    rec->content_type = (const char *)p + AN__LMDB_HEADER_BYTES;
    rec->namespace_ = rec->content_type + rec->content_type_len;
    rec->value = rec->namespace_ + rec->namespace_len;
    return 0;
}


void an__lmdb_access_encode(const an__lmdb_access_rec_t *access, uint8_t out[AN__LMDB_ACCESS_BYTES])
{
    an__lmdb_u64_store(out, (uint64_t)access->last_access_ms);
    an__lmdb_u64_store(out + 8, access->lru_seq);
    an__lmdb_u64_store(out + 16, access->hits);
}


/* Decodes an "access" value; AN_EIO when its size is not AN__LMDB_ACCESS_BYTES. */
int an__lmdb_access_decode(const void *data, size_t len, an__lmdb_access_rec_t *access)
{
    const uint8_t *p = data;
    if (len != AN__LMDB_ACCESS_BYTES)
        return AN_EIO;
    access->last_access_ms = (int64_t)an__lmdb_u64_load(p);
    access->lru_seq = an__lmdb_u64_load(p + 8);
    access->hits = an__lmdb_u64_load(p + 16);
    return 0;
}


uint64_t an__lmdb_record_bytes(const an__lmdb_record_t *rec)
{
    return an__cache_entry_bytes(rec->value_len, rec->content_type_len, rec->namespace_len);
}


void an__lmdb_lru_key(int64_t last_access_ms, uint64_t lru_seq, const an_cache_key_t *key,
                      uint8_t out[AN__LMDB_LRU_KEY_BYTES])
{
    /* Times before the epoch sort as 0. Only a test clock produces them. */
    u64_store_be(out, last_access_ms > 0 ? (uint64_t)last_access_ms : 0);
    u64_store_be(out + 8, lru_seq);
    memcpy(out + 16, key->bytes, AN_CACHE_KEY_BYTES);
}
