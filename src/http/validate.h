/*
 * validate.h: checks of client input, each returning NULL when valid or a
 * static message naming what is wrong. Worker thread; pure.
 */
#ifndef HD_VALIDATE_H
#define HD_VALIDATE_H

#include <jansson.h>

const char *hd_valid_email(const char *s);
const char *hd_valid_phone(const char *s);
const char *hd_valid_locale(const char *s);
const char *hd_valid_timezone(const char *s);
const char *hd_valid_app(const char *s);
/* A device registration body; on error *field names the field. */
const char *hd_valid_device(json_t *in, const char **field);
/* Checks obj has only the named keys (NULL-terminated); returns the first
 * other key, or NULL. */
const char *hd_valid_keys(json_t *obj, const char *const *allowed);

#endif
