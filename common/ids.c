/* Random 128-bit ids in Flink's 32-hex form. */
#include "common/ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

int id_generate(struct flinc_id *ret_id) {
        struct flinc_id id;
        size_t got = 0;
        while (got < sizeof(id.bytes)) {
                ssize_t n = getrandom(id.bytes + got, sizeof(id.bytes) - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)n;
        }
        *ret_id = id;
        return 0;
}

void id_format(const struct flinc_id *id, char out[ID_HEX_LEN + 1]) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
                out[2 * i] = hex[id->bytes[i] >> 4];
                out[2 * i + 1] = hex[id->bytes[i] & 0xf];
        }
        out[ID_HEX_LEN] = '\0';
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int id_parse(const char *s, struct flinc_id *ret_id) {
        struct flinc_id id;
        if (!s || strlen(s) != ID_HEX_LEN)
                return -EINVAL;
        for (int i = 0; i < 16; i++) {
                int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                id.bytes[i] = (uint8_t)(hi << 4 | lo);
        }
        *ret_id = id;
        return 0;
}

bool id_equal(const struct flinc_id *a, const struct flinc_id *b) {
        return memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

bool id_is_zero(const struct flinc_id *id) {
        static const struct flinc_id zero;
        return id_equal(id, &zero);
}
