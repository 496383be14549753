/* IDX reader (MNIST / Fashion-MNIST files) over zlib's gzread, strict about damage:
 * a truncated or corrupted .gz must never turn into a silently short or garbled dataset.
 *   images: u32be magic 0x00000803, u32be count, u32be rows, u32be cols, count*rows*cols bytes
 *   labels: u32be magic 0x00000801, u32be count, count bytes */
#define _GNU_SOURCE /* memfd_create */
#include "beit/error.h"
#include "beit/idx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>


/* Why gzread stopped early: a zlib error (returns its code), or a plain end of input (Z_OK).
 * zlib prefixes its messages with the path; the caller prints the path already. */
static int gz_reason(gzFile f, const char *path, char *buf, size_t n) {
    int code = Z_OK;
    const char *msg = gzerror(f, &code);
    size_t pl = strlen(path);
    if (msg && strncmp(msg, path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ') msg += pl + 2;
    if (code == Z_ERRNO) snprintf(buf, n, "read error (%s)", strerror(errno));
    else if (code == Z_BUF_ERROR) snprintf(buf, n, "gzip stream truncated (%s)", msg);
    else if (code == Z_DATA_ERROR) snprintf(buf, n, "gzip stream corrupted (%s)", msg);
    else if (code != Z_OK) snprintf(buf, n, "zlib error %d (%s)", code, msg);
    else snprintf(buf, n, "file ends early");
    return code;
}

/* Read exactly n bytes; returns bytes read (< n on error or end of data). */
static size_t gz_read_all(gzFile f, uint8_t *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30)) want = 1u << 30; /* gzread takes an unsigned int */
        int r = gzread(f, dst + got, (unsigned)want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The file behind the open stream f (closed here); `path` is the name zlib gave it (gzopen's
 * path, gzdopen's "<fd:N>"), stripped from zlib's messages. */
static int read_gzfile(gzFile f, const char *path, int images, idx_array *out, char *err, size_t errlen) {
    const char *what = images ? "IDX image file" : "IDX label file";
    uint32_t want_magic = images ? IDX_MAGIC_IMAGES : IDX_MAGIC_LABELS;
    size_t hdr_len = images ? 16 : 8;
    char why[256];
    gzbuffer(f, 1 << 18);

    uint8_t hdr[16];
    size_t got = gz_read_all(f, hdr, hdr_len);
    if (gzdirect(f)) {
        gzclose(f);
        return beit_errf(err, errlen, "not a gzip file (expected a gzip-compressed %s)", what);
    }
    if (got < hdr_len) {
        int code = gz_reason(f, path, why, sizeof why);
        gzclose(f);
        /* zlib inflates ahead into its buffer, so damage anywhere in a small file can surface here */
        if (code == Z_DATA_ERROR || code == Z_ERRNO)
            return beit_errf(err, errlen, "%s (expected an intact gzip-compressed %s)", why, what);
        return beit_errf(err, errlen, "%s in the header: %zu of %zu bytes (expected a complete %s header)", why, got,
                    hdr_len, what);
    }
    uint32_t magic = be32(hdr);
    if (magic != want_magic) {
        gzclose(f);
        const char *hint = magic == IDX_MAGIC_IMAGES   ? " (an image file)"
                           : magic == IDX_MAGIC_LABELS ? " (a label file)"
                                                       : "";
        return beit_errf(err, errlen, "bad magic number 0x%08x%s (expected 0x%08x for an %s)", magic, hint, want_magic,
                    what);
    }
    int64_t count = be32(hdr + 4);
    int64_t rows = images ? be32(hdr + 8) : 0, cols = images ? be32(hdr + 12) : 0;
    if (images && (rows < 1 || cols < 1 || rows > 65536 || cols > 65536)) {
        gzclose(f);
        return beit_errf(err, errlen, "implausible image size %lldx%lld (expected 1..65536 per side)", (long long)rows,
                    (long long)cols);
    }
    size_t per = images ? (size_t)(rows * cols) : 1;
    size_t total = (size_t)count * per;

    /* Grow the buffer as data arrives, so a header claiming a huge count in a small
     * (damaged) file cannot make us allocate gigabytes up front. */
    size_t cap = total < ((size_t)64 << 20) ? total : ((size_t)64 << 20);
    uint8_t *data = xmalloc(cap ? cap : 1);
    size_t have = 0;
    while (have < total) {
        if (have == cap) {
            cap = cap * 2 < total ? cap * 2 : total;
            data = xrealloc(data, cap);
        }
        size_t r = gz_read_all(f, data + have, cap - have);
        have += r;
        if (have < cap) break;
    }
    if (have < total) {
        gz_reason(f, path, why, sizeof why);
        gzclose(f);
        free(data);
        if (images)
            return beit_errf(err, errlen, "%s after %zu of %zu data bytes (expected %lld images of %lldx%lld)", why, have,
                        total, (long long)count, (long long)rows, (long long)cols);
        return beit_errf(err, errlen, "%s after %zu of %zu data bytes (expected %lld labels)", why, have, total,
                    (long long)count);
    }
    /* The stream must end here, and end cleanly: reading on makes zlib check the trailer
     * (CRC-32 and length), which is where damage late in the file shows up. */
    uint8_t extra[4096];
    size_t more = 0;
    int r;
    while ((r = gzread(f, extra, sizeof extra)) > 0) more += (size_t)r;
    int code = Z_OK;
    gzerror(f, &code);
    if (more > 0 && code == Z_OK) {
        gzclose(f);
        free(data);
        return beit_errf(err, errlen, "%zu bytes of extra data after the %lld %s (expected the file to end)", more,
                    (long long)count, images ? "images" : "labels");
    }
    if (r < 0 || code != Z_OK) {
        gz_reason(f, path, why, sizeof why);
        gzclose(f);
        free(data);
        return beit_errf(err, errlen, "%s at the end of the data (expected a clean end of the gzip stream)", why);
    }
    int rc = gzclose(f);
    if (rc != Z_OK) {
        free(data);
        return beit_errf(err, errlen, "gzclose failed with zlib error %d (expected a readable gzip file)", rc);
    }
    out->count = count;
    out->rows = (int)rows;
    out->cols = (int)cols;
    out->data = data;
    return 0;
}

int idx_read_gz(const char *path, int images, idx_array *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f)
        return beit_errf(err, errlen, "cannot open: %s (expected a gzip-compressed %s)", strerror(errno),
                         images ? "IDX image file" : "IDX label file");
    return read_gzfile(f, path, images, out, err, errlen);
}

/* The bytes go into an anonymous in-memory file, so that the reader is the same gzread code as
 * for a file on disk (zlib reads gzip only through a descriptor or a path). */
int idx_read_gz_buffer(const void *buf, size_t n, int images, idx_array *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int fd = memfd_create("beit-idx", MFD_CLOEXEC);
    if (fd < 0) return beit_errf(err, errlen, "memfd_create: %s", strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const uint8_t *)buf + done, n - done);
        if (w <= 0) {
            int e = errno;
            close(fd);
            return beit_errf(err, errlen, "memfd write: %s", strerror(e));
        }
        done += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        int e = errno;
        close(fd);
        return beit_errf(err, errlen, "memfd seek: %s", strerror(e));
    }
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return beit_errf(err, errlen, "gzdopen failed");
    }
    char name[32];
    snprintf(name, sizeof name, "<fd:%d>", fd); /* zlib's name for it */
    return read_gzfile(f, name, images, out, err, errlen);
}

void idx_free(idx_array *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}
