/*
 * conf.c: libFuzzer target for the configuration parser. Each input is
 * written to a file and loaded; a parse may fail, it must never crash,
 * leak or read out of bounds. `make fuzz` builds and runs it.
 */
#include <stdio.h>
#include <unistd.h>

#include "core/alloc.c"
#include "core/codec.c"
#include "core/conf.c"
#include "core/log.c"
#include "core/time.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    char err[1024];
    struct hd_conf *cf;
    FILE *f;

    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/tmp/herald-fuzz-conf-%d", getpid());
    f = fopen(path, "w");
    if (f == NULL)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    cf = hd_conf_load(path, err, sizeof(err));
    hd_conf_unref(cf);
    return 0;
}
