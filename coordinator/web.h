/* The web dashboard's static files, compiled into flinc-coordinator (web/embed.py turns
 * the files of coordinator/web/ into web_assets.c at build time) and served by every
 * coordinator itself, leader or standby: GET / and /index.html give the page, /web/<name>
 * its scripts and styles. The page only uses the REST API, with relative URLs. Private
 * to coordinator/. */
#pragma once

#include <stddef.h>

struct evhttp_request;

/* One embedded file. Everything points into static storage. */
struct coord_web_asset {
        const char *name;          /* served name, relative to coordinator/web/ */
        const char *content_type;
        const unsigned char *data; /* size_bytes bytes (and a NUL after them) */
        size_t size_bytes;
        const char *etag;          /* a quoted strong ETag: a hash of the bytes */
};

/* The table written by embed.py, sorted by name. */
extern const struct coord_web_asset coord_web_assets[];
extern const size_t coord_web_n_assets;

enum coord_web_result {
        COORD_WEB_NOT_MINE,   /* not a dashboard path: route it as REST */
        COORD_WEB_SERVED,     /* answered (200, or 304 for a matching If-None-Match) */
        COORD_WEB_NOT_FOUND,  /* under /web/ but no such file: the caller answers 404 */
        COORD_WEB_BAD_METHOD, /* a dashboard path with a method other than GET/HEAD: 405 */
};

/* The embedded file served under name ("index.html", "app.js"), or NULL. */
const struct coord_web_asset *coord_web_asset_find(const char *name);

/* Answers req when path (the path of its URI as sent, starting with '/') is "/",
 * "/index.html" or under "/web/"; otherwise leaves req alone. */
enum coord_web_result coord_web_serve(struct evhttp_request *req, const char *path);
