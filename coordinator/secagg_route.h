/*
 * secagg_route.h - which message of secure aggregation's protocol a request
 * to /v1/secagg/ is (docs/protocol.md, "Secure aggregation"), for the two
 * servers of that protocol: the coordinator (secagg_rounds.c) and a relay
 * serving its sites (relay_secagg_sites.c).
 */
#ifndef FEDC_COORD_SECAGG_ROUTE_H
#define FEDC_COORD_SECAGG_ROUTE_H

#include "http_server.h"

/* The messages, in this order: the three a party POSTs, then the three
 * broadcasts it long-polls with GET. */
typedef enum {
  SECAGG_MSG_ADVERTISE = 0,
  SECAGG_MSG_SHARES,
  SECAGG_MSG_UNMASK,
  SECAGG_MSG_KEYS,
  SECAGG_MSG_MYSHARES,
  SECAGG_MSG_SURVIVORS
} secagg_msg;

/* The message req asks for (req->path starts with "/v1/secagg/"), or -1
 * after answering 404 (no such message) or 405 (the wrong method). */
int fedc__secagg_route(fedc_http_exchange *x, const fedc_http_request *req);

/* Whether msg is one a party POSTs. */
static inline int fedc__secagg_is_post(int msg) {
  return msg <= SECAGG_MSG_UNMASK;
}

#endif
