/* libFuzzer target for the state handle parser (statebackend/handle.c) and the
 * coordinator's shared-file registry fed with what it accepts. Handles come from
 * subtasks and from _metadata on checkpoint storage, so the parser must turn any bytes
 * into a handle or an error, never a crash. The first input byte picks the mode: even =
 * the rest is the handle bytes as stored; odd = the rest is the msgpack body and gets a
 * correct envelope (kind, version 1, CRC), so the fuzzer explores the body's fields
 * without having to forge CRCs. A parsed handle must encode again and parse back to the
 * same handle; registered as checkpoint 1 and, with every file marked reused, as
 * checkpoint 2, then retired, it must leave the registry empty. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/envelope.h"
#include "statebackend/handle.h"
#include "statebackend/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)          \
        do {                      \
                if (!(cond))      \
                        abort();  \
        } while (0)

static bool nul_terminated(const char *s, size_t cap) {
        return memchr(s, '\0', cap) != NULL;
}

static void check_equal(const struct sb_handle *a, const struct sb_handle *b) {
        FUZZ_CHECK(strcmp(a->backend_id, b->backend_id) == 0);
        FUZZ_CHECK(a->checkpoint_id == b->checkpoint_id);
        FUZZ_CHECK(a->max_parallelism == b->max_parallelism);
        FUZZ_CHECK(a->range.start == b->range.start && a->range.end == b->range.end);
        FUZZ_CHECK(a->n_states == b->n_states);
        for (size_t i = 0; i < a->n_states; i++) {
                FUZZ_CHECK(strcmp(a->states[i].name, b->states[i].name) == 0);
                FUZZ_CHECK(a->states[i].kind == b->states[i].kind);
                FUZZ_CHECK(a->states[i].ttl_ms == b->states[i].ttl_ms);
        }
        FUZZ_CHECK(a->n_shared == b->n_shared);
        for (size_t i = 0; i < a->n_shared; i++) {
                FUZZ_CHECK(strcmp(a->shared[i].uid, b->shared[i].uid) == 0);
                FUZZ_CHECK(strcmp(a->shared[i].local, b->shared[i].local) == 0);
                FUZZ_CHECK(a->shared[i].size_bytes == b->shared[i].size_bytes);
                FUZZ_CHECK(a->shared[i].crc32c == b->shared[i].crc32c);
                FUZZ_CHECK(a->shared[i].is_new == b->shared[i].is_new);
        }
        FUZZ_CHECK(strcmp(a->private_path, b->private_path) == 0);
        FUZZ_CHECK(a->private_size_bytes == b->private_size_bytes);
        FUZZ_CHECK(a->private_crc32c == b->private_crc32c);
        FUZZ_CHECK(a->n_members == b->n_members);
        for (size_t i = 0; i < a->n_members; i++) {
                FUZZ_CHECK(strcmp(a->members[i].name, b->members[i].name) == 0);
                FUZZ_CHECK(a->members[i].offset == b->members[i].offset);
                FUZZ_CHECK(a->members[i].size_bytes == b->members[i].size_bytes);
                FUZZ_CHECK(a->members[i].crc32c == b->members[i].crc32c);
        }
}

/* What handle.h promises of a parsed handle. */
static void check_valid(const struct sb_handle *h) {
        FUZZ_CHECK(nul_terminated(h->backend_id, sizeof(h->backend_id)));
        FUZZ_CHECK(nul_terminated(h->private_path, sizeof(h->private_path)));
        FUZZ_CHECK(h->max_parallelism >= 1 && h->max_parallelism <= 32768);
        FUZZ_CHECK(h->range.start < h->range.end && h->range.end <= h->max_parallelism);
        for (size_t i = 0; i < h->n_states; i++)
                FUZZ_CHECK(nul_terminated(h->states[i].name, sizeof(h->states[i].name)));
        for (size_t i = 0; i < h->n_shared; i++) {
                FUZZ_CHECK(nul_terminated(h->shared[i].uid, sizeof(h->shared[i].uid)));
                FUZZ_CHECK(nul_terminated(h->shared[i].local, sizeof(h->shared[i].local)));
        }
        for (size_t i = 0; i < h->n_members; i++) {
                const struct sb_handle_member *m = &h->members[i];
                FUZZ_CHECK(nul_terminated(m->name, sizeof(m->name)));
                FUZZ_CHECK(m->offset <= h->private_size_bytes &&
                           m->size_bytes <= h->private_size_bytes - m->offset);
        }
        (void)sb_handle_state_bytes(h);
}

static void registry_round(const struct sb_handle *h, const char *bytes, size_t len) {
        struct sb_registry *reg = NULL;
        char err[256];
        if (sb_registry_create(&reg) < 0)
                return;
        struct sb_bytes b1 = {bytes, len};
        bool reg1 = sb_registry_register(reg, 1, &b1, 1, err, sizeof(err)) == 0;
        FUZZ_CHECK(sb_registry_register(reg, 1, &b1, 1, err, sizeof(err)) == -EEXIST || !reg1);

        /* The same files, all reused, as the next checkpoint would name them. */
        bool reg2 = false;
        struct sb_handle h2 = *h;
        h2.checkpoint_id = h->checkpoint_id + 1;
        h2.shared = NULL;
        if (h->n_shared) {
                h2.shared = malloc(h->n_shared * sizeof(*h2.shared));
                if (!h2.shared)
                        goto out;
                memcpy(h2.shared, h->shared, h->n_shared * sizeof(*h2.shared));
                for (size_t i = 0; i < h2.n_shared; i++)
                        h2.shared[i].is_new = false;
        }
        char *enc2 = NULL;
        size_t len2 = 0;
        if (sb_handle_encode(&h2, &enc2, &len2) == 0) {
                struct sb_bytes b2 = {enc2, len2};
                int r = sb_registry_register(reg, 2, &b2, 1, err, sizeof(err));
                reg2 = r == 0;
                /* With checkpoint 1 registered every reused file is held. */
                FUZZ_CHECK(!reg1 || r != -ESTALE);
                free(enc2);
        }
        free(h2.shared);

        struct sb_paths all = {0};
        if (sb_registry_list(reg, &all) == 0)
                sb_paths_finish(&all);
        struct sb_paths out = {0};
        if (reg1) {
                FUZZ_CHECK(sb_registry_retire(reg, 1, &out) == 0);
                sb_paths_finish(&out);
        }
        if (reg2) {
                FUZZ_CHECK(sb_registry_retire(reg, 2, &out) == 0);
                for (size_t i = 0; i < out.n; i++)
                        FUZZ_CHECK(!sb_registry_holds(reg, out.paths[i]));
                sb_paths_finish(&out);
        }
        FUZZ_CHECK(sb_registry_retire(reg, 3, &out) == -ENOENT);
        FUZZ_CHECK(sb_registry_checkpoint_count(reg) == 0);
        FUZZ_CHECK(sb_registry_shared_count(reg) == 0);
        FUZZ_CHECK(sb_registry_shared_bytes(reg) == 0);
out:
        sb_registry_destroy(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        char *wrapped = NULL;
        const char *p = (const char *)data + 1;
        size_t len = size - 1;
        if (data[0] & 1) {
                if (envelope_wrap(SB_HANDLE_KIND, SB_HANDLE_VERSION, p, len, &wrapped, &len) < 0)
                        return 0;
                p = wrapped;
        }
        struct sb_handle *h = NULL;
        char err[256];
        int r = sb_handle_parse(p, len, &h, err, sizeof(err));
        if (r < 0) {
                FUZZ_CHECK(h == NULL);
                free(wrapped);
                return 0;
        }
        check_valid(h);
        char *enc = NULL;
        size_t enc_len = 0;
        FUZZ_CHECK(sb_handle_encode(h, &enc, &enc_len) == 0);
        struct sb_handle *h2 = NULL;
        FUZZ_CHECK(sb_handle_parse(enc, enc_len, &h2, err, sizeof(err)) == 0);
        check_equal(h, h2);
        sb_handle_free(h2);
        registry_round(h, enc, enc_len);
        free(enc);
        sb_handle_free(h);
        free(wrapped);
        return 0;
}
