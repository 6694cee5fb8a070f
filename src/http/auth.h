/*
 * auth.h: API key authentication of a request.
 */
#ifndef HD_AUTH_H
#define HD_AUTH_H

#include "core/conf.h"

/* The key named by an "Authorization: Basic ..." header whose secret
 * matches, or NULL. */
const struct hd_api_key *hd_auth_basic(const struct hd_conf *cf,
                                       const char *header);

#endif
