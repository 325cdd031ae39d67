/* CRC32C (Castagnoli), the checksum on every metadata file, payload and state file. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over len bytes. crc32c_extend(0, "123456789", 9) is
 * 0xe3069283. */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t len);

static inline uint32_t crc32c(const void *data, size_t len) {
        return crc32c_extend(0, data, len);
}
