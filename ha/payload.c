/* Envelope + msgpack codecs for the ZooKeeper payloads of ha/. Pure functions: no I/O. */
#include "ha/payload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>

#include "common/err.h"
#include "common/envelope.h"
#include "common/msg.h"

#define PAYLOAD_VERSION 1

const char *ha_job_state_name(enum ha_job_state s) {
        switch (s) {
        case HA_JOB_FINISHED:
                return "FINISHED";
        case HA_JOB_CANCELED:
                return "CANCELED";
        case HA_JOB_FAILED:
                return "FAILED";
        }
        return "UNKNOWN";
}

int ha_job_state_parse(const char *s, enum ha_job_state *ret) {
        static const enum ha_job_state all[] = {HA_JOB_FINISHED, HA_JOB_CANCELED, HA_JOB_FAILED};
        for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++)
                if (strcasecmp(s, ha_job_state_name(all[i])) == 0) {
                        *ret = all[i];
                        return 0;
                }
        return -EINVAL;
}

/* Packs a body with the packer callback, then wraps it in an envelope of kind. */
static int wrap_body(const char *kind, msgpack_sbuffer *sb, char **ret_data, size_t *ret_len) {
        int r = sb->data ? envelope_wrap(kind, PAYLOAD_VERSION, sb->data, sb->size, ret_data,
                                         ret_len)
                         : -ENOMEM;
        msgpack_sbuffer_destroy(sb);
        return r;
}

static bool fits(const char *s, size_t max) {
        return s && strnlen(s, max) < max;
}

int ha_candidate_encode(const struct ha_candidate_info *c, char **ret_data, size_t *ret_len) {
        if (!fits(c->id, HA_NAME_MAX) || !fits(c->host, HA_ADDR_MAX) ||
            !fits(c->rpc, HA_ADDR_MAX) || !fits(c->rest, HA_ADDR_MAX) || !fits(c->token, 33))
                return -ENAMETOOLONG;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        msg_pack_kv_str(&pk, "id", c->id);
        msg_pack_kv_str(&pk, "host", c->host);
        msg_pack_kv_str(&pk, "rpc", c->rpc);
        msg_pack_kv_str(&pk, "rest", c->rest);
        msg_pack_kv_str(&pk, "token", c->token);
        return wrap_body(HA_KIND_CANDIDATE, &sb, ret_data, ret_len);
}

int ha_leader_encode(const struct ha_leader_info *l, char **ret_data, size_t *ret_len) {
        if (!fits(l->id, HA_NAME_MAX) || !fits(l->rpc, HA_ADDR_MAX) || !fits(l->rest, HA_ADDR_MAX))
                return -ENAMETOOLONG;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        msg_pack_kv_u64(&pk, "epoch", l->epoch);
        msg_pack_kv_str(&pk, "id", l->id);
        msg_pack_kv_str(&pk, "rpc", l->rpc);
        msg_pack_kv_str(&pk, "rest", l->rest);
        msg_pack_kv_i64(&pk, "session", l->session_id);
        return wrap_body(HA_KIND_LEADER, &sb, ret_data, ret_len);
}

static const char *u64_key(const char *kind) {
        return strcmp(kind, HA_KIND_EPOCH) == 0 ? "epoch" : "value";
}

int ha_u64_encode(const char *kind, uint64_t value, char **ret_data, size_t *ret_len) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msg_pack_kv_u64(&pk, u64_key(kind), value);
        return wrap_body(kind, &sb, ret_data, ret_len);
}

int ha_pointer_encode(const char *kind, const struct ha_pointer *p, char **ret_data,
                      size_t *ret_len) {
        if (!fits(p->path, HA_URI_MAX))
                return -ENAMETOOLONG;
        bool chk = strcmp(kind, HA_KIND_CHECKPOINT) == 0;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, chk ? 4 : 3);
        msg_pack_kv_str(&pk, "path", p->path);
        msg_pack_kv_u64(&pk, "size", p->size_bytes);
        msg_pack_kv_u64(&pk, "crc", p->crc);
        if (chk)
                msg_pack_kv_u64(&pk, "id", p->id);
        return wrap_body(kind, &sb, ret_data, ret_len);
}

int ha_job_result_encode(const struct ha_job_result *res, char **ret_data, size_t *ret_len) {
        if (!fits(res->job, HA_NAME_MAX))
                return -ENAMETOOLONG;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        msg_pack_kv_str(&pk, "job", res->job);
        msg_pack_kv_str(&pk, "state", ha_job_state_name(res->state));
        msg_pack_kv_i64(&pk, "end_ms", res->end_time_ms);
        msg_pack_kv_u64(&pk, "epoch", res->epoch);
        return wrap_body(HA_KIND_JOB_RESULT, &sb, ret_data, ret_len);
}

/* An unwrapped body and its unpacked root map. Strings and bins of the map point into
 * body (msgpack_unpack_next does not copy them), so both live until body_close(). */
struct body {
        char *data;
        msgpack_unpacked up;
};

static void body_close(struct body *b) {
        msgpack_unpacked_destroy(&b->up);
        free(b->data);
        b->data = NULL;
}

/* Unwraps the envelope and unpacks its body; the root must be a map. */
static int open_body(const char *kind, const void *data, size_t len, struct body *b,
                     char *err, size_t err_len) {
        size_t body_len = 0;
        b->data = NULL;
        int r = envelope_unwrap(data, len, kind, PAYLOAD_VERSION, &b->data, &body_len, NULL,
                                err, err_len);
        if (r < 0)
                return r;
        size_t off = 0;
        msgpack_unpacked_init(&b->up);
        msgpack_unpack_return ur = msgpack_unpack_next(&b->up, b->data, body_len, &off);
        if (ur != MSGPACK_UNPACK_SUCCESS || b->up.data.type != MSGPACK_OBJECT_MAP ||
            off != body_len) {
                body_close(b);
                return err_set(err, err_len, -EBADMSG, "%s body is not a msgpack map", kind);
        }
        return 0;
}

/* A string field into a fixed buffer, with a reason naming the field on failure. */
static int get_str(const msgpack_object *map, const char *kind, const char *key, char *buf,
                   size_t buf_len, char *err, size_t err_len) {
        int r = msg_get_strbuf(map, key, buf, buf_len);
        if (r == -ENOENT)
                return err_set(err, err_len, -EBADMSG, "%s: field '%s' is missing", kind, key);
        if (r == -ENAMETOOLONG)
                return err_set(err, err_len, -EBADMSG, "%s: field '%s' is longer than %zu bytes",
                            kind, key, buf_len - 1);
        if (r < 0)
                return err_set(err, err_len, -EBADMSG, "%s: field '%s' is not a string", kind, key);
        return 0;
}

static int get_u64(const msgpack_object *map, const char *kind, const char *key, uint64_t *ret,
                   char *err, size_t err_len) {
        int r = msg_get_u64(map, key, ret);
        if (r == -ENOENT)
                return err_set(err, err_len, -EBADMSG, "%s: field '%s' is missing", kind, key);
        if (r < 0)
                return err_set(err, err_len, -EBADMSG, "%s: field '%s' is not an unsigned integer",
                            kind, key);
        return 0;
}

static int get_i64(const msgpack_object *map, const char *kind, const char *key, int64_t *ret,
                   char *err, size_t err_len) {
        int r = msg_get_i64(map, key, ret);
        if (r == -ENOENT)
                return err_set(err, err_len, -EBADMSG, "%s: field '%s' is missing", kind, key);
        if (r < 0)
                return err_set(err, err_len, -EBADMSG, "%s: field '%s' is not an integer", kind, key);
        return 0;
}

int ha_candidate_decode(const void *data, size_t len, struct ha_candidate_info *ret, char *err,
                        size_t err_len) {
        const char *k = HA_KIND_CANDIDATE;
        struct body b;
        int r = open_body(k, data, len, &b, err, err_len);
        if (r < 0)
                return r;
        struct ha_candidate_info c;
        const msgpack_object *m = &b.up.data;
        if ((r = get_str(m, k, "id", c.id, sizeof(c.id), err, err_len)) < 0 ||
            (r = get_str(m, k, "host", c.host, sizeof(c.host), err, err_len)) < 0 ||
            (r = get_str(m, k, "rpc", c.rpc, sizeof(c.rpc), err, err_len)) < 0 ||
            (r = get_str(m, k, "rest", c.rest, sizeof(c.rest), err, err_len)) < 0 ||
            (r = get_str(m, k, "token", c.token, sizeof(c.token), err, err_len)) < 0)
                goto out;
        *ret = c;
out:
        body_close(&b);
        return r;
}

int ha_leader_decode(const void *data, size_t len, struct ha_leader_info *ret, char *err,
                     size_t err_len) {
        const char *k = HA_KIND_LEADER;
        struct body b;
        int r = open_body(k, data, len, &b, err, err_len);
        if (r < 0)
                return r;
        struct ha_leader_info l;
        const msgpack_object *m = &b.up.data;
        if ((r = get_u64(m, k, "epoch", &l.epoch, err, err_len)) < 0 ||
            (r = get_str(m, k, "id", l.id, sizeof(l.id), err, err_len)) < 0 ||
            (r = get_str(m, k, "rpc", l.rpc, sizeof(l.rpc), err, err_len)) < 0 ||
            (r = get_str(m, k, "rest", l.rest, sizeof(l.rest), err, err_len)) < 0 ||
            (r = get_i64(m, k, "session", &l.session_id, err, err_len)) < 0)
                goto out;
        *ret = l;
out:
        body_close(&b);
        return r;
}

int ha_u64_decode(const char *kind, const void *data, size_t len, uint64_t *ret, char *err,
                  size_t err_len) {
        struct body b;
        int r = open_body(kind, data, len, &b, err, err_len);
        if (r < 0)
                return r;
        uint64_t v;
        r = get_u64(&b.up.data, kind, u64_key(kind), &v, err, err_len);
        if (r == 0)
                *ret = v;
        body_close(&b);
        return r;
}

int ha_pointer_decode(const char *kind, const void *data, size_t len, struct ha_pointer *ret,
                      char *err, size_t err_len) {
        struct body b;
        int r = open_body(kind, data, len, &b, err, err_len);
        if (r < 0)
                return r;
        struct ha_pointer p = {.id = 0};
        uint64_t crc;
        const msgpack_object *m = &b.up.data;
        if ((r = get_str(m, kind, "path", p.path, sizeof(p.path), err, err_len)) < 0 ||
            (r = get_u64(m, kind, "size", &p.size_bytes, err, err_len)) < 0 ||
            (r = get_u64(m, kind, "crc", &crc, err, err_len)) < 0)
                goto out;
        if (crc > UINT32_MAX) {
                r = err_set(err, err_len, -EBADMSG, "%s: field 'crc' is out of range", kind);
                goto out;
        }
        p.crc = (uint32_t)crc;
        if (strcmp(kind, HA_KIND_CHECKPOINT) == 0 &&
            (r = get_u64(m, kind, "id", &p.id, err, err_len)) < 0)
                goto out;
        *ret = p;
out:
        body_close(&b);
        return r;
}

int ha_job_result_decode(const void *data, size_t len, struct ha_job_result *ret, char *err,
                         size_t err_len) {
        const char *k = HA_KIND_JOB_RESULT;
        struct body b;
        int r = open_body(k, data, len, &b, err, err_len);
        if (r < 0)
                return r;
        struct ha_job_result res;
        char state[32];
        const msgpack_object *m = &b.up.data;
        if ((r = get_str(m, k, "job", res.job, sizeof(res.job), err, err_len)) < 0 ||
            (r = get_str(m, k, "state", state, sizeof(state), err, err_len)) < 0 ||
            (r = get_i64(m, k, "end_ms", &res.end_time_ms, err, err_len)) < 0 ||
            (r = get_u64(m, k, "epoch", &res.epoch, err, err_len)) < 0)
                goto out;
        if (ha_job_state_parse(state, &res.state) < 0) {
                r = err_set(err, err_len, -EBADMSG, "%s: state '%s' is not a terminal job state",
                         k, state);
                goto out;
        }
        *ret = res;
out:
        body_close(&b);
        return r;
}
