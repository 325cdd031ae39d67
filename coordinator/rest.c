/* The REST server (evhttp on the loop thread): routing, limits, errors in Flink's
 * {"errors":[...]} shape, and forwarding. The leader answers from its own state
 * (views.c); a standby forwards every request but GET /ha to the leader's REST url from
 * ZooKeeper (as Flink does since 1.8), and answers 503 with Flink's election message
 * while no leader is known or the leader cannot be reached. A leader that lost its
 * ZooKeeper connection (suspended) answers reads from its state and refuses writes.
 *
 * Endpoints (Flink's paths, also under /v1): GET /config, /overview, /jobs,
 * /jobs/overview, /jobs/:jobid, /jobs/:jobid/exceptions, /jobs/:jobid/yarn-cancel,
 * /jobs/:jobid/vertices/:vertexid, /jobs/:jobid/vertices/:vertexid/metrics,
 * /jobs/:jobid/vertices/:vertexid/subtasks/metrics (views.c, Flink's metric API),
 * /jobs/:jobid/checkpoints, /jobs/:jobid/checkpoints/config,
 * /jobs/:jobid/savepoints/:triggerid (checkpoints.c); POST /jobs/:jobid/savepoints
 * {"target-directory", "cancel-job"} -> 202 {"request-id"};
 * /taskmanagers, /taskmanagers/:id, /jobmanager/config, /ha (flinc's own);
 * PATCH /jobs/:jobid[?mode=cancel]; POST /jobs with a job file (YAML or JSON, the format
 * of common/jobgraph.h) as the body, answered 202 {"jobid", "jobUrl"} once the graph is
 * persisted; its artifacts must be ids of libraries uploaded with POST
 * /artifacts/upload?name=<file name> (body = the library; 200 {"filename", "status",
 * "id", "size"}, artifacts.h). GET / (and /index.html, /web/<file>) is the web dashboard (web.c), served
 * by every coordinator itself.
 *
 * Limits: bodies up to rest.server.max-content-length (and a job file up to
 * JOB_FILE_MAX_BYTES), headers up to REST_MAX_HEADERS_BYTES, URIs up to
 * REST_MAX_URI_BYTES, REST_MAX_CONNECTIONS connections, REST_TIMEOUT_S of silence. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "common/config.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "coordinator/artifacts.h"
#include "coordinator/checkpoints.h"
#include "coordinator/coord_internal.h"
#include "coordinator/web.h"

#define REST_MAX_HEADERS_BYTES (64 * 1024)
#define REST_MAX_URI_BYTES 4096
#define REST_MAX_CONNECTIONS 512
#define REST_TIMEOUT_S 30
#define REST_FORWARD_TIMEOUT_MS 5000
#define REST_FORWARD_HEADER "X-Flinc-Forwarded-By"
#define REST_MSG_ELECTION "Service temporarily unavailable due to an ongoing leader election. " \
                          "Please refresh."

/* A request we answer later (a submit waiting for the store, a forwarded request
 * waiting for the leader). When the server stops first, evhttp frees the request:
 * dead is set and the completion only frees this. */
struct rest_pending {
        struct coord_rest *rest;
        struct rest_pending *next;
        struct evhttp_request *req;
        struct evhttp_connection *out; /* forwarding: the connection to the leader */
        bool dead;
};

struct rest_conn {
        struct evhttp_connection *evcon;
        struct coord_rest *rest;
};

struct coord_rest {
        struct coord *c;
        struct evhttp *http;
        struct evconnlistener *listener;
        struct evdns_base *dns;
        struct rest_pending *pending;
        struct rest_conn *conns; /* connections seen, REST_MAX_CONNECTIONS at most */
        size_t n_conns;
};

/* ---- responses ---------------------------------------------------------------------- */

static void send_json(struct evhttp_request *req, int code, const char *reason,
                      const char *text, size_t len) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", "application/json; charset=UTF-8");
        evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
        struct evbuffer *b = evbuffer_new();
        if (b)
                evbuffer_add(b, text, len);
        evhttp_send_reply(req, code, reason, b);
        if (b)
                evbuffer_free(b);
}

static const char *reason_of(int code) {
        switch (code) {
        case 200: return "OK";
        case 202: return "Accepted";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 409: return "Conflict";
        case 413: return "Request Entity Too Large";
        case 414: return "URI Too Long";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        default: return "Error";
        }
}

static void send_error(struct evhttp_request *req, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void send_error(struct evhttp_request *req, int code, const char *fmt, ...) {
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        struct json_writer w;
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_key(&w, "errors");
        json_begin_array(&w);
        json_string(&w, msg);
        json_end_array(&w);
        json_end_object(&w);
        char *text = NULL;
        size_t len = 0;
        if (json_writer_take(&w, &text, &len) == 0)
                send_json(req, code, reason_of(code), text, len);
        else
                evhttp_send_error(req, code, NULL);
        free(text);
        json_writer_finish(&w);
}

/* Finishes a view written into w: 200 with it, or 500. */
static void send_view(struct evhttp_request *req, int code, struct json_writer *w) {
        char *text = NULL;
        size_t len = 0;
        int r = json_writer_take(w, &text, &len);
        if (r < 0) {
                log_error(r, "rest: building the response to %s", evhttp_request_get_uri(req));
                send_error(req, 500, "Internal server error.");
        } else {
                send_json(req, code, reason_of(code), text, len);
        }
        free(text);
        json_writer_finish(w);
}

/* ---- pending requests --------------------------------------------------------------- */

static struct rest_pending *pending_add(struct coord_rest *rest, struct evhttp_request *req) {
        struct rest_pending *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->rest = rest;
        p->req = req;
        p->next = rest->pending;
        rest->pending = p;
        return p;
}

static void pending_remove(struct rest_pending *p) {
        if (!p->dead)
                for (struct rest_pending **pp = &p->rest->pending; *pp; pp = &(*pp)->next)
                        if (*pp == p) {
                                *pp = p->next;
                                break;
                        }
        free(p);
}

/* ---- forwarding to the leader ------------------------------------------------------- */

static void forward_done(struct evhttp_request *out, void *arg) {
        struct rest_pending *p = arg;
        if (p->dead) {
                free(p);
                return;
        }
        struct evhttp_request *req = p->req;
        int code = out ? evhttp_request_get_response_code(out) : 0;
        if (code <= 0) {
                const struct coord *c = p->rest->c;
                log_warn("rest: forwarding %s to the leader at %s failed", evhttp_request_get_uri(req),
                         c->leader_known ? c->leader.rest : "(unknown)");
                send_error(req, 503, REST_MSG_ELECTION);
        } else {
                struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
                const char *ct = evhttp_find_header(evhttp_request_get_input_headers(out),
                                                    "Content-Type");
                evhttp_add_header(oh, "Content-Type", ct ? ct : "application/json; charset=UTF-8");
                evhttp_add_header(oh, "Access-Control-Allow-Origin", "*");
                const char *line = evhttp_request_get_response_code_line(out);
                evhttp_send_reply(req, code, line && line[0] ? line : reason_of(code),
                                  evhttp_request_get_input_buffer(out));
        }
        pending_remove(p);
}

static bool parse_http_url(const char *url, char *host, size_t host_len, uint16_t *port) {
        struct evhttp_uri *u = evhttp_uri_parse(url);
        if (!u)
                return false;
        const char *h = evhttp_uri_get_host(u);
        int pt = evhttp_uri_get_port(u);
        bool ok = h && h[0] && pt > 0 && pt <= 65535;
        if (ok) {
                snprintf(host, host_len, "%s", h);
                *port = (uint16_t)pt;
        }
        evhttp_uri_free(u);
        return ok;
}

static void forward(struct coord_rest *rest, struct evhttp_request *req) {
        struct coord *c = rest->c;
        char host[HA_ADDR_MAX];
        uint16_t port;
        if (!c->leader_known || strcmp(c->leader.id, c->id) == 0 ||
            !parse_http_url(c->leader.rest, host, sizeof(host), &port)) {
                send_error(req, 503, REST_MSG_ELECTION);
                return;
        }
        struct rest_pending *p = pending_add(rest, req);
        if (!p) {
                send_error(req, 500, "Internal server error.");
                return;
        }
        p->out = evhttp_connection_base_new(c->base, rest->dns, host, port);
        struct evhttp_request *out = p->out ? evhttp_request_new(forward_done, p) : NULL;
        if (!out) {
                if (p->out)
                        evhttp_connection_free(p->out);
                pending_remove(p);
                send_error(req, 500, "Internal server error.");
                return;
        }
        struct timeval tv = {.tv_sec = REST_FORWARD_TIMEOUT_MS / 1000,
                             .tv_usec = (REST_FORWARD_TIMEOUT_MS % 1000) * 1000};
        evhttp_connection_set_timeout_tv(p->out, &tv);
        evhttp_connection_set_max_body_size(p->out, (ev_ssize_t)(64u << 20));
        struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
        struct evkeyvalq *oh = evhttp_request_get_output_headers(out);
        char hosthdr[HA_ADDR_MAX + 8];
        snprintf(hosthdr, sizeof(hosthdr), "%s:%u", host, port);
        evhttp_add_header(oh, "Host", hosthdr);
        evhttp_add_header(oh, REST_FORWARD_HEADER, c->id);
        evhttp_add_header(oh, "Connection", "close");
        const char *ct = evhttp_find_header(ih, "Content-Type");
        if (ct)
                evhttp_add_header(oh, "Content-Type", ct);
        struct evbuffer *body = evhttp_request_get_input_buffer(req);
        if (evbuffer_get_length(body) > 0)
                evbuffer_add_buffer(evhttp_request_get_output_buffer(out), body);
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        if (evhttp_make_request(p->out, out, cmd, evhttp_request_get_uri(req)) < 0) {
                /* out was freed by evhttp_make_request */
                evhttp_connection_free(p->out);
                pending_remove(p);
                send_error(req, 503, REST_MSG_ELECTION);
                return;
        }
        evhttp_connection_free_on_completion(p->out);
        log_debug("rest: forwarding %s to the leader %s", evhttp_request_get_uri(req), c->leader.rest);
}

/* ---- submissions -------------------------------------------------------------------- */

static void submit_done(struct coord *c, int r, const char *job_id, const char *msg, void *arg) {
        struct rest_pending *p = arg;
        if (p->dead) {
                free(p);
                return;
        }
        struct evhttp_request *req = p->req;
        if (r == 0) {
                struct json_writer w;
                json_writer_init(&w, 0);
                json_begin_object(&w);
                json_kv_string(&w, "jobid", job_id);
                char url[64];
                snprintf(url, sizeof(url), "/jobs/%s", job_id);
                json_kv_string(&w, "jobUrl", url);
                json_end_object(&w);
                send_view(req, 202, &w);
        } else if (r == -EINVAL) {
                send_error(req, 400, "%s", msg ? msg : "invalid job");
        } else if (r == -EAGAIN) {
                send_error(req, 503, REST_MSG_ELECTION);
        } else {
                send_error(req, 500, "Job submission failed: %s", msg ? msg : err_str(r));
        }
        pending_remove(p);
}

static void handle_submit(struct coord_rest *rest, struct evhttp_request *req) {
        struct coord *c = rest->c;
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(b);
        if (len > JOB_FILE_MAX_BYTES) {
                send_error(req, 413, "request body: %zu bytes is over the job file limit of %zu "
                           "bytes", len, (size_t)JOB_FILE_MAX_BYTES);
                return;
        }
        const char *text = (const char *)evbuffer_pullup(b, -1);
        char err[1024];
        struct job_graph *g = NULL;
        int r = job_graph_parse_yaml("request body", text ? text : "", len,
                                     c->default_parallelism, &g, err, sizeof(err));
        if (r == -EFBIG) {
                send_error(req, 413, "%s", err);
                return;
        }
        if (r < 0) {
                send_error(req, r == -EINVAL ? 400 : 500, "%s", err);
                return;
        }
        /* artifacts: ids of uploaded libraries only, replaced by their storage URIs */
        if ((r = coord_artifacts_resolve(c, g, err, sizeof(err))) < 0) {
                job_graph_free(g);
                send_error(req, r == -EINVAL ? 400 : 500, "%s", err);
                return;
        }
        /* Flink's run -s: ?savepointPath=<dir or its _metadata> (checkpoints.c) */
        char savepoint[1024] = "";
        {
                const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
                struct evkeyvalq qs;
                TAILQ_INIT(&qs);
                if (q && evhttp_parse_query_str(q, &qs) == 0) {
                        const char *sp = evhttp_find_header(&qs, "savepointPath");
                        if (sp)
                                snprintf(savepoint, sizeof(savepoint), "%s", sp);
                }
                evhttp_clear_headers(&qs);
        }
        struct rest_pending *p = pending_add(rest, req);
        if (!p) {
                job_graph_free(g);
                send_error(req, 500, "Internal server error.");
                return;
        }
        coord_jobs_submit_from(c, g, savepoint[0] ? savepoint : NULL, submit_done, p);
}

/* ---- artifact uploads (artifacts.h) -------------------------------------------------- */

static void upload_done(struct coord *c, int r, const char *id, const char *path,
                        uint64_t size, const char *msg, void *arg) {
        (void)c;
        struct rest_pending *p = arg;
        if (p->dead) {
                free(p);
                return;
        }
        struct evhttp_request *req = p->req;
        if (r == 0) {
                /* Flink's POST /jars/upload answer, plus the id a job names */
                struct json_writer w;
                json_writer_init(&w, 0);
                json_begin_object(&w);
                json_kv_string(&w, "filename", path);
                json_kv_string(&w, "status", "success");
                json_kv_string(&w, "id", id);
                json_key(&w, "size");
                json_uint(&w, size);
                json_end_object(&w);
                send_view(req, 200, &w);
        } else if (r == -EINVAL) {
                send_error(req, 400, "%s", msg);
        } else {
                send_error(req, 500, "Artifact upload failed: %s", msg);
        }
        pending_remove(p);
}

/* POST /artifacts/upload?name=<file name>, body = the library's bytes. */
static void handle_upload(struct coord_rest *rest, struct evhttp_request *req,
                          const char *query) {
        char name[COORD_ARTIFACT_NAME_MAX + 2] = "";
        struct evkeyvalq qs;
        TAILQ_INIT(&qs);
        if (query && evhttp_parse_query_str(query, &qs) < 0) {
                send_error(req, 400, "Bad request, could not parse the query string");
                return;
        }
        const char *n = evhttp_find_header(&qs, "name");
        if (n)
                snprintf(name, sizeof(name), "%s", n);
        evhttp_clear_headers(&qs);
        if (!name[0]) {
                send_error(req, 400, "Bad request: the query parameter name (the library's file "
                           "name, e.g. ?name=libudf.so) is missing");
                return;
        }
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(b);
        char *data = malloc(len ? len : 1);
        if (!data || evbuffer_remove(b, data, len) != (int)len) {
                free(data);
                send_error(req, 500, "Internal server error.");
                return;
        }
        struct rest_pending *p = pending_add(rest, req);
        if (!p) {
                free(data);
                send_error(req, 500, "Internal server error.");
                return;
        }
        coord_artifact_upload(rest->c, name, data, len, upload_done, p);
}

/* ---- routing ------------------------------------------------------------------------ */

static bool job_id_ok(const char *s) {
        struct flinc_id id;
        return strlen(s) == ID_HEX_LEN && id_parse(s, &id) == 0;
}

static void handle_cancel(struct coord_rest *rest, struct evhttp_request *req, const char *id) {
        int r = coord_jobs_cancel(rest->c, id);
        if (r == -ENOENT) {
                send_error(req, 404, "Job %s not found", id);
        } else if (r == -EAGAIN) {
                send_error(req, 503, REST_MSG_ELECTION);
        } else {
                struct json_writer w;
                json_writer_init(&w, 0);
                json_begin_object(&w);
                json_end_object(&w);
                send_view(req, 202, &w);
        }
}

/* POST /jobs/:jobid/savepoints {"target-directory": str, "cancel-job": bool}: 202
 * {"request-id"}; the status is polled at /jobs/:jobid/savepoints/:triggerid. */
static void handle_savepoint(struct coord_rest *rest, struct evhttp_request *req,
                             struct coord_job *j) {
        struct coord *c = rest->c;
        if (!coord_may_act(c)) {
                send_error(req, 503, REST_MSG_ELECTION);
                return;
        }
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(b);
        const char *text = len ? (const char *)evbuffer_pullup(b, -1) : "";
        char target[1024] = "";
        bool cancel_job = false;
        char err[1024];
        if (coord_rest_parse_savepoint_body(text, len, target, sizeof(target), &cancel_job, err,
                                            sizeof(err)) < 0) {
                send_error(req, 400, "Bad request: %s", err);
                return;
        }
        char trigger[ID_HEX_LEN + 1];
        int r = coord_ckpt_savepoint_trigger(j, target, cancel_job, trigger, err, sizeof(err));
        if (r < 0) {
                send_error(req, r == -EAGAIN ? 409 : 400, "%s", err);
                return;
        }
        struct json_writer w;
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_kv_string(&w, "request-id", trigger);
        json_end_object(&w);
        send_view(req, 202, &w);
}

/* Whether this request is answered here (leader, or suspended leader reading). */
static bool answer_locally(struct coord *c, bool write) {
        if (coord_may_act(c))
                return true;
        return !write && coord_holds_term(c);
}

static void route(struct coord_rest *rest, struct evhttp_request *req, const char *path,
                  const char *query) {
        struct coord *c = rest->c;
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        struct json_writer w;
        char seg[6][128];
        int nseg = 0;

        /* The dashboard's own files (web.c): served here, leader or not. */
        switch (coord_web_serve(req, path)) {
        case COORD_WEB_SERVED:
                return;
        case COORD_WEB_NOT_FOUND:
                goto not_found;
        case COORD_WEB_BAD_METHOD:
                goto not_allowed;
        case COORD_WEB_NOT_MINE:
                break;
        }
        if (strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0)
                path += 3;
        /* Split into at most 6 segments; anything longer is unknown. */
        const char *p = path;
        while (*p == '/')
                p++;
        while (*p && nseg < 6) {
                size_t n = strcspn(p, "/");
                if (n >= sizeof(seg[0]))
                        goto not_found;
                memcpy(seg[nseg], p, n);
                seg[nseg][n] = '\0';
                nseg++;
                p += n;
                while (*p == '/')
                        p++;
        }
        if (*p)
                goto not_found;

        bool is_get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
        /* flinc's own: this coordinator, never forwarded. */
        if (nseg == 1 && strcmp(seg[0], "ha") == 0) {
                if (!is_get)
                        goto not_allowed;
                json_writer_init(&w, 0);
                coord_ha_to_json(c, &w);
                send_view(req, 200, &w);
                return;
        }
        /* Known paths and methods first, so a standby answers 404/405 itself. */
        bool write = false;
        bool known = false;
        if (nseg == 1 && (strcmp(seg[0], "config") == 0 || strcmp(seg[0], "overview") == 0 ||
                          strcmp(seg[0], "taskmanagers") == 0)) {
                known = true;
                if (!is_get)
                        goto not_allowed;
        } else if (nseg == 1 && strcmp(seg[0], "jobs") == 0) {
                known = true;
                if (!is_get && cmd != EVHTTP_REQ_POST)
                        goto not_allowed;
                write = cmd == EVHTTP_REQ_POST;
        } else if (nseg == 2 && strcmp(seg[0], "jobs") == 0) {
                known = true;
                if (strcmp(seg[1], "overview") != 0) {
                        if (!is_get && cmd != EVHTTP_REQ_PATCH)
                                goto not_allowed;
                        write = cmd == EVHTTP_REQ_PATCH;
                } else if (!is_get) {
                        goto not_allowed;
                }
        } else if (nseg == 3 && strcmp(seg[0], "jobs") == 0 &&
                   (strcmp(seg[2], "exceptions") == 0 || strcmp(seg[2], "yarn-cancel") == 0)) {
                known = true;
                write = strcmp(seg[2], "yarn-cancel") == 0;
                /* yarn-cancel is a GET with a side effect (Flink's dashboard): not HEAD */
                if (!is_get || (write && cmd != EVHTTP_REQ_GET))
                        goto not_allowed;
        } else if (nseg == 4 && strcmp(seg[0], "jobs") == 0 && strcmp(seg[2], "vertices") == 0) {
                known = true;
                if (!is_get)
                        goto not_allowed;
        } else if (strcmp(seg[0], "jobs") == 0 && nseg >= 5 && strcmp(seg[2], "vertices") == 0 &&
                   ((nseg == 5 && strcmp(seg[4], "metrics") == 0) ||
                    (nseg == 6 && strcmp(seg[4], "subtasks") == 0 &&
                     strcmp(seg[5], "metrics") == 0))) {
                known = true;
                if (!is_get)
                        goto not_allowed;
        } else if (nseg >= 3 && strcmp(seg[0], "jobs") == 0 &&
                   ((nseg == 3 && strcmp(seg[2], "checkpoints") == 0) ||
                    (nseg == 4 && strcmp(seg[2], "checkpoints") == 0 &&
                     strcmp(seg[3], "config") == 0) ||
                    (nseg == 4 && strcmp(seg[2], "savepoints") == 0))) {
                known = true;
                if (!is_get)
                        goto not_allowed;
        } else if (nseg == 3 && strcmp(seg[0], "jobs") == 0 && strcmp(seg[2], "savepoints") == 0) {
                known = true;
                write = true;
                if (cmd != EVHTTP_REQ_POST)
                        goto not_allowed;
        } else if (nseg == 2 && strcmp(seg[0], "taskmanagers") == 0) {
                known = true;
                if (!is_get)
                        goto not_allowed;
        } else if (nseg == 2 && strcmp(seg[0], "artifacts") == 0 &&
                   strcmp(seg[1], "upload") == 0) {
                known = true;
                write = true;
                if (cmd != EVHTTP_REQ_POST)
                        goto not_allowed;
        } else if (nseg == 1 && strcmp(seg[0], "artifacts") == 0) {
                known = true;
                if (!is_get)
                        goto not_allowed;
        } else if (nseg == 2 && strcmp(seg[0], "artifacts") == 0) {
                known = true;
                write = true;
                if (cmd != EVHTTP_REQ_DELETE)
                        goto not_allowed;
        } else if (nseg == 2 && strcmp(seg[0], "jobmanager") == 0 && strcmp(seg[1], "config") == 0) {
                known = true;
                if (!is_get)
                        goto not_allowed;
        }
        if (!known)
                goto not_found;

        if (!answer_locally(c, write)) {
                const char *fwd = evhttp_find_header(evhttp_request_get_input_headers(req),
                                                     REST_FORWARD_HEADER);
                if (fwd || coord_holds_term(c)) {
                        /* Forwarded to us but we do not lead (any more), or we are the
                         * suspended leader: no second hop. */
                        send_error(req, 503, REST_MSG_ELECTION);
                        return;
                }
                forward(rest, req);
                return;
        }
        if (!c->leader_ready && !(nseg == 1 && strcmp(seg[0], "config") == 0) &&
            !(nseg == 2 && strcmp(seg[0], "jobmanager") == 0)) {
                /* Elected a moment ago, still reading the stores: the job list is not
                 * complete yet. */
                send_error(req, 503, REST_MSG_ELECTION);
                return;
        }

        if (nseg == 2 && strcmp(seg[0], "artifacts") == 0 && strcmp(seg[1], "upload") == 0) {
                handle_upload(rest, req, query);
                return;
        }
        if (nseg >= 1 && strcmp(seg[0], "artifacts") == 0) {
                char err[1024] = "";
                if (nseg == 2) {
                        /* DELETE /artifacts/:id (Flink: DELETE /jars/:jarid) */
                        int r = coord_artifact_delete(c, seg[1], err, sizeof(err));
                        if (r < 0)
                                send_error(req, r == -EINVAL ? 400 : r == -ENOENT ? 404
                                                : r == -EBUSY ? 409 : 500, "%s", err);
                        else
                                send_json(req, 200, "OK", "{}", 2);
                        return;
                }
                json_writer_init(&w, 0);
                if (coord_artifacts_list(c, &w, err, sizeof(err)) < 0) {
                        json_writer_finish(&w);
                        send_error(req, 400, "%s", err);
                        return;
                }
                send_view(req, 200, &w);
                return;
        }
        json_writer_init(&w, 0);
        if (nseg == 1 && strcmp(seg[0], "config") == 0) {
                coord_view_config(c, &w);
        } else if (nseg == 1 && strcmp(seg[0], "overview") == 0) {
                coord_view_overview(c, &w);
        } else if (nseg == 1 && strcmp(seg[0], "taskmanagers") == 0) {
                coord_view_taskmanagers(c, &w);
        } else if (nseg == 1 && strcmp(seg[0], "jobs") == 0) {
                if (cmd == EVHTTP_REQ_POST) {
                        json_writer_finish(&w);
                        handle_submit(rest, req);
                        return;
                }
                coord_view_jobs(c, &w);
        } else if (nseg == 2 && strcmp(seg[0], "jobs") == 0 && strcmp(seg[1], "overview") == 0) {
                coord_view_jobs_overview(c, &w);
        } else if (nseg == 2 && strcmp(seg[0], "jobmanager") == 0) {
                coord_view_jobmanager_config(c, &w);
        } else if (nseg == 2 && strcmp(seg[0], "taskmanagers") == 0) {
                struct coord_worker *wk = coord_worker_find(c, seg[1]);
                if (!wk) {
                        json_writer_finish(&w);
                        send_error(req, 404, "Could not find TaskManager %s", seg[1]);
                        return;
                }
                coord_view_taskmanager(c, wk, &w);
        } else {
                /* /jobs/:jobid[/...] */
                json_writer_finish(&w);
                if (!job_id_ok(seg[1])) {
                        send_error(req, 400, "Bad request, could not parse parameters: Cannot "
                                   "resolve path parameter (jobid) from value \"%s\": expected 32 "
                                   "hex digits", seg[1]);
                        return;
                }
                if (cmd == EVHTTP_REQ_PATCH || (nseg == 3 && strcmp(seg[2], "yarn-cancel") == 0)) {
                        if (cmd == EVHTTP_REQ_PATCH && query) {
                                struct evkeyvalq q;
                                TAILQ_INIT(&q);
                                if (evhttp_parse_query_str(query, &q) < 0) {
                                        send_error(req, 400, "Bad request, could not parse the "
                                                   "query string");
                                        return;
                                }
                                const char *mode = evhttp_find_header(&q, "mode");
                                bool ok = !mode || strcmp(mode, "cancel") == 0;
                                if (!ok)
                                        send_error(req, 400, "Bad request, could not parse "
                                                   "parameters: mode: '%.64s' is not one of: "
                                                   "cancel", mode);
                                evhttp_clear_headers(&q);
                                if (!ok)
                                        return;
                        }
                        handle_cancel(rest, req, seg[1]);
                        return;
                }
                struct coord_job *j = coord_job_find(c, seg[1]);
                if (!j) {
                        send_error(req, 404, "Job %s not found", seg[1]);
                        return;
                }
                if (nseg == 3 && strcmp(seg[2], "savepoints") == 0) {
                        handle_savepoint(rest, req, j);
                        return;
                }
                json_writer_init(&w, 0);
                if (nseg >= 3 && strcmp(seg[2], "checkpoints") == 0) {
                        if (nseg == 3)
                                coord_view_checkpoints(c, j, &w);
                        else
                                coord_view_checkpoint_config(c, j, &w);
                } else if (nseg == 4 && strcmp(seg[2], "savepoints") == 0) {
                        if (coord_view_savepoint_status(c, j, seg[3], &w) < 0) {
                                json_writer_finish(&w);
                                send_error(req, 404, "There is no savepoint operation with "
                                           "triggerId=%s for job %s", seg[3], seg[1]);
                                return;
                        }
                } else if (nseg >= 5) {
                        struct evkeyvalq q;
                        TAILQ_INIT(&q);
                        if (query && evhttp_parse_query_str(query, &q) < 0) {
                                json_writer_finish(&w);
                                send_error(req, 400, "Bad request, could not parse the "
                                           "query string");
                                return;
                        }
                        int r = coord_view_vertex_metrics(c, j, seg[3], nseg == 6,
                                                          evhttp_find_header(&q, "get"),
                                                          evhttp_find_header(&q, "agg"), &w);
                        evhttp_clear_headers(&q);
                        if (r < 0) {
                                json_writer_finish(&w);
                                if (r == -ENOENT)
                                        send_error(req, 404, "Vertex %s not found in job %s",
                                                   seg[3], seg[1]);
                                else
                                        send_error(req, 400, "Bad request, could not parse "
                                                   "parameters: agg: expected a comma-separated "
                                                   "list of min, max, avg, sum");
                                return;
                        }
                } else if (nseg == 2) {
                        coord_view_job(c, j, &w);
                } else if (nseg == 4) {
                        if (coord_view_job_vertex(c, j, seg[3], &w) < 0) {
                                json_writer_finish(&w);
                                send_error(req, 404, "Vertex %s not found in job %s", seg[3], seg[1]);
                                return;
                        }
                } else {
                        coord_view_job_exceptions(c, j, &w);
                }
        }
        send_view(req, 200, &w);
        return;

not_found:
        send_error(req, 404, "Not found: %.256s", path);
        return;
not_allowed:
        send_error(req, 405, "Method not allowed on %.256s", path);
}

/* ---- connections and the entry point ------------------------------------------------ */

static void conn_closed(struct evhttp_connection *evcon, void *arg) {
        struct coord_rest *rest = arg;
        for (size_t i = 0; i < rest->n_conns; i++)
                if (rest->conns[i].evcon == evcon) {
                        rest->conns[i] = rest->conns[--rest->n_conns];
                        return;
                }
}

/* Counts the connection of req; false when REST_MAX_CONNECTIONS are open. */
static bool conn_note(struct coord_rest *rest, struct evhttp_request *req) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        if (!evcon)
                return true;
        for (size_t i = 0; i < rest->n_conns; i++)
                if (rest->conns[i].evcon == evcon)
                        return true;
        if (rest->n_conns >= REST_MAX_CONNECTIONS)
                return false;
        rest->conns[rest->n_conns++] = (struct rest_conn){.evcon = evcon, .rest = rest};
        evhttp_connection_set_closecb(evcon, conn_closed, rest);
        return true;
}

static void on_request(struct evhttp_request *req, void *arg) {
        struct coord_rest *rest = arg;
        const char *uri = evhttp_request_get_uri(req);
        if (!conn_note(rest, req)) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
                send_error(req, 503, "Too many connections (%d)", REST_MAX_CONNECTIONS);
                return;
        }
        if (!uri || strlen(uri) > REST_MAX_URI_BYTES) {
                send_error(req, 414, "URI longer than %d bytes", REST_MAX_URI_BYTES);
                return;
        }
        size_t body_bytes = evbuffer_get_length(evhttp_request_get_input_buffer(req));
        if (body_bytes > rest->c->rest_max_body_bytes) {
                send_error(req, 400, "request body: %zu bytes is over "
                           "rest.server.max-content-length (%zu bytes)", body_bytes,
                           rest->c->rest_max_body_bytes);
                return;
        }
        struct evhttp_uri *u = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT);
        const char *path = u ? evhttp_uri_get_path(u) : NULL;
        if (!path || path[0] != '/') {
                send_error(req, 400, "Bad request: malformed URI");
        } else {
                log_debug("rest: %d %s", (int)evhttp_request_get_command(req), uri);
                route(rest, req, path, evhttp_uri_get_query(u));
        }
        if (u)
                evhttp_uri_free(u);
}

static void resume_accept(evutil_socket_t fd, short what, void *arg) {
        evconnlistener_enable(arg);
}

/* accept(2) failed: out of descriptors, pause instead of spinning on a readable socket.
 * (evhttp owns the listener's callback argument, so the listener is all we get.) */
static void accept_error(struct evconnlistener *l, void *arg) {
        int e = EVUTIL_SOCKET_ERROR();
        log_warn("rest: accept failed: %s; pausing 100 ms", evutil_socket_error_to_string(e));
        evconnlistener_disable(l);
        struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
        event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, resume_accept, l, &tv);
}

int coord_rest_start(struct coord *c, char *err, size_t err_len) {
        struct coord_rest *rest = calloc(1, sizeof(*rest));
        const char *bind = cfg_string(c->cfg, CFG_REST_BIND_ADDRESS);
        int port = (int)cfg_int(c->cfg, CFG_REST_PORT);
        int r = -ENOMEM;
        if (!rest)
                goto fail;
        rest->c = c;
        rest->conns = calloc(REST_MAX_CONNECTIONS, sizeof(*rest->conns));
        rest->http = evhttp_new(c->base);
        rest->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!rest->dns)
                rest->dns = evdns_base_new(c->base, 0); /* no resolv.conf: numeric only */
        if (!rest->conns || !rest->http)
                goto fail;
        struct sockaddr_storage ss;
        int sslen = sizeof(ss);
        char addr[300];
        const char *host = bind[0] ? bind : "0.0.0.0";
        if (strchr(host, ':'))
                snprintf(addr, sizeof(addr), "[%s]:%d", host, port);
        else
                snprintf(addr, sizeof(addr), "%s:%d", host, port);
        if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
                r = -EINVAL;
                snprintf(err, err_len, "rest.bind-address: '%s' is not a numeric address", bind);
                goto fail_msg;
        }
        rest->listener = evconnlistener_new_bind(c->base, NULL, NULL,
                                                 LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                                         LEV_OPT_CLOSE_ON_EXEC,
                                                 128, (struct sockaddr *)&ss, sslen);
        if (!rest->listener) {
                r = -errno ? -errno : -EADDRINUSE;
                snprintf(err, err_len, "cannot listen for REST on %s: %s", addr, err_str(r));
                goto fail_msg;
        }
        if (!evhttp_bind_listener(rest->http, rest->listener)) {
                r = -EIO;
                snprintf(err, err_len, "cannot serve REST on %s", addr);
                goto fail_msg;
        }
        evconnlistener_set_error_cb(rest->listener, accept_error);
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        if (getsockname(evconnlistener_get_fd(rest->listener), (struct sockaddr *)&bound, &blen) == 0)
                c->rest_port = ntohs(bound.ss_family == AF_INET6
                                             ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                             : ((struct sockaddr_in *)&bound)->sin_port);
        evhttp_set_allowed_methods(rest->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PATCH |
                                                       EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                                       EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
        evhttp_set_max_headers_size(rest->http, REST_MAX_HEADERS_BYTES);
        /* evhttp answers a body over its own cap with a fixed HTML page (libevent 2.1 has
         * no hook for it), so its cap is twice the configured limit and on_request
         * refuses bodies between the two with a JSON error naming the key. Memory stays
         * bounded by the cap. */
        size_t hard_cap = c->rest_max_body_bytes > SIZE_MAX / 4 ? c->rest_max_body_bytes
                                                                : 2 * c->rest_max_body_bytes;
        evhttp_set_max_body_size(rest->http, (ev_ssize_t)hard_cap);
        evhttp_set_timeout(rest->http, REST_TIMEOUT_S);
        /* A body over the hard cap is answered 413 after reading (and dropping) the rest
         * of it, so the client sees the answer instead of a reset. */
        evhttp_set_flags(rest->http, EVHTTP_SERVER_LINGERING_CLOSE);
        evhttp_set_gencb(rest->http, on_request, rest);
        c->rest = rest;
        return 0;
fail:
        snprintf(err, err_len, "cannot start the REST server: %s", err_str(r));
fail_msg:
        c->rest = rest;
        coord_rest_stop(c);
        return r;
}

void coord_rest_stop(struct coord *c) {
        struct coord_rest *rest = c->rest;
        if (!rest)
                return;
        c->rest = NULL;
        /* Requests we still hold are freed by evhttp_free: their completions only free
         * their bookkeeping from now on. Forwarding connections go now. */
        for (struct rest_pending *p = rest->pending, *next; p; p = next) {
                next = p->next;
                p->dead = true;
                if (p->out) {
                        evhttp_connection_free(p->out);
                        free(p);
                }
        }
        rest->pending = NULL;
        if (rest->http)
                evhttp_free(rest->http); /* frees the bound listener too */
        else if (rest->listener)
                evconnlistener_free(rest->listener);
        if (rest->dns)
                evdns_base_free(rest->dns, 0);
        free(rest->conns);
        free(rest);
}
