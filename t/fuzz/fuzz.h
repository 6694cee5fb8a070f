/*
 * fuzz.h: what the libFuzzer targets in t/fuzz share. CHECK(x) stops the
 * run (abort: libFuzzer keeps the input as a crash-* artifact) and says
 * which property failed.
 */
#ifndef HD_FUZZ_H
#define HD_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                               \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__);     \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
