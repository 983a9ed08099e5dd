/*
 * secagg_route.c - the names and methods of the /v1/secagg/ messages
 * (secagg_route.h): one table for the coordinator and for relays.
 */
#include "secagg_route.h"

#include <string.h>

static const char *const names[] = {"advertise", "shares",   "unmask",
                                    "keys",      "myshares", "survivors"};

int fedc__secagg_route(fedc_http_exchange *x, const fedc_http_request *req) {
  const char *what = req->path + strlen("/v1/secagg/");
  int which = -1;
  for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
    if (strcmp(what, names[i]) == 0) which = i;
  if (which < 0) {
    fedc_http_respond_error(x, 404, "not_found", "no such path: %s", req->path);
    return -1;
  }
  int post = fedc__secagg_is_post(which);
  if (strcmp(req->method, post ? "POST" : "GET") != 0) {
    fedc_http_respond_error(x, 405, "method_not_allowed", "%s takes %s", req->path,
                            post ? "POST" : "GET");
    return -1;
  }
  return which;
}
