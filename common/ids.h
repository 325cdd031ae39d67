/* Identifiers: 128-bit random ids written as 32 lowercase hex digits, like Flink's
 * JobID, ResourceID and checkpoint file uids. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define ID_HEX_LEN 32

struct flinc_id {
        uint8_t bytes[16];
};

/* A fresh random id from getrandom(2). 0 or a negative errno. */
int id_generate(struct flinc_id *ret_id);

/* Writes 32 lowercase hex digits and a NUL into out. */
void id_format(const struct flinc_id *id, char out[ID_HEX_LEN + 1]);

/* Parses exactly 32 hex digits (either case). 0 or -EINVAL; ret untouched on error. */
int id_parse(const char *s, struct flinc_id *ret_id);

bool id_equal(const struct flinc_id *a, const struct flinc_id *b);
bool id_is_zero(const struct flinc_id *id);
