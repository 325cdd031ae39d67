/* A small JSON reader for the CLI: parses a REST answer into a tree to look values up
 * by key. Strict RFC 8259 (no comments, no trailing commas), nesting at most
 * CLI_JSON_MAX_DEPTH, input at most the HTTP client's body limit. \u escapes become
 * UTF-8 (a lone surrogate becomes U+FFFD); strings may hold NUL bytes (use len). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_JSON_MAX_DEPTH 64

enum cli_json_type {
        CLI_JSON_NULL,
        CLI_JSON_BOOL,
        CLI_JSON_NUMBER,
        CLI_JSON_STRING,
        CLI_JSON_ARRAY,
        CLI_JSON_OBJECT,
};

struct cli_json {
        enum cli_json_type type;
        bool b;            /* BOOL */
        double num;        /* NUMBER */
        bool is_int;       /* NUMBER written without fraction or exponent, fits int64 */
        int64_t i64;       /* NUMBER when is_int */
        char *str;         /* STRING, NUL-terminated */
        size_t len;        /* STRING: bytes; ARRAY, OBJECT: members */
        char **keys;       /* OBJECT: len keys */
        struct cli_json *items; /* ARRAY, OBJECT: len values */
};

/* Parses text (len bytes). 0 and *ret (free with cli_json_free), or -EINVAL with the
 * byte offset and what was expected in err, or -ENOMEM. */
int cli_json_parse(const char *text, size_t len, struct cli_json **ret, char *err,
                   size_t err_len);

/* Frees v and its members; NULL is fine. */
void cli_json_free(struct cli_json *v);

/* The member key of object v (the first one of that name), or NULL when v is not an
 * object or has no such key. Borrowed from v. */
const struct cli_json *cli_json_get(const struct cli_json *v, const char *key);

/* v's text when it is a string, else NULL. Borrowed from v. */
const char *cli_json_str(const struct cli_json *v);

/* v's value when it is an integral number: true and *ret, else false. */
bool cli_json_int(const struct cli_json *v, int64_t *ret);
