/* Partitioners, network buffers, barrier alignment and generator positions (see
 * dataflow.h). */
#include "worker/dataflow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/keygroup.h"

/* ---- partitioners ---- */

void wrk_partitioner_init(struct wrk_partitioner *p, enum job_partitioning kind, uint32_t self,
                          uint32_t n_targets, uint32_t max_parallelism) {
        p->kind = kind;
        p->self = self;
        p->n_targets = n_targets ? n_targets : 1;
        p->max_parallelism = max_parallelism ? max_parallelism : KG_DEFAULT_MAX_PARALLELISM;
        p->next = (self + 1) % p->n_targets;
}

void wrk_record_key(const struct wrk_record *rec, const char **ret_key, size_t *ret_len) {
        if (rec->key) {
                *ret_key = rec->key;
                *ret_len = rec->key_len;
        } else {
                *ret_key = rec->text;
                *ret_len = rec->text_len;
        }
}

uint32_t wrk_partition(struct wrk_partitioner *p, const struct wrk_record *rec) {
        switch (p->kind) {
        case JOB_PART_FORWARD:
                return p->self < p->n_targets ? p->self : p->self % p->n_targets;
        case JOB_PART_HASH: {
                const char *k;
                size_t kl;
                wrk_record_key(rec, &k, &kl);
                uint32_t g = kg_of_key(k, kl, p->max_parallelism);
                return kg_operator_index(g, p->max_parallelism, p->n_targets);
        }
        case JOB_PART_REBALANCE: {
                uint32_t t = p->next;
                p->next = (t + 1) % p->n_targets;
                return t;
        }
        case JOB_PART_BROADCAST:
                return WRK_PART_ALL;
        }
        return 0;
}

/* ---- buffers ---- */

void wrk_outbuf_reset(struct wrk_outbuf *b) {
        b->len = 0;
        b->records = 0;
        b->first_us = 0;
}

static size_t put_varint(unsigned char *p, uint64_t v) {
        size_t n = 0;
        while (v >= 0x80) {
                p[n++] = (unsigned char)(v | 0x80);
                v >>= 7;
        }
        p[n++] = (unsigned char)v;
        return n;
}

static uint64_t zigzag(int64_t v) {
        return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v) {
        return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void outbuf_touch(struct wrk_outbuf *b, uint64_t now_us) {
        if (b->len == 0)
                b->first_us = now_us;
}

int wrk_outbuf_add_record(struct wrk_outbuf *b, const struct wrk_record *rec, uint64_t now_us) {
        size_t key_len = rec->key ? rec->key_len : 0;
        /* type, kind, 5 varints of at most 10 bytes each, the bytes */
        size_t worst = 2 + 5 * 10 + key_len + rec->text_len;
        if (worst > WRK_BUFFER_BYTES)
                return -EMSGSIZE;
        if (worst > WRK_BUFFER_BYTES - b->len)
                return -ENOSPC;
        outbuf_touch(b, now_us);
        unsigned char *p = b->data + b->len;
        size_t n = 0;
        p[n++] = WRK_ENTRY_RECORD;
        p[n++] = (unsigned char)rec->kind;
        n += put_varint(p + n, key_len);
        if (key_len)
                memcpy(p + n, rec->key, key_len);
        n += key_len;
        n += put_varint(p + n, rec->text_len);
        if (rec->text_len)
                memcpy(p + n, rec->text, rec->text_len);
        n += rec->text_len;
        n += put_varint(p + n, zigzag(rec->value));
        n += put_varint(p + n, zigzag(rec->timestamp_ms));
        n += put_varint(p + n, rec->seq);
        b->len += n;
        b->records++;
        return 0;
}

int wrk_outbuf_add_barrier(struct wrk_outbuf *b, uint64_t checkpoint_id, bool savepoint,
                           uint64_t now_us) {
        if (WRK_BUFFER_BYTES - b->len < 12)
                return -ENOSPC;
        outbuf_touch(b, now_us);
        unsigned char *p = b->data + b->len;
        size_t n = 0;
        p[n++] = WRK_ENTRY_BARRIER;
        n += put_varint(p + n, checkpoint_id);
        p[n++] = savepoint ? 1 : 0;
        b->len += n;
        return 0;
}

int wrk_outbuf_add_watermark(struct wrk_outbuf *b, int64_t watermark, uint64_t now_us) {
        if (WRK_BUFFER_BYTES - b->len < 11)
                return -ENOSPC;
        outbuf_touch(b, now_us);
        unsigned char *p = b->data + b->len;
        size_t n = 0;
        p[n++] = WRK_ENTRY_WATERMARK;
        n += put_varint(p + n, zigzag(watermark));
        b->len += n;
        return 0;
}

int wrk_outbuf_add_end(struct wrk_outbuf *b, uint64_t now_us) {
        if (WRK_BUFFER_BYTES - b->len < 1)
                return -ENOSPC;
        outbuf_touch(b, now_us);
        b->data[b->len++] = WRK_ENTRY_END;
        return 0;
}

int wrk_outbuf_add_latency(struct wrk_outbuf *b, const struct wrk_latency_marker *m,
                           uint64_t now_us) {
        if (WRK_BUFFER_BYTES - b->len < 1 + 3 * 10)
                return -ENOSPC;
        outbuf_touch(b, now_us);
        unsigned char *p = b->data + b->len;
        size_t n = 0;
        p[n++] = WRK_ENTRY_LATENCY;
        n += put_varint(p + n, zigzag(m->marked_us));
        n += put_varint(p + n, m->vertex);
        n += put_varint(p + n, m->subtask);
        b->len += n;
        return 0;
}

bool wrk_outbuf_due(const struct wrk_outbuf *b, uint64_t now_us, uint64_t timeout_ms) {
        if (b->len == 0)
                return false;
        if (timeout_ms == 0)
                return true;
        return now_us >= b->first_us && now_us - b->first_us >= timeout_ms * 1000u;
}

static int get_varint(const unsigned char *d, size_t len, size_t *pos, uint64_t *ret) {
        uint64_t v = 0;
        for (unsigned shift = 0; shift < 70; shift += 7) {
                if (*pos >= len)
                        return -EBADMSG;
                unsigned char c = d[(*pos)++];
                if (shift == 63 && (c & 0x7e))
                        return -EBADMSG;
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

static int get_bytes(const unsigned char *d, size_t len, size_t *pos, const char **ret,
                     size_t *ret_len) {
        uint64_t n;
        if (get_varint(d, len, pos, &n) < 0 || n > len - *pos || n > WRK_RECORD_MAX_BYTES)
                return -EBADMSG;
        *ret = (const char *)d + *pos;
        *ret_len = (size_t)n;
        *pos += (size_t)n;
        return 0;
}

int wrk_buffer_next(const void *data, size_t len, size_t *pos, struct wrk_entry *ret) {
        const unsigned char *d = data;
        if (*pos >= len)
                return 0;
        size_t p = *pos;
        struct wrk_entry e;
        memset(&e, 0, sizeof(e));
        unsigned char type = d[p++];
        switch (type) {
        case WRK_ENTRY_RECORD: {
                if (p >= len)
                        return -EBADMSG;
                unsigned char kind = d[p++];
                if (kind != WRK_REC_TEXT && kind != WRK_REC_PAIR)
                        return -EBADMSG;
                e.rec.kind = (enum wrk_record_kind)kind;
                const char *key;
                size_t key_len;
                uint64_t v, ts, seq;
                if (get_bytes(d, len, &p, &key, &key_len) < 0 ||
                    get_bytes(d, len, &p, &e.rec.text, &e.rec.text_len) < 0 ||
                    get_varint(d, len, &p, &v) < 0 || get_varint(d, len, &p, &ts) < 0 ||
                    get_varint(d, len, &p, &seq) < 0)
                        return -EBADMSG;
                e.rec.key = key_len ? key : NULL;
                e.rec.key_len = key_len;
                e.rec.value = unzigzag(v);
                e.rec.timestamp_ms = unzigzag(ts);
                e.rec.seq = seq;
                break;
        }
        case WRK_ENTRY_BARRIER: {
                uint64_t id;
                if (get_varint(d, len, &p, &id) < 0 || id == 0 || p >= len || d[p] > 1)
                        return -EBADMSG;
                e.checkpoint_id = id;
                e.savepoint = d[p++] == 1;
                break;
        }
        case WRK_ENTRY_END:
                break;
        case WRK_ENTRY_WATERMARK: {
                uint64_t w;
                if (get_varint(d, len, &p, &w) < 0)
                        return -EBADMSG;
                e.watermark = unzigzag(w);
                break;
        }
        case WRK_ENTRY_LATENCY: {
                uint64_t t, v, st;
                if (get_varint(d, len, &p, &t) < 0 || get_varint(d, len, &p, &v) < 0 ||
                    get_varint(d, len, &p, &st) < 0 || v > UINT32_MAX || st > UINT32_MAX)
                        return -EBADMSG;
                e.marker.marked_us = unzigzag(t);
                e.marker.vertex = (uint32_t)v;
                e.marker.subtask = (uint32_t)st;
                break;
        }
        default:
                return -EBADMSG;
        }
        e.type = (enum wrk_entry_type)type;
        *ret = e;
        *pos = p;
        return 1;
}

/* ---- watermarks ---- */

int wrk_wm_valve_init(struct wrk_wm_valve *v, uint32_t n_inputs) {
        if (n_inputs == 0 || n_inputs > WRK_ALIGN_MAX_INPUTS)
                return -EINVAL;
        memset(v, 0, sizeof(*v));
        v->wm = calloc(n_inputs, sizeof(*v->wm));
        v->ended = calloc(n_inputs, 1);
        if (!v->wm || !v->ended) {
                wrk_wm_valve_finish(v);
                return -ENOMEM;
        }
        for (uint32_t i = 0; i < n_inputs; i++)
                v->wm[i] = INT64_MIN;
        v->n_inputs = n_inputs;
        v->current = INT64_MIN;
        return 0;
}

void wrk_wm_valve_finish(struct wrk_wm_valve *v) {
        free(v->wm);
        free(v->ended);
        v->wm = NULL;
        v->ended = NULL;
}

/* The minimum over the live inputs (INT64_MAX when all ended); true when it is above
 * the current one, which it then becomes. */
static bool valve_advance(struct wrk_wm_valve *v, int64_t *ret) {
        int64_t m = INT64_MAX;
        for (uint32_t i = 0; i < v->n_inputs; i++)
                if (!v->ended[i] && v->wm[i] < m)
                        m = v->wm[i];
        if (m <= v->current)
                return false;
        v->current = m;
        *ret = m;
        return true;
}

bool wrk_wm_valve_input(struct wrk_wm_valve *v, uint32_t input, int64_t watermark,
                        int64_t *ret) {
        if (input >= v->n_inputs || v->ended[input] || watermark <= v->wm[input])
                return false;
        v->wm[input] = watermark;
        return valve_advance(v, ret);
}

bool wrk_wm_valve_end(struct wrk_wm_valve *v, uint32_t input, int64_t *ret) {
        if (input >= v->n_inputs || v->ended[input])
                return false;
        v->ended[input] = 1;
        return valve_advance(v, ret);
}

void wrk_wm_gen_init(struct wrk_wm_gen *g, int64_t out_of_orderness_ms) {
        g->out_of_orderness_ms = out_of_orderness_ms < 0 ? 0 : out_of_orderness_ms;
        g->max_ts = INT64_MIN;
        g->emitted = INT64_MIN;
}

bool wrk_wm_gen_event(struct wrk_wm_gen *g, int64_t timestamp_ms, int64_t *ret) {
        if (timestamp_ms > g->max_ts)
                g->max_ts = timestamp_ms;
        /* max - out_of_orderness - 1, saturating at INT64_MIN */
        int64_t w = g->max_ts < INT64_MIN + g->out_of_orderness_ms + 1
                            ? INT64_MIN
                            : g->max_ts - g->out_of_orderness_ms - 1;
        if (w <= g->emitted)
                return false;
        g->emitted = w;
        *ret = w;
        return true;
}

int64_t wrk_window_start(int64_t timestamp_ms, int64_t size_ms) {
        int64_t rem = timestamp_ms % size_ms;
        return rem < 0 ? timestamp_ms - (rem + size_ms) : timestamp_ms - rem;
}

size_t wrk_window_assign(int64_t timestamp_ms, int64_t size_ms, int64_t slide_ms,
                         int64_t *ret_starts, size_t max) {
        if (size_ms <= 0)
                return 0;
        if (slide_ms <= 0 || slide_ms >= size_ms) {
                /* tumbling (slide 0); a slide above the size leaves gaps: a timestamp in
                 * one belongs to no window */
                int64_t step = slide_ms > 0 ? slide_ms : size_ms;
                int64_t start = wrk_window_start(timestamp_ms, step);
                if (max == 0 || timestamp_ms >= start + size_ms)
                        return 0;
                ret_starts[0] = start;
                return 1;
        }
        size_t n = 0;
        int64_t last = wrk_window_start(timestamp_ms, slide_ms);
        for (int64_t start = last; start > timestamp_ms - size_ms && n < max;
             start -= slide_ms)
                ret_starts[n++] = start;
        return n;
}

/* ---- barrier alignment ---- */

#define AL_SEEN 1u
#define AL_ENDED 2u

int wrk_aligner_init(struct wrk_aligner *a, uint32_t n_inputs, bool exactly_once) {
        if (n_inputs == 0 || n_inputs > WRK_ALIGN_MAX_INPUTS)
                return -EINVAL;
        memset(a, 0, sizeof(*a));
        a->flags = calloc(n_inputs, 1);
        if (!a->flags)
                return -ENOMEM;
        a->n_inputs = n_inputs;
        a->exactly_once = exactly_once;
        return 0;
}

void wrk_aligner_finish(struct wrk_aligner *a) {
        free(a->flags);
        a->flags = NULL;
}

static void aligner_clear(struct wrk_aligner *a) {
        for (uint32_t i = 0; i < a->n_inputs; i++)
                a->flags[i] &= (uint8_t)~AL_SEEN;
        a->n_seen = 0;
        a->current = 0;
        a->bytes = 0;
}

static bool aligner_complete(const struct wrk_aligner *a) {
        return a->current && a->n_seen + a->n_ended >= a->n_inputs;
}

enum wrk_align_event wrk_aligner_barrier(struct wrk_aligner *a, uint32_t input, uint64_t n,
                                         uint64_t now_us, uint64_t *ret_cancelled,
                                         uint64_t *ret_alignment_us) {
        if (input >= a->n_inputs || (a->flags[input] & AL_ENDED) || n == 0)
                return WRK_ALIGN_NOTHING;
        bool cancelled = false;
        if (n < a->last_started || (n == a->last_started && a->current != n))
                return WRK_ALIGN_NOTHING; /* stale, or n already done */
        if (a->current && n > a->current) {
                *ret_cancelled = a->current;
                cancelled = true;
                aligner_clear(a);
        }
        if (!a->current) {
                a->current = n;
                a->last_started = n;
                a->start_us = now_us;
        }
        if (!(a->flags[input] & AL_SEEN)) {
                a->flags[input] |= AL_SEEN;
                a->n_seen++;
        }
        if (aligner_complete(a)) {
                *ret_alignment_us = now_us >= a->start_us ? now_us - a->start_us : 0;
                aligner_clear(a);
                return cancelled ? WRK_ALIGN_CANCEL_AND_SNAPSHOT : WRK_ALIGN_SNAPSHOT;
        }
        return cancelled ? WRK_ALIGN_CANCEL : WRK_ALIGN_NOTHING;
}

enum wrk_align_event wrk_aligner_end(struct wrk_aligner *a, uint32_t input, uint64_t now_us,
                                     uint64_t *ret_alignment_us) {
        if (input >= a->n_inputs || (a->flags[input] & AL_ENDED))
                return WRK_ALIGN_NOTHING;
        if (a->flags[input] & AL_SEEN) {
                a->flags[input] &= (uint8_t)~AL_SEEN;
                a->n_seen--;
        }
        a->flags[input] |= AL_ENDED;
        a->n_ended++;
        if (aligner_complete(a)) {
                *ret_alignment_us = now_us >= a->start_us ? now_us - a->start_us : 0;
                aligner_clear(a);
                return WRK_ALIGN_SNAPSHOT;
        }
        return WRK_ALIGN_NOTHING;
}

bool wrk_aligner_blocked(const struct wrk_aligner *a, uint32_t input) {
        return a->exactly_once && a->current && input < a->n_inputs &&
               (a->flags[input] & AL_SEEN);
}

bool wrk_aligner_all_ended(const struct wrk_aligner *a) {
        return a->n_ended >= a->n_inputs;
}

/* ---- generator position ---- */

struct wrk_gen_entry wrk_gen_initial(uint32_t subtask, uint32_t parallelism) {
        struct wrk_gen_entry e = {.modulus = parallelism ? parallelism : 1,
                                  .residue = subtask,
                                  .next = subtask};
        return e;
}

static int gen_cmp(const void *x, const void *y) {
        const struct wrk_gen_entry *a = x, *b = y;
        if (a->modulus != b->modulus)
                return a->modulus < b->modulus ? -1 : 1;
        if (a->residue != b->residue)
                return a->residue < b->residue ? -1 : 1;
        return 0;
}

int wrk_gen_redistribute(const struct wrk_gen_entry *in, size_t n_in, uint32_t subtask,
                         uint32_t parallelism, struct wrk_gen_entry **ret, size_t *ret_n) {
        if (parallelism == 0 || subtask >= parallelism)
                return -EINVAL;
        size_t cap = n_in > parallelism ? n_in : parallelism;
        struct wrk_gen_entry *all = calloc(cap ? cap : 1, sizeof(*all));
        if (!all)
                return -ENOMEM;
        size_t n = n_in;
        if (n_in)
                memcpy(all, in, n_in * sizeof(*all));
        qsort(all, n, sizeof(*all), gen_cmp);
        while (n > 0 && n < parallelism) {
                /* split the first entry (smallest modulus, then residue) */
                struct wrk_gen_entry e = all[0];
                if (e.modulus > UINT64_MAX / 2)
                        break;
                struct wrk_gen_entry a = {.modulus = 2 * e.modulus,
                                          .residue = e.next % (2 * e.modulus),
                                          .next = e.next};
                struct wrk_gen_entry b = {.modulus = 2 * e.modulus,
                                          .residue = (e.next + e.modulus) % (2 * e.modulus),
                                          .next = e.next + e.modulus};
                all[0] = a;
                all[n++] = b;
                qsort(all, n, sizeof(*all), gen_cmp);
        }
        size_t mine = 0;
        for (size_t k = 0; k < n; k++)
                if (k % parallelism == subtask)
                        all[mine++] = all[k];
        *ret = all;
        *ret_n = mine;
        return 0;
}

bool wrk_gen_pick(const struct wrk_gen_entry *e, size_t n, uint64_t limit, size_t *ret_index) {
        bool found = false;
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
                if (e[i].next >= limit)
                        continue;
                if (!found || e[i].next < e[best].next) {
                        best = i;
                        found = true;
                }
        }
        if (found)
                *ret_index = best;
        return found;
}

/* ---- file source splits ---- */

void wrk_file_split_initial(uint64_t size_bytes, uint32_t subtask, uint32_t parallelism,
                            uint64_t *ret_start, uint64_t *ret_end) {
        __extension__ typedef unsigned __int128 u128;
        uint32_t p = parallelism ? parallelism : 1;
        *ret_start = (uint64_t)((u128)size_bytes * subtask / p);
        *ret_end = (uint64_t)((u128)size_bytes * (subtask + 1) / p);
}

static int split_cmp(const void *x, const void *y) {
        const struct wrk_file_split *a = x, *b = y;
        return a->start < b->start ? -1 : a->start > b->start ? 1 : 0;
}

int wrk_file_splits_redistribute(const struct wrk_file_split *in, size_t n_in, uint32_t subtask,
                                 uint32_t parallelism, struct wrk_file_split **ret,
                                 size_t *ret_n) {
        if (parallelism == 0 || subtask >= parallelism)
                return -EINVAL;
        struct wrk_file_split *all = calloc(n_in ? n_in : 1, sizeof(*all));
        if (!all)
                return -ENOMEM;
        if (n_in)
                memcpy(all, in, n_in * sizeof(*all));
        qsort(all, n_in, sizeof(*all), split_cmp);
        size_t mine = 0;
        for (size_t k = 0; k < n_in; k++)
                if (k % parallelism == subtask)
                        all[mine++] = all[k];
        *ret = all;
        *ret_n = mine;
        return 0;
}

/* ---- latency histogram ---- */

void wrk_latency_hist_add(struct wrk_latency_hist *h, int64_t latency_us) {
        h->samples_us[h->next] = latency_us > 0 ? (uint64_t)latency_us : 0;
        h->next = (h->next + 1) % WRK_LATENCY_HISTORY;
        if (h->n < WRK_LATENCY_HISTORY)
                h->n++;
        h->count++;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least q of them at or below it. */
static uint64_t rank(const uint64_t *sorted, uint32_t n, unsigned q_percent) {
        uint64_t k = ((uint64_t)n * q_percent + 99) / 100;
        return sorted[k ? k - 1 : 0];
}

void wrk_latency_hist_stats(const struct wrk_latency_hist *h, struct wrk_latency_stats *ret) {
        memset(ret, 0, sizeof(*ret));
        if (h->n == 0)
                return;
        uint64_t s[WRK_LATENCY_HISTORY];
        memcpy(s, h->samples_us, h->n * sizeof(s[0]));
        qsort(s, h->n, sizeof(s[0]), cmp_u64);
        uint64_t sum = 0;
        for (uint32_t i = 0; i < h->n; i++)
                sum += s[i];
        ret->count = h->count;
        ret->min_us = s[0];
        ret->max_us = s[h->n - 1];
        ret->mean_us = sum / h->n;
        ret->p50_us = rank(s, h->n, 50);
        ret->p95_us = rank(s, h->n, 95);
        ret->p99_us = rank(s, h->n, 99);
}
