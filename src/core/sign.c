/*
 * sign.c: HMAC-SHA256 signed tokens. The key is read by the main thread
 * at start and only read afterwards, by any worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/herald.h"
#include "core/codec.h"
#include "core/sign.h"

#define KEY_LEN 32
#define MAC_LEN 16

static unsigned char key[KEY_LEN];

int
hd_sign_init(const char *store_path, char *err, size_t errlen)
{
    char path[4200];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/signing.key", store_path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, key, sizeof(key));
        close(fd);
        if (n == (ssize_t)sizeof(key))
            return HD_OK;
        snprintf(err, errlen, "\"%s\" is not a %d-byte key", path, KEY_LEN);
        return HD_ERROR;
    }
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, key, sizeof(key)) != (ssize_t)sizeof(key)) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot read /dev/urandom: %s", strerror(errno));
        return HD_ERROR;
    }
    close(fd);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) ||
        fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return HD_ERROR;
    }
    close(fd);
    return HD_OK;
}

static void
mac(const char *payload, size_t len, unsigned char out[MAC_LEN])
{
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)payload, len,
         full, &n);
    memcpy(out, full, MAC_LEN);
}

int
hd_sign_token(const char *payload, char *out, size_t size)
{
    size_t len = strlen(payload), n;
    unsigned char m[MAC_LEN];

    if ((len + 2) / 3 * 4 + 1 + (MAC_LEN + 2) / 3 * 4 + 1 > size)
        return HD_ERROR;
    n = hd_base64_encode((const unsigned char *)payload, len, out, 1);
    out[n++] = '.';
    mac(payload, len, m);
    hd_base64_encode(m, MAC_LEN, out + n, 1);
    return HD_OK;
}

int
hd_sign_verify(const char *token, char *out, size_t size)
{
    const char *dot = strrchr(token, '.');
    unsigned char got[64], want[MAC_LEN];
    int plen, mlen;

    if (dot == NULL || (size_t)(dot - token) > (size - 1) * 4 / 3 ||
        strlen(dot + 1) > 40)
        return HD_DECLINED;
    plen =
        hd_base64_decode(token, (size_t)(dot - token), (unsigned char *)out, 1);
    if (plen < 0 || (size_t)plen >= size)
        return HD_DECLINED;
    out[plen] = '\0';
    mlen = hd_base64_decode(dot + 1, strlen(dot + 1), got, 1);
    if (mlen != MAC_LEN || memchr(out, '\0', (size_t)plen) != NULL)
        return HD_DECLINED;
    mac(out, (size_t)plen, want);
    return CRYPTO_memcmp(got, want, MAC_LEN) == 0 ? HD_OK : HD_DECLINED;
}
