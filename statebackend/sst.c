/* Verification of a RocksDB block-based SST file before it leaves the machine: every
 * block's stored checksum is recomputed, the blocks must tile the file exactly, and the
 * file's CRC32C is computed from the same bytes. This needs no RocksDB reader: the C API
 * of RocksDB 7.8 has no SstFileReader::VerifyChecksum, so we read the documented format
 * ourselves, for the table options the backend pins (backend.c): format_version 5,
 * kCRC32c block checksums, a binary-search index, no partitioned index or filter.
 *
 * Format (RocksDB wiki "Rocksdb BlockBasedTable Format"): the file ends with a 53-byte
 * footer: checksum type (1), metaindex handle and index handle (varint64 offset, size),
 * zero padding to 41 bytes, format version (u32 LE), magic (u64 LE). Every block is
 * followed by a 5-byte trailer: compression type (1) and the masked CRC32C of the block
 * contents plus that type byte (u32 LE). The index block (possibly LZ4-compressed) lists
 * the data blocks; the metaindex block lists the filter, properties and range-deletion
 * blocks. */
#include "statebackend/sb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"

#define SST_FOOTER_BYTES 53
#define SST_TRAILER_BYTES 5
#define SST_MAGIC 0x88e241b785f4cff7ull
#define SST_CHECKSUM_CRC32C 1
#define SST_COMPRESSION_NONE 0
#define SST_COMPRESSION_LZ4 4
#define SST_MAX_INDEX_BYTES (256u << 20)
#define SST_CHUNK_BYTES (1u << 20)

struct sst_block {
        uint64_t offset;
        uint64_t size; /* without the trailer */
};

struct sst_blocks {
        struct sst_block *v;
        size_t n, cap;
};

static uint32_t load_u32le(const unsigned char *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_u64le(const unsigned char *p) {
        return (uint64_t)load_u32le(p) | (uint64_t)load_u32le(p + 4) << 32;
}

/* LevelDB's checksum mask, so that a CRC of data containing CRCs stays strong. */
static uint32_t crc_mask(uint32_t crc) {
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static int get_varint64(const unsigned char **p, const unsigned char *end, uint64_t *ret) {
        uint64_t v = 0;
        for (unsigned shift = 0; shift <= 63 && *p < end; shift += 7) {
                unsigned char c = *(*p)++;
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

static int get_varint32(const unsigned char **p, const unsigned char *end, uint32_t *ret) {
        uint64_t v;
        if (get_varint64(p, end, &v) < 0 || v > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t)v;
        return 0;
}

static int get_handle(const unsigned char **p, const unsigned char *end, struct sst_block *ret) {
        struct sst_block h;
        if (get_varint64(p, end, &h.offset) < 0 || get_varint64(p, end, &h.size) < 0)
                return -EBADMSG;
        *ret = h;
        return 0;
}

static int blocks_add(struct sst_blocks *bs, struct sst_block b) {
        if (bs->n == bs->cap) {
                size_t ncap = bs->cap ? bs->cap * 2 : 256;
                struct sst_block *nv = realloc(bs->v, ncap * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                bs->v = nv;
                bs->cap = ncap;
        }
        bs->v[bs->n++] = b;
        return 0;
}

static int block_cmp(const void *a, const void *b) {
        const struct sst_block *x = a, *y = b;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off) {
        unsigned char *p = buf;
        while (len > 0) {
                ssize_t n = pread(fd, p, len, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EBADMSG; /* shorter than its own footer says */
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

/* Checks the trailer of a block held in buf (contents followed by the 5 trailer bytes). */
static int check_block(const unsigned char *buf, uint64_t size) {
        uint32_t crc = crc32c(buf, (size_t)size + 1); /* contents and the type byte */
        return crc_mask(crc) == load_u32le(buf + size + 1) ? 0 : -EBADMSG;
}

/* Reads one whole block with its trailer into a malloc'ed buffer and checks it. */
static int read_block(int fd, uint64_t file_size, struct sst_block h, unsigned char **ret) {
        if (h.size > SST_MAX_INDEX_BYTES || h.offset > file_size ||
            file_size - h.offset < h.size + SST_TRAILER_BYTES)
                return -EBADMSG;
        unsigned char *buf = malloc((size_t)h.size + SST_TRAILER_BYTES);
        if (!buf)
                return -ENOMEM;
        int r = pread_full(fd, buf, (size_t)h.size + SST_TRAILER_BYTES, h.offset);
        if (r == 0)
                r = check_block(buf, h.size);
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        return 0;
}

/* The entries region of a block and its restart count. */
static int block_entries(const unsigned char *data, uint64_t size, const unsigned char **ret_end) {
        if (size < 4)
                return -EBADMSG;
        uint32_t num_restarts = load_u32le(data + size - 4) & 0x7fffffffu;
        if (num_restarts == 0 || (uint64_t)num_restarts * 4 + 4 > size)
                return -EBADMSG;
        *ret_end = data + size - 4 - (uint64_t)num_restarts * 4;
        return 0;
}

/* Metaindex: plain entries <shared><non_shared><value_len><key delta><value = handle>. */
static int parse_metaindex(const unsigned char *data, uint64_t size, struct sst_blocks *bs) {
        const unsigned char *p = data, *end;
        int r = block_entries(data, size, &end);
        if (r < 0)
                return r;
        while (p < end) {
                uint32_t shared, non_shared, vlen;
                if (get_varint32(&p, end, &shared) < 0 || get_varint32(&p, end, &non_shared) < 0 ||
                    get_varint32(&p, end, &vlen) < 0 || (uint64_t)(end - p) < (uint64_t)non_shared + vlen)
                        return -EBADMSG;
                p += non_shared;
                const unsigned char *v = p, *vend = p + vlen;
                struct sst_block h;
                if (get_handle(&v, vend, &h) < 0)
                        return -EBADMSG;
                r = blocks_add(bs, h);
                if (r < 0)
                        return r;
                p = vend;
        }
        return 0;
}

/* Index (format_version >= 4): <shared><non_shared><key delta><value>, where the value
 * is a full handle when shared == 0 and otherwise a zigzag varint of the size change,
 * the offset following the previous block. */
static int parse_index(const unsigned char *data, uint64_t size, struct sst_blocks *bs) {
        const unsigned char *p = data, *end;
        int r = block_entries(data, size, &end);
        if (r < 0)
                return r;
        struct sst_block prev = {0, 0};
        bool have_prev = false;
        while (p < end) {
                uint32_t shared, non_shared;
                if (get_varint32(&p, end, &shared) < 0 || get_varint32(&p, end, &non_shared) < 0 ||
                    (uint64_t)(end - p) < non_shared)
                        return -EBADMSG;
                p += non_shared;
                struct sst_block h;
                if (shared == 0) {
                        if (get_handle(&p, end, &h) < 0)
                                return -EBADMSG;
                } else {
                        uint64_t z;
                        if (!have_prev || get_varint64(&p, end, &z) < 0)
                                return -EBADMSG;
                        int64_t delta = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
                        h.offset = prev.offset + prev.size + SST_TRAILER_BYTES;
                        h.size = (uint64_t)((int64_t)prev.size + delta);
                }
                r = blocks_add(bs, h);
                if (r < 0)
                        return r;
                prev = h;
                have_prev = true;
        }
        return 0;
}

/* The index block contents, decompressed when RocksDB compressed it (LZ4 with a varint32
 * length prefix, RocksDB's compress_format_version 2). *ret_data is malloc'ed. */
static int index_contents(const unsigned char *blk, uint64_t size, unsigned char **ret_data,
                          uint64_t *ret_size) {
        unsigned char type = blk[size];
        if (type == SST_COMPRESSION_NONE) {
                unsigned char *copy = malloc(size ? (size_t)size : 1);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, blk, (size_t)size);
                *ret_data = copy;
                *ret_size = size;
                return 0;
        }
        if (type != SST_COMPRESSION_LZ4)
                return -EOPNOTSUPP;
        const unsigned char *p = blk, *end = blk + size;
        uint32_t raw;
        if (get_varint32(&p, end, &raw) < 0 || raw > SST_MAX_INDEX_BYTES ||
            end - p > INT32_MAX)
                return -EBADMSG;
        unsigned char *out = malloc(raw ? raw : 1);
        if (!out)
                return -ENOMEM;
        int n = LZ4_decompress_safe((const char *)p, (char *)out, (int)(end - p), (int)raw);
        if (n < 0 || (uint32_t)n != raw) {
                free(out);
                return -EBADMSG;
        }
        *ret_data = out;
        *ret_size = raw;
        return 0;
}

int sb_sst_verify(const char *path, const char *name, uint32_t *ret_crc, uint64_t *ret_size,
                  char *err, size_t err_len) {
        struct sst_blocks bs = {0};
        unsigned char *meta = NULL, *index = NULL, *index_raw = NULL, *buf = NULL;
        uint64_t index_raw_size = 0;
        int r;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return sb_fail(err, err_len, -errno, "SST file %s: cannot open: %s", name,
                               err_str(-errno));
        struct stat st;
        if (fstat(fd, &st) < 0) {
                r = sb_fail(err, err_len, -errno, "SST file %s: %s", name, err_str(-errno));
                goto out;
        }
        uint64_t size = (uint64_t)st.st_size;
        unsigned char footer[SST_FOOTER_BYTES];
        if (size < SST_FOOTER_BYTES || pread_full(fd, footer, sizeof(footer),
                                                  size - SST_FOOTER_BYTES) < 0) {
                r = sb_fail(err, err_len, -EBADMSG, "SST file %s is corrupt: %" PRIu64
                            " bytes, too short for its footer", name, size);
                goto out;
        }
        uint32_t version = load_u32le(footer + 41);
        if (load_u64le(footer + 45) != SST_MAGIC || footer[0] != SST_CHECKSUM_CRC32C ||
            version < 2 || version > 5) {
                r = sb_fail(err, err_len, -EBADMSG, "SST file %s is corrupt or not verifiable: "
                            "footer magic, checksum type %u or format version %u is not the "
                            "block-based CRC32C format 2..5", name, footer[0], version);
                goto out;
        }
        const unsigned char *fp = footer + 1, *fend = footer + 41;
        struct sst_block metaindex_h, index_h;
        if (get_handle(&fp, fend, &metaindex_h) < 0 || get_handle(&fp, fend, &index_h) < 0) {
                r = sb_fail(err, err_len, -EBADMSG, "SST file %s is corrupt: bad footer", name);
                goto out;
        }
        for (; fp < fend; fp++) {
                if (*fp != 0) {
                        r = sb_fail(err, err_len, -EBADMSG,
                                    "SST file %s is corrupt: footer padding is not zero", name);
                        goto out;
                }
        }
        r = read_block(fd, size, metaindex_h, &meta);
        if (r == 0)
                r = meta[metaindex_h.size] == SST_COMPRESSION_NONE ? 0 : -EBADMSG;
        if (r == 0)
                r = read_block(fd, size, index_h, &index);
        if (r == 0)
                r = index_contents(index, index_h.size, &index_raw, &index_raw_size);
        if (r == 0)
                r = parse_metaindex(meta, metaindex_h.size, &bs);
        if (r == 0)
                r = parse_index(index_raw, index_raw_size, &bs);
        if (r == 0)
                r = blocks_add(&bs, metaindex_h);
        if (r == 0)
                r = blocks_add(&bs, index_h);
        if (r == -ENOMEM)
                goto out;
        if (r < 0) {
                r = sb_fail(err, err_len, r == -EOPNOTSUPP ? -EOPNOTSUPP : -EBADMSG,
                            "SST file %s is corrupt: %s", name,
                            r == -EOPNOTSUPP ? "index block compression is not LZ4 or none"
                                             : "metaindex or index block fails its checksum "
                                               "or does not parse");
                goto out;
        }
        qsort(bs.v, bs.n, sizeof(*bs.v), block_cmp);

        /* One pass over the file in offset order: each block's checksum, the tiling, and the
         * CRC32C of the whole file. */
        size_t cap = SST_CHUNK_BYTES;
        buf = malloc(cap);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        uint32_t file_crc = 0;
        uint64_t pos = 0;
        for (size_t i = 0; i < bs.n; i++) {
                struct sst_block h = bs.v[i];
                if (h.offset != pos || h.size > size || size - pos < h.size + SST_TRAILER_BYTES) {
                        r = sb_fail(err, err_len, -EBADMSG, "SST file %s is corrupt: block %zu "
                                    "at offset %" PRIu64 " (size %" PRIu64 ") does not follow "
                                    "the previous block ending at %" PRIu64, name, i, h.offset,
                                    h.size, pos);
                        goto out;
                }
                size_t need = (size_t)h.size + SST_TRAILER_BYTES;
                if (need > cap) {
                        unsigned char *nb = realloc(buf, need);
                        if (!nb) {
                                r = -ENOMEM;
                                goto out;
                        }
                        buf = nb;
                        cap = need;
                }
                r = pread_full(fd, buf, need, h.offset);
                if (r < 0) {
                        r = sb_fail(err, err_len, r == -EBADMSG ? -EBADMSG : r,
                                    "SST file %s: reading block at offset %" PRIu64 ": %s", name,
                                    h.offset, err_str(r));
                        goto out;
                }
                if (check_block(buf, h.size) < 0) {
                        r = sb_fail(err, err_len, -EBADMSG, "SST file %s is corrupt: block at "
                                    "offset %" PRIu64 " (size %" PRIu64 ") fails its checksum",
                                    name, h.offset, h.size);
                        goto out;
                }
                file_crc = crc32c_extend(file_crc, buf, need);
                pos += need;
        }
        if (pos != size - SST_FOOTER_BYTES) {
                r = sb_fail(err, err_len, -EBADMSG, "SST file %s is corrupt: blocks end at %"
                            PRIu64 " but the footer starts at %" PRIu64, name, pos,
                            size - SST_FOOTER_BYTES);
                goto out;
        }
        file_crc = crc32c_extend(file_crc, footer, sizeof(footer));
        *ret_crc = file_crc;
        *ret_size = size;
        r = 0;
out:
        free(buf);
        free(index_raw);
        free(index);
        free(meta);
        free(bs.v);
        close(fd);
        return r;
}
