/* The coordinator's file-work thread (bgwork.c): blocking file I/O off the loop thread.
 * Private to coordinator/. */
#pragma once

struct event_base;

/* A unit of work. The submitter allocates it (usually embedded in a larger context),
 * work() runs on the worker thread and must not touch loop-thread state; done() runs
 * later on the loop thread and frees the task. Tasks run one at a time, in order. */
struct coord_bg_task {
        void (*work)(struct coord_bg_task *t);
        void (*done)(struct coord_bg_task *t);
        struct coord_bg_task *next; /* private */
};

/* Starts the thread once per process (later calls are no-ops). 0 or a negative errno. */
int coord_bg_start(struct event_base *base);
/* Queues t (coord_bg_start must have succeeded). */
void coord_bg_submit(struct coord_bg_task *t);
/* Finishes the queued work, runs the pending done() callbacks, stops the thread. */
void coord_bg_stop(void);
