/*
 * delivery.h: a delivery's record, kept as two. The deliveries db holds
 * what ingest wrote, or the last whole rewrite; the outcomes db holds
 * what the send path learnt since (status, attempts, provider, the
 * provider's message id or last error, a retry's avoid, due and qseq, and
 * the timeline entries after the base's). Readers see the two merged.
 * Owner thread of the shard.
 *
 * The merge: the outcome's members replace the base's of the same name,
 * except the timeline, whose entries follow the base's; and a base's
 * qseq and avoid (a retry's) are hidden by any outcome, which carries its
 * own when it is retrying. The send path (dispatch.c) applies the same
 * rule to the records' text.
 */
#ifndef HD_DELIVERY_H
#define HD_DELIVERY_H

#include <jansson.h>

#include "store/store.h"

/* The delivery merged with its outcome (new reference, the caller's to
 * change); NULL when absent, or when either record is undecodable
 * (logged). */
json_t *hd_delivery_get(struct hd_shard *s, const char *id);
/* Stages d (borrowed) as the whole record: the outcome is folded in,
 * its record deleted. */
void hd_delivery_put(struct hd_shard *s, const char *id, json_t *d);
/* Stages the deletion of both records. */
void hd_delivery_del(struct hd_shard *s, const char *id);
/* The merge above, of outcome (borrowed) into base (changed). */
void hd_delivery_merge(json_t *base, json_t *outcome);

#endif
