/* How the CLI reaches a flinc cluster (DESIGN.md "Processes and threads": client tools
 * find the leader through ZooKeeper or, without ZooKeeper access, through any
 * coordinator's REST port):
 *   1. `-m host:port`: that coordinator's REST API (a standby forwards to the leader);
 *   2. else, with high-availability: zookeeper in the conf, the leader node
 *      <root>/<cluster>/leader in ZooKeeper (its REST url);
 *   3. else, or when ZooKeeper cannot be asked, GET /ha on each `host:webport` of
 *      conf/masters until one names the leader.
 * REST calls go to the address found; when it stops answering (or answers 503 during an
 * election) the leader is looked up again and the call retried, until a deadline. When
 * nothing answers at all (no ZooKeeper, every coordinator refuses) a call fails at once:
 * there is no cluster to wait for. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/cli/http.h"
#include "tools/cli/jsonv.h"

struct cfg;
struct event_base;

#define CLI_URL_MAX 320

struct cli_cluster {
        struct event_base *base;
        const struct cfg *cfg;    /* the conf (defaults when there is no conf file) */
        const char *conf_dir;     /* NULL when there is no conf dir */
        const char *jobmanager;   /* -m host:port, or NULL */
        int request_timeout_ms;   /* one HTTP request */
        int retry_ms;             /* how long calls retry through failovers */
        char rest_url[CLI_URL_MAX]; /* the current target; "" until found */
        bool had_target;          /* a coordinator answered once: keep trying */
};

/* What is known of the leader. */
struct cli_leader {
        char id[128];
        uint64_t epoch;
        char rest_url[CLI_URL_MAX];
        char rpc[256];
        char source[CLI_URL_MAX + 64]; /* how it was found, for people */
};

/* Finds the leader as described above and makes its REST url the target. 0 and *ret,
 * or a negative errno with the reasons of every way tried in err. */
int cli_cluster_find_leader(struct cli_cluster *c, struct cli_leader *ret, char *err,
                            size_t err_len);

/* One REST call with the retries described above. 0 with *ret filled (any status but
 * 503, or a 503 after the deadline), or a negative errno and err. */
int cli_cluster_call(struct cli_cluster *c, const char *method, const char *path,
                     const char *body, size_t body_len, const char *content_type,
                     struct cli_http_response *ret, char *err, size_t err_len);

/* cli_cluster_call and the answer parsed as JSON: 0, *ret_status and *ret_json (free
 * with cli_json_free; NULL when the body is empty or not JSON). */
int cli_cluster_call_json(struct cli_cluster *c, const char *method, const char *path,
                          const char *body, size_t body_len, const char *content_type,
                          int *ret_status, struct cli_json **ret_json, char *err,
                          size_t err_len);

/* Waits ms milliseconds (the pause between the polls and retries of the CLI's deadline
 * loops), resumed after a signal. */
void cli_pause_ms(int ms);

/* The `errors` of a Flink-style error answer ({"errors": ["...", ...]}) joined with
 * "; ", or the raw body (cut) when it has none. Writes into buf. */
void cli_rest_errors(const struct cli_json *json, const char *body, char *buf, size_t len);

/* Turns "host:port", "[v6]:port" or "http://host:port" into "http://host:port". 0 or
 * -EINVAL (why in err). */
int cli_rest_url_from_address(const char *address, char *url, size_t url_len, char *err,
                              size_t err_len);
