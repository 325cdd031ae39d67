/* A blocking HTTP client on evhttp for the CLI (see http.h). */
#include "tools/cli/http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

struct http_call {
        struct event_base *base;
        bool done;
        bool timed_out;
        bool have_req_error;
        enum evhttp_request_error req_error;
        int status;
        char *body;
        size_t len;
        int err; /* 0, or why there is no answer */
};

int cli_http_parse_base_url(const char *url, char *host, size_t host_len, int *ret_port) {
        struct evhttp_uri *u = evhttp_uri_parse(url);
        if (!u)
                return -EINVAL;
        const char *scheme = evhttp_uri_get_scheme(u);
        const char *h = evhttp_uri_get_host(u);
        int port = evhttp_uri_get_port(u);
        int r = 0;
        if (!scheme || strcmp(scheme, "http") != 0 || !h || !h[0]) {
                r = -EINVAL;
                goto out;
        }
        size_t n = strlen(h);
        if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
                h++;
                n -= 2;
        }
        if (n + 1 > host_len) {
                r = -EINVAL;
                goto out;
        }
        memcpy(host, h, n);
        host[n] = '\0';
        *ret_port = port < 0 ? 80 : port;
out:
        evhttp_uri_free(u);
        return r;
}

static const char *req_error_text(enum evhttp_request_error e) {
        switch (e) {
        case EVREQ_HTTP_TIMEOUT:
                return "timed out";
        case EVREQ_HTTP_EOF:
                return "the connection closed before an answer";
        case EVREQ_HTTP_INVALID_HEADER:
                return "the answer is not valid HTTP";
        case EVREQ_HTTP_BUFFER_ERROR:
                return "connection failed";
        case EVREQ_HTTP_REQUEST_CANCEL:
                return "request canceled";
        case EVREQ_HTTP_DATA_TOO_LONG:
                return "the answer is too large";
        }
        return "request failed";
}

static void on_req_error(enum evhttp_request_error e, void *arg) {
        struct http_call *call = arg;
        call->have_req_error = true;
        call->req_error = e;
}

static void on_done(struct evhttp_request *req, void *arg) {
        struct http_call *call = arg;
        if (call->done)
                return;
        call->done = true;
        int status = req ? evhttp_request_get_response_code(req) : 0;
        if (status <= 0) {
                call->err = -ECONNREFUSED;
                if (call->have_req_error) {
                        switch (call->req_error) {
                        case EVREQ_HTTP_TIMEOUT:
                                call->err = -ETIMEDOUT;
                                break;
                        case EVREQ_HTTP_INVALID_HEADER:
                                call->err = -EPROTO;
                                break;
                        case EVREQ_HTTP_DATA_TOO_LONG:
                                call->err = -EFBIG;
                                break;
                        case EVREQ_HTTP_EOF:
                                /* sent, maybe applied, not answered */
                                call->err = -ECONNRESET;
                                break;
                        default:
                                break;
                        }
                }
        } else {
                struct evbuffer *in = evhttp_request_get_input_buffer(req);
                size_t len = evbuffer_get_length(in);
                char *body = malloc(len + 1);
                if (!body) {
                        call->err = -ENOMEM;
                } else {
                        evbuffer_copyout(in, body, len);
                        body[len] = '\0';
                        call->status = status;
                        call->body = body;
                        call->len = len;
                }
        }
        event_base_loopbreak(call->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        struct http_call *call = arg;
        call->timed_out = true;
        event_base_loopbreak(call->base);
}

int cli_http_request(struct event_base *base, const char *base_url, const char *method,
                     const char *path, const char *body, size_t body_len,
                     const char *content_type, int timeout_ms, struct cli_http_response *ret,
                     char *err, size_t err_len) {
        char host[256];
        int port;
        enum evhttp_cmd_type cmd;
        if (strcmp(method, "GET") == 0)
                cmd = EVHTTP_REQ_GET;
        else if (strcmp(method, "POST") == 0)
                cmd = EVHTTP_REQ_POST;
        else if (strcmp(method, "PATCH") == 0)
                cmd = EVHTTP_REQ_PATCH;
        else if (strcmp(method, "DELETE") == 0)
                cmd = EVHTTP_REQ_DELETE;
        else if (strcmp(method, "PUT") == 0)
                cmd = EVHTTP_REQ_PUT;
        else {
                snprintf(err, err_len, "unsupported HTTP method %s", method);
                return -EINVAL;
        }
        if (cli_http_parse_base_url(base_url, host, sizeof(host), &port) < 0 || port <= 0 ||
            port > 65535 || !path || path[0] != '/') {
                snprintf(err, err_len, "'%.200s%.200s' is not an http:// URL", base_url,
                         path ? path : "");
                return -EINVAL;
        }

        struct http_call call = {.base = base};
        struct evhttp_connection *conn = NULL;
        struct event *deadline = NULL;
        int r;
        conn = evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
        struct evhttp_request *req = conn ? evhttp_request_new(on_done, &call) : NULL;
        deadline = evtimer_new(base, on_deadline, &call);
        if (!conn || !req || !deadline) {
                if (req)
                        evhttp_request_free(req);
                r = -ENOMEM;
                snprintf(err, err_len, "out of memory");
                goto out;
        }
        evhttp_request_set_error_cb(req, on_req_error);
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        evhttp_connection_set_timeout_tv(conn, &tv);
        evhttp_connection_set_max_body_size(conn, (ev_ssize_t)CLI_HTTP_MAX_BODY_BYTES);
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        char hosthdr[300];
        if (strchr(host, ':'))
                snprintf(hosthdr, sizeof(hosthdr), "[%s]:%d", host, port);
        else
                snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);
        evhttp_add_header(h, "Host", hosthdr);
        evhttp_add_header(h, "Accept", "application/json");
        evhttp_add_header(h, "Connection", "close");
        evhttp_add_header(h, "User-Agent", "flinc-cli");
        if (body) {
                evhttp_add_header(h, "Content-Type",
                                  content_type ? content_type : "application/json");
                if (evbuffer_add(evhttp_request_get_output_buffer(req), body, body_len) < 0) {
                        evhttp_request_free(req);
                        r = -ENOMEM;
                        snprintf(err, err_len, "out of memory");
                        goto out;
                }
        }
        if (evhttp_make_request(conn, req, cmd, path) < 0) {
                /* req was freed */
                r = -ECONNREFUSED;
                snprintf(err, err_len, "cannot send %s %s to %s", method, path, base_url);
                goto out;
        }
        evtimer_add(deadline, &tv);
        while (!call.done && !call.timed_out) {
                if (event_base_dispatch(base) < 0)
                        break;
                if (!call.done && !call.timed_out && !event_base_got_break(base))
                        break; /* nothing left to run: should not happen */
        }
        if (!call.done) {
                call.done = true; /* a late callback (from the free below) is ignored */
                r = -ETIMEDOUT;
                snprintf(err, err_len, "%s %s%s: no answer within %d ms", method, base_url, path,
                         timeout_ms);
                goto out;
        }
        if (call.err < 0) {
                r = call.err;
                const char *why = call.have_req_error ? req_error_text(call.req_error)
                                                      : "connection refused or closed";
                snprintf(err, err_len, "%s %s%s: %s", method, base_url, path, why);
                goto out;
        }
        ret->status = call.status;
        ret->body = call.body;
        ret->len = call.len;
        call.body = NULL;
        r = 0;
out:
        if (deadline)
                event_free(deadline);
        if (conn)
                evhttp_connection_free(conn);
        free(call.body);
        return r;
}

void cli_http_response_finish(struct cli_http_response *r) {
        if (!r)
                return;
        free(r->body);
        r->body = NULL;
        r->len = 0;
}
