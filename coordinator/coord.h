/* flinc-coordinator as an object on one libevent loop: it joins the leader election on
 * ZooKeeper and, as leader, runs the worker registry, the scheduler and the job state
 * machines; leader or not, it serves Flink's REST API (a standby forwards to the
 * leader). main.c builds the options from the command line and the conf dir and owns
 * the loop; everything else is behind this header. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cfg;
struct coord;

struct coord_options {
        /* The loaded, validated configuration; borrowed for the coordinator's life. */
        const struct cfg *cfg;
        /* Address this coordinator advertises (rpc and rest): --host, else rest.address,
         * else jobmanager.rpc.address. Copied. */
        const char *host;
        /* The conf dir, shown in /ha. Copied. */
        const char *conf_dir;
};

/* Starts the coordinator on base: RPC and REST servers are bound here (so a port in
 * use fails at once), the ZooKeeper session and the election start with the loop.
 * 0 and *ret, or a negative errno; err (may be NULL) gets the reason. Free with
 * coord_destroy. */
int coord_create(struct event_base *base, const struct coord_options *opts,
                 struct coord **ret, char *err, size_t err_len);

/* Resigns leadership (if held) and closes the servers; done() is called on the loop
 * once the resign multi completed or after timeout_ms, whichever comes first. Used for
 * SIGTERM/SIGINT: the caller then breaks the loop and destroys the coordinator. */
void coord_shutdown(struct coord *c, uint32_t timeout_ms, void (*done)(void *arg), void *arg);

/* Frees everything; NULL is fine. Closes the ZooKeeper session (ephemeral nodes go). */
void coord_destroy(struct coord *c);
