/*
 * apns.h: what apns.c exposes besides its provider type (declared in
 * provider.h): the pure parts, for the unit tests and for the ingest check
 * of the payload size. Any thread.
 */
#ifndef HD_APNS_H
#define HD_APNS_H

#include <jansson.h>

#define HD_APNS_MAX_PAYLOAD 4096

/* apns-id of a delivery: a version 5 UUID of delivery_id, lower-case,
 * stable across retries. out: 37 bytes. */
void hd_apns_id(const char *delivery_id, char *out);

/* The APNs JSON payload for a notification's content; new reference.
 * *background is set when there is no alert (a silent push). */
json_t *hd_apns_payload(json_t *content, int *background);

#endif
