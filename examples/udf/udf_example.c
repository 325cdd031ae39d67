/* An example flinc UDF library (worker/udf.h): one function of each kind, used by
 * examples/udf/wordcount-udf.yaml and tests/integration/test_dataflow_worker.py.
 *   upper        map: the text in upper case
 *   split_words  flat_map: one record per space-separated word
 *   long_words   filter: keeps words of at least 3 bytes
 *   first_letter key selector: the first byte of the text ("" for an empty text)
 *   max_len      reduce: the largest value seen (with value = text length from upper)
 * Build: meson builds it as examples/udf/libflinc_udf_example.so. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/udf.h"

uint32_t flinc_udf_abi_version(void);
int upper(const struct flinc_udf_record *in, struct flinc_udf_record *out, char *scratch,
          size_t scratch_len);
int split_words(const struct flinc_udf_record *in, flinc_udf_emit_fn emit, void *emit_ctx);
int long_words(const struct flinc_udf_record *in);
int first_letter(const struct flinc_udf_record *in, char *key_buf, size_t key_cap,
                 size_t *ret_key_len);
int max_len(int64_t acc, const struct flinc_udf_record *in, int64_t *ret_acc);

uint32_t flinc_udf_abi_version(void) {
        return FLINC_UDF_ABI_VERSION;
}

int upper(const struct flinc_udf_record *in, struct flinc_udf_record *out, char *scratch,
          size_t scratch_len) {
        if (in->text_len > scratch_len)
                return -ENOSPC;
        for (size_t i = 0; i < in->text_len; i++) {
                char ch = in->text[i];
                scratch[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
        }
        *out = *in;
        out->text = scratch;
        out->value = (int64_t)in->text_len;
        return 0;
}

int split_words(const struct flinc_udf_record *in, flinc_udf_emit_fn emit, void *emit_ctx) {
        size_t start = 0;
        for (size_t i = 0; i <= in->text_len; i++) {
                if (i < in->text_len && in->text[i] != ' ')
                        continue;
                if (i > start) {
                        struct flinc_udf_record w = *in;
                        w.text = in->text + start;
                        w.text_len = i - start;
                        w.value = (int64_t)w.text_len;
                        int r = emit(emit_ctx, &w);
                        if (r < 0)
                                return r;
                }
                start = i + 1;
        }
        return 0;
}

int long_words(const struct flinc_udf_record *in) {
        return in->text_len >= 3;
}

int first_letter(const struct flinc_udf_record *in, char *key_buf, size_t key_cap,
                 size_t *ret_key_len) {
        if (in->text_len == 0) {
                *ret_key_len = 0;
                return 0;
        }
        if (key_cap < 1)
                return -ENOSPC;
        key_buf[0] = in->text[0];
        *ret_key_len = 1;
        return 0;
}

int max_len(int64_t acc, const struct flinc_udf_record *in, int64_t *ret_acc) {
        *ret_acc = in->value > acc ? in->value : acc;
        return 0;
}
