/* Versioned, checksummed envelope for stored payloads. */
#include "common/envelope.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "common/msg.h"

int envelope_wrap(const char *kind, uint32_t version, const void *body, size_t body_len,
                  char **ret_data, size_t *ret_len) {
        if (!kind || version == 0 || body_len > ENVELOPE_MAX_BYTES)
                return -EINVAL;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        msg_pack_kv_str(&pk, "kind", kind);
        msg_pack_kv_u64(&pk, "v", version);
        msg_pack_kv_u64(&pk, "crc", crc32c(body, body_len));
        msg_pack_kv_bin(&pk, "body", body, body_len);
        if (!sb.data) {
                msgpack_sbuffer_destroy(&sb);
                return -ENOMEM;
        }
        *ret_len = sb.size;
        *ret_data = msgpack_sbuffer_release(&sb);
        return 0;
}

int envelope_unwrap(const void *data, size_t len, const char *kind, uint32_t max_version,
                    char **ret_body, size_t *ret_body_len, uint32_t *ret_version,
                    char *err, size_t err_len) {
        if (len > ENVELOPE_MAX_BYTES + 256)
                return err_set(err, err_len, -EFBIG, "payload of %zu bytes is over the %u byte limit",
                            len, ENVELOPE_MAX_BYTES);
        if (len == 0)
                return err_set(err, err_len, -EBADMSG, "payload is empty");
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        int r;
        const char *why;
        /* An envelope is one map of four fields: a tiny object budget. */
        if (msg_unpack_bounded(data, len, 2, 16, &up, &why) < 0) {
                r = err_set(err, err_len, -EBADMSG, "payload is not a flinc envelope (%s)", why);
                goto out;
        }
        const msgpack_object *root = &up.data;
        const char *k;
        size_t klen;
        uint32_t v, crc;
        const void *body;
        size_t blen;
        if (root->type != MSGPACK_OBJECT_MAP || msg_get_str(root, "kind", &k, &klen) < 0 ||
            msg_get_u32(root, "v", &v) < 0 || msg_get_u32(root, "crc", &crc) < 0 ||
            msg_get_bin(root, "body", &body, &blen) < 0) {
                r = err_set(err, err_len, -EBADMSG,
                         "payload is not a flinc envelope (expected fields kind, v, crc, body)");
                goto out;
        }
        if (klen != strlen(kind) || memcmp(k, kind, klen) != 0) {
                r = err_set(err, err_len, -EMEDIUMTYPE, "payload kind is '%.*s', expected '%s'",
                         (int)(klen > 64 ? 64 : klen), k, kind);
                goto out;
        }
        if (v == 0 || v > max_version) {
                r = err_set(err, err_len, -EPROTONOSUPPORT,
                         "payload format version %u is not supported (1..%u)", v, max_version);
                goto out;
        }
        if (crc32c(body, blen) != crc) {
                r = err_set(err, err_len, -EBADMSG, "payload checksum mismatch (crc32c %08x, stored %08x)",
                         crc32c(body, blen), crc);
                goto out;
        }
        char *copy = malloc(blen ? blen : 1);
        if (!copy) {
                r = -ENOMEM;
                goto out;
        }
        memcpy(copy, body, blen);
        *ret_body = copy;
        *ret_body_len = blen;
        if (ret_version)
                *ret_version = v;
        r = 0;
out:
        msgpack_unpacked_destroy(&up);
        return r;
}
