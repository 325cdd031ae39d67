/* A blocking HTTP/1.1 client for the flinc CLI and tools: one request at a time on a
 * libevent loop (evhttp), waited for with a deadline. The CLI is a short-lived process
 * with nothing else to do while it waits, so blocking here is the simple and right
 * thing; daemons never use this. Host names are resolved with getaddrinfo (so
 * /etc/hosts applies). */
#pragma once

#include <stddef.h>

struct event_base;

/* Bodies larger than this are refused (the request fails with -EFBIG). */
#define CLI_HTTP_MAX_BODY_BYTES ((size_t)64 << 20)

struct cli_http_response {
        int status;  /* HTTP status code */
        char *body;  /* malloc'ed, NUL-terminated (the NUL is not counted in len) */
        size_t len;
};

/* Sends one request to base_url ("http://host:port", an optional trailing '/' is fine)
 * + path (starting with '/', may hold a query string) and waits at most timeout_ms for
 * the whole answer. body may be NULL (no body); content_type is sent with a body.
 * Returns 0 with *ret filled (whatever the status: 4xx and 5xx are answers too), or a
 * negative errno with a one-line reason in err: -EINVAL (a bad URL), -ECONNREFUSED (no
 * connection), -ECONNRESET (the peer closed the connection before answering: the
 * request may have been applied), -ETIMEDOUT, -EFBIG (answer over
 * CLI_HTTP_MAX_BODY_BYTES), -EPROTO (not HTTP), -ENOMEM. *ret is untouched on failure;
 * free a filled one with cli_http_response_finish(). The loop must have nothing else
 * to run: it is dispatched until this request ends. */
int cli_http_request(struct event_base *base, const char *base_url, const char *method,
                     const char *path, const char *body, size_t body_len,
                     const char *content_type, int timeout_ms, struct cli_http_response *ret,
                     char *err, size_t err_len);

/* Frees the body; r may be NULL or already finished. */
void cli_http_response_finish(struct cli_http_response *r);

/* Splits "http://host:port[/]" (IPv6 hosts in brackets) into host (without brackets)
 * and port (80 when absent). 0 or -EINVAL. */
int cli_http_parse_base_url(const char *url, char *host, size_t host_len, int *ret_port);
