/* The CLI's JSON reader (see jsonv.h): recursive descent over the text, one pass. */
#include "tools/cli/jsonv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jp {
        const char *s;
        size_t len;
        size_t pos;
        char *err;
        size_t err_len;
        int depth;
};

static int fail(struct jp *p, const char *what) {
        if (p->err && p->err_len)
                snprintf(p->err, p->err_len, "invalid JSON at byte %zu: %s", p->pos, what);
        return -EINVAL;
}

static void skip_ws(struct jp *p) {
        while (p->pos < p->len) {
                char c = p->s[p->pos];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                        break;
                p->pos++;
        }
}

static bool literal(struct jp *p, const char *word) {
        size_t n = strlen(word);
        if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
                return false;
        p->pos += n;
        return true;
}

static int hex4(struct jp *p, uint32_t *ret) {
        if (p->len - p->pos < 4)
                return fail(p, "truncated \\u escape");
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) {
                char c = p->s[p->pos + (size_t)i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t)(c - 'A' + 10);
                else
                        return fail(p, "bad \\u escape");
        }
        p->pos += 4;
        *ret = v;
        return 0;
}

static size_t put_utf8(char *out, uint32_t cp) {
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xC0 | (cp >> 6));
                out[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xE0 | (cp >> 12));
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

/* At the opening quote. The decoded text is never longer than the escaped one. */
static int parse_string(struct jp *p, char **ret, size_t *ret_len) {
        p->pos++;
        size_t start = p->pos, end = start;
        while (end < p->len && p->s[end] != '"') {
                if (p->s[end] == '\\')
                        end++;
                end++;
        }
        if (end >= p->len)
                return fail(p, "unterminated string");
        char *out = malloc(end - start + 1);
        if (!out)
                return -ENOMEM;
        size_t n = 0;
        int r;
        while (p->pos < end) {
                unsigned char c = (unsigned char)p->s[p->pos];
                if (c < 0x20) {
                        r = fail(p, "control character in a string");
                        goto bad;
                }
                if (c != '\\') {
                        out[n++] = (char)c;
                        p->pos++;
                        continue;
                }
                p->pos++;
                char e = p->s[p->pos++];
                switch (e) {
                case '"': out[n++] = '"'; break;
                case '\\': out[n++] = '\\'; break;
                case '/': out[n++] = '/'; break;
                case 'b': out[n++] = '\b'; break;
                case 'f': out[n++] = '\f'; break;
                case 'n': out[n++] = '\n'; break;
                case 'r': out[n++] = '\r'; break;
                case 't': out[n++] = '\t'; break;
                case 'u': {
                        uint32_t cp;
                        if ((r = hex4(p, &cp)) < 0)
                                goto bad;
                        if (cp >= 0xD800 && cp <= 0xDBFF && end - p->pos >= 6 &&
                            p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                                size_t save = p->pos;
                                uint32_t lo;
                                p->pos += 2;
                                if (hex4(p, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF)
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                else
                                        p->pos = save;
                        }
                        if (cp >= 0xD800 && cp <= 0xDFFF)
                                cp = 0xFFFD;
                        n += put_utf8(out + n, cp);
                        break;
                }
                default:
                        r = fail(p, "bad escape");
                        goto bad;
                }
        }
        p->pos = end + 1;
        out[n] = '\0';
        *ret = out;
        *ret_len = n;
        return 0;
bad:
        free(out);
        return r;
}

static int parse_number(struct jp *p, struct cli_json *v) {
        size_t start = p->pos;
        bool integral = true;
        if (p->pos < p->len && p->s[p->pos] == '-')
                p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
                return fail(p, "expected a value");
        if (p->s[p->pos] == '0') {
                p->pos++;
        } else {
                while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
                        p->pos++;
        }
        if (p->pos < p->len && p->s[p->pos] == '.') {
                integral = false;
                p->pos++;
                if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
                        return fail(p, "expected digits after '.'");
                while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
                        p->pos++;
        }
        if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
                integral = false;
                p->pos++;
                if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
                        p->pos++;
                if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
                        return fail(p, "expected digits in the exponent");
                while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
                        p->pos++;
        }
        char buf[64];
        size_t n = p->pos - start;
        if (n >= sizeof(buf))
                n = sizeof(buf) - 1; /* only precision is lost */
        memcpy(buf, p->s + start, n);
        buf[n] = '\0';
        v->type = CLI_JSON_NUMBER;
        v->num = strtod(buf, NULL);
        if (integral && p->pos - start < sizeof(buf)) {
                errno = 0;
                long long ll = strtoll(buf, NULL, 10);
                if (errno == 0) {
                        v->is_int = true;
                        v->i64 = ll;
                }
        }
        return 0;
}

static int parse_value(struct jp *p, struct cli_json *v);

static int grow(void **arr, size_t elem, size_t *cap, size_t need) {
        if (need <= *cap)
                return 0;
        size_t n = *cap ? *cap * 2 : 4;
        while (n < need)
                n *= 2;
        void *a = realloc(*arr, n * elem);
        if (!a)
                return -ENOMEM;
        *arr = a;
        *cap = n;
        return 0;
}

static int parse_container(struct jp *p, struct cli_json *v, bool object) {
        if (++p->depth > CLI_JSON_MAX_DEPTH)
                return fail(p, "nested too deeply");
        p->pos++;
        v->type = object ? CLI_JSON_OBJECT : CLI_JSON_ARRAY;
        size_t cap_items = 0, cap_keys = 0;
        int r;
        skip_ws(p);
        char close = object ? '}' : ']';
        if (p->pos < p->len && p->s[p->pos] == close) {
                p->pos++;
                p->depth--;
                return 0;
        }
        for (;;) {
                skip_ws(p);
                char *key = NULL;
                size_t key_len;
                if (object) {
                        if (p->pos >= p->len || p->s[p->pos] != '"')
                                return fail(p, "expected a key");
                        if ((r = parse_string(p, &key, &key_len)) < 0)
                                return r;
                        skip_ws(p);
                        if (p->pos >= p->len || p->s[p->pos] != ':') {
                                free(key);
                                return fail(p, "expected ':'");
                        }
                        p->pos++;
                }
                if (grow((void **)&v->items, sizeof(*v->items), &cap_items, v->len + 1) < 0 ||
                    (object && grow((void **)&v->keys, sizeof(*v->keys), &cap_keys, v->len + 1) < 0)) {
                        free(key);
                        return -ENOMEM;
                }
                memset(&v->items[v->len], 0, sizeof(v->items[0]));
                if (object)
                        v->keys[v->len] = key;
                v->len++; /* counted now, so a failure below frees it */
                skip_ws(p);
                if ((r = parse_value(p, &v->items[v->len - 1])) < 0)
                        return r;
                skip_ws(p);
                if (p->pos < p->len && p->s[p->pos] == ',') {
                        p->pos++;
                        continue;
                }
                if (p->pos < p->len && p->s[p->pos] == close) {
                        p->pos++;
                        p->depth--;
                        return 0;
                }
                return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
}

static int parse_value(struct jp *p, struct cli_json *v) {
        skip_ws(p);
        if (p->pos >= p->len)
                return fail(p, "unexpected end");
        char c = p->s[p->pos];
        if (c == '{' || c == '[')
                return parse_container(p, v, c == '{');
        if (c == '"') {
                v->type = CLI_JSON_STRING;
                return parse_string(p, &v->str, &v->len);
        }
        if (literal(p, "true")) {
                v->type = CLI_JSON_BOOL;
                v->b = true;
                return 0;
        }
        if (literal(p, "false")) {
                v->type = CLI_JSON_BOOL;
                return 0;
        }
        if (literal(p, "null")) {
                v->type = CLI_JSON_NULL;
                return 0;
        }
        return parse_number(p, v);
}

static void free_members(struct cli_json *v) {
        if (v->type == CLI_JSON_STRING) {
                free(v->str);
        } else if (v->type == CLI_JSON_ARRAY || v->type == CLI_JSON_OBJECT) {
                for (size_t i = 0; i < v->len; i++) {
                        free_members(&v->items[i]);
                        if (v->keys)
                                free(v->keys[i]);
                }
                free(v->items);
                free(v->keys);
        }
}

int cli_json_parse(const char *text, size_t len, struct cli_json **ret, char *err,
                   size_t err_len) {
        struct jp p = {.s = text, .len = len, .err = err, .err_len = err_len};
        struct cli_json *v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        int r = parse_value(&p, v);
        if (r == 0) {
                skip_ws(&p);
                if (p.pos != p.len)
                        r = fail(&p, "text after the value");
        }
        if (r < 0) {
                if (r == -ENOMEM && err && err_len)
                        snprintf(err, err_len, "out of memory");
                cli_json_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

void cli_json_free(struct cli_json *v) {
        if (!v)
                return;
        free_members(v);
        free(v);
}

const struct cli_json *cli_json_get(const struct cli_json *v, const char *key) {
        if (!v || v->type != CLI_JSON_OBJECT)
                return NULL;
        for (size_t i = 0; i < v->len; i++)
                if (strcmp(v->keys[i], key) == 0)
                        return &v->items[i];
        return NULL;
}

const char *cli_json_str(const struct cli_json *v) {
        return v && v->type == CLI_JSON_STRING ? v->str : NULL;
}

bool cli_json_int(const struct cli_json *v, int64_t *ret) {
        if (!v || v->type != CLI_JSON_NUMBER || !v->is_int)
                return false;
        *ret = v->i64;
        return true;
}
