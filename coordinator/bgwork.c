/* A small worker thread for the coordinator's file work that may block (checkpoint
 * metadata writes and reads, deletes of retired checkpoints, savepoint copies): the loop
 * thread queues a task, the thread runs task->work, and the loop thread runs task->done
 * (DESIGN.md "Processes and threads"). Completion is signalled through a pipe watched by
 * the loop, so libevent needs no threading support. One thread keeps file operations in
 * submission order, which the checkpoint coordinator relies on (a retire queued after a
 * write runs after it). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "coordinator/bgwork.h"

struct bg {
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct coord_bg_task *todo_head, *todo_tail; /* under mu */
        struct coord_bg_task *done_head, *done_tail; /* under mu */
        int pipe_fd[2];
        struct event *ev;
        bool stop;
        bool started;
};

static struct bg g_bg; /* one coordinator per process */

static void *bg_main(void *arg) {
        struct bg *b = arg;
        pthread_mutex_lock(&b->mu);
        for (;;) {
                while (!b->todo_head && !b->stop)
                        pthread_cond_wait(&b->cv, &b->mu);
                if (!b->todo_head && b->stop)
                        break;
                struct coord_bg_task *t = b->todo_head;
                b->todo_head = t->next;
                if (!b->todo_head)
                        b->todo_tail = NULL;
                pthread_mutex_unlock(&b->mu);
                t->work(t);
                pthread_mutex_lock(&b->mu);
                t->next = NULL;
                if (b->done_tail)
                        b->done_tail->next = t;
                else
                        b->done_head = t;
                b->done_tail = t;
                char one = 1;
                ssize_t n = write(b->pipe_fd[1], &one, 1);
                (void)n; /* a full pipe already wakes the loop */
        }
        pthread_mutex_unlock(&b->mu);
        return NULL;
}

static void bg_on_pipe(evutil_socket_t fd, short what, void *arg) {
        struct bg *b = arg;
        char buf[256];
        while (read(fd, buf, sizeof(buf)) > 0) {
        }
        pthread_mutex_lock(&b->mu);
        struct coord_bg_task *t = b->done_head;
        b->done_head = b->done_tail = NULL;
        pthread_mutex_unlock(&b->mu);
        while (t) {
                struct coord_bg_task *next = t->next;
                t->done(t);
                t = next;
        }
}

int coord_bg_start(struct event_base *base) {
        struct bg *b = &g_bg;
        if (b->started)
                return 0;
        if (pipe(b->pipe_fd) < 0)
                return -errno;
        fcntl(b->pipe_fd[0], F_SETFL, O_NONBLOCK);
        fcntl(b->pipe_fd[1], F_SETFL, O_NONBLOCK);
        fcntl(b->pipe_fd[0], F_SETFD, FD_CLOEXEC);
        fcntl(b->pipe_fd[1], F_SETFD, FD_CLOEXEC);
        pthread_mutex_init(&b->mu, NULL);
        pthread_cond_init(&b->cv, NULL);
        b->ev = event_new(base, b->pipe_fd[0], EV_READ | EV_PERSIST, bg_on_pipe, b);
        if (!b->ev || event_add(b->ev, NULL) < 0)
                return -ENOMEM;
        int r = pthread_create(&b->thread, NULL, bg_main, b);
        if (r != 0)
                return -r;
        b->started = true;
        return 0;
}

void coord_bg_submit(struct coord_bg_task *t) {
        struct bg *b = &g_bg;
        t->next = NULL;
        pthread_mutex_lock(&b->mu);
        if (b->todo_tail)
                b->todo_tail->next = t;
        else
                b->todo_head = t;
        b->todo_tail = t;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
}

void coord_bg_stop(void) {
        struct bg *b = &g_bg;
        if (!b->started)
                return;
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
        /* run what finished, so every task's done runs exactly once */
        bg_on_pipe(b->pipe_fd[0], EV_READ, b);
        event_free(b->ev);
        close(b->pipe_fd[0]);
        close(b->pipe_fd[1]);
        b->started = false;
}
