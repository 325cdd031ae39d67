/* A job graph as a JSON job document (see jobbody.h): the graph's own msgpack encoding
 * (job_graph_encode, the job file's shape) turned into JSON, without the job id. */
#include "tools/cli/jobbody.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/envelope.h"
#include "common/jobgraph.h"
#include "common/json.h"
#include "common/msg.h"

static int write_value(struct json_writer *w, const msgpack_object *o, bool top) {
        int r;
        switch (o->type) {
        case MSGPACK_OBJECT_NIL:
                json_null(w);
                return 0;
        case MSGPACK_OBJECT_BOOLEAN:
                json_bool(w, o->via.boolean);
                return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                json_uint(w, o->via.u64);
                return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                json_int(w, o->via.i64);
                return 0;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                json_double(w, o->via.f64);
                return 0;
        case MSGPACK_OBJECT_STR:
                json_string_len(w, o->via.str.ptr, o->via.str.size);
                return 0;
        case MSGPACK_OBJECT_ARRAY:
                json_begin_array(w);
                for (uint32_t i = 0; i < o->via.array.size; i++)
                        if ((r = write_value(w, &o->via.array.ptr[i], false)) < 0)
                                return r;
                json_end_array(w);
                return 0;
        case MSGPACK_OBJECT_MAP:
                json_begin_object(w);
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = &o->via.map.ptr[i];
                        if (kv->key.type != MSGPACK_OBJECT_STR)
                                return -EINVAL;
                        if (top && kv->key.via.str.size == 3 &&
                            memcmp(kv->key.via.str.ptr, "jid", 3) == 0)
                                continue; /* the coordinator gives the id */
                        json_key_len(w, kv->key.via.str.ptr, kv->key.via.str.size);
                        if ((r = write_value(w, &kv->val, false)) < 0)
                                return r;
                }
                json_end_object(w);
                return 0;
        default:
                return -EINVAL; /* bin, ext: not part of a job document */
        }
}

/* The plan JSON of g, for comparing two graphs. */
static char *plan_of(const struct job_graph *g) {
        struct json_writer w;
        char *text = NULL;
        size_t len;
        json_writer_init(&w, 0);
        job_graph_to_json(g, &w);
        if (json_writer_take(&w, &text, &len) < 0)
                text = NULL;
        json_writer_finish(&w);
        return text;
}

int cli_job_to_json(const struct job_graph *g, char **ret_text, size_t *ret_len, char *err,
                    size_t err_len) {
        char *enc = NULL, *body = NULL, *text = NULL, *a = NULL, *b = NULL;
        size_t enc_len, body_len, text_len = 0;
        uint32_t version;
        const char *why = NULL;
        struct job_graph *back = NULL;
        struct json_writer w;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        json_writer_init(&w, 0);
        int r = job_graph_encode(g, &enc, &enc_len);
        if (r < 0) {
                snprintf(err, err_len, "cannot encode the job (%s)", strerror(-r));
                goto out;
        }
        r = envelope_unwrap(enc, enc_len, JOB_GRAPH_ENVELOPE_KIND, JOB_GRAPH_FORMAT_VERSION, &body,
                            &body_len, &version, err, err_len);
        if (r < 0)
                goto out;
        r = msg_unpack_bounded(body, body_len, MSG_MAX_DEPTH, body_len + 1, &up, &why);
        if (r < 0) {
                snprintf(err, err_len, "cannot read the encoded job: %s", why);
                goto out;
        }
        if ((r = write_value(&w, &up.data, true)) < 0 ||
            (r = json_writer_take(&w, &text, &text_len)) < 0) {
                snprintf(err, err_len, "cannot write the job as JSON (%s)", strerror(-r));
                goto out;
        }
        /* Read it back as the coordinator will, and compare the plans. */
        char why2[512];
        r = job_graph_parse_yaml("job JSON", text, text_len, g->parallelism, &back, why2,
                                 sizeof(why2));
        if (r < 0) {
                snprintf(err, err_len, "the job as JSON does not read back: %s", why2);
                goto out;
        }
        back->id = g->id;
        a = plan_of(g);
        b = plan_of(back);
        if (!a || !b || strcmp(a, b) != 0) {
                r = -EINVAL;
                snprintf(err, err_len, "the job as JSON reads back as another job (a bug)");
                goto out;
        }
        *ret_text = text;
        *ret_len = text_len;
        text = NULL;
        r = 0;
out:
        free(a);
        free(b);
        job_graph_free(back);
        free(text);
        json_writer_finish(&w);
        msgpack_unpacked_destroy(&up);
        free(body);
        free(enc);
        return r;
}
