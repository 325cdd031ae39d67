/* Serves the web dashboard's embedded static files (coordinator/web.h). Every coordinator
 * answers these itself, never forwarding them: a standby's page must load while the
 * leader is gone, and it shows the leader's data through the REST API, which the standby
 * forwards. Files are revalidated on every load (Cache-Control: no-cache, strong ETag,
 * 304 on If-None-Match), so a coordinator of a new version serves its own page. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "coordinator/web.h"

/* The page may load only what its coordinator serves: no CDN, no fonts, no frames. */
#define WEB_CSP "default-src 'self'; img-src 'self' data:; object-src 'none'; " \
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const struct coord_web_asset *coord_web_asset_find(const char *name) {
        size_t lo = 0, hi = coord_web_n_assets;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int cmp = strcmp(name, coord_web_assets[mid].name);
                if (cmp == 0)
                        return &coord_web_assets[mid];
                if (cmp < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

/* If-None-Match lists etag (or is "*"). */
static bool etag_matches(const char *inm, const char *etag) {
        if (!inm)
                return false;
        if (strcmp(inm, "*") == 0)
                return true;
        size_t n = strlen(etag);
        for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag))
                if (p[n] == '\0' || p[n] == ',' || p[n] == ' ')
                        return true;
        return false;
}

enum coord_web_result coord_web_serve(struct evhttp_request *req, const char *path) {
        const char *name;
        if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
                name = "index.html";
        else if (strncmp(path, "/web/", 5) == 0)
                name = path + 5;
        else
                return COORD_WEB_NOT_MINE;
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
                return COORD_WEB_BAD_METHOD;
        const struct coord_web_asset *a = coord_web_asset_find(name);
        if (!a)
                return COORD_WEB_NOT_FOUND;

        struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
        evhttp_add_header(oh, "Cache-Control", "no-cache");
        evhttp_add_header(oh, "ETag", a->etag);
        evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
        const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req),
                                             "If-None-Match");
        if (etag_matches(inm, a->etag)) {
                evhttp_send_reply(req, 304, "Not Modified", NULL);
                return COORD_WEB_SERVED;
        }
        evhttp_add_header(oh, "Content-Type", a->content_type);
        if (strcmp(a->name, "index.html") == 0) {
                evhttp_add_header(oh, "Content-Security-Policy", WEB_CSP);
                evhttp_add_header(oh, "Referrer-Policy", "no-referrer");
        }
        /* Set here for HEAD too (evhttp adds it only to answers that carry a body). */
        char len[32];
        snprintf(len, sizeof(len), "%zu", a->size_bytes);
        evhttp_add_header(oh, "Content-Length", len);
        struct evbuffer *b = NULL;
        if (cmd == EVHTTP_REQ_GET) {
                b = evbuffer_new();
                if (!b || evbuffer_add_reference(b, a->data, a->size_bytes, NULL, NULL) < 0) {
                        if (b)
                                evbuffer_free(b);
                        evhttp_send_error(req, 500, NULL); /* clears the headers set above */
                        return COORD_WEB_SERVED;
                }
        }
        evhttp_send_reply(req, 200, "OK", b);
        if (b)
                evbuffer_free(b);
        return COORD_WEB_SERVED;
}
