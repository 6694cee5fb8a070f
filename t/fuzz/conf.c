/*
 * conf.c: libFuzzer target for the configuration parser. Each input is
 * written to a file and loaded; a parse may fail, it must never crash,
 * leak or read out of bounds. `make fuzz` builds and runs it.
 *
 * The file lives alone in a directory of its own: the fuzzer soon writes
 * `include *;`, and in /tmp that read whatever else was there (perf
 * recordings of 300 MB): 56 runs a second against ~2,900.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/alloc.c"
#include "core/codec.c"
#include "core/conf.c"
#include "core/log.c"
#include "core/time.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], path[96];

static void
cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    struct hd_conf *cf;
    FILE *f;

    if (path[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/herald-fuzz-conf-XXXXXX");
        if (mkdtemp(dir) == NULL)
            return 0;
        snprintf(path, sizeof(path), "%s/herald.conf", dir);
        atexit(cleanup);
    }
    f = fopen(path, "w");
    if (f == NULL)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    cf = hd_conf_load(path, err, sizeof(err));
    hd_conf_unref(cf);
    return 0;
}
