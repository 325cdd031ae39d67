/* A small test harness for the C unit tests: each check prints what was expected and
 * what was seen when it fails; the program exits non-zero if any check failed. */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond, ...)                                                          \
        do {                                                                      \
                unit_checks++;                                                    \
                if (!(cond)) {                                                    \
                        unit_failures++;                                          \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                             \
                        fputc('\n', stderr);                                      \
                }                                                                 \
        } while (0)

#define CHECK_INT(seen, expected)                                                 \
        do {                                                                      \
                long long s_ = (long long)(seen), e_ = (long long)(expected);     \
                CHECK(s_ == e_, "expected %lld, seen %lld", e_, s_);              \
        } while (0)

#define CHECK_STR(seen, expected)                                                 \
        do {                                                                      \
                const char *s_ = (seen), *e_ = (expected);                        \
                CHECK(s_ && strcmp(s_, e_) == 0, "expected \"%s\", seen \"%s\"", e_, \
                      s_ ? s_ : "(null)");                                        \
        } while (0)

/* The message must contain the fragment (error messages name file, key, value, ...). */
#define CHECK_CONTAINS(seen, fragment)                                            \
        do {                                                                      \
                const char *s_ = (seen), *f_ = (fragment);                        \
                CHECK(s_ && strstr(s_, f_), "expected a message containing \"%s\", seen \"%s\"", \
                      f_, s_ ? s_ : "(null)");                                    \
        } while (0)

#define RUN(test)                                                                 \
        do {                                                                      \
                int before_ = unit_failures;                                      \
                test();                                                           \
                printf("%s %s\n", unit_failures == before_ ? "ok  " : "FAIL", #test); \
        } while (0)

static inline int unit_done(void) {
        printf("%d checks, %d failed\n", unit_checks, unit_failures);
        return unit_failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Multiplier for every deadline in tests, from FLINC_TIMEOUT_SCALE (default 1). */
static inline double unit_timeout_scale(void) {
        const char *s = getenv("FLINC_TIMEOUT_SCALE");
        double v = s ? strtod(s, NULL) : 1.0;
        return v > 0 ? v : 1.0;
}
