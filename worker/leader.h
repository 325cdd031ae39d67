/* Where the worker learns who leads: with high-availability zookeeper, leader retrieval
 * (ha/retrieval.h) on <root>/<cluster>/leader; with NONE, the fixed coordinator address
 * jobmanager.rpc.address:jobmanager.rpc.port at epoch 0. Either way the answer goes to
 * the control plane (wrk_ctl_set_leader / wrk_ctl_clear_leader); nothing here writes
 * to ZooKeeper. Runs on the control loop thread. */
#pragma once

#include <stdint.h>

struct ha_zk;
struct wrk_ctl;
struct wrk_leader;

/* Watches <base_path>/leader through zk (which must outlive the result) and tells ctl
 * (borrowed, must outlive the result) every change. 0 and *ret, or a negative errno. */
int wrk_leader_create_zk(struct ha_zk *zk, const char *base_path, struct wrk_ctl *ctl,
                         struct wrk_leader **ret);

/* Tells ctl the fixed leader host:port (epoch 0) now. 0 and *ret, or -EINVAL (bad
 * host) / -ENOMEM. */
int wrk_leader_create_static(const char *host, uint16_t port, struct wrk_ctl *ctl,
                             struct wrk_leader **ret);

/* Stops watching. NULL is fine. */
void wrk_leader_destroy(struct wrk_leader *l);
