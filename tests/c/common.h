/* What the C ABI test programs share (tests/c/test_capi.c, tests/c/test_capi_losses.c): the check
 * counters, CHECK and EXPECT, and the summary line and exit code. Each program is one translation
 * unit, so the static counters are its own. Found by #include "common.h" next to the programs. */
#ifndef LOGITDIV_TEST_COMMON_H
#define LOGITDIV_TEST_COMMON_H

#include <stdio.h>
#include <string.h>

#include "logitdiv.h"

static int failures = 0, checks = 0;

/* Counts a check; a false `cond` is a failure, reported with the printf-style message. */
#define CHECK(cond, ...)                                         \
    do {                                                         \
        checks++;                                                \
        if (!(cond)) {                                           \
            failures++;                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
        }                                                        \
    } while (0)

/* The call must return `status`, and the message must contain `part` (unless NULL). */
#define EXPECT(call, status, part)                                                                    \
    do {                                                                                              \
        ld_status st_ = (call);                                                                       \
        const char *part_ = (part);                                                                   \
        checks++;                                                                                     \
        if (st_ != (status)) {                                                                        \
            failures++;                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s returned %d, expected %d (%s)\n", __FILE__, __LINE__,    \
                    #call, (int)st_, (int)(status), st_ == LD_OK ? "" : ld_last_error_message());     \
        } else if (part_ != NULL && strstr(ld_last_error_message(), part_) == NULL) {                 \
            failures++;                                                                               \
            fprintf(stderr, "FAIL %s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,         \
                    ld_last_error_message(), part_);                                                  \
        }                                                                                             \
    } while (0)

/* Prints "<passed> passed, <failed> failed"; the exit code of main: 0 when every check passed. */
static int checks_summary(void) {
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}

#endif
