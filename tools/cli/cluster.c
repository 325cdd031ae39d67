/* Finding the leader and calling the REST API through failovers (see cluster.h). */
#include "tools/cli/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/hosts.h"
#include "ha/payload.h"
#include "ha/zk.h"

/* ---- addresses ---- */

int cli_rest_url_from_address(const char *address, char *url, size_t url_len, char *err,
                              size_t err_len) {
        char why[256];
        struct hosts_entry e;
        const char *a = address;
        if (strncmp(a, "http://", 7) == 0) {
                a += 7;
                size_t n = strlen(a);
                char tmp[300];
                if (n == 0 || n >= sizeof(tmp)) {
                        snprintf(err, err_len, "'%.100s' is not host:port", address);
                        return -EINVAL;
                }
                memcpy(tmp, a, n + 1);
                if (tmp[n - 1] == '/')
                        tmp[n - 1] = '\0';
                if (hosts_parse_hostport(tmp, HOSTS_DEFAULT_WEB_PORT, &e, why, sizeof(why)) < 0) {
                        snprintf(err, err_len, "'%.100s': %s", address, why);
                        return -EINVAL;
                }
        } else if (hosts_parse_hostport(a, HOSTS_DEFAULT_WEB_PORT, &e, why, sizeof(why)) < 0) {
                snprintf(err, err_len, "'%.100s': %s", address, why);
                return -EINVAL;
        }
        int n = strchr(e.host, ':') ? snprintf(url, url_len, "http://[%s]:%u", e.host, e.port)
                                    : snprintf(url, url_len, "http://%s:%u", e.host, e.port);
        if (n < 0 || (size_t)n >= url_len) {
                snprintf(err, err_len, "'%.100s' is too long", address);
                return -EINVAL;
        }
        return 0;
}

void cli_rest_errors(const struct cli_json *json, const char *body, char *buf, size_t len) {
        const struct cli_json *errs = cli_json_get(json, "errors");
        size_t used = 0;
        buf[0] = '\0';
        if (errs && errs->type == CLI_JSON_ARRAY) {
                for (size_t i = 0; i < errs->len && used + 1 < len; i++) {
                        const char *s = cli_json_str(&errs->items[i]);
                        if (!s)
                                continue;
                        int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", s);
                        if (n < 0)
                                break;
                        used += (size_t)n < len - used ? (size_t)n : len - used - 1;
                }
        }
        if (used == 0)
                snprintf(buf, len, "%.300s", body && body[0] ? body : "(no details)");
}

/* ---- ZooKeeper ---- */

struct zk_lookup {
        struct event_base *base;
        const char *path;
        bool requested;
        bool done;
        int r;
        struct ha_leader_info li;
        char why[256];
};

static void zk_quiet_log(const char *message) {
        if (getenv("FLINC_CLI_DEBUG"))
                fprintf(stderr, "zookeeper: %s\n", message);
}

static void zk_finish(struct zk_lookup *lk, int r) {
        if (lk->done)
                return;
        lk->done = true;
        lk->r = r;
        event_base_loopbreak(lk->base);
}

static void zk_on_data(int rc, const char *value, int value_len, const struct Stat *stat,
                       const void *data) {
        (void)stat;
        struct zk_lookup *lk = (struct zk_lookup *)data;
        if (lk->done)
                return;
        if (rc == ZNONODE) {
                snprintf(lk->why, sizeof(lk->why), "ZooKeeper has no %s: no leader is elected",
                         lk->path);
                zk_finish(lk, -ENOENT);
                return;
        }
        if (rc != ZOK) {
                if (ha_zk_outcome_unknown(rc) || rc == ZSESSIONEXPIRED) {
                        lk->requested = false; /* asked again on the next connection */
                        return;
                }
                snprintf(lk->why, sizeof(lk->why), "reading %s: ZooKeeper error %d", lk->path, rc);
                zk_finish(lk, ha_zk_error(rc));
                return;
        }
        char why[200];
        if (ha_leader_decode(value, value_len > 0 ? (size_t)value_len : 0, &lk->li, why,
                             sizeof(why)) < 0) {
                snprintf(lk->why, sizeof(lk->why), "%s: %s", lk->path, why);
                zk_finish(lk, -EBADMSG);
                return;
        }
        zk_finish(lk, 0);
}

static void zk_ask(struct ha_zk *zk, struct zk_lookup *lk) {
        if (lk->requested || lk->done)
                return;
        int r = ha_zk_aget(zk, lk->path, false, zk_on_data, lk);
        if (r == 0)
                lk->requested = true;
}

static void zk_on_event(struct ha_zk *zk, const struct ha_zk_event *ev, void *userdata) {
        struct zk_lookup *lk = userdata;
        if (ev->type == HA_ZK_EVENT_CONNECTED) {
                zk_ask(zk, lk);
        } else if (ev->type == HA_ZK_EVENT_AUTH_FAILED) {
                snprintf(lk->why, sizeof(lk->why),
                         "ZooKeeper refused high-availability.zookeeper.auth.digest");
                zk_finish(lk, -EACCES);
        }
}

static void zk_on_timeout(evutil_socket_t fd, short what, void *arg) {
        (void)fd;
        (void)what;
        zk_finish(arg, -ETIMEDOUT);
}

static int find_in_zookeeper(struct cli_cluster *c, struct cli_leader *ret, char *why,
                             size_t why_len) {
        const char *quorum = cfg_string(c->cfg, CFG_HA_ZK_QUORUM);
        char path[700];
        snprintf(path, sizeof(path), "%s/%s/leader", cfg_string(c->cfg, CFG_HA_ZK_PATH_ROOT),
                 cfg_string(c->cfg, CFG_HA_CLUSTER_ID));
        const char *digest = cfg_string(c->cfg, CFG_HA_ZK_AUTH_DIGEST);
        struct ha_zk_options zo = {
                .session_timeout_ms = (int)cfg_int(c->cfg, CFG_HA_ZK_SESSION_TIMEOUT),
                .digest = digest[0] ? digest : NULL,
                .acl = HA_ZK_ACL_OPEN,
                .client_log = zk_quiet_log,
        };
        struct zk_lookup lk = {.base = c->base, .path = path};
        struct ha_zk *zk = NULL;
        int64_t timeout_ms = cfg_int(c->cfg, CFG_HA_ZK_CONNECTION_TIMEOUT);
        struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                             .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
        struct event *timer = evtimer_new(c->base, zk_on_timeout, &lk);
        int r = timer ? ha_zk_create(c->base, quorum, &zo, zk_on_event, &lk, &zk) : -ENOMEM;
        if (r < 0) {
                snprintf(why, why_len, "ZooKeeper %s: cannot start a session (%s)", quorum,
                         strerror(-r));
                goto out;
        }
        evtimer_add(timer, &tv);
        while (!lk.done) {
                if (event_base_dispatch(c->base) < 0)
                        break;
        }
        r = lk.done ? lk.r : -EIO;
        if (r == -ETIMEDOUT)
                snprintf(why, why_len, "ZooKeeper %s: no answer within %" PRId64 " ms "
                         "(high-availability.zookeeper.client.connection-timeout)", quorum,
                         timeout_ms);
        else if (r < 0)
                snprintf(why, why_len, "%s", lk.why);
        if (r == 0) {
                memset(ret, 0, sizeof(*ret));
                snprintf(ret->id, sizeof(ret->id), "%s", lk.li.id);
                ret->epoch = lk.li.epoch;
                snprintf(ret->rest_url, sizeof(ret->rest_url), "%s", lk.li.rest);
                snprintf(ret->rpc, sizeof(ret->rpc), "%s", lk.li.rpc);
                snprintf(ret->source, sizeof(ret->source), "zookeeper %.100s %.250s", quorum, path);
        }
out:
        ha_zk_destroy(zk);
        if (timer)
                event_free(timer);
        return r;
}

/* ---- REST /ha ---- */

/* GET /ha on url: the leader it names. */
static int find_via_rest(struct cli_cluster *c, const char *url, struct cli_leader *ret,
                         char *why, size_t why_len) {
        struct cli_http_response resp = {0};
        struct cli_json *j = NULL;
        char err[512];
        int r = cli_http_request(c->base, url, "GET", "/ha", NULL, 0, NULL, c->request_timeout_ms,
                                 &resp, err, sizeof(err));
        if (r < 0) {
                snprintf(why, why_len, "%s", err);
                return r;
        }
        if (resp.status != 200) {
                cli_json_parse(resp.body, resp.len, &j, NULL, 0);
                cli_rest_errors(j, resp.body, err, sizeof(err));
                snprintf(why, why_len, "GET %s/ha: %d: %s", url, resp.status, err);
                r = resp.status == 503 ? -EAGAIN : -EPROTO;
                goto out;
        }
        if (cli_json_parse(resp.body, resp.len, &j, err, sizeof(err)) < 0) {
                snprintf(why, why_len, "GET %s/ha: %s", url, err);
                r = -EPROTO;
                goto out;
        }
        const struct cli_json *leader = cli_json_get(j, "leader");
        const char *rest = cli_json_str(cli_json_get(leader, "rest-url"));
        if (!rest || !rest[0]) {
                snprintf(why, why_len, "GET %s/ha: no leader is known (role %s)", url,
                         cli_json_str(cli_json_get(j, "role")) ? cli_json_str(cli_json_get(j, "role"))
                                                               : "?");
                r = -EAGAIN;
                goto out;
        }
        int64_t epoch = 0;
        cli_json_int(cli_json_get(leader, "epoch"), &epoch);
        memset(ret, 0, sizeof(*ret));
        snprintf(ret->id, sizeof(ret->id), "%s",
                 cli_json_str(cli_json_get(leader, "id")) ? cli_json_str(cli_json_get(leader, "id"))
                                                          : "");
        ret->epoch = (uint64_t)epoch;
        snprintf(ret->rest_url, sizeof(ret->rest_url), "%s", rest);
        const char *rpc = cli_json_str(cli_json_get(leader, "rpc-address"));
        snprintf(ret->rpc, sizeof(ret->rpc), "%s", rpc ? rpc : "");
        snprintf(ret->source, sizeof(ret->source), "rest %s/ha", url);
        r = 0;
out:
        cli_json_free(j);
        cli_http_response_finish(&resp);
        return r;
}

static size_t append(char *buf, size_t len, size_t used, const char *text) {
        if (used + 1 >= len)
                return used;
        int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", text);
        if (n < 0)
                return used;
        return used + ((size_t)n < len - used ? (size_t)n : len - used - 1);
}

int cli_cluster_find_leader(struct cli_cluster *c, struct cli_leader *ret, char *err,
                            size_t err_len) {
        char why[600];
        size_t used = 0;
        int r;
        err[0] = '\0';
        if (c->jobmanager) {
                char url[CLI_URL_MAX];
                if ((r = cli_rest_url_from_address(c->jobmanager, url, sizeof(url), why,
                                                   sizeof(why))) < 0) {
                        snprintf(err, err_len, "-m %s", why);
                        return r;
                }
                if ((r = find_via_rest(c, url, ret, why, sizeof(why))) < 0) {
                        snprintf(err, err_len, "%s", why);
                        return r;
                }
                snprintf(c->rest_url, sizeof(c->rest_url), "%s", url);
                return 0;
        }
        /* A cluster that is there but has no reachable leader yet (an election, a
         * failover) is worth waiting for; one that nothing answers for is not. */
        bool alive = false;
        if (strcmp(cfg_string(c->cfg, CFG_HIGH_AVAILABILITY), "zookeeper") == 0 &&
            cfg_string(c->cfg, CFG_HA_ZK_QUORUM)[0]) {
                if ((r = find_in_zookeeper(c, ret, why, sizeof(why))) == 0) {
                        snprintf(c->rest_url, sizeof(c->rest_url), "%s", ret->rest_url);
                        return 0;
                }
                alive = r == -ENOENT;
                used = append(err, err_len, used, why);
        }
        if (!c->conf_dir) {
                used = append(err, err_len, used,
                              "no conf dir (set FLINC_CONF_DIR or --configDir) and no -m host:port");
                return -ENOENT;
        }
        char path[4096];
        struct hosts_entry *masters = NULL;
        size_t n = 0;
        snprintf(path, sizeof(path), "%s/masters", c->conf_dir);
        if ((r = hosts_parse_masters(path, &masters, &n, why, sizeof(why))) < 0) {
                append(err, err_len, used, why);
                return r;
        }
        if (n == 0) {
                snprintf(why, sizeof(why), "%.500s lists no coordinators", path);
                append(err, err_len, used, why);
                return -ENOENT;
        }
        r = -ENOENT;
        for (size_t i = 0; i < n; i++) {
                char url[CLI_URL_MAX];
                if (strchr(masters[i].host, ':'))
                        snprintf(url, sizeof(url), "http://[%s]:%u", masters[i].host, masters[i].port);
                else
                        snprintf(url, sizeof(url), "http://%s:%u", masters[i].host, masters[i].port);
                if ((r = find_via_rest(c, url, ret, why, sizeof(why))) == 0) {
                        snprintf(c->rest_url, sizeof(c->rest_url), "%s", ret->rest_url);
                        break;
                }
                alive = alive || r == -EAGAIN || r == -EPROTO;
                used = append(err, err_len, used, why);
        }
        free(masters);
        if (r < 0 && alive)
                r = -EAGAIN;
        return r;
}

/* ---- calls with retries ---- */

void cli_pause_ms(int ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
}

int cli_cluster_call(struct cli_cluster *c, const char *method, const char *path,
                     const char *body, size_t body_len, const char *content_type,
                     struct cli_http_response *ret, char *err, size_t err_len) {
        uint64_t deadline_us = clock_mono_us() + (uint64_t)c->retry_ms * 1000u;
        bool idempotent = strcmp(method, "GET") == 0;
        int wait_ms = 50;
        for (;;) {
                int r = 0;
                if (!c->rest_url[0]) {
                        struct cli_leader l;
                        if (c->jobmanager)
                                r = cli_rest_url_from_address(c->jobmanager, c->rest_url,
                                                              sizeof(c->rest_url), err, err_len);
                        else
                                r = cli_cluster_find_leader(c, &l, err, err_len);
                        /* Nothing answers at all: no cluster to wait for (unless one
                         * answered before: then a failover is under way). */
                        if (r < 0 && r != -EAGAIN && !c->had_target)
                                return r;
                }
                if (r == 0) {
                        struct cli_http_response resp = {0};
                        r = cli_http_request(c->base, c->rest_url, method, path, body, body_len,
                                             content_type, c->request_timeout_ms, &resp, err,
                                             err_len);
                        if (r == 0 && resp.status == 503 && clock_mono_us() < deadline_us) {
                                /* an election is under way: nothing was done; ask again */
                                snprintf(err, err_len, "%s %s%s: 503 (leader election)", method,
                                         c->rest_url, path);
                                cli_http_response_finish(&resp);
                                r = -EAGAIN;
                        } else if (r == 0) {
                                c->had_target = true;
                                *ret = resp;
                                return 0;
                        } else if (!c->had_target && c->jobmanager) {
                                return r; /* -m names a coordinator that does not answer */
                        }
                        /* A call that was sent but not answered (-ECONNRESET, -ETIMEDOUT)
                         * may have been applied: only reads are sent again. */
                        if (!idempotent && r != -EAGAIN && r != -ECONNREFUSED)
                                return r;
                        c->had_target = true;
                        if (!c->jobmanager)
                                c->rest_url[0] = '\0'; /* look the leader up again */
                }
                if (clock_mono_us() >= deadline_us)
                        return r;
                cli_pause_ms(wait_ms);
                if (wait_ms < 500)
                        wait_ms *= 2;
        }
}

int cli_cluster_call_json(struct cli_cluster *c, const char *method, const char *path,
                          const char *body, size_t body_len, const char *content_type,
                          int *ret_status, struct cli_json **ret_json, char *err,
                          size_t err_len) {
        struct cli_http_response resp = {0};
        int r = cli_cluster_call(c, method, path, body, body_len, content_type, &resp, err,
                                 err_len);
        if (r < 0)
                return r;
        struct cli_json *j = NULL;
        if (resp.len > 0 && cli_json_parse(resp.body, resp.len, &j, NULL, 0) < 0)
                j = NULL;
        if (!j && resp.status / 100 != 2) {
                /* keep the raw text for the error message */
                snprintf(err, err_len, "%.300s", resp.body);
        }
        *ret_status = resp.status;
        *ret_json = j;
        cli_http_response_finish(&resp);
        return 0;
}
