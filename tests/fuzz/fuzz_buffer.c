/* libFuzzer target for the data-plane buffer decoder (worker/dataflow.c,
 * wrk_buffer_next). Buffers come from other workers over TCP data channels, so any
 * bytes must decode into entries or -EBADMSG, never a crash or a read past the end.
 * Every entry decoded is encoded again into a fresh buffer (records, barriers, ends,
 * watermarks, latency markers) and must decode back to the same entry. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/dataflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)          \
        do {                      \
                if (!(cond))      \
                        abort();  \
        } while (0)

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen) {
        return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void reencode(const struct wrk_entry *e) {
        static struct wrk_outbuf b;
        wrk_outbuf_reset(&b);
        int r = 0;
        switch (e->type) {
        case WRK_ENTRY_RECORD: r = wrk_outbuf_add_record(&b, &e->rec, 1); break;
        case WRK_ENTRY_BARRIER:
                r = wrk_outbuf_add_barrier(&b, e->checkpoint_id, e->savepoint, 1);
                break;
        case WRK_ENTRY_END: r = wrk_outbuf_add_end(&b, 1); break;
        case WRK_ENTRY_WATERMARK: r = wrk_outbuf_add_watermark(&b, e->watermark, 1); break;
        case WRK_ENTRY_LATENCY: r = wrk_outbuf_add_latency(&b, &e->marker, 1); break;
        default: abort();
        }
        if (r < 0)
                return; /* a record the encoder refuses (over its limits) */
        size_t pos = 0;
        struct wrk_entry d;
        FUZZ_CHECK(wrk_buffer_next(b.data, b.len, &pos, &d) == 1);
        FUZZ_CHECK(pos == b.len && d.type == e->type);
        switch (e->type) {
        case WRK_ENTRY_RECORD:
                FUZZ_CHECK(d.rec.kind == e->rec.kind && d.rec.value == e->rec.value &&
                           d.rec.seq == e->rec.seq &&
                           d.rec.timestamp_ms == e->rec.timestamp_ms);
                FUZZ_CHECK(same_bytes(d.rec.text, d.rec.text_len, e->rec.text, e->rec.text_len));
                FUZZ_CHECK(same_bytes(d.rec.key, d.rec.key_len, e->rec.key, e->rec.key_len));
                break;
        case WRK_ENTRY_BARRIER:
                FUZZ_CHECK(d.checkpoint_id == e->checkpoint_id && d.savepoint == e->savepoint);
                break;
        case WRK_ENTRY_WATERMARK: FUZZ_CHECK(d.watermark == e->watermark); break;
        case WRK_ENTRY_LATENCY:
                FUZZ_CHECK(d.marker.marked_us == e->marker.marked_us &&
                           d.marker.vertex == e->marker.vertex &&
                           d.marker.subtask == e->marker.subtask);
                break;
        default: break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* a private copy, so that a read past the end is an ASan error */
        unsigned char *buf = malloc(size ? size : 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        size_t pos = 0;
        struct wrk_entry e;
        int r;
        while ((r = wrk_buffer_next(buf, size, &pos, &e)) == 1) {
                FUZZ_CHECK(pos <= size);
                if (e.type == WRK_ENTRY_RECORD)
                        FUZZ_CHECK(e.rec.text_len <= size && e.rec.key_len <= size);
                reencode(&e);
        }
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        free(buf);
        return 0;
}
