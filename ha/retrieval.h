/* Leader retrieval for workers and tools: follows <base>/leader (DESIGN.md "ZooKeeper
 * layout") and reports every change of leader (epoch, id, rpc address, rest url). It
 * watches the node, reads it again after every reconnect (a change made while
 * disconnected is not missed) and after a session expiry (watches do not survive one),
 * and never logs: changes and errors go to callbacks. While ZooKeeper is unreachable the
 * last known leader is kept; consumers protect themselves with the epoch (drop messages
 * from an epoch lower than the highest seen). */
#pragma once

#include <stdbool.h>

#include "ha/payload.h"

struct ha_zk;
struct ha_retrieval;

/* leader is NULL when there is no leader node (an election is under way), else the
 * decoded <base>/leader, borrowed for the call. Called on the loop thread, only when
 * something changed; may call ha_retrieval_destroy() (deferred until it returns). */
typedef void (*ha_retrieval_fn)(struct ha_retrieval *r, const struct ha_leader_info *leader,
                                void *userdata);

/* A read that failed for another reason than the connection (r negative errno, what
 * names the znode; for a corrupt payload the reason too). The retrieval reports "no
 * leader" for a corrupt node and tries again on the next change. May be NULL. */
typedef void (*ha_retrieval_error_fn)(struct ha_retrieval *r, int err, const char *what,
                                      void *userdata);

/* Follows the leader of base ("<root>/<cluster>"). zk must outlive it. 0 and *ret, or
 * -EINVAL / -ENOMEM. Free with ha_retrieval_destroy(). */
int ha_retrieval_create(struct ha_zk *zk, const char *base, ha_retrieval_fn on_change,
                        ha_retrieval_error_fn on_error, void *userdata,
                        struct ha_retrieval **ret);

/* Accepts NULL; deferred when called from its own callback. */
void ha_retrieval_destroy(struct ha_retrieval *r);

/* The last leader reported: 0 and *ret, or -ENOENT when none is known. */
int ha_retrieval_leader(const struct ha_retrieval *r, struct ha_leader_info *ret);
