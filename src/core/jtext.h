/*
 * jtext.h: reading and writing compact JSON as text, without building a
 * tree. For the send path, which reads a few fields of each stored record
 * and changes a few: jansson would allocate a node per value for that.
 * Pure; a span borrows the text it points into.
 */
#ifndef HD_JTEXT_H
#define HD_JTEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

/* The deepest nesting of containers hd_jtext_valid accepts. */
#define HD_JTEXT_DEPTH 64

struct hd_jspan {
    const char *p;
    size_t n;
};

/* Whether p[0..n) is one JSON object or array, with optional whitespace
 * around it, that jansson's json_loadb(p, n, JSON_REJECT_DUPLICATES, &e)
 * accepts, nested at most HD_JTEXT_DEPTH (64) containers deep. Returns
 * HD_OK, HD_DECLINED when it is well-formed but nested deeper, or
 * HD_ERROR. One difference, meant: jansson skips a raw NUL byte right
 * after a number or literal; here every raw NUL is an error, as stored
 * text is used as a C string. */
int hd_jtext_valid(const char *p, size_t n);

/* One top-level member of an object: the key without its quotes (as
 * written, escapes included) and the value's whole text. */
struct hd_jmember {
    struct hd_jspan key;
    struct hd_jspan val;
};

/* Splits the object text p..p+n into its top-level members. Returns
 * their count, or HD_ERROR when the text is not one well-formed object
 * or has more than max members (then m[0..max) hold the first max). */
int hd_jtext_members(const char *p, size_t n, struct hd_jmember *m, int max);

/* Splits the array text p..p+n into its elements' spans (whitespace
 * around each trimmed). Returns their count, or HD_ERROR when the text is
 * not one array or has more than max elements. Like hd_jtext_members it
 * checks only the structure: validate first with hd_jtext_valid. */
int hd_jtext_items(const char *p, size_t n, struct hd_jspan *v, int max);
/* 1 when p..p+n is an object whose every value is a string, however many
 * members (nothing is stored), else 0. */
int hd_jtext_strings_only(const char *p, size_t n);

/* The value of key among m[0..n), or NULL. */
const struct hd_jspan *hd_jtext_get(const struct hd_jmember *m, int n,
                                    const char *key);

/* Decodes the string value v into buf (NUL-terminated, at most size
 * bytes with the NUL). Returns the length, or HD_ERROR when v is NULL,
 * not a string, or does not fit. */
int hd_jtext_str(const struct hd_jspan *v, char *buf, size_t size);

/* The byte length of the string value v once decoded (escapes resolved,
 * \uXXXX as its UTF-8 bytes), or HD_ERROR when v is NULL or not a
 * string (a bad escape or \u0000 included, as hd_jtext_str). Used to
 * check length limits without a buffer. */
long hd_jtext_strlen(const struct hd_jspan *v);

/* The integer value v; 0 when v is NULL or not an integer. */
int64_t hd_jtext_int(const struct hd_jspan *v);

/* 1 when v is the literal true. */
int hd_jtext_true(const struct hd_jspan *v);

/* A growing output buffer; owned by its user, freed with free(b->p). */
struct hd_jbuf {
    char *p;
    size_t len, size;
};

void hd_jbuf_init(struct hd_jbuf *b, size_t size);
/* Makes room for n more bytes (the slow path of hd_jbuf_raw). */
void hd_jbuf_grow(struct hd_jbuf *b, size_t n);

/* inline: records are written a few bytes at a time */
static inline void
hd_jbuf_raw(struct hd_jbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->size)
        hd_jbuf_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Appends the JSON text p[0..n) (already valid) with the whitespace
 * outside strings left out, so stored text is compact. */
void hd_jbuf_compact(struct hd_jbuf *b, const char *p, size_t n);
/* s (UTF-8) as a quoted, escaped JSON string */
void hd_jbuf_str(struct hd_jbuf *b, const char *s);
void hd_jbuf_int(struct hd_jbuf *b, int64_t v);
/* ,"key": (the comma unless just after { or [) */
void hd_jbuf_key(struct hd_jbuf *b, const char *key);
/* ,"key":"val" (val escaped) */
void hd_jbuf_kv(struct hd_jbuf *b, const char *key, const char *val);
/* v as compact JSON (objects in their insertion order, as jansson) */
void hd_jbuf_json(struct hd_jbuf *b, const json_t *v);

#endif
