/* Streaming JSON writer with sticky errors; see json.h for the output rules. */
#include "common/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_writer_init(struct json_writer *w, size_t max_bytes) {
        memset(w, 0, sizeof(*w));
        w->max_bytes = max_bytes ? max_bytes : JSON_DEFAULT_MAX_BYTES;
}

void json_writer_set_pretty(struct json_writer *w, bool pretty) {
        w->pretty = pretty;
}

void json_writer_finish(struct json_writer *w) {
        if (!w)
                return;
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
}

int json_writer_error(const struct json_writer *w) {
        return w->error;
}

int json_writer_take(struct json_writer *w, char **ret_text, size_t *ret_len) {
        if (w->error)
                return w->error;
        if (!w->done || w->depth != 0 || w->key_pending || !w->buf)
                return -EINVAL;
        *ret_text = w->buf;
        *ret_len = w->len;
        w->buf = NULL;
        w->len = w->cap = 0;
        return 0;
}

static void fail(struct json_writer *w, int r) {
        if (!w->error)
                w->error = r;
}

/* Makes room for n more bytes plus the NUL; false (and the sticky error) if not. */
static bool reserve(struct json_writer *w, size_t n) {
        if (w->error)
                return false;
        if (n > w->max_bytes || w->len > w->max_bytes - n) {
                fail(w, -EFBIG);
                return false;
        }
        size_t need = w->len + n + 1;
        if (need <= w->cap)
                return true;
        size_t cap = w->cap ? w->cap : 256;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *p = realloc(w->buf, cap);
        if (!p) {
                fail(w, -ENOMEM);
                return false;
        }
        w->buf = p;
        w->cap = cap;
        return true;
}

static void put(struct json_writer *w, const char *s, size_t n) {
        if (!reserve(w, n))
                return;
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = '\0';
}

static void putc_(struct json_writer *w, char c) {
        put(w, &c, 1);
}

static void newline_indent(struct json_writer *w, uint32_t depth) {
        if (!w->pretty)
                return;
        putc_(w, '\n');
        for (uint32_t i = 0; i < depth; i++)
                put(w, "  ", 2);
}

/* Everything a value needs before it: the check that a value may come here, and the
 * comma and indentation inside an array. */
static bool before_value(struct json_writer *w) {
        if (w->error)
                return false;
        if (w->depth == 0) {
                if (w->done) {
                        fail(w, -EINVAL);
                        return false;
                }
                return true;
        }
        uint32_t top = w->depth - 1;
        if (w->kind[top] == 'o') {
                if (!w->key_pending) {
                        fail(w, -EINVAL);
                        return false;
                }
                w->key_pending = false;
                return true;
        }
        if (w->nonempty[top])
                putc_(w, ',');
        w->nonempty[top] = true;
        newline_indent(w, w->depth);
        return !w->error;
}

static void after_value(struct json_writer *w) {
        if (w->depth == 0 && !w->error)
                w->done = true;
}

/* Writes \uXXXX. */
static void put_u(struct json_writer *w, unsigned cp) {
        char tmp[7];
        snprintf(tmp, sizeof(tmp), "\\u%04x", cp & 0xffffu);
        put(w, tmp, 6);
}

/* Length of the well-formed UTF-8 sequence at s (of n bytes), or 0 with *ret_bad set to
 * the length of its maximal ill-formed subpart (at least 1). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *ret_bad) {
        unsigned char c = s[0];
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
                need = 1;
        else if (c >= 0xe0 && c <= 0xef) {
                need = 2;
                if (c == 0xe0)
                        lo = 0xa0;
                else if (c == 0xed)
                        hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                need = 3;
                if (c == 0xf0)
                        lo = 0x90;
                else if (c == 0xf4)
                        hi = 0x8f;
        } else {
                *ret_bad = 1;
                return 0;
        }
        size_t i = 1;
        for (; i <= need; i++) {
                if (i >= n) {
                        *ret_bad = i;
                        return 0;
                }
                unsigned char b = s[i];
                unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
                if (b < l || b > h) {
                        *ret_bad = i;
                        return 0;
                }
        }
        return need + 1;
}

static void put_escaped(struct json_writer *w, const char *str, size_t len) {
        const unsigned char *s = (const unsigned char *)str;
        putc_(w, '"');
        size_t i = 0;
        while (i < len && !w->error) {
                /* Copy a run of bytes that need nothing. */
                size_t run = i;
                while (run < len && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' &&
                       s[run] != '\\')
                        run++;
                if (run > i) {
                        put(w, (const char *)s + i, run - i);
                        i = run;
                        continue;
                }
                unsigned char c = s[i];
                if (c < 0x80) {
                        switch (c) {
                        case '"': put(w, "\\\"", 2); break;
                        case '\\': put(w, "\\\\", 2); break;
                        case '\n': put(w, "\\n", 2); break;
                        case '\r': put(w, "\\r", 2); break;
                        case '\t': put(w, "\\t", 2); break;
                        case '\b': put(w, "\\b", 2); break;
                        case '\f': put(w, "\\f", 2); break;
                        default: put_u(w, c); break; /* other controls and DEL */
                        }
                        i++;
                        continue;
                }
                size_t bad = 0;
                size_t n = utf8_seq(s + i, len - i, &bad);
                if (n == 0) {
                        put_u(w, 0xfffd);
                        i += bad;
                        continue;
                }
                if (n == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 &&
                    (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
                        put_u(w, s[i + 2] == 0xa8 ? 0x2028 : 0x2029);
                else
                        put(w, (const char *)s + i, n);
                i += n;
        }
        putc_(w, '"');
}

void json_begin_object(struct json_writer *w) {
        if (!before_value(w))
                return;
        if (w->depth >= JSON_MAX_DEPTH) {
                fail(w, -E2BIG);
                return;
        }
        putc_(w, '{');
        w->kind[w->depth] = 'o';
        w->nonempty[w->depth] = false;
        w->depth++;
}

void json_begin_array(struct json_writer *w) {
        if (!before_value(w))
                return;
        if (w->depth >= JSON_MAX_DEPTH) {
                fail(w, -E2BIG);
                return;
        }
        putc_(w, '[');
        w->kind[w->depth] = 'a';
        w->nonempty[w->depth] = false;
        w->depth++;
}

static void end_level(struct json_writer *w, char kind) {
        if (w->error)
                return;
        if (w->depth == 0 || w->kind[w->depth - 1] != kind || w->key_pending) {
                fail(w, -EINVAL);
                return;
        }
        if (w->nonempty[w->depth - 1])
                newline_indent(w, w->depth - 1);
        putc_(w, kind == 'o' ? '}' : ']');
        w->depth--;
        after_value(w);
}

void json_end_object(struct json_writer *w) {
        end_level(w, 'o');
}

void json_end_array(struct json_writer *w) {
        end_level(w, 'a');
}

void json_key_len(struct json_writer *w, const char *key, size_t len) {
        if (w->error)
                return;
        if (w->depth == 0 || w->kind[w->depth - 1] != 'o' || w->key_pending || !key) {
                fail(w, -EINVAL);
                return;
        }
        uint32_t top = w->depth - 1;
        if (w->nonempty[top])
                putc_(w, ',');
        w->nonempty[top] = true;
        newline_indent(w, w->depth);
        put_escaped(w, key, len);
        if (w->pretty)
                put(w, ": ", 2);
        else
                putc_(w, ':');
        w->key_pending = true;
}

void json_key(struct json_writer *w, const char *key) {
        if (!key) {
                fail(w, -EINVAL);
                return;
        }
        json_key_len(w, key, strlen(key));
}

void json_string_len(struct json_writer *w, const char *s, size_t len) {
        if (!s) {
                json_null(w);
                return;
        }
        if (!before_value(w))
                return;
        put_escaped(w, s, len);
        after_value(w);
}

void json_string(struct json_writer *w, const char *s) {
        json_string_len(w, s, s ? strlen(s) : 0);
}

static void put_literal(struct json_writer *w, const char *text) {
        if (!before_value(w))
                return;
        put(w, text, strlen(text));
        after_value(w);
}

void json_int(struct json_writer *w, int64_t v) {
        char tmp[24];
        snprintf(tmp, sizeof(tmp), "%" PRId64, v);
        put_literal(w, tmp);
}

void json_uint(struct json_writer *w, uint64_t v) {
        char tmp[24];
        snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
        put_literal(w, tmp);
}

void json_double(struct json_writer *w, double v) {
        if (!isfinite(v)) {
                json_null(w);
                return;
        }
        char tmp[48];
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
                if (strtod(tmp, NULL) == v)
                        break;
        }
        /* The C locale's decimal point may not be '.': keep digits, signs and the
         * exponent, and turn whatever else there is (the decimal point) into '.'. */
        char out[48];
        size_t o = 0;
        bool in_other = false;
        for (const char *p = tmp; *p && o + 1 < sizeof(out); p++) {
                char c = *p;
                if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E') {
                        out[o++] = c;
                        in_other = false;
                } else if (!in_other) {
                        out[o++] = '.';
                        in_other = true;
                }
        }
        out[o] = '\0';
        put_literal(w, out);
}

void json_bool(struct json_writer *w, bool v) {
        put_literal(w, v ? "true" : "false");
}

void json_null(struct json_writer *w) {
        put_literal(w, "null");
}

void json_kv_string(struct json_writer *w, const char *key, const char *value) {
        json_key(w, key);
        json_string(w, value);
}

void json_kv_int(struct json_writer *w, const char *key, int64_t value) {
        json_key(w, key);
        json_int(w, value);
}

void json_kv_uint(struct json_writer *w, const char *key, uint64_t value) {
        json_key(w, key);
        json_uint(w, value);
}

void json_kv_double(struct json_writer *w, const char *key, double value) {
        json_key(w, key);
        json_double(w, value);
}

void json_kv_bool(struct json_writer *w, const char *key, bool value) {
        json_key(w, key);
        json_bool(w, value);
}

void json_kv_null(struct json_writer *w, const char *key) {
        json_key(w, key);
        json_null(w);
}
