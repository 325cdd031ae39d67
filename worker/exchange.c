/* In-memory input gates and their process-wide registry (see exchange.h). */
#include "worker/exchange.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/ids.h"

struct gate_buf {
        uint32_t channel;
        size_t len;
        void *data;
};

struct wrk_gate {
        struct wrk_gate *next_in_registry;
        char job[ID_HEX_LEN + 1];
        uint32_t attempt, chain, subtask;
        unsigned refs;        /* under registry_mu */

        pthread_mutex_t mu;
        pthread_cond_t cond;  /* CLOCK_MONOTONIC; any change */
        struct gate_buf bufs[WRK_GATE_MAX_BUFFERS];
        uint32_t n;           /* queued, in arrival order bufs[0..n) */
        bool closed;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct wrk_gate *registry;

int wrk_gate_get(const char *job, uint32_t attempt, uint32_t chain, uint32_t subtask,
                 struct wrk_gate **ret) {
        pthread_mutex_lock(&registry_mu);
        for (struct wrk_gate *g = registry; g; g = g->next_in_registry) {
                if (g->attempt == attempt && g->chain == chain && g->subtask == subtask &&
                    strcmp(g->job, job) == 0) {
                        g->refs++;
                        pthread_mutex_unlock(&registry_mu);
                        *ret = g;
                        return 0;
                }
        }
        struct wrk_gate *g = calloc(1, sizeof(*g));
        if (!g) {
                pthread_mutex_unlock(&registry_mu);
                return -ENOMEM;
        }
        snprintf(g->job, sizeof(g->job), "%s", job);
        g->attempt = attempt;
        g->chain = chain;
        g->subtask = subtask;
        g->refs = 1;
        pthread_mutex_init(&g->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&g->cond, &ca);
        pthread_condattr_destroy(&ca);
        g->next_in_registry = registry;
        registry = g;
        pthread_mutex_unlock(&registry_mu);
        *ret = g;
        return 0;
}

static void gate_drop_all(struct wrk_gate *g) {
        for (uint32_t i = 0; i < g->n; i++)
                free(g->bufs[i].data);
        g->n = 0;
}

void wrk_gate_unref(struct wrk_gate *g) {
        if (!g)
                return;
        pthread_mutex_lock(&registry_mu);
        if (--g->refs > 0) {
                pthread_mutex_unlock(&registry_mu);
                return;
        }
        for (struct wrk_gate **p = &registry; *p; p = &(*p)->next_in_registry) {
                if (*p == g) {
                        *p = g->next_in_registry;
                        break;
                }
        }
        pthread_mutex_unlock(&registry_mu);
        gate_drop_all(g);
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->mu);
        free(g);
}

static void timed_wait(struct wrk_gate *g, uint64_t deadline_us) {
        struct timespec ts = {.tv_sec = (time_t)(deadline_us / 1000000u),
                              .tv_nsec = (long)(deadline_us % 1000000u) * 1000};
        pthread_cond_timedwait(&g->cond, &g->mu, &ts);
}

int wrk_gate_put(struct wrk_gate *g, uint32_t channel, const void *data, size_t len,
                 const atomic_bool *cancel) {
        void *copy = malloc(len ? len : 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, len);
        pthread_mutex_lock(&g->mu);
        for (;;) {
                if (g->closed) {
                        pthread_mutex_unlock(&g->mu);
                        free(copy);
                        return -EPIPE;
                }
                if (cancel && atomic_load(cancel)) {
                        pthread_mutex_unlock(&g->mu);
                        free(copy);
                        return -ECANCELED;
                }
                if (g->n < WRK_GATE_MAX_BUFFERS)
                        break;
                /* short waits: a cancel flag is not a condition of this gate */
                timed_wait(g, clock_mono_us() + 20000);
        }
        g->bufs[g->n++] = (struct gate_buf){channel, len, copy};
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
        return 0;
}

int wrk_gate_take(struct wrk_gate *g, uint64_t timeout_us, wrk_gate_blocked_fn blocked,
                  void *arg, uint32_t *ret_channel, void **ret_data, size_t *ret_len) {
        uint64_t deadline = clock_mono_us() + timeout_us;
        pthread_mutex_lock(&g->mu);
        for (;;) {
                for (uint32_t i = 0; i < g->n; i++) {
                        if (blocked && blocked(arg, g->bufs[i].channel))
                                continue;
                        struct gate_buf b = g->bufs[i];
                        memmove(&g->bufs[i], &g->bufs[i + 1], (g->n - i - 1) * sizeof(b));
                        g->n--;
                        pthread_cond_broadcast(&g->cond);
                        pthread_mutex_unlock(&g->mu);
                        *ret_channel = b.channel;
                        *ret_data = b.data;
                        *ret_len = b.len;
                        return 1;
                }
                if (clock_mono_us() >= deadline)
                        break;
                timed_wait(g, deadline);
        }
        pthread_mutex_unlock(&g->mu);
        return 0;
}

void wrk_gate_wake(struct wrk_gate *g) {
        pthread_mutex_lock(&g->mu);
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
}

void wrk_gate_close(struct wrk_gate *g) {
        pthread_mutex_lock(&g->mu);
        g->closed = true;
        gate_drop_all(g);
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
}

uint32_t wrk_gate_queued(struct wrk_gate *g) {
        pthread_mutex_lock(&g->mu);
        uint32_t n = g->n;
        pthread_mutex_unlock(&g->mu);
        return n;
}
