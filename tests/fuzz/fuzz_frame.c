/* libFuzzer target for the RPC frame decoder: arbitrary bytes decoded as a stream of
 * consecutive frames, as a connection would see them. The first input byte picks the
 * mode and the frame cap: even = the rest is a raw stream; odd = the rest is one frame
 * body and gets a correct length prefix, so the fuzzer explores msgpack bodies without
 * having to guess lengths. Every accepted frame is walked so ASan checks each pointer
 * the decoder hands out. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/msg.h"
#include "common/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)          \
        do {                      \
                if (!(cond))      \
                        abort();  \
        } while (0)

static size_t walk(const msgpack_object *o) {
        size_t sum = 1;
        switch (o->type) {
        case MSGPACK_OBJECT_STR:
                for (uint32_t i = 0; i < o->via.str.size; i++)
                        sum += (unsigned char)o->via.str.ptr[i];
                break;
        case MSGPACK_OBJECT_BIN:
                for (uint32_t i = 0; i < o->via.bin.size; i++)
                        sum += (unsigned char)o->via.bin.ptr[i];
                break;
        case MSGPACK_OBJECT_EXT:
                for (uint32_t i = 0; i < o->via.ext.size; i++)
                        sum += (unsigned char)o->via.ext.ptr[i];
                break;
        case MSGPACK_OBJECT_ARRAY:
                for (uint32_t i = 0; i < o->via.array.size; i++)
                        sum += walk(&o->via.array.ptr[i]);
                break;
        case MSGPACK_OBJECT_MAP:
                for (uint32_t i = 0; i < o->via.map.size; i++)
                        sum += walk(&o->via.map.ptr[i].key) + walk(&o->via.map.ptr[i].val);
                break;
        default:
                break;
        }
        return sum;
}

static void decode_stream(const uint8_t *p, size_t len, size_t cap) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        while (off < len) {
                struct rpc_frame f;
                char why[128];
                size_t need = 0;
                int pr = rpc_frame_peek(p + off, len - off, cap, &need);
                int r = rpc_frame_decode(p + off, len - off, cap, &u, &f, why, sizeof(why));
                if (r == -EAGAIN) {
                        FUZZ_CHECK(pr == -EAGAIN || (pr == 0 && need > len - off));
                        break;
                }
                if (r < 0) {
                        FUZZ_CHECK(r == -EMSGSIZE || r == -EBADMSG);
                        FUZZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)));
                        break;
                }
                FUZZ_CHECK(pr == 0 && need == f.frame_bytes);
                FUZZ_CHECK(f.frame_bytes > RPC_FRAME_HEADER_BYTES && f.frame_bytes <= len - off);
                FUZZ_CHECK(f.frame_bytes - RPC_FRAME_HEADER_BYTES <= cap);
                size_t tlen = strlen(f.type);
                FUZZ_CHECK(tlen >= 1 && tlen <= RPC_TYPE_MAX_BYTES);
                FUZZ_CHECK(f.version >= 1);
                FUZZ_CHECK(f.map && f.map->type == MSGPACK_OBJECT_MAP);
                FUZZ_CHECK(walk(f.map) > 0);
                uint64_t epoch;
                (void)rpc_msg_epoch(f.map, &epoch);
                const char *text;
                size_t text_len;
                (void)rpc_response_error(f.map, &text, &text_len);
                off += f.frame_bytes;
        }
        msgpack_unpacked_destroy(&u);
}

static void decode_body(const uint8_t *prefix, size_t prefix_len, const uint8_t *data,
                        size_t size) {
        size_t body = prefix_len + size;
        uint8_t *buf = malloc(RPC_FRAME_HEADER_BYTES + body);
        if (!buf)
                return;
        buf[0] = (uint8_t)(body >> 24);
        buf[1] = (uint8_t)(body >> 16);
        buf[2] = (uint8_t)(body >> 8);
        buf[3] = (uint8_t)body;
        if (prefix_len)
                memcpy(buf + RPC_FRAME_HEADER_BYTES, prefix, prefix_len);
        if (size)
                memcpy(buf + RPC_FRAME_HEADER_BYTES + prefix_len, data, size);
        decode_stream(buf, RPC_FRAME_HEADER_BYTES + body, RPC_DEFAULT_MAX_FRAME_BYTES);
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        uint8_t mode = data[0];
        data++;
        size--;
        switch (mode % 3) {
        case 0:
                /* caps of 16..2736 bytes, so -EMSGSIZE is reachable with short inputs */
                decode_stream(data, size, 16 + (size_t)(mode / 3) * 32);
                break;
        case 1:
                decode_body(NULL, 0, data, size);
                break;
        default: {
                if (size < 1)
                        return 0;
                uint32_t pairs = 3u + data[0];
                const uint8_t prefix[] = {
                        0xdf, (uint8_t)(pairs >> 24), (uint8_t)(pairs >> 16),
                        (uint8_t)(pairs >> 8), (uint8_t)pairs,
                        0xa1, 'v', 0x01,
                        0xa1, 't', 0xa4, 'f', 'u', 'z', 'z',
                        0xa2, 'i', 'd', 0x07,
                };
                decode_body(prefix, sizeof(prefix), data + 1, size - 1);
                break;
        }
        }
        return 0;
}
