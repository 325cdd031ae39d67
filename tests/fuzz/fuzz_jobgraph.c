/* libFuzzer target for job files and stored job graphs: job_graph_parse_yaml on the
 * input (raw, or spliced into a job skeleton so that mutations reach the steps), and
 * job_graph_decode on the input both raw and wrapped in a valid envelope (so that the
 * body's msgpack reaches the validation behind the checksum). A graph that parses must
 * encode, decode to the same bytes, print as a plan and take overrides; anything else
 * aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/envelope.h"
#include "common/jobgraph.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const skeletons[][2] = {
        {"", ""},
        {"name: f\npipeline:\n  - generator: {", "}\n  - sink: {type: print}\n"},
        {"name: f\nparallelism: 2\npipeline:\n  - generator\n  - key_by: {field: word}\n  - ",
         "\n  - sink: {type: file, path: /tmp/f}\n"},
        {"name: f\nartifacts: [u.so]\ngraph:\n  - generator: {id: a}\n"
         "  - file: {id: b, path: /in}\n  - union: {id: u, inputs: [a, b]}\n",
         "\n  - sink: {id: s, type: print, inputs: [u]}\n"},
        {"name: f\n", "\npipeline: [generator, {sink: {type: discard}}]\n"},
};

static void exercise(struct job_graph *g) {
        char err[512];
        char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if (job_graph_encode(g, &a, &alen) != 0)
                abort();
        struct job_graph *d = NULL;
        if (job_graph_decode(a, alen, &d, err, sizeof(err)) != 0) {
                fprintf(stderr, "decode of an encoded graph failed: %s\n", err);
                abort();
        }
        if (job_graph_encode(d, &b, &blen) != 0 || blen != alen || memcmp(a, b, alen) != 0)
                abort();
        job_graph_free(d);
        free(a);
        free(b);

        struct json_writer w;
        json_writer_init(&w, 0);
        if (job_graph_to_json(g, &w) != 0)
                abort();
        json_writer_finish(&w);

        (void)job_graph_total_slots(g);
        (void)job_graph_is_bounded(g);
        (void)job_graph_set_parallelism(g, 3, err, sizeof(err));
        (void)job_graph_set_param(g, "sink", "path", "file:///tmp/x", err, sizeof(err));
        (void)job_graph_set_param(g, "source", "count", "7", err, sizeof(err));
        if (job_graph_encode(g, &a, &alen) != 0)
                abort();
        if (job_graph_decode(a, alen, &d, err, sizeof(err)) != 0) {
                fprintf(stderr, "decode after overrides failed: %s\n", err);
                abort();
        }
        job_graph_free(d);
        free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char err[512];
        struct job_graph *g = NULL;

        /* The first byte picks a skeleton; the rest goes into it. */
        size_t pick = size ? data[0] % (sizeof(skeletons) / sizeof(skeletons[0])) : 0;
        const uint8_t *rest = size ? data + 1 : data;
        size_t rest_len = size ? size - 1 : 0;
        size_t pre = strlen(skeletons[pick][0]), post = strlen(skeletons[pick][1]);
        char *text = malloc(pre + rest_len + post + 1);
        if (!text)
                return 0;
        memcpy(text, skeletons[pick][0], pre);
        if (rest_len)
                memcpy(text + pre, rest, rest_len);
        memcpy(text + pre + rest_len, skeletons[pick][1], post);
        if (job_graph_parse_yaml("fuzz.yaml", text, pre + rest_len + post, 2, &g, err,
                                 sizeof(err)) == 0) {
                exercise(g);
                job_graph_free(g);
        }
        free(text);

        g = NULL;
        if (job_graph_decode(data, size, &g, err, sizeof(err)) == 0)
                job_graph_free(g);

        char *env = NULL;
        size_t env_len = 0;
        if (envelope_wrap(JOB_GRAPH_ENVELOPE_KIND, JOB_GRAPH_FORMAT_VERSION, data, size, &env,
                          &env_len) == 0) {
                g = NULL;
                if (job_graph_decode(env, env_len, &g, err, sizeof(err)) == 0) {
                        exercise(g);
                        job_graph_free(g);
                }
                free(env);
        }
        return 0;
}
