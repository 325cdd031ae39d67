/* Leader retrieval for the worker (see leader.h). */
#include "worker/leader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hosts.h"
#include "common/log.h"
#include "ha/retrieval.h"
#include "worker/control.h"

struct wrk_leader {
        struct wrk_ctl *ctl;
        struct ha_retrieval *retrieval; /* NULL with a fixed leader */
};

static void on_leader(struct ha_retrieval *r, const struct ha_leader_info *leader,
                      void *userdata) {
        (void)r;
        struct wrk_leader *l = userdata;
        if (leader)
                wrk_ctl_set_leader(l->ctl, leader->epoch, leader->rpc);
        else
                wrk_ctl_clear_leader(l->ctl, "leader-node-gone");
}

static void on_retrieval_error(struct ha_retrieval *r, int err, const char *what,
                               void *userdata) {
        (void)r;
        (void)userdata;
        log_warn("leader retrieval: %s: %s", what, err_str(err));
}

int wrk_leader_create_static(const char *host, uint16_t port, struct wrk_ctl *ctl,
                             struct wrk_leader **ret) {
        char rpc[300];
        if (!host || !host[0] || !hosts_name_valid(host) || port == 0)
                return -EINVAL;
        if (strchr(host, ':'))
                snprintf(rpc, sizeof(rpc), "[%s]:%u", host, port);
        else
                snprintf(rpc, sizeof(rpc), "%s:%u", host, port);
        struct wrk_leader *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->ctl = ctl;
        wrk_ctl_set_leader(ctl, 0, rpc);
        *ret = l;
        return 0;
}

int wrk_leader_create_zk(struct ha_zk *zk, const char *base_path, struct wrk_ctl *ctl,
                         struct wrk_leader **ret) {
        struct wrk_leader *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->ctl = ctl;
        int r = ha_retrieval_create(zk, base_path, on_leader, on_retrieval_error, l,
                                    &l->retrieval);
        if (r < 0) {
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

void wrk_leader_destroy(struct wrk_leader *l) {
        if (!l)
                return;
        ha_retrieval_destroy(l->retrieval);
        free(l);
}
