/*
 * dashboard.h - the page the coordinator serves at GET /.
 *
 * One self-contained HTML page (styles and a small script inline; no
 * external script, font, stylesheet or CDN, so it works on an air-gapped
 * coordinator). In the browser it reads GET v1/status (same origin,
 * relative URL) every 2 seconds and shows the job, charts of test
 * accuracy and of train/test loss per round, the last 20 rounds, the
 * clients, and the privacy spent when the status carries a "privacy"
 * object. Every string from the status is inserted as text, never as
 * markup: client names are untrusted input.
 *
 * Serve it with Content-Type "text/html; charset=utf-8".
 */
#ifndef FEDC_DASHBOARD_H
#define FEDC_DASHBOARD_H

#include <stddef.h>

/*
 * The page, NUL-terminated, in static storage (never freed, safe from any
 * thread). If len is not NULL, *len gets its length in bytes without the
 * NUL.
 */
const char *fedc_dashboard_html(size_t *len);

#endif
