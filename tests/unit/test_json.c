/* Unit tests of common/json.c: commas and nesting, string escaping (controls, invalid
 * UTF-8, U+2028), numbers (int64/uint64 limits, shortest doubles, NaN/inf, a comma
 * locale), the depth and size limits, misuse, and that errors are sticky. */
#include <errno.h>
#include <locale.h>
#include <math.h>

#include "common/json.h"
#include "unit.h"

/* The text of w (which must be complete), or NULL; the caller frees. */
static char *take(struct json_writer *w) {
        char *t = NULL;
        size_t n = 0;
        int r = json_writer_take(w, &t, &n);
        CHECK(r == 0, "take failed: %d", r);
        if (r == 0)
                CHECK_INT(n, strlen(t));
        return r == 0 ? t : NULL;
}

/* The JSON of one string value. */
static char *string_json(const char *s, size_t len) {
        struct json_writer w;
        json_writer_init(&w, 0);
        json_string_len(&w, s, len);
        char *t = take(&w);
        json_writer_finish(&w);
        return t;
}

static void check_string(const char *s, size_t len, const char *expected) {
        char *t = string_json(s, len);
        CHECK_STR(t, expected);
        free(t);
}

static void test_nesting_and_commas(void) {
        struct json_writer w;
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_kv_int(&w, "a", 1);
        json_key(&w, "b");
        json_begin_array(&w);
        json_bool(&w, true);
        json_bool(&w, false);
        json_null(&w);
        json_begin_object(&w);
        json_end_object(&w);
        json_begin_array(&w);
        json_end_array(&w);
        json_end_array(&w);
        json_kv_string(&w, "c", "x");
        json_kv_null(&w, "d");
        json_kv_uint(&w, "e", 7);
        json_kv_bool(&w, "f", true);
        json_kv_double(&w, "g", 0.5);
        json_end_object(&w);
        char *t = take(&w);
        CHECK_STR(t, "{\"a\":1,\"b\":[true,false,null,{},[]],\"c\":\"x\",\"d\":null,\"e\":7,"
                     "\"f\":true,\"g\":0.5}");
        free(t);
        /* The writer is empty after take; finish is then a no-op. */
        CHECK(w.buf == NULL, "buffer still held after take");
        json_writer_finish(&w);
        json_writer_finish(NULL);

        /* A scalar alone is a complete value. */
        json_writer_init(&w, 0);
        json_int(&w, -3);
        t = take(&w);
        CHECK_STR(t, "-3");
        free(t);
        json_writer_finish(&w);
}

static void test_pretty(void) {
        struct json_writer w;
        json_writer_init(&w, 0);
        json_writer_set_pretty(&w, true);
        json_begin_object(&w);
        json_kv_string(&w, "a", "b");
        json_key(&w, "list");
        json_begin_array(&w);
        json_int(&w, 1);
        json_begin_object(&w);
        json_end_object(&w);
        json_end_array(&w);
        json_key(&w, "empty");
        json_begin_array(&w);
        json_end_array(&w);
        json_end_object(&w);
        char *t = take(&w);
        CHECK_STR(t, "{\n  \"a\": \"b\",\n  \"list\": [\n    1,\n    {}\n  ],\n  \"empty\": []\n}");
        free(t);
        json_writer_finish(&w);
}

static void test_escaping(void) {
        check_string("plain text", 10, "\"plain text\"");
        check_string("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"");
        check_string("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
        check_string("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"");
        check_string("a\0b", 3, "\"a\\u0000b\"");
        /* Well-formed UTF-8 passes through: é, €, U+1F600. */
        check_string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
                     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        /* Line and paragraph separators are escaped for <script> embedding. */
        check_string("\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\"");
        /* Ill-formed: one U+FFFD per maximal subpart. */
        check_string("\x80", 1, "\"\\ufffd\"");                       /* stray continuation */
        check_string("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");            /* overlong '/' */
        check_string("a\xe2\x82", 3, "\"a\\ufffd\"");                 /* truncated at end */
        check_string("\xe2\x82" "A", 3, "\"\\ufffdA\"");              /* truncated mid */
        check_string("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate D800 */
        check_string("\xf4\x90\x80\x80", 4,
                     "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");             /* above U+10FFFF */
        check_string("\xf0\x9f\x98", 3, "\"\\ufffd\"");               /* truncated 4-byte */
        check_string("\xff\xfe", 2, "\"\\ufffd\\ufffd\"");
        /* Keys are escaped the same way. */
        struct json_writer w;
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_key_len(&w, "k\"\n\xff", 4);
        json_string(&w, NULL);
        json_end_object(&w);
        char *t = take(&w);
        CHECK_STR(t, "{\"k\\\"\\n\\ufffd\":null}");
        free(t);
        json_writer_finish(&w);
}

static char *number_json(void (*emit)(struct json_writer *, double), double v) {
        struct json_writer w;
        json_writer_init(&w, 0);
        emit(&w, v);
        char *t = take(&w);
        json_writer_finish(&w);
        return t;
}

static void check_double(double v, const char *expected) {
        char *t = number_json(json_double, v);
        CHECK_STR(t, expected);
        if (t && isfinite(v))
                CHECK(strtod(t, NULL) == v, "%s does not read back as %.17g", t, v);
        free(t);
}

static void test_numbers(void) {
        struct json_writer w;
        json_writer_init(&w, 0);
        json_begin_array(&w);
        json_int(&w, INT64_MIN);
        json_int(&w, INT64_MAX);
        json_uint(&w, UINT64_MAX);
        json_int(&w, 0);
        json_end_array(&w);
        char *t = take(&w);
        CHECK_STR(t, "[-9223372036854775808,9223372036854775807,18446744073709551615,0]");
        free(t);
        json_writer_finish(&w);

        check_double(0.1, "0.1");
        check_double(0.5, "0.5");
        check_double(3.0, "3");
        check_double(-0.0, "-0");
        check_double(1e300, "1e+300");
        check_double(1.5e-7, "1.5e-07");
        check_double(1.0 / 3.0, "0.3333333333333333");
        check_double(0.1 + 0.2, "0.30000000000000004");
        check_double(123456789.125, "123456789.125");
        check_double(NAN, "null");
        check_double(INFINITY, "null");
        check_double(-INFINITY, "null");

        /* A locale with a decimal comma must not leak into JSON. */
        const char *locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
        bool comma = false;
        for (size_t i = 0; i < sizeof(locales) / sizeof(locales[0]) && !comma; i++)
                if (setlocale(LC_NUMERIC, locales[i]))
                        comma = strcmp(localeconv()->decimal_point, ",") == 0;
        if (comma)
                check_double(2.25, "2.25");
        else
                printf("     (no decimal-comma locale installed; locale check skipped)\n");
        setlocale(LC_NUMERIC, "C");
}

static void test_depth_limit(void) {
        struct json_writer w;
        json_writer_init(&w, 0);
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
                json_begin_array(&w);
        CHECK_INT(json_writer_error(&w), 0);
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
                json_end_array(&w);
        char *t = take(&w);
        CHECK(t && strlen(t) == 2 * JSON_MAX_DEPTH, "expected %d brackets", 2 * JSON_MAX_DEPTH);
        free(t);
        json_writer_finish(&w);

        json_writer_init(&w, 0);
        for (int i = 0; i < JSON_MAX_DEPTH; i++) {
                json_begin_object(&w);
                json_key(&w, "k");
        }
        json_begin_array(&w); /* one too deep */
        CHECK_INT(json_writer_error(&w), -E2BIG);
        json_writer_finish(&w);
}

static void test_sticky_and_misuse(void) {
        struct json_writer w;
        char *t = NULL;
        size_t n = 0;

        /* A value in an object without a key. */
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_int(&w, 1);
        CHECK_INT(json_writer_error(&w), -EINVAL);
        size_t len = w.len;
        json_key(&w, "a");
        json_int(&w, 2);
        json_end_object(&w);
        CHECK_INT(json_writer_error(&w), -EINVAL); /* the first error stays */
        CHECK_INT(w.len, len);                     /* and nothing more was written */
        CHECK_INT(json_writer_take(&w, &t, &n), -EINVAL);
        CHECK(t == NULL, "take handed out text after an error");
        json_writer_finish(&w);

        /* A key in an array. */
        json_writer_init(&w, 0);
        json_begin_array(&w);
        json_key(&w, "a");
        CHECK_INT(json_writer_error(&w), -EINVAL);
        json_writer_finish(&w);

        /* Two keys in a row, and an object closed after a key. */
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_key(&w, "a");
        json_key(&w, "b");
        CHECK_INT(json_writer_error(&w), -EINVAL);
        json_writer_finish(&w);
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_key(&w, "a");
        json_end_object(&w);
        CHECK_INT(json_writer_error(&w), -EINVAL);
        json_writer_finish(&w);

        /* Mismatched end, end at the top, two top-level values. */
        json_writer_init(&w, 0);
        json_begin_object(&w);
        json_end_array(&w);
        CHECK_INT(json_writer_error(&w), -EINVAL);
        json_writer_finish(&w);
        json_writer_init(&w, 0);
        json_end_object(&w);
        CHECK_INT(json_writer_error(&w), -EINVAL);
        json_writer_finish(&w);
        json_writer_init(&w, 0);
        json_int(&w, 1);
        json_int(&w, 2);
        CHECK_INT(json_writer_error(&w), -EINVAL);
        json_writer_finish(&w);

        /* An unfinished value cannot be taken, but the writer stays usable. */
        json_writer_init(&w, 0);
        json_begin_array(&w);
        CHECK_INT(json_writer_take(&w, &t, &n), -EINVAL);
        CHECK_INT(json_writer_error(&w), 0);
        json_end_array(&w);
        t = take(&w);
        CHECK_STR(t, "[]");
        free(t);
        json_writer_finish(&w);

        /* Nothing written at all. */
        json_writer_init(&w, 0);
        CHECK_INT(json_writer_take(&w, &t, &n), -EINVAL);
        json_writer_finish(&w);
}

static void test_size_limit(void) {
        struct json_writer w;
        json_writer_init(&w, 16);
        json_begin_array(&w);
        json_string(&w, "0123456789");
        CHECK_INT(json_writer_error(&w), 0);
        json_string(&w, "0123456789");
        CHECK_INT(json_writer_error(&w), -EFBIG);
        CHECK(w.len <= 16, "wrote %zu bytes past a 16-byte limit", w.len);
        json_writer_finish(&w);

        /* Large output grows the buffer. */
        json_writer_init(&w, 0);
        json_begin_array(&w);
        for (int i = 0; i < 100000; i++)
                json_int(&w, i);
        json_end_array(&w);
        char *t = take(&w);
        CHECK(t && strncmp(t, "[0,1,2,", 7) == 0 && strstr(t, ",99999]"), "big array wrong");
        free(t);
        json_writer_finish(&w);
}

int main(void) {
        RUN(test_nesting_and_commas);
        RUN(test_pretty);
        RUN(test_escaping);
        RUN(test_numbers);
        RUN(test_depth_limit);
        RUN(test_sticky_and_misuse);
        RUN(test_size_limit);
        return unit_done();
}
