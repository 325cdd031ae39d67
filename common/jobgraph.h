/* The job model: a job file (YAML, or JSON in a POST /jobs body) read into a validated
 * graph of built-in operators, stored by the coordinator (msgpack in an envelope) and
 * shipped to workers, who run it as chains of operators. One module owns the format,
 * so the CLI, the REST API and the workers agree on what a job is.
 *
 * JOB FILE FORMAT
 *
 * One YAML document of at most 1 MiB (JSON is YAML too, so POST /jobs bodies use the
 * same reader). Keys are case-sensitive; an unknown key anywhere is an error that lists
 * the allowed ones; YAML anchors, aliases, tags and repeated keys are refused, and
 * nesting is limited to 16 levels.
 *
 *   name: streaming-wordcount   # required; 1..128 bytes of UTF-8 text, no control chars
 *   parallelism: 2              # optional; the operators' default parallelism,
 *                               #   1..32768; default: the cluster's parallelism.default
 *                               #   (`flinc run -p N` replaces it)
 *   max-parallelism: 128        # optional; the number of key groups, 1..32768, at least
 *                               #   every operator's parallelism; default: Flink's rule,
 *                               #   roundUpToPowerOfTwo(1.5 * p) clamped to [128, 32768]
 *                               #   for the largest operator parallelism p
 *   checkpointing:              # optional; absent: the cluster's execution.checkpointing.*
 *     interval: 1 s             #   required; 0 = this job takes no checkpoints, else
 *                               #   10 ms..365 d
 *     mode: EXACTLY_ONCE        #   EXACTLY_ONCE (default) | AT_LEAST_ONCE, any case
 *     timeout: 10 min           #   1 ms..365 d; default 10 min
 *     min-pause: 0 ms           #   0..365 d; default 0
 *   restart-strategy:           # optional; absent: the cluster's restart-strategy.*
 *     type: fixed-delay         #   required; none | fixed-delay (also off, disable =
 *                               #   none; fixeddelay = fixed-delay)
 *     attempts: 10              #   fixed-delay only; 0..2147483647; default 1
 *     delay: 1 s                #   fixed-delay only; 0..1 d; default 1 s
 *   artifacts: [ libudf.so ]    # optional; at most 32 UDF libraries (C ABI of
 *                               #   DESIGN.md "Jobs"); a relative path is relative to the
 *                               #   job file's directory; base names must differ. In a
 *                               #   POST /jobs body each entry is the id of an uploaded
 *                               #   library (coordinator/artifacts.h; `flinc run` uploads
 *                               #   them), and the stored graph names its file:// storage
 *                               #   URI, which workers fetch (worker/artifacts.h)
 *   pipeline:                   # the steps of a linear job: a source first, a sink last
 *     - generator: { seed: 42, words: 1000, rate: 10000, count: 0 }
 *     - tokenize                # a step without parameters may be written bare,
 *     - key_by: { field: word }
 *     - count: {}               #   or with {} or an empty value
 *     - sink: { type: file, path: file:///tmp/out }
 *
 * A job has either `pipeline` or `graph`. `graph` lists the same steps, in any order,
 * each with an `id`, and every step but a source names the ids it reads in `inputs`.
 * Only `union` reads more than one input (fan-in); a step may be the input of several
 * (fan-out). The graph must be acyclic.
 *
 *   graph:
 *     - generator: { id: words, count: 100000 }
 *     - file:      { id: lines, path: file:///data/in.txt }
 *     - union:     { id: all, inputs: [words, lines] }
 *     - tokenize:  { id: tok, inputs: [all] }
 *     - key_by:    { id: by-word, field: word, inputs: [tok] }
 *     - count:     { id: counts, inputs: [by-word] }
 *     - sink:      { id: out, type: print, inputs: [counts] }
 *
 * A step is a map with one key, its operator, whose value is a map of the operator's
 * parameters and of these keys, which every step may carry:
 *   id            1..64 bytes of [A-Za-z0-9._-], unique; names the operator's state
 *                 across versions of the job (Flink's uid). Required in graph; in
 *                 pipeline the default is "<operator>-<index>", e.g. "count-3".
 *   name          1..128 bytes of text, unique; shown in the UI, plan and logs; default
 *                 the id.
 *   parallelism   1..32768 and at most max-parallelism; default the job's parallelism,
 *                 except key_by, which takes its input's (so it chains to it), and
 *                 socket, which is always 1.
 *   inputs        graph only, required for all but sources: a list of 1 (union: 1..64)
 *                 distinct step ids.
 *   partitioning  how records reach this step from its inputs: forward (subtask i to
 *                 subtask i; needs equal parallelism), rebalance (round robin) or
 *                 broadcast (every record to every subtask). Default forward between
 *                 equal parallelisms, else rebalance. Not allowed after key_by, whose
 *                 output is always hash-partitioned by key group.
 *
 * Operators. Parameter types: int (decimal, optional '-', unquoted), duration (Flink's
 * form, read by cfg_parse_duration_ms: a bare number is milliseconds, units ms, s, min,
 * h, d and their long names: "1 s", "10 min"), size (cfg_parse_size_bytes: a bare
 * number is bytes, units b, kb, mb, gb, tb, powers of 1024: "64 mb"), bool (true |
 * false, any case, unquoted), enum (one of the listed words, any case), uri
 * (file:///absolute/path or /absolute/path; hdfs:// and other schemes are refused),
 * symbol (a C identifier: a function exported by one of the artifacts), host (a host
 * name or an IP address), string.
 *
 *   source  generator  seed int 0..2^63-1 (0); words int 1..10000000 (1000): vocabulary
 *                      size; rate int 0..1000000000 (0): records/s for the whole source, 0
 *                      unlimited; count int 0..2^63-1 (0): records in all, 0 unbounded;
 *                      line_words int 1..1000 (1): words per record. Deterministic and
 *                      replayable: equal parameters give equal records. Event time:
 *                      event_time_step duration 0..1 d (0): 0 = the wall clock at
 *                      emission; else record n's timestamp is 10^12 + n * step -
 *                      jitter(n) ms, with jitter(n) in 0..out_of_order a hash of (seed,
 *                      n) (worker/ops.h wrk_gen_timestamp); out_of_order duration
 *                      0..1 d (0), with event_time_step only: deterministic
 *                      out-of-order input for event-time windows.
 *           file       path uri, required: a file of lines, read once (bounded);
 *                      timestamps enum none|leading (none): leading = every line starts
 *                      with its event time, a decimal integer of milliseconds since the
 *                      epoch (1..2^63-1; 0 is the record model's "no timestamp"), then
 *                      spaces or tabs (or the end of the line); the rest of the line is the
 *                      record's text. A line that does not start so fails the task
 *                      ("<file>: the line at byte <offset> does not start with a
 *                      timestamp"). none: records carry no event time.
 *           socket     host host (localhost); port int 1..65535, required: lines of
 *                      text from a TCP server (unbounded; parallelism 1).
 *   transform tokenize lowercase bool (true): splits text into words at every
 *                      character that is not a letter or digit (Flink's \W+).
 *           map, flat_map, filter
 *                      udf symbol, required.
 *           key_by     field enum word|key|value, or udf symbol (a key selector);
 *                      exactly one of the two.
 *           union      no parameters; reads 1..64 inputs.
 *   keyed   count      no parameters: emits (key, running count).
 *           sum, min, max
 *                      field enum value|word (value): the number aggregated, the
 *                      record's value or its text read as an int64.
 *           reduce     udf symbol, required.
 *   window  window     type enum tumbling|sliding, required; size duration 1 ms..365 d,
 *                      required; slide duration 1 ms..365 d, required for sliding and
 *                      refused for tumbling; time enum processing|event (processing);
 *                      out_of_orderness duration 0..1 d (0), event time only: the
 *                      sources' bounded-out-of-orderness watermarks (the largest of the
 *                      job's event-time windows; worker/ops.h WINDOWS);
 *                      aggregate enum count|sum|min|max|reduce (count); field enum
 *                      value|word (value), for sum, min and max only; udf symbol,
 *                      required for reduce and refused otherwise.
 *   sink    sink       type enum print|discard|file, required, then by type:
 *                      print: target enum stdout|stderr (stdout); discard: rate int
 *                      0..1000000000 (0): records/s the whole sink accepts, split evenly
 *                      over its subtasks, 0 unlimited (a testing aid: a deliberately slow
 *                      sink that backpressures its inputs, see worker/ops.h SINKS);
 *                      file: path uri, required (a directory of part files, committed
 *                      exactly once at checkpoints), part_size size 1 kb..1 tb
 *                      (128 mb): a part file rolls when it reaches this size.
 *
 * Rules: a pipeline starts with its only source and ends with its only sink; in a
 * graph sources have no inputs, every other step has inputs, sinks feed nothing and
 * every other step feeds something (so each path ends in exactly one sink); keyed
 * operators and windows read only from key_by steps; a step with a udf needs an
 * artifact; socket runs with parallelism 1.
 *
 * Edges and chaining (as in Flink): an edge out of key_by is hash-partitioned; else it
 * follows `partitioning`. An edge is chained (the two operators run in one thread,
 * records passed by a function call) when it is forward, both ends have the same
 * parallelism, it is the only output of its source and the only input of its target.
 * A chain is one schedulable unit: one subtask of each chain per slot index. With slot
 * sharing, a job needs as many slots as its largest parallelism.
 *
 * Messages say where and what: "jobs/wc.yaml:7: pipeline[2].key_by.field: 'wrd' is not
 * one of word, key, value"; a stored graph (job_graph_decode) has no lines:
 * "job graph payload: graph[2].count.parallelism: expected an integer".
 *
 * Ownership: a struct job_graph and everything it points to belong to it; free it with
 * job_graph_free(). Read it freely; change it only through the functions below, which
 * keep the derived parts (edges, chains, parallelism defaults) consistent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ids.h"

struct json_writer;

#define JOB_FILE_MAX_BYTES     ((size_t)1 << 20)
#define JOB_NAME_MAX           128   /* bytes, job and operator names */
#define JOB_ID_MAX             64    /* bytes, step ids */
#define JOB_STRING_MAX         4096  /* bytes, any string parameter or artifact path */
#define JOB_MAX_VERTICES       256
#define JOB_MAX_INPUTS         64    /* inputs of one union */
#define JOB_MAX_ARTIFACTS      32
#define JOB_MAX_PARALLELISM    32768 /* == KG_UPPER_BOUND_MAX_PARALLELISM */
#define JOB_MAX_NESTING        16    /* YAML / msgpack nesting depth */

/* The envelope kind and the body's format version of an encoded graph. */
#define JOB_GRAPH_ENVELOPE_KIND "flinc.jobgraph"
#define JOB_GRAPH_FORMAT_VERSION 1

enum job_op_kind {
        JOB_OP_GENERATOR,
        JOB_OP_FILE_SOURCE,
        JOB_OP_SOCKET,
        JOB_OP_TOKENIZE,
        JOB_OP_MAP,
        JOB_OP_FLAT_MAP,
        JOB_OP_FILTER,
        JOB_OP_KEY_BY,
        JOB_OP_UNION,
        JOB_OP_COUNT,
        JOB_OP_SUM,
        JOB_OP_MIN,
        JOB_OP_MAX,
        JOB_OP_REDUCE,
        JOB_OP_WINDOW,
        JOB_OP_PRINT_SINK,
        JOB_OP_DISCARD_SINK,
        JOB_OP_FILE_SINK,
        JOB_OP__COUNT,
};

enum job_op_category {
        JOB_CAT_SOURCE,
        JOB_CAT_TRANSFORM,
        JOB_CAT_KEYED,
        JOB_CAT_WINDOW,
        JOB_CAT_SINK,
};

enum job_partitioning {
        JOB_PART_FORWARD,
        JOB_PART_HASH,
        JOB_PART_REBALANCE,
        JOB_PART_BROADCAST,
};

enum job_field { JOB_FIELD_WORD, JOB_FIELD_KEY, JOB_FIELD_VALUE };
enum job_window_type { JOB_WINDOW_TUMBLING, JOB_WINDOW_SLIDING };
enum job_time { JOB_TIME_PROCESSING, JOB_TIME_EVENT };
enum job_aggregate { JOB_AGG_COUNT, JOB_AGG_SUM, JOB_AGG_MIN, JOB_AGG_MAX, JOB_AGG_REDUCE };
enum job_print_target { JOB_PRINT_STDOUT, JOB_PRINT_STDERR };
enum job_checkpoint_mode { JOB_CP_EXACTLY_ONCE, JOB_CP_AT_LEAST_ONCE };
enum job_restart_type { JOB_RESTART_NONE, JOB_RESTART_FIXED_DELAY };

/* Parameters of each operator, defaults filled in. Strings are owned by the graph. */
struct job_generator_params {
        int64_t seed;
        int64_t words;        /* vocabulary size */
        int64_t rate_per_s;   /* records per second for the whole job; 0 = unlimited */
        int64_t count;        /* records in all; 0 = unbounded */
        int64_t line_words;   /* words per record */
        int64_t event_time_step_ms; /* 0: event time = the wall clock at emission */
        int64_t out_of_order_ms;    /* event_time_step only: the jitter's bound */
};
enum job_timestamps { JOB_TS_NONE, JOB_TS_LEADING };
struct job_file_source_params {
        char *path;                       /* uri as written */
        enum job_timestamps timestamps;   /* none: no event time; leading: see above */
};
struct job_socket_params { char *host; int64_t port; };
struct job_tokenize_params { bool lowercase; };
struct job_udf_params { char *udf; };                     /* map, flat_map, filter, reduce */
struct job_key_by_params {
        enum job_field field; /* meaningful when udf is NULL */
        char *udf;            /* key selector symbol, or NULL */
};
struct job_agg_params { enum job_field field; };          /* sum, min, max: WORD or VALUE */
struct job_window_params {
        enum job_window_type type;
        int64_t size_ms;
        int64_t slide_ms;             /* sliding only; 0 for tumbling */
        enum job_time time;
        int64_t out_of_orderness_ms;  /* event time only */
        enum job_aggregate aggregate;
        enum job_field field;         /* sum, min, max */
        char *udf;                    /* reduce; else NULL */
};
struct job_print_params { enum job_print_target target; };
struct job_discard_params { int64_t rate_per_s; };        /* 0 = unlimited */
struct job_file_sink_params { char *path; int64_t part_size_bytes; };

struct job_vertex {
        char id[JOB_ID_MAX + 1];
        char name[JOB_NAME_MAX + 1];
        enum job_op_kind kind;
        uint32_t parallelism;          /* effective */
        bool parallelism_explicit;     /* set by the step itself (kept by -p) */
        bool partitioning_explicit;    /* the step set `partitioning` */
        enum job_partitioning partitioning; /* the step's `partitioning`, if explicit */
        uint32_t n_inputs;
        uint32_t inputs[JOB_MAX_INPUTS];   /* vertex indices, in the order written */
        uint32_t n_outputs;                /* edges out of this vertex */
        uint32_t chain;                    /* index into job_graph.chains */
        uint32_t params_set;               /* bit i: parameter i of the kind was written */
        union {
                struct job_generator_params generator;
                struct job_file_source_params file_source;
                struct job_socket_params socket;
                struct job_tokenize_params tokenize;
                struct job_udf_params udf;       /* map, flat_map, filter, reduce */
                struct job_key_by_params key_by;
                struct job_agg_params agg;       /* sum, min, max */
                struct job_window_params window;
                struct job_print_params print;
                struct job_discard_params discard;
                struct job_file_sink_params file_sink;
        } params;
};

struct job_edge {
        uint32_t from;      /* vertex index */
        uint32_t to;        /* vertex index */
        uint32_t input;     /* position among the inputs of `to` */
        enum job_partitioning partitioning;
        bool chained;
};

/* A chain of operators that runs as one task; vertices[first .. first+n) of
 * job_graph.chain_vertices, in data-flow order (the head first). */
struct job_chain {
        uint32_t first;
        uint32_t n;
        uint32_t parallelism;
};

struct job_checkpointing {
        bool configured;         /* the job file had `checkpointing`; else cluster defaults */
        int64_t interval_ms;     /* 0 = no checkpoints */
        enum job_checkpoint_mode mode;
        int64_t timeout_ms;
        int64_t min_pause_ms;
};

struct job_restart {
        bool configured;         /* the job file had `restart-strategy`; else cluster's */
        enum job_restart_type type;
        uint32_t attempts;
        int64_t delay_ms;
};

struct job_graph {
        char name[JOB_NAME_MAX + 1];
        struct flinc_id id;             /* set by the submitter; zero until then */
        uint32_t parallelism;           /* the job's default operator parallelism */
        uint32_t max_parallelism;       /* effective */
        bool max_parallelism_explicit;  /* written in the file (or pinned, see below) */
        struct job_checkpointing checkpointing;
        struct job_restart restart;
        char **artifacts;               /* n_artifacts paths */
        size_t n_artifacts;
        struct job_vertex *vertices;    /* in topological order: inputs come first */
        size_t n_vertices;
        struct job_edge *edges;         /* ordered by target vertex, then input position */
        size_t n_edges;
        struct job_chain *chains;       /* ordered by head vertex */
        size_t n_chains;
        uint32_t *chain_vertices;       /* n_vertices vertex indices, grouped by chain */
};

/* Parses a job from text (len bytes, no NUL needed). name_for_messages stands for the
 * file in messages ("jobs/wc.yaml", "request body"). default_parallelism (1..32768) is
 * the cluster's parallelism.default, used when the job sets none. Relative artifact
 * paths are kept as written. On success *ret is a new graph (job_graph_free) with a
 * zero id. Errors: -EINVAL (any content error, or a bad default_parallelism), -EFBIG
 * (text over JOB_FILE_MAX_BYTES), -ENOMEM; err gets one line naming the place, the
 * field path and what was expected; *ret untouched. */
int job_graph_parse_yaml(const char *name_for_messages, const char *text, size_t len,
                         uint32_t default_parallelism, struct job_graph **ret, char *err,
                         size_t err_len);

/* Reads and parses a job file, as job_graph_parse_yaml, and makes relative artifact
 * paths relative to the file's directory (lexically; nothing is checked on disk).
 * Errors also those of reading the file (-ENOENT, ...), with the path in err. */
int job_graph_load_file(const char *path, uint32_t default_parallelism,
                        struct job_graph **ret, char *err, size_t err_len);

/* Frees g and everything it owns; NULL is fine. */
void job_graph_free(struct job_graph *g);

/* Encodes g for ZooKeeper, storage and deployment messages: an envelope of kind
 * JOB_GRAPH_ENVELOPE_KIND whose body is a msgpack map in the shape of the job file
 * (graph form, durations in ms, sizes in bytes, only the parameters the job wrote,
 * plus the job id), so that decoding validates it with the very rules of the file.
 * *ret_bytes is malloc'ed (caller frees). 0, -ENOMEM or -EINVAL (g was changed by
 * hand into something invalid). */
int job_graph_encode(const struct job_graph *g, char **ret_bytes, size_t *ret_len);

/* Decodes and fully validates what job_graph_encode wrote; any damage, truncation or
 * rule broken is an error: -EBADMSG (not an intact envelope), -EMEDIUMTYPE,
 * -EPROTONOSUPPORT, -EFBIG (see envelope_unwrap), -EINVAL (content), -ENOMEM; err says
 * what. On success *ret is a new graph equal to the encoded one (job_graph_free). */
int job_graph_decode(const void *data, size_t len, struct job_graph **ret, char *err,
                     size_t err_len);

/* Writes g as one JSON object in the shape of Flink's job plan (GET /jobs/:jid/plan):
 *   {"jid": "<32 hex>", "name": "...", "type": "STREAMING" | "BATCH",
 *    "nodes": [{"id": "<head step id>", "parallelism": 2,
 *               "operator": "generator -> tokenize -> key_by", "operator_strategy": "",
 *               "description": "Source: generator-0 -> tokenize-1 -> key_by-2",
 *               "inputs": [{"num": 0, "id": "<input node id>", "ship_strategy": "HASH",
 *                           "exchange": "pipelined_bounded"}],
 *               "optimizer_properties": {},
 *               "operators": [{"id", "name", "kind", "parallelism", "params": {...}}]}]}
 * One node per chain; ship_strategy FORWARD | HASH | REBALANCE | BROADCAST; "operators"
 * is flinc's own addition (each chained step with every parameter; durations in ms,
 * sizes in bytes). Returns the writer's sticky error (0 if none). */
int job_graph_to_json(const struct job_graph *g, struct json_writer *w);

/* Slots the job needs with slot sharing: its largest vertex parallelism. */
uint32_t job_graph_total_slots(const struct job_graph *g);

/* Whether every source is bounded (file; generator with count > 0): such a job
 * finishes, like a Flink batch job. */
bool job_graph_is_bounded(const struct job_graph *g);

/* The vertex whose id is id, or NULL; borrowed from g. */
const struct job_vertex *job_graph_find(const struct job_graph *g, const char *id);

/* `flinc run -p N`: makes p the job's default parallelism, for every step that does not
 * set its own. When max_parallelism was not written it is derived again from the new
 * parallelisms (a job restored from state must keep its max parallelism: pin it first
 * with job_graph_pin_max_parallelism). 0 or -EINVAL (p out of range, or above the
 * written max-parallelism; err says why); g unchanged on error. */
int job_graph_set_parallelism(struct job_graph *g, uint32_t p, char *err, size_t err_len);

/* Marks the current max_parallelism as explicit, so later parallelism changes keep it
 * (the number of key groups of existing state cannot change). */
void job_graph_pin_max_parallelism(struct job_graph *g);

/* Sets one parameter of one step from text, as if the job file had it, and checks the
 * step again (the CLI's `--input X`, `--output Y` on examples/wordcount.yaml are
 * job_graph_set_param(g, "source", "path", X) and (g, "sink", "path", Y) with X and Y
 * made absolute URIs). target is a step id, or "source" / "sink" for the job's only
 * source / sink (these two words always mean that, even if a step has such an id); param
 * is one of the operator's parameters (not id, name, parallelism, ...). 0, -ENOENT (no such step, or "source"/"sink" with none or several),
 * -EINVAL (no such parameter for that operator, or a bad value), -ENOMEM; err says
 * which, naming the step; g unchanged on error. */
int job_graph_set_param(struct job_graph *g, const char *target, const char *param,
                        const char *value, char *err, size_t err_len);

/* Names as written in job files and shown in plans: "generator", "file", ... and for
 * sinks "sink:print", "sink:discard", "sink:file". Static strings; "?" out of range. */
const char *job_op_kind_name(enum job_op_kind kind);
enum job_op_category job_op_kind_category(enum job_op_kind kind);
const char *job_partitioning_name(enum job_partitioning p); /* "FORWARD", "HASH", ... */

/* Writes the operator schema (every operator with its category and parameters: name,
 * type, required, default, range, choices, doc) as a JSON array, for --help, the REST
 * API and the docs. Returns the writer's sticky error. */
int job_schema_to_json(struct json_writer *w);
