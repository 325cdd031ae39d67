/* The leader's REST answers in the shapes of Flink's REST API (field names and types of
 * Flink 1.17's monitoring API), filled from the registry and the jobs. Where flinc has
 * no such thing (JVM memory, JMX, bytes on the wire) the field is there with 0 / -1 so
 * that tools reading Flink's shapes keep working; the tests keep the expected shapes.
 * "flink-version" carries flinc's version. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "coordinator/coord_internal.h"

#define VIEW_REVISION "flinc " COORD_VERSION " @ " __DATE__

/* Flink's JobStatus names, for "timestamps". */
static const char *const flink_job_states[] = {
        "INITIALIZING", "CREATED", "RUNNING", "FAILING", "FAILED", "CANCELLING",
        "CANCELED", "FINISHED", "RESTARTING", "SUSPENDED", "RECONCILING",
};

static int64_t job_ts(const struct coord_job *j, const char *name) {
        for (int s = 0; s < COORD_JOB__COUNT; s++)
                if (strcmp(coord_job_state_name((enum coord_job_state)s), name) == 0)
                        return j->state_ts_ms[s];
        return 0;
}

static int64_t job_duration(const struct coord_job *j) {
        int64_t end = j->end_ms >= 0 ? j->end_ms : clock_wall_ms();
        return end >= j->start_ms ? end - j->start_ms : 0;
}

static void task_counts(const struct coord_job *j, int chain, uint32_t counts[COORD_TASK__COUNT]) {
        memset(counts, 0, sizeof(uint32_t) * COORD_TASK__COUNT);
        for (size_t i = 0; i < j->n_tasks; i++)
                if (chain < 0 || j->tasks[i].chain == (uint32_t)chain)
                        counts[j->tasks[i].state]++;
}

/* Flink's ExecutionJobVertex aggregate state. */
static enum coord_task_state vertex_state(const uint32_t counts[COORD_TASK__COUNT],
                                          uint32_t parallelism) {
        if (counts[COORD_TASK_FAILED])
                return COORD_TASK_FAILED;
        if (counts[COORD_TASK_CANCELING])
                return COORD_TASK_CANCELING;
        if (counts[COORD_TASK_CANCELED])
                return COORD_TASK_CANCELED;
        if (counts[COORD_TASK_INITIALIZING])
                return COORD_TASK_INITIALIZING;
        if (counts[COORD_TASK_RUNNING])
                return COORD_TASK_RUNNING;
        if (counts[COORD_TASK_FINISHED])
                return counts[COORD_TASK_FINISHED] == parallelism ? COORD_TASK_FINISHED
                                                                  : COORD_TASK_RUNNING;
        if (counts[COORD_TASK_DEPLOYING])
                return COORD_TASK_DEPLOYING;
        if (counts[COORD_TASK_SCHEDULED])
                return COORD_TASK_SCHEDULED;
        return COORD_TASK_CREATED;
}

static void lower_task_counts(struct json_writer *w, const uint32_t counts[COORD_TASK__COUNT],
                              uint32_t total) {
        json_begin_object(w);
        json_kv_uint(w, "total", total);
        for (int s = 0; s < COORD_TASK__COUNT; s++)
                json_kv_uint(w, coord_task_state_key((enum coord_task_state)s), counts[s]);
        json_end_object(w);
}

static void upper_task_counts(struct json_writer *w, const uint32_t counts[COORD_TASK__COUNT]) {
        json_begin_object(w);
        for (int s = 0; s < COORD_TASK__COUNT; s++)
                json_kv_uint(w, coord_task_state_name((enum coord_task_state)s), counts[s]);
        json_end_object(w);
}

void coord_view_config(struct coord *c, struct json_writer *w) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        json_begin_object(w);
        json_kv_int(w, "refresh-interval", 3000);
        json_kv_string(w, "timezone-name", tm.tm_zone ? tm.tm_zone : "UTC");
        json_kv_int(w, "timezone-offset", (int64_t)tm.tm_gmtoff * 1000);
        json_kv_string(w, "flink-version", COORD_VERSION);
        json_kv_string(w, "flink-revision", VIEW_REVISION);
        json_key(w, "features");
        json_begin_object(w);
        json_kv_bool(w, "web-submit", false);
        json_kv_bool(w, "web-cancel", true);
        json_kv_bool(w, "web-rescale", false);
        json_kv_bool(w, "web-history", false);
        json_end_object(w);
        json_end_object(w);
}

void coord_view_jobmanager_config(struct coord *c, struct json_writer *w) {
        json_begin_array(w);
        for (size_t k = 0; k < cfg_key_count(); k++) {
                char value[CFG_MAX_VALUE_BYTES + 1];
                if (cfg_value_text(c->cfg, (enum cfg_key)k, value, sizeof(value)) < 0)
                        continue;
                json_begin_object(w);
                json_kv_string(w, "key", cfg_key_name((enum cfg_key)k));
                json_kv_string(w, "value", value);
                json_end_object(w);
        }
        json_end_array(w);
}

void coord_view_overview(struct coord *c, struct json_writer *w) {
        uint32_t running = 0, finished = 0, canceled = 0, failed = 0;
        for (const struct coord_job *j = c->jobs; j; j = j->next) {
                switch (j->state) {
                case COORD_JOB_FINISHED:
                        finished++;
                        break;
                case COORD_JOB_CANCELED:
                        canceled++;
                        break;
                case COORD_JOB_FAILED:
                        failed++;
                        break;
                default:
                        running++; /* Flink counts every job not globally terminal */
                }
        }
        json_begin_object(w);
        json_kv_uint(w, "taskmanagers", c->n_workers);
        json_kv_uint(w, "slots-total", coord_registry_total_slots(c));
        json_kv_uint(w, "slots-available", coord_registry_free_slots(c));
        json_kv_uint(w, "jobs-running", running);
        json_kv_uint(w, "jobs-finished", finished);
        json_kv_uint(w, "jobs-cancelled", canceled);
        json_kv_uint(w, "jobs-failed", failed);
        json_kv_string(w, "flink-version", COORD_VERSION);
        json_kv_string(w, "flink-commit", VIEW_REVISION);
        json_end_object(w);
}

void coord_view_jobs(struct coord *c, struct json_writer *w) {
        json_begin_object(w);
        json_key(w, "jobs");
        json_begin_array(w);
        for (const struct coord_job *j = c->jobs; j; j = j->next) {
                json_begin_object(w);
                json_kv_string(w, "id", j->id);
                json_kv_string(w, "status", coord_job_state_name(j->state));
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
}

void coord_view_jobs_overview(struct coord *c, struct json_writer *w) {
        json_begin_object(w);
        json_key(w, "jobs");
        json_begin_array(w);
        for (const struct coord_job *j = c->jobs; j; j = j->next) {
                uint32_t counts[COORD_TASK__COUNT];
                task_counts(j, -1, counts);
                json_begin_object(w);
                json_kv_string(w, "jid", j->id);
                json_kv_string(w, "name", j->name);
                json_kv_string(w, "state", coord_job_state_name(j->state));
                json_kv_int(w, "start-time", j->start_ms);
                json_kv_int(w, "end-time", j->end_ms);
                json_kv_int(w, "duration", job_duration(j));
                json_kv_int(w, "last-modification", j->last_mod_ms);
                json_key(w, "tasks");
                lower_task_counts(w, counts, (uint32_t)j->n_tasks);
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
}

/* metrics.latency.interval: what the sink subtasks measured from latency markers, in ms
 * (a vertex: count summed, the other figures the largest over its subtasks). */
static void latency_metrics(struct json_writer *w, const struct coord_latency *l) {
        json_key(w, "latency");
        json_begin_object(w);
        json_kv_uint(w, "count", l->count);
        json_kv_double(w, "min", (double)l->min_us / 1000.0);
        json_kv_double(w, "max", (double)l->max_us / 1000.0);
        json_kv_double(w, "mean", (double)l->mean_us / 1000.0);
        json_kv_double(w, "p50", (double)l->p50_us / 1000.0);
        json_kv_double(w, "p95", (double)l->p95_us / 1000.0);
        json_kv_double(w, "p99", (double)l->p99_us / 1000.0);
        json_end_object(w);
}

static void latency_merge(struct coord_latency *into, const struct coord_latency *l) {
        if (!l->count)
                return;
        uint64_t *a[] = {&into->min_us, &into->max_us, &into->mean_us, &into->p50_us,
                         &into->p95_us, &into->p99_us};
        const uint64_t b[] = {l->min_us, l->max_us, l->mean_us, l->p50_us, l->p95_us,
                              l->p99_us};
        for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
                if (!into->count || b[i] > *a[i])
                        *a[i] = b[i];
        into->count += l->count;
}

static void vertex_metrics(struct json_writer *w, uint64_t rin, uint64_t rout,
                           const struct coord_latency *lat) {
        json_begin_object(w);
        json_kv_uint(w, "read-bytes", 0);
        json_kv_bool(w, "read-bytes-complete", false);
        json_kv_uint(w, "write-bytes", 0);
        json_kv_bool(w, "write-bytes-complete", false);
        json_kv_uint(w, "read-records", rin);
        json_kv_bool(w, "read-records-complete", true);
        json_kv_uint(w, "write-records", rout);
        json_kv_bool(w, "write-records-complete", true);
        json_kv_uint(w, "accumulated-backpressured-time", 0);
        json_kv_uint(w, "accumulated-idle-time", 0);
        json_kv_uint(w, "accumulated-busy-time", 0);
        if (lat && lat->count)
                latency_metrics(w, lat);
        json_end_object(w);
}

#define CHAIN_NAME_MAX (JOB_NAME_MAX * 4 + 64)

/* A chain is named by its operators, as Flink names a chained vertex. */
static void chain_name(const struct job_graph *g, const struct job_chain *chain, char *name,
                       size_t size) {
        size_t n = 0;
        name[0] = '\0';
        for (uint32_t k = 0; k < chain->n && n < size - 1; k++) {
                const struct job_vertex *v = &g->vertices[g->chain_vertices[chain->first + k]];
                int m = snprintf(name + n, size - n, "%s%s", k ? " -> " : "", v->name);
                if (m > 0)
                        n += (size_t)m;
        }
}

void coord_view_job(struct coord *c, const struct coord_job *j, struct json_writer *w) {
        const struct job_graph *g = j->g;
        uint32_t vstatus[COORD_TASK__COUNT] = {0};
        json_begin_object(w);
        json_kv_string(w, "jid", j->id);
        json_kv_string(w, "name", j->name);
        json_kv_bool(w, "isStoppable", false);
        json_kv_string(w, "state", coord_job_state_name(j->state));
        json_kv_string(w, "job-type", j->bounded ? "BATCH" : "STREAMING");
        json_kv_int(w, "start-time", j->start_ms);
        json_kv_int(w, "end-time", j->end_ms);
        json_kv_int(w, "duration", job_duration(j));
        json_kv_int(w, "maxParallelism", g ? (int64_t)g->max_parallelism : -1);
        json_kv_int(w, "now", clock_wall_ms());
        json_key(w, "timestamps");
        json_begin_object(w);
        for (size_t i = 0; i < sizeof(flink_job_states) / sizeof(flink_job_states[0]); i++)
                json_kv_int(w, flink_job_states[i], job_ts(j, flink_job_states[i]));
        json_end_object(w);
        json_key(w, "vertices");
        json_begin_array(w);
        for (uint32_t ch = 0; g && ch < g->n_chains; ch++) {
                const struct job_chain *chain = &g->chains[ch];
                const struct job_vertex *head = &g->vertices[g->chain_vertices[chain->first]];
                uint32_t counts[COORD_TASK__COUNT];
                task_counts(j, (int)ch, counts);
                enum coord_task_state vs = vertex_state(counts, chain->parallelism);
                vstatus[vs]++;
                int64_t start = -1, end = -1;
                bool all_terminal = true;
                uint64_t rin = 0, rout = 0;
                struct coord_latency lat = {0};
                for (size_t i = 0; i < j->n_tasks; i++) {
                        const struct coord_task *t = &j->tasks[i];
                        if (t->chain != ch)
                                continue;
                        if (t->start_ms >= 0 && (start < 0 || t->start_ms < start))
                                start = t->start_ms;
                        if (!coord_task_state_is_terminal(t->state) || t->end_ms < 0)
                                all_terminal = false;
                        else if (t->end_ms > end)
                                end = t->end_ms;
                        rin += t->records_in;
                        rout += t->records_out;
                        latency_merge(&lat, &t->latency);
                }
                if (!all_terminal)
                        end = -1;
                int64_t dur = start < 0 ? -1 : (end >= 0 ? end : clock_wall_ms()) - start;
                char name[CHAIN_NAME_MAX];
                chain_name(g, chain, name, sizeof(name));
                json_begin_object(w);
                json_kv_string(w, "id", head->id);
                json_kv_string(w, "name", name);
                json_kv_uint(w, "maxParallelism", g->max_parallelism);
                json_kv_uint(w, "parallelism", chain->parallelism);
                json_kv_string(w, "status", coord_task_state_name(vs));
                json_kv_int(w, "start-time", start);
                json_kv_int(w, "end-time", end);
                json_kv_int(w, "duration", dur);
                json_key(w, "tasks");
                upper_task_counts(w, counts);
                json_key(w, "metrics");
                vertex_metrics(w, rin, rout, &lat);
                json_end_object(w);
        }
        json_end_array(w);
        json_key(w, "status-counts");
        upper_task_counts(w, vstatus);
        json_key(w, "plan");
        if (g) {
                job_graph_to_json(g, w);
        } else {
                json_begin_object(w);
                json_kv_string(w, "jid", j->id);
                json_kv_string(w, "name", j->name);
                json_kv_string(w, "type", "STREAMING");
                json_key(w, "nodes");
                json_begin_array(w);
                json_end_array(w);
                json_end_object(w);
        }
        /* flinc's own: the current attempt and restarts used. */
        json_kv_uint(w, "attempt", j->attempt);
        json_kv_uint(w, "restarts", j->restarts);
        json_end_object(w);
}

void coord_view_job_exceptions(struct coord *c, const struct coord_job *j, struct json_writer *w) {
        uint32_t kept = j->n_exc < COORD_MAX_EXCEPTIONS ? j->n_exc : COORD_MAX_EXCEPTIONS;
        bool truncated = j->n_exc > COORD_MAX_EXCEPTIONS;
        json_begin_object(w);
        if (j->root_exception) {
                json_kv_string(w, "root-exception", j->root_exception);
                json_kv_int(w, "timestamp", j->root_exception_ts_ms);
        } else {
                json_kv_null(w, "root-exception");
                json_kv_null(w, "timestamp");
        }
        json_key(w, "all-exceptions");
        json_begin_array(w);
        for (uint32_t k = 0; k < kept; k++) {
                /* newest first */
                const struct coord_exception *e = &j->exc[(j->n_exc - 1 - k) % COORD_MAX_EXCEPTIONS];
                json_begin_object(w);
                json_kv_string(w, "exception", e->text ? e->text : "");
                json_kv_string(w, "task", e->task);
                json_kv_string(w, "location", e->location);
                json_kv_int(w, "timestamp", e->ts_ms);
                json_kv_string(w, "taskManagerId", e->location);
                json_end_object(w);
        }
        json_end_array(w);
        json_kv_bool(w, "truncated", truncated);
        json_key(w, "exceptionHistory");
        json_begin_object(w);
        json_key(w, "entries");
        json_begin_array(w);
        for (uint32_t k = 0; k < kept; k++) {
                const struct coord_exception *e = &j->exc[(j->n_exc - 1 - k) % COORD_MAX_EXCEPTIONS];
                json_begin_object(w);
                json_kv_string(w, "exceptionName", "flinc.JobFailure");
                json_kv_string(w, "stacktrace", e->text ? e->text : "");
                json_kv_int(w, "timestamp", e->ts_ms);
                if (e->task[0])
                        json_kv_string(w, "taskName", e->task);
                else
                        json_kv_null(w, "taskName");
                json_kv_string(w, "location", e->location);
                json_kv_string(w, "endpoint", e->location);
                json_kv_string(w, "taskManagerId", e->location);
                json_key(w, "failureLabels");
                json_begin_object(w);
                json_end_object(w);
                json_key(w, "concurrentExceptions");
                json_begin_array(w);
                json_end_array(w);
                json_end_object(w);
        }
        json_end_array(w);
        json_kv_bool(w, "truncated", truncated);
        json_end_object(w);
        json_end_object(w);
}

static void resource(struct json_writer *w, uint32_t slots) {
        json_begin_object(w);
        json_kv_double(w, "cpuCores", (double)slots);
        json_kv_uint(w, "taskHeapMemory", 0);
        json_kv_uint(w, "taskOffHeapMemory", 0);
        json_kv_uint(w, "managedMemory", 0);
        json_kv_uint(w, "networkMemory", 0);
        json_key(w, "extendedResources");
        json_begin_object(w);
        json_end_object(w);
        json_end_object(w);
}

static void worker_fields(struct coord *c, const struct coord_worker *wk, struct json_writer *w) {
        char path[COORD_WORKER_HOST_MAX + 96];
        snprintf(path, sizeof(path), "flinc://%s/worker/%s", wk->peer, wk->id);
        uint32_t free_slots = coord_worker_free_slots(wk);
        json_kv_string(w, "id", wk->id);
        json_kv_string(w, "path", path);
        json_kv_uint(w, "dataPort", wk->data_port);
        json_kv_int(w, "jmxPort", -1);
        /* Flink's field holds the time of the last heartbeat, despite its name. */
        json_kv_int(w, "timeSinceLastHeartbeat", wk->last_heartbeat_wall_ms);
        json_kv_uint(w, "slotsNumber", wk->slots);
        json_kv_uint(w, "freeSlots", free_slots);
        json_key(w, "totalResource");
        resource(w, wk->slots);
        json_key(w, "freeResource");
        resource(w, free_slots);
        json_key(w, "hardware");
        json_begin_object(w);
        json_kv_int(w, "cpuCores", 0);   /* not reported by workers */
        json_kv_int(w, "physicalMemory", 0);
        json_kv_int(w, "freeMemory", 0);
        json_kv_int(w, "managedMemory", 0);
        json_end_object(w);
        json_key(w, "memoryConfiguration");
        json_begin_object(w);
        static const char *const mem[] = {
                "frameworkHeap", "taskHeap", "frameworkOffHeap", "taskOffHeap", "networkMemory",
                "managedMemory", "jvmMetaspace", "jvmOverhead", "totalFlinkMemory",
                "totalProcessMemory",
        };
        for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++)
                json_kv_uint(w, mem[i], 0);
        json_end_object(w);
        /* flinc's own */
        json_kv_string(w, "host", wk->host);
        json_kv_uint(w, "pid", wk->pid);
        json_kv_int(w, "registered-time", wk->registered_wall_ms);
}

void coord_view_taskmanagers(struct coord *c, struct json_writer *w) {
        json_begin_object(w);
        json_key(w, "taskmanagers");
        json_begin_array(w);
        for (const struct coord_worker *wk = c->workers; wk; wk = wk->next) {
                json_begin_object(w);
                worker_fields(c, wk, w);
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
}

void coord_view_taskmanager(struct coord *c, const struct coord_worker *wk, struct json_writer *w) {
        json_begin_object(w);
        worker_fields(c, wk, w);
        json_key(w, "metrics");
        json_begin_object(w);
        static const char *const m[] = {
                "heapUsed", "heapCommitted", "heapMax", "nonHeapUsed", "nonHeapCommitted",
                "nonHeapMax", "directCount", "directUsed", "directMax", "mappedCount",
                "mappedUsed", "mappedMax", "memorySegmentsAvailable", "memorySegmentsTotal",
                "nettyShuffleMemorySegmentsAvailable", "nettyShuffleMemorySegmentsUsed",
                "nettyShuffleMemorySegmentsTotal", "nettyShuffleMemoryAvailable",
                "nettyShuffleMemoryUsed", "nettyShuffleMemoryTotal",
        };
        for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
                json_kv_uint(w, m[i], 0);
        json_key(w, "garbageCollectors");
        json_begin_array(w);
        json_end_array(w);
        json_end_object(w);
        json_key(w, "allocatedSlots");
        json_begin_array(w);
        for (uint32_t i = 0; i < wk->slots; i++) {
                if (!wk->slot[i].job)
                        continue;
                json_begin_object(w);
                json_kv_string(w, "jobId", wk->slot[i].job->id);
                json_key(w, "resource");
                resource(w, 1);
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
}

/* Flink's JobVertexDetailsInfo (GET /jobs/:jobid/vertices/:vertexid): the subtasks of one
 * vertex (chain, named by its head step id) and where they run; a subtask not placed
 * (or whose worker was lost) shows Flink's "(unassigned)". */
int coord_view_job_vertex(struct coord *c, const struct coord_job *j, const char *vertex_id,
                          struct json_writer *w) {
        const struct job_graph *g = j->g;
        uint32_t ch = 0;
        while (g && ch < g->n_chains &&
               strcmp(g->vertices[g->chain_vertices[g->chains[ch].first]].id, vertex_id) != 0)
                ch++;
        if (!g || ch == g->n_chains)
                return -ENOENT;
        const struct job_chain *chain = &g->chains[ch];
        char name[CHAIN_NAME_MAX];
        chain_name(g, chain, name, sizeof(name));
        int64_t now = clock_wall_ms();
        json_begin_object(w);
        json_kv_string(w, "id", vertex_id);
        json_kv_string(w, "name", name);
        json_kv_uint(w, "parallelism", chain->parallelism);
        json_kv_uint(w, "maxParallelism", g->max_parallelism);
        json_kv_int(w, "now", now);
        json_key(w, "subtasks");
        json_begin_array(w);
        for (size_t i = 0; i < j->n_tasks; i++) {
                const struct coord_task *t = &j->tasks[i];
                if (t->chain != ch)
                        continue;
                const struct coord_worker *wk = NULL;
                if (j->deployed && j->placement && t->job_slot < j->slots_needed)
                        wk = j->placement[t->job_slot].worker;
                char endpoint[COORD_WORKER_HOST_MAX + 16];
                if (wk)
                        snprintf(endpoint, sizeof(endpoint), "%s:%" PRIu32, wk->host,
                                 wk->data_port);
                int64_t end = coord_task_state_is_terminal(t->state) ? t->end_ms : -1;
                json_begin_object(w);
                json_kv_uint(w, "subtask", t->subtask);
                json_kv_string(w, "status", coord_task_state_name(t->state));
                json_kv_uint(w, "attempt", j->attempt);
                json_kv_string(w, "endpoint", wk ? endpoint : "(unassigned)");
                json_kv_string(w, "taskmanager-id", wk ? wk->id : "(unassigned)");
                json_kv_int(w, "start-time", t->start_ms);
                json_kv_int(w, "end-time", end);
                json_kv_int(w, "duration",
                            t->start_ms < 0 ? -1 : (end >= 0 ? end : now) - t->start_ms);
                json_key(w, "metrics");
                vertex_metrics(w, t->records_in, t->records_out, &t->latency);
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
        return 0;
}

/* ---- vertex metrics (Flink's metric REST API) ---- */

static const char *const VERTEX_METRICS[] = {"numRecordsIn", "numRecordsOut",
                                             "numLateRecordsDropped"};

static uint64_t task_metric(const struct coord_task *t, size_t m) {
        return m == 0 ? t->records_in : m == 1 ? t->records_out : t->late_dropped;
}

/* Whether the comma-separated list holds name (a NULL list holds everything). */
static bool list_has(const char *list, const char *name, size_t name_len) {
        if (!list)
                return true;
        for (const char *p = list; *p;) {
                size_t n = strcspn(p, ",");
                if (n == name_len && strncmp(p, name, n) == 0)
                        return true;
                p += n;
                if (*p == ',')
                        p++;
        }
        return false;
}

int coord_view_vertex_metrics(struct coord *c, const struct coord_job *j, const char *vertex_id,
                              bool aggregated, const char *get, const char *agg,
                              struct json_writer *w) {
        (void)c;
        const struct job_graph *g = j->g;
        uint32_t ch = 0;
        while (g && ch < g->n_chains &&
               strcmp(g->vertices[g->chain_vertices[g->chains[ch].first]].id, vertex_id) != 0)
                ch++;
        if (!g || ch == g->n_chains)
                return -ENOENT;
        if (agg) {
                for (const char *p = agg; *p;) {
                        size_t n = strcspn(p, ",");
                        if (!((n == 3 && (strncmp(p, "min", 3) == 0 || strncmp(p, "max", 3) == 0 ||
                                          strncmp(p, "avg", 3) == 0 || strncmp(p, "sum", 3) == 0))))
                                return -EINVAL;
                        p += n;
                        if (*p == ',')
                                p++;
                }
        }
        /* numLateRecordsDropped belongs to window operators: only a chain with one has it */
        const struct job_chain *chain = &g->chains[ch];
        bool windowed = false;
        for (uint32_t k = 0; k < chain->n; k++)
                windowed |= g->vertices[g->chain_vertices[chain->first + k]].kind == JOB_OP_WINDOW;
        size_t n_metrics = windowed ? 3 : 2;
        json_begin_array(w);
        if (aggregated) {
                for (size_t m = 0; m < n_metrics; m++) {
                        const char *name = VERTEX_METRICS[m];
                        if (get && !list_has(get, name, strlen(name)))
                                continue;
                        json_begin_object(w);
                        json_kv_string(w, "id", name);
                        if (get) {
                                uint64_t mn = UINT64_MAX, mx = 0, sum = 0, n = 0;
                                for (size_t i = 0; i < j->n_tasks; i++) {
                                        const struct coord_task *t = &j->tasks[i];
                                        if (t->chain != ch)
                                                continue;
                                        uint64_t v = task_metric(t, m);
                                        mn = v < mn ? v : mn;
                                        mx = v > mx ? v : mx;
                                        sum += v;
                                        n++;
                                }
                                if (n == 0)
                                        mn = 0;
                                if (list_has(agg, "min", 3))
                                        json_kv_double(w, "min", (double)mn);
                                if (list_has(agg, "max", 3))
                                        json_kv_double(w, "max", (double)mx);
                                if (list_has(agg, "avg", 3))
                                        json_kv_double(w, "avg", n ? (double)sum / (double)n : 0.0);
                                if (list_has(agg, "sum", 3))
                                        json_kv_double(w, "sum", (double)sum);
                        }
                        json_end_object(w);
                }
        } else {
                for (size_t i = 0; i < j->n_tasks; i++) {
                        const struct coord_task *t = &j->tasks[i];
                        if (t->chain != ch)
                                continue;
                        for (size_t m = 0; m < n_metrics; m++) {
                                char id[64];
                                int len = snprintf(id, sizeof(id), "%" PRIu32 ".%s", t->subtask,
                                                   VERTEX_METRICS[m]);
                                if (get && !list_has(get, id, (size_t)len))
                                        continue;
                                json_begin_object(w);
                                json_kv_string(w, "id", id);
                                if (get) {
                                        char v[24];
                                        snprintf(v, sizeof(v), "%" PRIu64, task_metric(t, m));
                                        json_kv_string(w, "value", v);
                                }
                                json_end_object(w);
                        }
                }
        }
        json_end_array(w);
        return 0;
}
