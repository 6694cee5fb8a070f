/*
 * conf.h: the parsed configuration. A struct hd_conf is immutable once
 * loaded and shared by all threads through a reference count; reload
 * builds a new one and swaps it in only when the whole file parsed.
 */
#ifndef HD_CONF_H
#define HD_CONF_H

#include <stdint.h>
#include <sys/socket.h>

#include "core/herald.h"

enum hd_channel {
    HD_CH_PUSH = 0,
    HD_CH_SMS,
    HD_CH_EMAIL,
    HD_CH_WEB,
    HD_CH_MAX
};

#define HD_SCOPE_SEND 0x1
#define HD_SCOPE_USERS 0x2
#define HD_SCOPE_READ 0x4
#define HD_SCOPE_ADMIN 0x8

#define HD_CONF_UNSET -1
#define HD_MAX_LISTEN 16
#define HD_MAX_CHANNEL_PROVIDERS 4

struct hd_listen_conf {
    char *text; /* as written: "127.0.0.1:8025" */
    int ssl;    /* "listen ... ssl;": TLS on this address */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* A token bucket's settings: rate tokens per millisecond, burst size. */
struct hd_rate {
    double per_ms;
    double burst;
    int set;
};

#define HD_SECRET_SALT_MAX 32
#define HD_SECRET_HASH_PREFIX "sha256$"

struct hd_api_key {
    char *id;
    /* the secret is kept only as SHA-256(salt || secret) */
    unsigned char salt[HD_SECRET_SALT_MAX];
    size_t saltlen;
    unsigned char secret_sha256[32];
    int has_secret;
    unsigned scopes;
    struct hd_rate rate; /* ingest limit of the key */
};

#define HD_MAX_CATEGORIES 64

struct hd_category_conf {
    char *name;
    unsigned opt_out; /* channel bits opted out unless the user opts in */
    struct hd_rate rate[HD_CH_MAX];
};

/* One directive inside a provider block, kept for the provider's type to
 * read: providers own their settings, conf.c only checks the shape. */
struct hd_conf_kv {
    char *name;
    char **args;
    int nargs;
    const char *file;
    int line;
};

struct hd_provider_conf {
    char *name;
    char *type;
    const char *file; /* of the "provider" block */
    int line;
    int type_line;
    struct hd_conf_kv *kv; /* every directive but "type", in order */
    int nkv;
};

/* A template block: its directives kept for the template module to check
 * and compile (send/templates.c). Directives of a "locale TAG { }" block
 * are kept with kv.locale = TAG; the default variant has locale "". */
struct hd_template_kv {
    char *locale;
    char *name; /* push_title, email_html_file, ... */
    char *value;
    const char *file;
    int line;
};

struct hd_template_conf {
    char *name;
    const char *file;
    int line;
    struct hd_template_kv *kv;
    int nkv;
};

struct hd_channel_conf {
    int providers[HD_MAX_CHANNEL_PROVIDERS]; /* index into conf->providers */
    int nproviders;
};

struct hd_store_conf {
    char *path;
    int shards; /* 0: auto */
    int sync;
    int64_t map_size;
    int64_t max_map_size;
    int commit_records;
    int64_t commit_delay_ms;
    int64_t outcome_delay_ms; /* a batch only the dispatcher waits on */
    int high_water;           /* percent of max_map_size */
    int64_t min_free_disk;    /* bytes */
};

struct hd_conf {
    int refs; /* atomic */
    char *file;

    int daemon;
    char *user;  /* drop root to this user after start-up, or NULL */
    char *group; /* its group; NULL: the user's own */
    char *pid;
    char *error_log;
    int log_level;
    char *access_log; /* NULL: off */
    int workers;

    struct hd_listen_conf listen[HD_MAX_LISTEN];
    int nlisten;

    char *ssl_certificate;
    char *ssl_certificate_key;

    int64_t client_max_body_size;
    int64_t client_header_timeout_ms;
    int64_t client_body_timeout_ms;
    int64_t keepalive_timeout_ms;
    int64_t send_timeout_ms;
    int keepalive_requests;

    struct hd_store_conf store;

    struct hd_api_key *keys;
    int nkeys;
    struct hd_provider_conf *providers;
    int nproviders;
    struct hd_channel_conf channels[HD_CH_MAX];
    struct hd_rate rate[HD_CH_MAX]; /* per user and channel */
    struct hd_category_conf *categories;
    int ncategories;
    struct hd_template_conf *templates;
    int ntemplates;
    int64_t idempotency_ttl_ms;
    int sms_max_segments;
    int max_in_flight;  /* deliveries out at providers, per shard and channel */
    char *tracking_url; /* base of open/click links, or NULL: no tracking */
    int64_t events_retention_ms;
    char *event_webhook; /* URL, or NULL */
    char *event_webhook_secret;
    char *event_webhook_ca_file;
    char *alert_webhook; /* URL, or NULL: circuit breaker alerts */
    char *alert_webhook_secret;
    char *alert_webhook_ca_file;

    char **strings; /* every string above, freed with the conf */
    int nstrings, cstrings;
};

/* Loads FILE. On error returns NULL and writes "message in FILE:LINE"
 * into err. */
struct hd_conf *hd_conf_load(const char *file, char *err, size_t errlen);
void hd_conf_ref(struct hd_conf *cf);
void hd_conf_unref(struct hd_conf *cf);

/* The last kv named name in a provider block, or NULL. */
const struct hd_conf_kv *hd_conf_kv_find(const struct hd_provider_conf *pc,
                                         const char *name);
const struct hd_category_conf *hd_conf_find_category(const struct hd_conf *cf,
                                                     const char *name);
const char *hd_channel_name(int ch);
int hd_channel_parse(const char *name, size_t len);
const struct hd_api_key *hd_conf_find_key(const struct hd_conf *cf,
                                          const char *id, size_t len);
/* "sha256$<salt hex>$<hash hex>" for secret, with a fresh random salt:
 * what `herald -k` prints. buf holds at least 160 bytes. */
int hd_secret_hash(const char *secret, char *buf, size_t size);
/* "64k" -> 65536; HD_ERROR on bad input */
int hd_parse_size(const char *s, int64_t *out);
/* "30s" -> 30000 ms; a bare number is seconds */
int hd_parse_time_ms(const char *s, int64_t *out);

#endif
