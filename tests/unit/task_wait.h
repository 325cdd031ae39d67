/* Waiting for worker tasks in unit tests: a task calls its notify hook after every state
 * change; unit_task_notify (set as wrk_task_options.notify) wakes the waiters, and
 * unit_wait_task_terminal waits for that with a deadline (scaled by
 * FLINC_TIMEOUT_SCALE) instead of sleeping in a loop. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/clock.h"
#include "unit.h"
#include "worker/task.h"

static pthread_mutex_t unit_task_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t unit_task_cond = PTHREAD_COND_INITIALIZER;

static inline void unit_task_notify(void *arg) {
        (void)arg;
        pthread_mutex_lock(&unit_task_mu);
        pthread_cond_broadcast(&unit_task_cond);
        pthread_mutex_unlock(&unit_task_mu);
}

/* Waits until t is terminal or `seconds` (scaled) passed; whether it is terminal. t must
 * have been created with .notify = unit_task_notify. */
static inline bool unit_wait_task_terminal(struct wrk_task *t, double seconds) {
        uint64_t deadline = clock_mono_us() + (uint64_t)(seconds * unit_timeout_scale() * 1e6);
        pthread_mutex_lock(&unit_task_mu);
        while (!wrk_task_is_terminal(t) && clock_mono_us() < deadline) {
                struct timespec ts; /* a bounded wait: a deadline check at least every 50 ms */
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&unit_task_cond, &unit_task_mu, &ts);
        }
        pthread_mutex_unlock(&unit_task_mu);
        return wrk_task_is_terminal(t);
}
