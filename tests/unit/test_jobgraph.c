/* Unit tests of common/jobgraph.c: the examples load; every kind of error in a job file
 * is refused with a message naming the file, the line, the field path and what was
 * expected; limits; parallelism, partitioning and chaining as in Flink; overrides;
 * the JSON plan; encode/decode round trips, and that every truncation, flipped bit or
 * forged body of a stored graph is refused cleanly. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "common/envelope.h"
#include "common/jobgraph.h"
#include "common/json.h"
#include "common/keygroup.h"
#include "unit.h"

static char err[1024];

static struct job_graph *parse_p(const char *yaml, uint32_t default_p) {
        struct job_graph *g = NULL;
        err[0] = '\0';
        int r = job_graph_parse_yaml("t.yaml", yaml, strlen(yaml), default_p, &g, err,
                                     sizeof(err));
        CHECK(r == 0 && g, "parse failed: %d %s\n--- job:\n%s", r, err, yaml);
        return r == 0 ? g : NULL;
}

static struct job_graph *parse(const char *yaml) {
        return parse_p(yaml, 1);
}

/* Parsing fails with r and a message containing fragment. */
static void expect_error_r(const char *yaml, int want_r, const char *fragment) {
        struct job_graph *g = (struct job_graph *)0x1;
        err[0] = '\0';
        int r = job_graph_parse_yaml("t.yaml", yaml, strlen(yaml), 1, &g, err, sizeof(err));
        CHECK(r == want_r, "expected %d, seen %d (%s)\n--- job:\n%s", want_r, r, err, yaml);
        CHECK(g == (struct job_graph *)0x1, "*ret was touched on error");
        CHECK_CONTAINS(err, fragment);
        if (r == 0 && g != (struct job_graph *)0x1)
                job_graph_free(g);
}

static void expect_error(const char *yaml, const char *fragment) {
        expect_error_r(yaml, -EINVAL, fragment);
}

static char *plan_json(const struct job_graph *g) {
        struct json_writer w;
        json_writer_init(&w, 0);
        int r = job_graph_to_json(g, &w);
        CHECK_INT(r, 0);
        char *t = NULL;
        size_t n;
        r = json_writer_take(&w, &t, &n);
        CHECK_INT(r, 0);
        json_writer_finish(&w);
        return t;
}

/* ---------------------------------------------------------------------------------- */

static struct job_graph *load_example(const char *name) {
        char path[512];
        snprintf(path, sizeof(path), "%s/examples/%s", SOURCE_ROOT, name);
        struct job_graph *g = NULL;
        int r = job_graph_load_file(path, 1, &g, err, sizeof(err));
        CHECK(r == 0, "%s does not load: %s", path, err);
        return g;
}

static void test_examples_load(void) {
        struct job_graph *g = load_example("wordcount.yaml");
        if (g) {
                CHECK_STR(g->name, "wordcount");
                CHECK_INT(g->n_vertices, 5);
                CHECK_INT(g->vertices[0].kind, JOB_OP_FILE_SOURCE);
                CHECK_INT(g->vertices[4].kind, JOB_OP_FILE_SINK);
                CHECK(job_graph_is_bounded(g), "wordcount should be a batch job");
                CHECK(!g->checkpointing.configured, "wordcount sets no checkpointing");
                /* --input / --output, as the CLI does them. */
                CHECK_INT(job_graph_set_param(g, "source", "path", "file:///data/in.txt", err,
                                              sizeof(err)), 0);
                CHECK_INT(job_graph_set_param(g, "sink", "path", "/data/out", err, sizeof(err)),
                          0);
                CHECK_STR(g->vertices[0].params.file_source.path, "file:///data/in.txt");
                CHECK_STR(g->vertices[4].params.file_sink.path, "/data/out");
                CHECK_INT(g->n_chains, 2);
        }
        job_graph_free(g);

        g = load_example("event-time-windows.yaml");
        if (g) {
                CHECK_INT(g->vertices[0].params.file_source.timestamps, JOB_TS_LEADING);
                CHECK_INT(g->vertices[2].kind, JOB_OP_WINDOW);
                CHECK_INT(g->vertices[2].params.window.time, JOB_TIME_EVENT);
                CHECK_INT(g->vertices[2].params.window.out_of_orderness_ms, 2000);
                CHECK(job_graph_is_bounded(g), "a file source: bounded");
        }
        job_graph_free(g);
        expect_error("name: t\npipeline:\n  - file: {path: /in, timestamps: first}\n"
                     "  - sink: {type: print}\n",
                     "t.yaml:3: pipeline[0].file.timestamps: 'first' is not one of none, "
                     "leading");

        g = load_example("streaming-wordcount.yaml");
        if (g) {
                CHECK_INT(g->parallelism, 2);
                CHECK_INT(job_graph_total_slots(g), 2);
                CHECK(!job_graph_is_bounded(g), "streaming-wordcount is unbounded");
                CHECK(g->checkpointing.configured, "checkpointing expected");
                CHECK_INT(g->checkpointing.interval_ms, 1000);
                CHECK_INT(g->checkpointing.mode, JOB_CP_EXACTLY_ONCE);
                CHECK_INT(g->checkpointing.timeout_ms, 600000);
                CHECK_INT(g->restart.type, JOB_RESTART_FIXED_DELAY);
                CHECK_INT(g->restart.attempts, 10);
                CHECK_INT(g->restart.delay_ms, 1000);
                CHECK_INT(g->max_parallelism, 128);
                CHECK_INT(g->vertices[0].params.generator.seed, 42);
                CHECK_INT(g->vertices[0].params.generator.rate_per_s, 10000);
                /* generator -> key_by chained; hash to count; count -> sink chained. */
                CHECK_INT(g->n_edges, 3);
                CHECK_INT(g->edges[0].partitioning, JOB_PART_FORWARD);
                CHECK(g->edges[0].chained, "generator -> key_by should chain");
                CHECK_INT(g->edges[1].partitioning, JOB_PART_HASH);
                CHECK(!g->edges[1].chained, "a hash edge never chains");
                CHECK(g->edges[2].chained, "count -> sink should chain");
                CHECK_INT(g->n_chains, 2);
                CHECK_INT(g->chains[0].n, 2);
                CHECK_INT(g->chains[1].n, 2);
                CHECK_INT(g->chains[1].parallelism, 2);
        }
        job_graph_free(g);

        g = load_example("generator-print.yaml");
        if (g) {
                CHECK_INT(g->n_chains, 1);
                CHECK_INT(g->chains[0].n, 2);
                CHECK_INT(job_graph_total_slots(g), 1);
                CHECK_INT(g->vertices[1].kind, JOB_OP_PRINT_SINK);
                CHECK_INT(g->vertices[1].params.print.target, JOB_PRINT_STDOUT);
        }
        job_graph_free(g);
}

/* ---------------------------------------------------------------------------------- */

#define HEAD "name: j\npipeline:\n"
#define SINK "  - sink: {type: print}\n"

static void test_yaml_errors(void) {
        expect_error(HEAD "  - generator: {seed: 1\n" SINK,
                     "t.yaml:4: invalid YAML: while parsing a flow mapping did not find "
                     "expected ',' or '}'");
        expect_error("name: j\n  bad: indent\n", "t.yaml:2: invalid YAML");
        expect_error("name: \"\\xff\xff\"\n", "t.yaml");
        expect_error("", "t.yaml: is empty");
        expect_error("# only a comment\n", "t.yaml: is empty");
        expect_error("- a\n", "t.yaml:1: expected a map with name, pipeline");
        expect_error("name: j\nname: k\n", "t.yaml:2: key 'name' appears twice in one map");
        expect_error(HEAD "  - generator: {count: 1, count: 2}\n" SINK,
                     "t.yaml:3: key 'count' appears twice");
        expect_error("name: &a j\n", "t.yaml:1: YAML anchors (&name) are not supported");
        expect_error("x: &a {}\ny: *a\n", "anchors");
        expect_error("name: j\nalias: *a\n", "t.yaml:2: YAML aliases (*name) are not supported");
        expect_error("name: !!str j\n", "t.yaml:1: YAML tags (!tag) are not supported");
        expect_error("name: j\n---\nname: k\n", "t.yaml:2: holds more than one YAML document");
        expect_error("{? [a]: 1}\n", "a map key must be a string, got a list");
        expect_error("name: [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]\n",
                     "t.yaml:1: nested deeper than 16 levels");
        /* JSON is YAML: a POST /jobs body. */
        struct job_graph *g = parse("{\"name\":\"j\",\"pipeline\":[{\"generator\":{\"count\":10}},"
                                    "{\"sink\":{\"type\":\"print\"}}]}");
        job_graph_free(g);
        g = parse("{\n\t\"name\": \"j\",\n\t\"pipeline\": [\n\t\t{\"generator\": {}},\n"
                  "\t\t{\"sink\": {\"type\": \"discard\"}}\n\t]\n}\n");
        job_graph_free(g);
}

static void test_field_errors(void) {
        /* Top level. */
        expect_error("nmae: j\n",
                     "t.yaml:1: unknown key 'nmae' (allowed: name, parallelism, max-parallelism, "
                     "checkpointing, restart-strategy, artifacts, pipeline, graph)");
        expect_error("pipeline: []\n", "t.yaml:1: name: required: the job's name, 1..128 bytes");
        expect_error("name: \npipeline: []\n", "t.yaml:1: name: expected the job's name, got null");
        expect_error("name: j\n", "t.yaml:1: pipeline: required");
        expect_error("name: j\npipeline: {}\n",
                     "t.yaml:2: pipeline: expected a list of steps, got a map");
        expect_error("name: j\npipeline: []\n", "t.yaml:2: pipeline: has 0 steps");
        /* The discard sink's rate (a testing aid: a slow sink). */
        expect_error(HEAD "  - generator\n  - sink: {type: discard, rate: -1}\n",
                     "t.yaml:4: pipeline[1].sink.rate:");
        expect_error(HEAD "  - generator\n  - sink: {type: discard, rate: fast}\n",
                     "t.yaml:4: pipeline[1].sink.rate:");
        expect_error(HEAD "  - generator\n  - sink: {type: print, rate: 5}\n",
                     "unknown key 'rate'");
        expect_error(HEAD "  - generator\n" SINK "graph: []\n",
                     "t.yaml:5: graph: a job has pipeline or graph, not both");
        expect_error("name: \"a\\x01b\"\n", "t.yaml:1: name: 'a?b' holds a control character");
        expect_error("name: \"a\\0b\"\n", "t.yaml:1: name: 'a?b' holds a control character");

        /* Operators. */
        expect_error(HEAD "  - generator: {}\n  - cnt: {}\n" SINK,
                     "t.yaml:4: pipeline[1]: unknown operator 'cnt' (operators: generator, file, "
                     "socket, tokenize, map, flat_map, filter, key_by, union, count, sum, min, "
                     "max, reduce, window, sink)");
        expect_error(HEAD "  - 42\n" SINK, "t.yaml:3: pipeline[0]: unknown operator '42'");
        expect_error(HEAD "  - [generator]\n" SINK,
                     "t.yaml:3: pipeline[0]: expected a step such as `- count: {}`");
        expect_error(HEAD "  - generator:\n    seed: 1\n" SINK,
                     "t.yaml:3: pipeline[0]: a step is a map of one key, its operator, to the "
                     "operator's parameters; this one has 2 keys");
        expect_error(HEAD "  - {}\n" SINK,
                     "t.yaml:3: pipeline[0]: expected a step such as `- count: {}`, got an "
                     "empty map");
        expect_error(HEAD "  - generator: 5\n" SINK,
                     "t.yaml:3: pipeline[0].generator: expected a map of parameters, got '5'");

        /* Missing required fields. */
        expect_error(HEAD "  - file: {}\n" SINK,
                     "t.yaml:3: pipeline[0].file.path: required: a file:///absolute/path URI");
        expect_error(HEAD "  - socket: {host: h}\n" SINK,
                     "t.yaml:3: pipeline[0].socket.port: required: an integer 1..65535");
        expect_error(HEAD "  - generator\n  - sink: {path: /x}\n",
                     "t.yaml:4: pipeline[1].sink.type: required: print, discard or file");
        expect_error(HEAD "  - generator\n  - sink\n",
                     "t.yaml:4: pipeline[1].sink.type: required: print, discard or file");
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n"
                     "  - window: {type: tumbling}\n" SINK,
                     "t.yaml:5: pipeline[2].window.size: required: a duration 1 ms..365 d");
        expect_error("name: j\ncheckpointing: {mode: AT_LEAST_ONCE}\n",
                     "t.yaml:2: checkpointing.interval: required");
        expect_error("name: j\nrestart-strategy: {attempts: 3}\n",
                     "t.yaml:2: restart-strategy.type: required: none or fixed-delay");

        /* Wrong types and values. */
        expect_error("name: j\nparallelism: abc\n",
                     "t.yaml:2: parallelism: expected an integer 1..32768, got 'abc'");
        expect_error("name: j\nparallelism: \"2\"\n",
                     "t.yaml:2: parallelism: expected an integer 1..32768, got the quoted "
                     "string '2' (write numbers without quotes)");
        expect_error("name: j\nparallelism: 2.5\n",
                     "parallelism: expected an integer 1..32768, got '2.5'");
        expect_error("name: j\nparallelism: 0x10\n", "got '0x10'");
        expect_error(HEAD "  - generator: {seed: [1]}\n" SINK,
                     "t.yaml:3: pipeline[0].generator.seed: expected an integer "
                     "0..9223372036854775807, got a list");
        expect_error(HEAD "  - generator: {count: 99999999999999999999}\n" SINK,
                     "pipeline[0].generator.count: '99999999999999999999' is out of range");
        expect_error(HEAD "  - generator: {words: 0}\n" SINK,
                     "pipeline[0].generator.words: 0 is out of range 1..10000000");
        expect_error(HEAD "  - tokenize: {lowercase: yes}\n",
                     "t.yaml:3: pipeline[0].tokenize.lowercase: expected true or false, got 'yes'");
        expect_error(HEAD "  - generator\n  - key_by: {field: wrd}\n  - count\n" SINK,
                     "t.yaml:4: pipeline[1].key_by.field: 'wrd' is not one of word, key, value");
        expect_error(HEAD "  - generator\n  - sink: {type: printer}\n",
                     "t.yaml:4: pipeline[1].sink.type: 'printer' is not one of print, "
                     "discard, file");
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n"
                     "  - window: {type: tumbling, size: 10 x}\n" SINK,
                     "t.yaml:5: pipeline[2].window.size: expected a duration such as 500 ms, "
                     "10 s or 1 min, got '10 x'");
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n"
                     "  - window: {type: tumbling, size: 1.5 s}\n" SINK,
                     "got '1.5 s'");
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n"
                     "  - window: {type: tumbling, size: 400 d}\n" SINK,
                     "pipeline[2].window.size: '400 d' is out of range 1 ms..365 d");
        expect_error(HEAD "  - generator\n  - sink: {type: file, path: /tmp/x, part_size: 1 b}\n",
                     "t.yaml:4: pipeline[1].sink.part_size: '1 b' is out of range 1 kb..1 tb");
        expect_error(HEAD "  - generator\n  - sink: {type: file, path: /tmp/x, part_size: 1 pb}\n",
                     "expected a size such as 512 kb, 64 mb or 1 gb, got '1 pb'");
        expect_error(HEAD "  - generator\n  - map: {udf: 1abc}\n" SINK,
                     "t.yaml:4: pipeline[1].map.udf: '1abc' is not a C symbol name");
        expect_error(HEAD "  - socket: {host: 'a b', port: 1}\n" SINK,
                     "t.yaml:3: pipeline[0].socket.host: 'a b' is not a host name or IP address");
        expect_error(HEAD "  - socket: {port: 70000}\n" SINK,
                     "pipeline[0].socket.port: 70000 is out of range 1..65535");
        expect_error("name: j\ncheckpointing: {interval: 5 ms}\n",
                     "t.yaml:2: checkpointing.interval: 5 ms is below the minimum of 10 ms");
        expect_error("name: j\ncheckpointing: {interval: 1 s, mode: twice}\n",
                     "checkpointing.mode: 'twice' is not one of EXACTLY_ONCE, AT_LEAST_ONCE");
        expect_error("name: j\ncheckpointing: 1 s\n",
                     "t.yaml:2: checkpointing: expected a map with interval");
        expect_error("name: j\nrestart-strategy: {type: failure-rate}\n",
                     "restart-strategy.type: 'failure-rate' is not one of none, fixed-delay");
        expect_error("name: j\nrestart-strategy: {type: none, attempts: 3}\n",
                     "t.yaml:2: restart-strategy.attempts: only for type fixed-delay");
        expect_error("name: j\nrestart-strategy: {type: fixed-delay, delay: 2 d}\n",
                     "restart-strategy.delay: '2 d' is out of range 0 ms..1 d");
        expect_error(HEAD "  - generator: {id: 'a b'}\n" SINK,
                     "t.yaml:3: pipeline[0].generator.id: 'a b' may hold only letters, digits");
        expect_error("name: j\nartifacts: lib.so\n",
                     "t.yaml:2: artifacts: expected a list of library paths, got 'lib.so'");
        expect_error("name: j\nartifacts: [a/x.so, b/x.so]\n",
                     "t.yaml:2: artifacts[1]: has the file name of artifacts[0]");
        expect_error("name: j\nartifacts: [lib/]\n",
                     "artifacts[0]: 'lib/' does not end in a file name");

        /* Parallelism. */
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n"
                     "  - count: {parallelism: 0}\n" SINK,
                     "t.yaml:5: pipeline[2].count.parallelism: 0 is out of range 1..32768");
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n"
                     "  - count: {parallelism: 40000}\n" SINK,
                     "t.yaml:5: pipeline[2].count.parallelism: 40000 is out of range 1..32768");
        expect_error("name: j\nparallelism: 0\n",
                     "t.yaml:2: parallelism: 0 is out of range 1..32768");
        expect_error("name: j\nparallelism: 32769\n",
                     "parallelism: 32769 is out of range 1..32768");
        expect_error("name: j\nmax-parallelism: 40000\n",
                     "max-parallelism: 40000 is out of range 1..32768");
        expect_error("name: j\nmax-parallelism: 4\nparallelism: 8\npipeline:\n  - generator\n" SINK,
                     "t.yaml:5: pipeline[0].generator: parallelism 8 (the job's) is above "
                     "max-parallelism 4");
        expect_error("name: j\nmax-parallelism: 4\npipeline:\n"
                     "  - generator: {parallelism: 5}\n" SINK,
                     "t.yaml:4: pipeline[0].generator.parallelism: parallelism 5 is above "
                     "max-parallelism 4");
        expect_error(HEAD "  - socket: {port: 9000, parallelism: 2}\n" SINK,
                     "t.yaml:3: pipeline[0].socket.parallelism: a socket source runs with "
                     "parallelism 1");

        /* Unknown keys name the path and list the allowed ones. */
        expect_error(HEAD "  - generator: {sed: 1}\n" SINK,
                     "t.yaml:3: pipeline[0].generator: unknown key 'sed' (allowed: seed, words, "
                     "rate, count, line_words, event_time_step, out_of_order, id, name, "
                     "parallelism, partitioning)");
        expect_error(HEAD "  - generator\n  - sink: {type: file, path: /x, sizee: 1}\n",
                     "t.yaml:4: pipeline[1].sink: unknown key 'sizee' (allowed: path, part_size, "
                     "id, name, parallelism, partitioning, type)");
        expect_error("name: j\ncheckpointing: {intervall: 1 s}\n",
                     "t.yaml:2: checkpointing: unknown key 'intervall' (allowed: interval, mode, "
                     "timeout, min-pause)");
        expect_error("name: j\nrestart-strategy: {type: none, tries: 1}\n",
                     "restart-strategy: unknown key 'tries' (allowed: type, attempts, delay)");
        expect_error(HEAD "  - generator: {inputs: [x]}\n" SINK,
                     "t.yaml:3: pipeline[0].generator.inputs: only graph steps name their "
                     "inputs");
        expect_error("name: j\njid: 0123456789abcdef0123456789abcdef\n", "unknown key 'jid'");

        /* Names and ids. */
        expect_error(HEAD "  - generator: {name: a}\n  - sink: {type: print, name: a}\n",
                     "t.yaml:4: pipeline[1].sink.name: 'a' is also the name of "
                     "pipeline[0].generator; names must differ");
        expect_error(HEAD "  - generator: {id: a}\n  - sink: {type: print, id: a}\n",
                     "t.yaml:4: pipeline[1].sink.id: 'a' is also the id of pipeline[0].generator");
        expect_error(HEAD "  - generator: {id: count-1}\n  - count\n" SINK,
                     "t.yaml:4: pipeline[1].count.id: 'count-1' is also the id of "
                     "pipeline[0].generator");
}

static void test_shape_errors(void) {
        expect_error(HEAD "  - generator\n  - count\n" SINK,
                     "t.yaml:4: pipeline[1].count: 'count' is keyed and needs a key_by step "
                     "right before it, but it reads 'generator-0' (generator)");
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n  - tokenize\n  - sum\n" SINK,
                     "t.yaml:6: pipeline[3].sum: 'sum' is keyed and needs a key_by step");
        expect_error(HEAD "  - generator\n  - window: {type: tumbling, size: 1 s}\n" SINK,
                     "pipeline[1].window: 'window' is keyed and needs a key_by step");
        expect_error(HEAD "  - generator\n  - tokenize\n",
                     "t.yaml:4: pipeline[1].tokenize: the last step of a pipeline must be a sink");
        expect_error(HEAD "  - generator\n",
                     "t.yaml:3: pipeline[0].generator: the last step of a pipeline must be a sink");
        expect_error(HEAD "  - generator\n" SINK SINK,
                     "t.yaml:4: pipeline[1].sink: a sink must be the last step of a pipeline");
        expect_error(HEAD "  - tokenize\n" SINK,
                     "t.yaml:3: pipeline[0].tokenize: the first step must be a source "
                     "(generator, file or socket), got 'tokenize'");
        expect_error(HEAD "  - generator\n  - generator\n" SINK,
                     "t.yaml:4: pipeline[1].generator: a source can only be the first step");
        expect_error(HEAD "  - generator\n  - sink: {type: file, path: hdfs://nn:8020/out}\n",
                     "t.yaml:4: pipeline[1].sink.path: scheme 'hdfs://' is not supported");
        expect_error(HEAD "  - file: {path: 'hdfs:///in'}\n" SINK,
                     "t.yaml:3: pipeline[0].file.path: scheme 'hdfs://' is not supported");
        expect_error(HEAD "  - generator\n  - sink: {type: file, path: out}\n",
                     "t.yaml:4: pipeline[1].sink.path: 'out' is not absolute");
        expect_error(HEAD "  - generator\n  - map: {udf: f}\n" SINK,
                     "t.yaml:4: pipeline[1].map.udf: needs a UDF library: list it under "
                     "artifacts");
        expect_error(HEAD "  - generator\n  - key_by: {}\n  - count\n" SINK,
                     "t.yaml:4: pipeline[1].key_by: needs field (word, key or value) or udf");
        expect_error("name: j\nartifacts: [k.so]\npipeline:\n  - generator\n"
                     "  - key_by: {field: word, udf: k}\n  - count\n" SINK,
                     "t.yaml:5: pipeline[1].key_by: give field or udf, not both");
        expect_error("name: j\nparallelism: 2\npipeline:\n  - generator\n"
                     "  - sink: {type: print, parallelism: 1, partitioning: forward}\n",
                     "t.yaml:5: pipeline[1].sink.partitioning: forward needs equal parallelism, "
                     "but 'generator-0' runs with 2 and this step with 1");
        expect_error(HEAD "  - generator\n  - key_by: {field: word}\n"
                     "  - count: {partitioning: rebalance}\n" SINK,
                     "t.yaml:5: pipeline[2].count.partitioning: not allowed after key_by");
        expect_error(HEAD "  - generator\n  - tokenize: {partitioning: shuffle}\n" SINK,
                     "'shuffle' is not one of forward, rebalance, broadcast");

        /* Windows. */
#define WIN(params) HEAD "  - generator\n  - key_by: {field: word}\n  - window: " params "\n" SINK
        expect_error(WIN("{type: sliding, size: 10 s}"),
                     "t.yaml:5: pipeline[2].window.slide: required for sliding windows");
        expect_error(WIN("{type: tumbling, size: 10 s, slide: 1 s}"),
                     "t.yaml:5: pipeline[2].window.slide: only sliding windows have a slide");
        expect_error(WIN("{type: tumbling, size: 10 s, out_of_orderness: 1 s}"),
                     "t.yaml:5: pipeline[2].window.out_of_orderness: only for event time");
        expect_error(WIN("{type: tumbling, size: 10 s, aggregate: reduce}"),
                     "t.yaml:5: pipeline[2].window.udf: required for aggregate reduce");
        expect_error(WIN("{type: tumbling, size: 10 s, udf: f}"),
                     "pipeline[2].window.udf: only for aggregate reduce");
        expect_error(WIN("{type: tumbling, size: 10 s, field: value}"),
                     "pipeline[2].window.field: only for aggregate sum, min or max");

        /* Graph form. */
        expect_error("name: j\ngraph:\n  - generator: {}\n"
                     "  - sink: {id: s, type: print, inputs: [a]}\n",
                     "t.yaml:3: graph[0].generator.id: required in graph steps");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n"
                     "  - sink: {id: s, type: print, inputs: [b]}\n",
                     "t.yaml:4: graph[1].sink.inputs[0]: no step has the id 'b'");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n  - sink: {id: s, type: print}\n",
                     "t.yaml:4: graph[1].sink.inputs: required: the ids of the steps this "
                     "one reads");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n"
                     "  - sink: {id: s, type: print, inputs: []}\n",
                     "t.yaml:4: graph[1].sink.inputs: is empty");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n"
                     "  - sink: {id: s, type: print, inputs: a}\n",
                     "graph[1].sink.inputs: expected a list of step ids, got 'a'");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n"
                     "  - generator: {id: b, inputs: [a]}\n"
                     "  - sink: {id: s, type: print, inputs: [b]}\n",
                     "t.yaml:4: graph[1].generator.inputs: a source reads no inputs");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n  - tokenize: {id: t, inputs: [t]}\n"
                     "  - sink: {id: s, type: print, inputs: [a]}\n",
                     "graph[1].tokenize.inputs[0]: a step cannot read itself");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n  - union: {id: u, inputs: [a, a]}\n"
                     "  - sink: {id: s, type: print, inputs: [u]}\n",
                     "graph[1].union.inputs[1]: 'a' is listed twice");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n  - generator: {id: b}\n"
                     "  - tokenize: {id: t, inputs: [a, b]}\n"
                     "  - sink: {id: s, type: print, inputs: [t]}\n",
                     "t.yaml:5: graph[2].tokenize.inputs: 'tokenize' reads one input; merge "
                     "streams with a union step first");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n  - tokenize: {id: t, inputs: [a]}\n"
                     "  - sink: {id: s, type: print, inputs: [a]}\n",
                     "t.yaml:4: graph[1].tokenize: no step reads this one; every path must end "
                     "in a sink");
        expect_error("name: j\ngraph:\n  - generator: {id: a}\n"
                     "  - sink: {id: s, type: print, inputs: [a]}\n"
                     "  - tokenize: {id: t, inputs: [s]}\n",
                     "t.yaml:5: graph[2].tokenize.inputs[0]: 's' is a sink; a sink feeds no "
                     "other step");
        expect_error("name: j\nartifacts: [x.so]\ngraph:\n  - generator: {id: a}\n"
                     "  - union: {id: u, inputs: [a, m]}\n  - map: {id: m, udf: f, inputs: [u]}\n"
                     "  - sink: {id: s, type: print, inputs: [m]}\n",
                     "t.yaml:5: graph[1].union: the steps 'u', 'm', 's' read each other in a "
                     "cycle");
}

static void test_limits(void) {
        /* Names: 128 bytes are fine, 129 are not. */
        char yaml[8192];
        char name[200];
        memset(name, 'n', 129);
        name[128] = '\0';
        snprintf(yaml, sizeof(yaml), "name: %s\n" "pipeline:\n  - generator\n" SINK, name);
        struct job_graph *g = parse(yaml);
        job_graph_free(g);
        name[128] = 'n';
        name[129] = '\0';
        snprintf(yaml, sizeof(yaml), "name: %s\n", name);
        expect_error(yaml, "t.yaml:1: name: is 129 bytes long; at most 128 are allowed");
        snprintf(yaml, sizeof(yaml), HEAD "  - generator: {name: %s}\n" SINK, name);
        expect_error(yaml, "pipeline[0].generator.name: is 129 bytes long");
        snprintf(yaml, sizeof(yaml), HEAD "  - generator: {id: %.65s}\n" SINK, name);
        expect_error(yaml, "pipeline[0].generator.id: is 65 bytes long; at most 64");

        /* Strings: 4096 bytes. */
        char *big = malloc(6000);
        char *path = malloc(4200);
        path[0] = '/';
        memset(path + 1, 'p', 4096);
        path[4097] = '\0';
        snprintf(big, 6000, HEAD "  - file: {path: %s}\n" SINK, path);
        expect_error(big, "pipeline[0].file.path: is 4097 bytes long; at most 4096");
        free(path);
        free(big);

        /* 256 steps are fine, 257 are not. */
        size_t cap = 16384;
        char *many = malloc(cap);
        size_t off = (size_t)snprintf(many, cap, HEAD "  - generator\n");
        for (int i = 0; i < 254; i++)
                off += (size_t)snprintf(many + off, cap - off, "  - tokenize\n");
        snprintf(many + off, cap - off, SINK);
        g = parse(many);
        if (g) {
                CHECK_INT(g->n_vertices, 256);
                CHECK_INT(g->n_chains, 1);
                CHECK_STR(g->vertices[100].id, "tokenize-100");
        }
        job_graph_free(g);
        off = (size_t)snprintf(many, cap, HEAD "  - generator\n");
        for (int i = 0; i < 255; i++)
                off += (size_t)snprintf(many + off, cap - off, "  - tokenize\n");
        snprintf(many + off, cap - off, SINK);
        expect_error(many, "t.yaml:3: pipeline: has 257 steps; a job has 2..256");
        free(many);

        /* 1 MiB of text. */
        size_t n = JOB_FILE_MAX_BYTES + 1;
        char *huge = malloc(n);
        memset(huge, '#', n);
        huge[0] = '\n';
        g = NULL;
        int r = job_graph_parse_yaml("t.yaml", huge, n, 1, &g, err, sizeof(err));
        CHECK_INT(r, -EFBIG);
        CHECK_CONTAINS(err, "t.yaml: is 1048577 bytes; a job file holds at most 1048576 bytes");
        free(huge);

        /* A map with too many keys, a union with too many inputs. */
        off = (size_t)snprintf(yaml, sizeof(yaml), "name: j\n");
        for (int i = 0; i < 70; i++)
                off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "k%d: 1\n", i);
        expect_error(yaml, "t.yaml:1: a map has 71 keys; no map of a job has more than 64");
        off = (size_t)snprintf(yaml, sizeof(yaml), "name: j\ngraph:\n  - generator: {id: a}\n"
                                                   "  - union: {id: u, inputs: [");
        for (int i = 0; i < 65; i++)
                off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "%sa", i ? ", " : "");
        snprintf(yaml + off, sizeof(yaml) - off,
                 "]}\n  - sink: {id: s, type: print, inputs: [u]}\n");
        expect_error(yaml, "graph[1].union.inputs: lists 65 inputs; at most 64");

        /* The default parallelism passed in. */
        r = job_graph_parse_yaml("t.yaml", "name: j\n", 8, 0, &g, err, sizeof(err));
        CHECK_INT(r, -EINVAL);
        CHECK_CONTAINS(err, "default parallelism 0 is out of range 1..32768");
        r = job_graph_parse_yaml("t.yaml", "name: j\n", 8, 32769, &g, err, sizeof(err));
        CHECK_INT(r, -EINVAL);
}

/* ---------------------------------------------------------------------------------- */

static void test_values_and_defaults(void) {
        struct job_graph *g = parse(
                "name: values\n"
                "artifacts: [libu.so]\n"
                "checkpointing: {interval: 2000, mode: at_least_once, timeout: 1 min,\n"
                "                min-pause: 500ms}\n"
                "restart-strategy: {type: none}\n"
                "pipeline:\n"
                "  - socket: {port: 9999}\n"
                "  - tokenize: {lowercase: False}\n"
                "  - filter: {udf: keep_it}\n"
                "  - key_by: {udf: my_key}\n"
                "  - window: {type: sliding, size: 10 min, slide: 30 seconds, time: EVENT,\n"
                "             out_of_orderness: 2 s, aggregate: sum, field: word}\n"
                "  - sink: {type: file, path: file:///tmp/o/, part_size: 64 mb}\n");
        if (!g)
                return;
        CHECK_INT(g->checkpointing.interval_ms, 2000);
        CHECK_INT(g->checkpointing.mode, JOB_CP_AT_LEAST_ONCE);
        CHECK_INT(g->checkpointing.timeout_ms, 60000);
        CHECK_INT(g->checkpointing.min_pause_ms, 500);
        CHECK(g->restart.configured && g->restart.type == JOB_RESTART_NONE, "restart none");
        const struct job_vertex *v = g->vertices;
        CHECK_STR(v[0].params.socket.host, "localhost");
        CHECK_INT(v[0].params.socket.port, 9999);
        CHECK_INT(v[0].parallelism, 1);
        CHECK(!v[1].params.tokenize.lowercase, "lowercase: False");
        CHECK_STR(v[2].params.udf.udf, "keep_it");
        CHECK_STR(v[3].params.key_by.udf, "my_key");
        CHECK_INT(v[4].params.window.type, JOB_WINDOW_SLIDING);
        CHECK_INT(v[4].params.window.size_ms, 600000);
        CHECK_INT(v[4].params.window.slide_ms, 30000);
        CHECK_INT(v[4].params.window.time, JOB_TIME_EVENT);
        CHECK_INT(v[4].params.window.out_of_orderness_ms, 2000);
        CHECK_INT(v[4].params.window.aggregate, JOB_AGG_SUM);
        CHECK_INT(v[4].params.window.field, JOB_FIELD_WORD);
        CHECK(v[4].params.window.udf == NULL, "window udf");
        CHECK_STR(v[5].params.file_sink.path, "file:///tmp/o/");
        CHECK_INT(v[5].params.file_sink.part_size_bytes, 64 << 20);
        job_graph_free(g);

        /* Defaults. */
        g = parse_p(HEAD "  - generator\n  - key_by: {field: word}\n  - sum\n"
                    "  - sink: {type: file, path: /tmp/o}\n", 3);
        if (!g)
                return;
        CHECK_INT(g->parallelism, 3);
        CHECK(!g->checkpointing.configured && !g->restart.configured, "no settings");
        CHECK(!g->max_parallelism_explicit, "max-parallelism derived");
        CHECK_INT(g->max_parallelism, 128);
        CHECK_INT(g->vertices[0].params.generator.words, 1000);
        CHECK_INT(g->vertices[0].params.generator.line_words, 1);
        CHECK_INT(g->vertices[0].params.generator.count, 0);
        CHECK_INT(g->vertices[2].params.agg.field, JOB_FIELD_VALUE);
        CHECK_INT(g->vertices[3].params.file_sink.part_size_bytes, 128 << 20);
        CHECK_STR(g->vertices[1].name, "key_by-1");
        CHECK_INT(g->vertices[1].params.key_by.field, JOB_FIELD_WORD);
        job_graph_free(g);

        /* Checkpointing off explicitly, restart fixed-delay defaults, aliases. */
        g = parse("name: j\ncheckpointing: {interval: 0}\nrestart-strategy: {type: fixeddelay}\n"
                  "pipeline:\n  - generator\n  - sink: {type: discard}\n");
        if (g) {
                CHECK(g->checkpointing.configured && g->checkpointing.interval_ms == 0,
                      "interval 0 = off");
                CHECK_INT(g->restart.type, JOB_RESTART_FIXED_DELAY);
                CHECK_INT(g->restart.attempts, 1);
                CHECK_INT(g->restart.delay_ms, 1000);
        }
        job_graph_free(g);
}

static void test_parallelism_and_chaining(void) {
        /* Flink's default max parallelism: roundUpToPowerOfTwo(1.5 p), at least 128. */
        struct job_graph *g = parse("name: j\nparallelism: 200\npipeline:\n  - generator\n" SINK);
        if (g)
                CHECK_INT(g->max_parallelism, kg_default_max_parallelism(200));
        if (g)
                CHECK_INT(g->max_parallelism, 512);
        job_graph_free(g);

        /* key_by takes its input's parallelism and chains to it; a parallelism change
         * rebalances; the socket runs alone. */
        g = parse("name: j\nparallelism: 4\npipeline:\n"
                  "  - socket: {port: 7000}\n"
                  "  - tokenize\n"
                  "  - key_by: {field: word}\n"
                  "  - count: {parallelism: 8}\n"
                  "  - sink: {type: print, parallelism: 8, partitioning: broadcast}\n");
        if (g) {
                const struct job_vertex *v = g->vertices;
                CHECK_INT(v[0].parallelism, 1);
                CHECK_INT(v[1].parallelism, 4);
                CHECK_INT(v[2].parallelism, 4);
                CHECK_INT(v[3].parallelism, 8);
                CHECK_INT(g->edges[0].partitioning, JOB_PART_REBALANCE);
                CHECK(!g->edges[0].chained, "1 -> 4 must not chain");
                CHECK_INT(g->edges[1].partitioning, JOB_PART_FORWARD);
                CHECK(g->edges[1].chained, "tokenize -> key_by chains");
                CHECK_INT(g->edges[2].partitioning, JOB_PART_HASH);
                CHECK_INT(g->edges[3].partitioning, JOB_PART_BROADCAST);
                CHECK(!g->edges[3].chained, "broadcast never chains");
                CHECK_INT(g->n_chains, 4);
                CHECK_INT(job_graph_total_slots(g), 8);
                CHECK_INT(g->vertices[1].chain, g->vertices[2].chain);
                CHECK_INT(g->chains[g->vertices[1].chain].n, 2);
        }
        job_graph_free(g);

        /* Graph form: listed out of order, sorted; fan-in through a union; fan-out. */
        g = parse("name: fan\nparallelism: 2\ngraph:\n"
                  "  - sink: {id: out, type: print, inputs: [counts]}\n"
                  "  - count: {id: counts, inputs: [by-word]}\n"
                  "  - key_by: {id: by-word, field: word, inputs: [all]}\n"
                  "  - union: {id: all, inputs: [words, lines]}\n"
                  "  - file: {id: lines, path: /data/in.txt, parallelism: 1}\n"
                  "  - generator: {id: words, count: 100}\n"
                  "  - sink: {id: raw, type: discard, inputs: [words]}\n");
        if (g) {
                CHECK_INT(g->n_vertices, 7);
                /* Inputs come before their readers. */
                for (size_t i = 0; i < g->n_vertices; i++)
                        for (uint32_t k = 0; k < g->vertices[i].n_inputs; k++)
                                CHECK(g->vertices[i].inputs[k] < i,
                                      "vertex %zu reads a later one", i);
                CHECK_STR(g->vertices[0].id, "lines");
                CHECK_STR(g->vertices[1].id, "words");
                const struct job_vertex *u = job_graph_find(g, "all");
                CHECK(u && u->n_inputs == 2, "union has two inputs");
                const struct job_vertex *w = job_graph_find(g, "words");
                CHECK(w && w->n_outputs == 2, "words feeds two steps");
                CHECK(job_graph_find(g, "nope") == NULL, "find of a missing id");
                CHECK(job_graph_is_bounded(g), "file and a counted generator are bounded");
                size_t chained = 0;
                for (size_t e = 0; e < g->n_edges; e++)
                        chained += g->edges[e].chained;
                /* Only union -> key_by and count -> out chain. */
                CHECK_INT(chained, 2);
                char *t = plan_json(g);
                CHECK_CONTAINS(t, "\"type\":\"BATCH\"");
                CHECK_CONTAINS(t, "{\"num\":0,\"id\":\"words\",\"ship_strategy\":\"FORWARD\","
                                  "\"exchange\":\"pipelined_bounded\"},{\"num\":1,\"id\":\"lines\","
                                  "\"ship_strategy\":\"REBALANCE\"");
                CHECK_CONTAINS(t, "\"description\":\"all -> by-word\"");
                CHECK_CONTAINS(t, "\"description\":\"counts -> Sink: out\"");
                free(t);
        }
        job_graph_free(g);
}

static void test_plan_json(void) {
        struct job_graph *g = parse(
                "name: \"plan \\\"q\\\"\"\nparallelism: 2\npipeline:\n"
                "  - generator: {id: src, name: Words, rate: 5}\n"
                "  - key_by: {field: word}\n"
                "  - count\n"
                "  - sink: {type: print, target: stderr}\n");
        if (!g)
                return;
        g->id.bytes[15] = 0xab;
        char *t = plan_json(g);
        CHECK_STR(t,
                  "{\"jid\":\"000000000000000000000000000000ab\",\"name\":\"plan \\\"q\\\"\","
                  "\"type\":\"STREAMING\",\"nodes\":["
                  "{\"id\":\"src\",\"parallelism\":2,\"operator\":\"generator -> key_by\","
                  "\"operator_strategy\":\"\",\"description\":\"Source: Words -> key_by-1\","
                  "\"inputs\":[],\"optimizer_properties\":{},\"operators\":["
                  "{\"id\":\"src\",\"name\":\"Words\",\"kind\":\"generator\",\"parallelism\":2,"
                  "\"params\":{\"seed\":0,\"words\":1000,\"rate\":5,\"count\":0,\"line_words\":1,\"event_time_step\":0,\"out_of_order\":0}},"
                  "{\"id\":\"key_by-1\",\"name\":\"key_by-1\",\"kind\":\"key_by\","
                  "\"parallelism\":2,"
                  "\"params\":{\"field\":\"word\"}}]},"
                  "{\"id\":\"count-2\",\"parallelism\":2,\"operator\":\"count -> sink:print\","
                  "\"operator_strategy\":\"\",\"description\":\"count-2 -> Sink: sink-3\","
                  "\"inputs\":[{\"num\":0,\"id\":\"src\",\"ship_strategy\":\"HASH\","
                  "\"exchange\":\"pipelined_bounded\"}],\"optimizer_properties\":{},"
                  "\"operators\":["
                  "{\"id\":\"count-2\",\"name\":\"count-2\",\"kind\":\"count\",\"parallelism\":2,"
                  "\"params\":{}},"
                  "{\"id\":\"sink-3\",\"name\":\"sink-3\",\"kind\":\"sink:print\","
                  "\"parallelism\":2,"
                  "\"params\":{\"type\":\"print\",\"target\":\"stderr\"}}]}]}");
        free(t);
        job_graph_free(g);

        /* The schema listing. */
        struct json_writer w;
        json_writer_init(&w, 0);
        CHECK_INT(job_schema_to_json(&w), 0);
        size_t n;
        t = NULL;
        CHECK_INT(json_writer_take(&w, &t, &n), 0);
        CHECK_CONTAINS(t, "{\"operator\":\"generator\",\"kind\":\"generator\","
                          "\"category\":\"source\"");
        CHECK_CONTAINS(t, "{\"name\":\"size\",\"type\":\"duration\",\"required\":true,"
                          "\"min\":\"1 ms\",\"max\":\"365 d\"");
        CHECK_CONTAINS(t, "{\"operator\":\"sink\",\"type\":\"file\",\"kind\":\"sink:file\"");
        CHECK_CONTAINS(t, "\"default\":\"128 mb\"");
        free(t);
        json_writer_finish(&w);
        CHECK_STR(job_op_kind_name(JOB_OP_FILE_SINK), "sink:file");
        CHECK_STR(job_op_kind_name(JOB_OP__COUNT), "?");
        CHECK_INT(job_op_kind_category(JOB_OP_WINDOW), JOB_CAT_WINDOW);
        CHECK_STR(job_partitioning_name(JOB_PART_REBALANCE), "REBALANCE");
}

static void test_overrides(void) {
        struct job_graph *g = parse("name: ov\nparallelism: 2\npipeline:\n"
                                    "  - generator: {id: gen}\n"
                                    "  - key_by: {field: word}\n"
                                    "  - count: {parallelism: 3}\n"
                                    "  - sink: {type: file, path: /tmp/out}\n");
        if (!g)
                return;
        /* -p 6: every step without its own parallelism; key_by follows its input. */
        CHECK_INT(job_graph_set_parallelism(g, 6, err, sizeof(err)), 0);
        CHECK_INT(g->parallelism, 6);
        CHECK_INT(g->vertices[0].parallelism, 6);
        CHECK_INT(g->vertices[1].parallelism, 6);
        CHECK_INT(g->vertices[2].parallelism, 3);
        CHECK_INT(g->vertices[3].parallelism, 6);
        CHECK_INT(g->edges[2].partitioning, JOB_PART_REBALANCE);
        /* Out of range: unchanged. */
        CHECK_INT(job_graph_set_parallelism(g, 0, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "job 'ov': parallelism: 0 is out of range 1..32768");
        CHECK_INT(job_graph_set_parallelism(g, 40000, err, sizeof(err)), -EINVAL);
        CHECK_INT(g->parallelism, 6);
        /* Derived max parallelism follows; a pinned one does not, and limits -p. */
        CHECK_INT(job_graph_set_parallelism(g, 100, err, sizeof(err)), 0);
        CHECK_INT(g->max_parallelism, 256);
        job_graph_pin_max_parallelism(g);
        CHECK_INT(job_graph_set_parallelism(g, 300, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "job 'ov': step 'gen': parallelism 300 (the job's) is above "
                            "max-parallelism 256");
        CHECK_INT(g->parallelism, 100);
        CHECK_INT(g->vertices[0].parallelism, 100);
        CHECK_INT(g->max_parallelism, 256);

        /* Parameters. */
        CHECK_INT(job_graph_set_param(g, "sink", "path", "file:///srv/out", err, sizeof(err)), 0);
        CHECK_STR(g->vertices[3].params.file_sink.path, "file:///srv/out");
        CHECK_INT(job_graph_set_param(g, "sink", "path", "hdfs://nn/out", err, sizeof(err)),
                  -EINVAL);
        CHECK_CONTAINS(err, "step 'sink-3': path: scheme 'hdfs://' is not supported");
        CHECK_STR(g->vertices[3].params.file_sink.path, "file:///srv/out");
        CHECK_INT(job_graph_set_param(g, "sink", "part_size", "1 gb", err, sizeof(err)), 0);
        CHECK_INT(g->vertices[3].params.file_sink.part_size_bytes, (int64_t)1 << 30);
        CHECK_INT(job_graph_set_param(g, "gen", "count", "500", err, sizeof(err)), 0);
        CHECK_INT(g->vertices[0].params.generator.count, 500);
        CHECK(job_graph_is_bounded(g), "count 500 makes the generator bounded");
        CHECK_INT(job_graph_set_param(g, "gen", "count", "-1", err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "step 'gen': count: -1 is out of range 0..9223372036854775807");
        CHECK_INT(job_graph_set_param(g, "source", "path", "/x", err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "step 'gen': generator has no parameter 'path' (parameters: seed, "
                            "words, rate, count, line_words, event_time_step, out_of_order)");
        CHECK_INT(job_graph_set_param(g, "count-2", "field", "value", err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "count has no parameter 'field' (parameters: none)");
        CHECK_INT(job_graph_set_param(g, "nope", "path", "/x", err, sizeof(err)), -ENOENT);
        CHECK_CONTAINS(err, "job 'ov': no step has the id 'nope'");
        CHECK_INT(job_graph_set_param(g, "key_by-1", "udf", "k", err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "step 'key_by-1': give field or udf, not both");
        job_graph_free(g);

        g = parse("name: two\ngraph:\n  - generator: {id: a}\n  - generator: {id: b}\n"
                  "  - union: {id: u, inputs: [a, b]}\n"
                  "  - sink: {id: s, type: print, inputs: [u]}\n");
        if (g) {
                CHECK_INT(job_graph_set_param(g, "source", "count", "1", err, sizeof(err)),
                          -ENOENT);
                CHECK_CONTAINS(err, "job 'two': has 2 sources; name the step by its id");
                CHECK_INT(job_graph_set_param(g, "b", "count", "1", err, sizeof(err)), 0);
        }
        job_graph_free(g);
}

/* ---------------------------------------------------------------------------------- */

static int encode(const struct job_graph *g, char **data, size_t *len) {
        int r = job_graph_encode(g, data, len);
        CHECK_INT(r, 0);
        return r;
}

/* encode -> decode -> encode gives the same bytes and the same derived graph. */
static void check_round_trip(struct job_graph *g) {
        char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if (encode(g, &a, &alen) < 0)
                return;
        struct job_graph *d = NULL;
        int r = job_graph_decode(a, alen, &d, err, sizeof(err));
        CHECK(r == 0, "decode of %s failed: %s", g->name, err);
        if (r == 0) {
                CHECK(encode(d, &b, &blen) == 0 && blen == alen && memcmp(a, b, alen) == 0,
                      "%s: re-encoding differs", g->name);
                CHECK_STR(d->name, g->name);
                CHECK(id_equal(&d->id, &g->id), "job id differs");
                CHECK_INT(d->parallelism, g->parallelism);
                CHECK_INT(d->max_parallelism, g->max_parallelism);
                CHECK_INT(d->n_vertices, g->n_vertices);
                CHECK_INT(d->n_edges, g->n_edges);
                CHECK_INT(d->n_chains, g->n_chains);
                CHECK_INT(d->n_artifacts, g->n_artifacts);
                CHECK(memcmp(&d->checkpointing, &g->checkpointing, sizeof(g->checkpointing)) == 0,
                      "checkpointing differs");
                for (size_t i = 0; i < g->n_vertices && i < d->n_vertices; i++) {
                        CHECK_STR(d->vertices[i].id, g->vertices[i].id);
                        CHECK_INT(d->vertices[i].parallelism, g->vertices[i].parallelism);
                        CHECK_INT(d->vertices[i].params_set, g->vertices[i].params_set);
                }
                for (size_t e = 0; e < g->n_edges && e < d->n_edges; e++)
                        CHECK(memcmp(&d->edges[e], &g->edges[e], sizeof(g->edges[e])) == 0,
                              "edge %zu differs", e);
                char *pa = plan_json(g), *pb = plan_json(d);
                CHECK(pa && pb && strcmp(pa, pb) == 0, "plans differ:\n%s\n%s", pa, pb);
                free(pa);
                free(pb);
        }
        job_graph_free(d);
        free(a);
        free(b);
}

static const char *full_job =
        "name: every-feature\n"
        "parallelism: 3\n"
        "max-parallelism: 64\n"
        "checkpointing: {interval: 1 s, mode: AT_LEAST_ONCE, timeout: 5 min, min-pause: 100 ms}\n"
        "restart-strategy: {type: fixed-delay, attempts: 7, delay: 3 s}\n"
        "artifacts: [lib/libu.so, /opt/udf/libv.so]\n"
        "graph:\n"
        "  - generator: {id: g, seed: 9, words: 50, rate: 100, count: 1000, line_words: 4}\n"
        "  - socket: {id: sock, host: '::1', port: 7777}\n"
        "  - file: {id: f, path: file:///in.txt, name: \"Fi\\u00e9le\"}\n"
        "  - union: {id: u, inputs: [g, sock, f], partitioning: rebalance}\n"
        "  - tokenize: {id: t, inputs: [u], lowercase: false}\n"
        "  - map: {id: m, udf: upper, inputs: [t]}\n"
        "  - flat_map: {id: fm, udf: split, inputs: [m], parallelism: 5}\n"
        "  - filter: {id: fl, udf: keep, inputs: [fm]}\n"
        "  - key_by: {id: k1, field: key, inputs: [fl]}\n"
        "  - key_by: {id: k2, udf: pick, inputs: [fl]}\n"
        "  - key_by: {id: k3, field: value, inputs: [t]}\n"
        "  - key_by: {id: k4, field: word, inputs: [t]}\n"
        "  - key_by: {id: k5, field: word, inputs: [t]}\n"
        "  - sum: {id: s, inputs: [k1], field: word}\n"
        "  - min: {id: mi, inputs: [k2]}\n"
        "  - max: {id: ma, inputs: [k3]}\n"
        "  - reduce: {id: r, udf: add, inputs: [k4]}\n"
        "  - window: {id: w, inputs: [k5], type: sliding, size: 1 min, slide: 10 s, time: event,"
        " out_of_orderness: 1 s, aggregate: reduce, udf: add}\n"
        "  - sink: {id: o1, type: print, target: stderr, inputs: [s]}\n"
        "  - sink: {id: o2, type: discard, inputs: [mi]}\n"
        "  - sink: {id: o3, type: file, path: /out, part_size: 2 mb, inputs: [ma]}\n"
        "  - sink: {id: o4, type: print, inputs: [r], partitioning: broadcast}\n"
        "  - sink: {id: o5, type: print, inputs: [w], partitioning: forward}\n";

static void test_encode_round_trip(void) {
        const char *examples[] = {"wordcount.yaml", "streaming-wordcount.yaml",
                                  "generator-print.yaml", "event-time-windows.yaml"};
        for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
                struct job_graph *g = load_example(examples[i]);
                if (g)
                        check_round_trip(g);
                job_graph_free(g);
        }
        struct job_graph *g = parse(full_job);
        if (!g)
                return;
        CHECK_INT(g->n_vertices, 23);
        CHECK(id_generate(&g->id) == 0, "id_generate");
        check_round_trip(g);
        /* Overrides survive the trip (they are written as the job's own values). */
        CHECK_INT(job_graph_set_param(g, "o3", "path", "/elsewhere", err, sizeof(err)), 0);
        CHECK_INT(job_graph_set_parallelism(g, 2, err, sizeof(err)), 0);
        check_round_trip(g);
        job_graph_free(g);
        CHECK_INT(job_graph_encode(NULL, NULL, NULL), -EINVAL);
}

static void test_decode_damage(void) {
        struct job_graph *g = parse(full_job);
        if (!g)
                return;
        char *a = NULL;
        size_t alen = 0;
        if (encode(g, &a, &alen) < 0) {
                job_graph_free(g);
                return;
        }
        job_graph_free(g);
        struct job_graph *d = NULL;
        /* Every truncation. */
        size_t accepted = 0;
        for (size_t n = 0; n < alen; n++) {
                d = NULL;
                if (job_graph_decode(a, n, &d, err, sizeof(err)) == 0) {
                        accepted++;
                        job_graph_free(d);
                }
        }
        CHECK_INT(accepted, 0);
        /* Every single flipped bit. */
        accepted = 0;
        for (size_t i = 0; i < alen; i++)
                for (int bit = 0; bit < 8; bit++) {
                        a[i] ^= (char)(1 << bit);
                        d = NULL;
                        if (job_graph_decode(a, alen, &d, err, sizeof(err)) == 0) {
                                accepted++;
                                job_graph_free(d);
                        }
                        a[i] ^= (char)(1 << bit);
                }
        CHECK_INT(accepted, 0);
        /* Trailing garbage. */
        char *longer = malloc(alen + 1);
        memcpy(longer, a, alen);
        longer[alen] = 0;
        CHECK_INT(job_graph_decode(longer, alen + 1, &d, err, sizeof(err)), -EBADMSG);
        free(longer);
        free(a);
}

/* Wraps a body packed by fill() in a valid envelope and decodes it. */
static int decode_body(void (*fill)(msgpack_packer *), const char *kind, uint32_t version) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        fill(&pk);
        char *env = NULL;
        size_t env_len = 0;
        int r = envelope_wrap(kind, version, sb.data, sb.size, &env, &env_len);
        msgpack_sbuffer_destroy(&sb);
        CHECK_INT(r, 0);
        struct job_graph *d = (struct job_graph *)0x1;
        err[0] = '\0';
        r = job_graph_decode(env, env_len, &d, err, sizeof(err));
        if (r == 0)
                job_graph_free(d);
        else
                CHECK(d == (struct job_graph *)0x1, "*ret touched on error");
        free(env);
        return r;
}

static void kv(msgpack_packer *pk, const char *k, const char *v) {
        msgpack_pack_str(pk, strlen(k));
        msgpack_pack_str_body(pk, k, strlen(k));
        msgpack_pack_str(pk, strlen(v));
        msgpack_pack_str_body(pk, v, strlen(v));
}

static void key(msgpack_packer *pk, const char *k) {
        msgpack_pack_str(pk, strlen(k));
        msgpack_pack_str_body(pk, k, strlen(k));
}

/* name, a generator -> print graph, and one more field (or none). */
static void body_base(msgpack_packer *pk, size_t extra) {
        msgpack_pack_map(pk, 2 + extra);
        kv(pk, "name", "b");
        key(pk, "graph");
        msgpack_pack_array(pk, 2);
        msgpack_pack_map(pk, 1);
        key(pk, "generator");
        msgpack_pack_map(pk, 1);
        kv(pk, "id", "g");
        msgpack_pack_map(pk, 1);
        key(pk, "sink");
        msgpack_pack_map(pk, 3);
        kv(pk, "id", "s");
        kv(pk, "type", "print");
        key(pk, "inputs");
        msgpack_pack_array(pk, 1);
        msgpack_pack_str(pk, 1);
        msgpack_pack_str_body(pk, "g", 1);
}

static void fill_ok(msgpack_packer *pk) { body_base(pk, 0); }
static void fill_unknown_key(msgpack_packer *pk) {
        body_base(pk, 1);
        kv(pk, "color", "red");
}
static void fill_str_parallelism(msgpack_packer *pk) {
        body_base(pk, 1);
        kv(pk, "parallelism", "2");
}
static void fill_float_parallelism(msgpack_packer *pk) {
        body_base(pk, 1);
        key(pk, "parallelism");
        msgpack_pack_double(pk, 2.0);
}
static void fill_huge_parallelism(msgpack_packer *pk) {
        body_base(pk, 1);
        key(pk, "parallelism");
        msgpack_pack_uint64(pk, UINT64_MAX);
}
static void fill_bad_jid(msgpack_packer *pk) {
        body_base(pk, 1);
        kv(pk, "jid", "xyz");
}
static void fill_int_key(msgpack_packer *pk) {
        body_base(pk, 1);
        msgpack_pack_int(pk, 5);
        msgpack_pack_int(pk, 5);
}
static void fill_dup_key(msgpack_packer *pk) {
        body_base(pk, 1);
        kv(pk, "name", "c");
}
static void fill_bad_utf8(msgpack_packer *pk) {
        msgpack_pack_map(pk, 1);
        kv(pk, "name", "\xff");
}
static void fill_huge_array(msgpack_packer *pk) {
        /* An array header claiming 4 billion elements in a tiny body. */
        static const char hdr[] = {(char)0xdd, (char)0xff, (char)0xff, (char)0xff, (char)0xff};
        msgpack_pack_map(pk, 1);
        key(pk, "name");
        msgpack_sbuffer_write(pk->data, hdr, sizeof(hdr));
}
static void fill_deep(msgpack_packer *pk) {
        msgpack_pack_map(pk, 1);
        key(pk, "name");
        for (int i = 0; i < 30; i++)
                msgpack_pack_array(pk, 1);
        msgpack_pack_nil(pk);
}
static void fill_not_map(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }

static void test_decode_forged(void) {
        CHECK_INT(decode_body(fill_ok, JOB_GRAPH_ENVELOPE_KIND, 1), 0);
        CHECK_INT(decode_body(fill_ok, "flinc.leader", 1), -EMEDIUMTYPE);
        CHECK_CONTAINS(err, "job graph payload: payload kind is 'flinc.leader'");
        CHECK_INT(decode_body(fill_ok, JOB_GRAPH_ENVELOPE_KIND, 2), -EPROTONOSUPPORT);
        CHECK_INT(decode_body(fill_unknown_key, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "job graph payload: unknown key 'color' (allowed: name,");
        CHECK_INT(decode_body(fill_str_parallelism, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "job graph payload: parallelism: expected an integer 1..32768, "
                            "got '2'");
        CHECK_INT(decode_body(fill_float_parallelism, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "parallelism: expected an integer 1..32768, got a value of an "
                            "unsupported type");
        CHECK_INT(decode_body(fill_huge_parallelism, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_INT(decode_body(fill_bad_jid, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "job graph payload: jid: expected 32 hex digits, got 'xyz'");
        CHECK_INT(decode_body(fill_int_key, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "a map key must be a string, got 5");
        CHECK_INT(decode_body(fill_dup_key, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "key 'name' appears twice");
        CHECK_INT(decode_body(fill_bad_utf8, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "name: '\xff' holds a control character or is not valid UTF-8");
        CHECK_INT(decode_body(fill_huge_array, JOB_GRAPH_ENVELOPE_KIND, 1), -EBADMSG);
        CHECK_INT(decode_body(fill_deep, JOB_GRAPH_ENVELOPE_KIND, 1), -EBADMSG);
        CHECK_INT(decode_body(fill_not_map, JOB_GRAPH_ENVELOPE_KIND, 1), -EINVAL);
        CHECK_CONTAINS(err, "job graph payload: expected a map");

        /* A bare huge header where the envelope should be. */
        static const char hdr[] = {(char)0xdf, (char)0xff, (char)0xff, (char)0xff, (char)0xff};
        struct job_graph *d = NULL;
        CHECK_INT(job_graph_decode(hdr, sizeof(hdr), &d, err, sizeof(err)), -EBADMSG);
        CHECK_INT(job_graph_decode("", 0, &d, err, sizeof(err)), -EBADMSG);
}

/* ---------------------------------------------------------------------------------- */

static void test_load_file(void) {
        char dir[] = "/tmp/flinc-test-jobgraph-XXXXXX";
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        char path[256];
        snprintf(path, sizeof(path), "%s/job.yaml", dir);
        const char *text = "name: files\nartifacts: [libu.so, sub/libv.so, /abs/libw.so]\n"
                           "pipeline:\n  - generator\n  - map: {udf: f}\n" SINK;
        FILE *f = fopen(path, "w");
        CHECK(f != NULL, "fopen %s", path);
        if (!f)
                return;
        fputs(text, f);
        fclose(f);
        struct job_graph *g = NULL;
        int r = job_graph_load_file(path, 1, &g, err, sizeof(err));
        CHECK(r == 0, "load: %s", err);
        if (g) {
                char want[600];
                snprintf(want, sizeof(want), "%s/libu.so", dir);
                CHECK_STR(g->artifacts[0], want);
                snprintf(want, sizeof(want), "%s/sub/libv.so", dir);
                CHECK_STR(g->artifacts[1], want);
                CHECK_STR(g->artifacts[2], "/abs/libw.so");
        }
        job_graph_free(g);
        /* Errors name the file. */
        f = fopen(path, "w");
        if (f) {
                fputs("name: files\npipeline:\n  - generator: {rate: fast}\n" SINK, f);
                fclose(f);
        }
        r = job_graph_load_file(path, 1, &g, err, sizeof(err));
        CHECK_INT(r, -EINVAL);
        char want[600];
        snprintf(want, sizeof(want), "%s:3: pipeline[0].generator.rate: expected an integer", path);
        CHECK_CONTAINS(err, want);
        unlink(path);
        r = job_graph_load_file(path, 1, &g, err, sizeof(err));
        CHECK_INT(r, -ENOENT);
        snprintf(want, sizeof(want), "%s: cannot be read", path);
        CHECK_CONTAINS(err, want);
        rmdir(dir);
}

int main(void) {
        RUN(test_examples_load);
        RUN(test_yaml_errors);
        RUN(test_field_errors);
        RUN(test_shape_errors);
        RUN(test_limits);
        RUN(test_values_and_defaults);
        RUN(test_parallelism_and_chaining);
        RUN(test_plan_json);
        RUN(test_overrides);
        RUN(test_encode_round_trip);
        RUN(test_decode_damage);
        RUN(test_decode_forged);
        RUN(test_load_file);
        return unit_done();
}
