/* PNG (libpng simplified API) and JPEG (libjpeg) decoding to 8-bit gray or RGB, and
 * antialiased bilinear resampling. Pixel layout: include/beit/image.h. */
#include "beit/image.h"
#include "beit/error.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h needs size_t and FILE first */
#include <jpeglib.h>
#include <jerror.h>


enum { FMT_UNKNOWN, FMT_PNG, FMT_JPEG };

/* Where the bytes come from: a file (path), or memory (buf, n) when path is NULL. */
typedef struct {
    const char *path;
    const uint8_t *buf;
    size_t n;
} img_src;

static int sniff(const img_src *src, int *fmt, char *err, size_t errlen) {
    uint8_t b[8] = {0};
    size_t n;
    if (src->path) {
        FILE *f = fopen(src->path, "rb");
        if (!f) return beit_errf(err, errlen, "cannot open: %s", strerror(errno));
        n = fread(b, 1, sizeof b, f);
        fclose(f);
    } else {
        n = src->n < sizeof b ? src->n : sizeof b;
        if (n) memcpy(b, src->buf, n);
    }
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n == 8 && memcmp(b, png_sig, 8) == 0) *fmt = FMT_PNG;
    else if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) *fmt = FMT_JPEG;
    else return beit_errf(err, errlen, "not a PNG or JPEG image (unrecognised file signature)");
    return 0;
}

/* ---- PNG ---------------------------------------------------------------------------------- */

static int png_begin(png_image *im, const img_src *src) {
    memset(im, 0, sizeof *im);
    im->version = PNG_IMAGE_VERSION;
    return src->path ? png_image_begin_read_from_file(im, src->path)
                     : png_image_begin_read_from_memory(im, src->buf, src->n);
}

static int png_probe(const img_src *src, int *h, int *w, int *gray, char *err, size_t errlen) {
    png_image im;
    if (!png_begin(&im, src)) return beit_errf(err, errlen, "bad PNG: %s", im.message);
    *h = (int)im.height;
    *w = (int)im.width;
    *gray = (im.format & PNG_FORMAT_FLAG_COLOR) == 0;
    png_image_free(&im);
    return 0;
}

static int png_load(const img_src *src, int channels, beit_image *out, char *err, size_t errlen) {
    png_image im;
    if (!png_begin(&im, src)) return beit_errf(err, errlen, "bad PNG: %s", im.message);
    if (im.width == 0 || im.height == 0 || im.width > 65536 || im.height > 65536) {
        png_image_free(&im);
        return beit_errf(err, errlen, "PNG size %ux%u (expected 1..65536 per side)", im.width, im.height);
    }
    im.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    size_t n = PNG_IMAGE_SIZE(im);
    uint8_t *pix = xmalloc(n);
    png_color white = {255, 255, 255}; /* alpha is composited onto white */
    if (!png_image_finish_read(&im, &white, pix, 0, NULL)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s", im.message);
        png_image_free(&im);
        free(pix);
        return beit_errf(err, errlen, "bad PNG: %s", msg);
    }
    out->h = (int)im.height;
    out->w = (int)im.width;
    out->c = channels;
    out->pix = pix;
    png_image_free(&im);
    return 0;
}

/* ---- JPEG --------------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jerr_t;

static void jpeg_on_error(j_common_ptr ci) {
    jerr_t *e = (jerr_t *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings: a stream that ends early is fatal (libjpeg would pad it with gray and carry on);
 * the rest (e.g. extraneous bytes before a marker) decode fine and are tolerated. */
static void jpeg_on_message(j_common_ptr ci, int level) {
    jerr_t *e = (jerr_t *)ci->err;
    if (level == -1 && ci->err->msg_code == JWRN_JPEG_EOF) {
        (*ci->err->format_message)(ci, e->msg);
        longjmp(e->jb, 1);
    }
}

typedef struct {
    struct jpeg_decompress_struct ci;
    jerr_t jerr;
    FILE *f;              /* the file, or NULL for memory (buf, n) */
    const uint8_t *buf;
    size_t n;
    uint8_t *raw; /* decoded rows, out_color_components per pixel */
} jpeg_job;

/* The setjmp lives here, with every variable it touches inside the heap/struct `j`, so no
 * local is modified between setjmp and longjmp. Returns 0 or -1 (message in j->jerr.msg). */
static int jpeg_run(jpeg_job *j, int header_only) {
    j->ci.err = jpeg_std_error(&j->jerr.pub);
    j->jerr.pub.error_exit = jpeg_on_error;
    j->jerr.pub.emit_message = jpeg_on_message;
    if (setjmp(j->jerr.jb)) return -1;
    jpeg_create_decompress(&j->ci);
    if (j->f) jpeg_stdio_src(&j->ci, j->f);
    else jpeg_mem_src(&j->ci, j->buf, (unsigned long)j->n);
    jpeg_read_header(&j->ci, TRUE);
    if (header_only) return 0;
    J_COLOR_SPACE cs = j->ci.jpeg_color_space;
    if (cs == JCS_CMYK || cs == JCS_YCCK) j->ci.out_color_space = JCS_CMYK;
    else if (cs == JCS_GRAYSCALE) j->ci.out_color_space = JCS_GRAYSCALE;
    else j->ci.out_color_space = JCS_RGB;
    jpeg_start_decompress(&j->ci);
    size_t stride = (size_t)j->ci.output_width * (size_t)j->ci.output_components;
    j->raw = xmalloc(stride * j->ci.output_height);
    while (j->ci.output_scanline < j->ci.output_height) {
        JSAMPROW row = j->raw + stride * j->ci.output_scanline;
        jpeg_read_scanlines(&j->ci, &row, 1);
    }
    jpeg_finish_decompress(&j->ci);
    return 0;
}

static int jpeg_open(jpeg_job *j, const img_src *src, char *err, size_t errlen) {
    memset(j, 0, sizeof *j);
    j->buf = src->buf;
    j->n = src->n;
    if (!src->path) return 0;
    j->f = fopen(src->path, "rb");
    if (!j->f) return beit_errf(err, errlen, "cannot open: %s", strerror(errno));
    return 0;
}

static void jpeg_close(jpeg_job *j) {
    jpeg_destroy_decompress(&j->ci);
    if (j->f) fclose(j->f);
    free(j->raw);
}

static int jpeg_probe(const img_src *src, int *h, int *w, int *gray, char *err, size_t errlen) {
    jpeg_job *j = xmalloc(sizeof *j);
    int rc = jpeg_open(j, src, err, errlen);
    if (rc == 0) {
        if (jpeg_run(j, 1) != 0) {
            rc = beit_errf(err, errlen, "bad JPEG: %s", j->jerr.msg);
        } else {
            *h = (int)j->ci.image_height;
            *w = (int)j->ci.image_width;
            *gray = j->ci.jpeg_color_space == JCS_GRAYSCALE;
        }
        jpeg_close(j);
    }
    free(j);
    return rc;
}

static int jpeg_load(const img_src *src, int channels, beit_image *out, char *err, size_t errlen) {
    jpeg_job *j = xmalloc(sizeof *j);
    int rc = jpeg_open(j, src, err, errlen);
    if (rc != 0) {
        free(j);
        return rc;
    }
    if (jpeg_run(j, 0) != 0) {
        rc = beit_errf(err, errlen, "bad JPEG: %s", j->jerr.msg);
        jpeg_close(j);
        free(j);
        return rc;
    }
    int h = (int)j->ci.output_height, w = (int)j->ci.output_width, nc = j->ci.output_components;
    int adobe = j->ci.saw_Adobe_marker;
    uint8_t *pix = xmalloc((size_t)h * w * channels);
    for (size_t p = 0; p < (size_t)h * w; p++) {
        const uint8_t *s = j->raw + p * (size_t)nc;
        uint8_t rgb[3];
        if (nc == 1) {
            rgb[0] = rgb[1] = rgb[2] = s[0];
        } else if (nc == 4) {
            /* CMYK: Adobe writes inverted values, so there c*k/255 is already the RGB value */
            for (int k = 0; k < 3; k++) {
                int c = adobe ? s[k] : 255 - s[k], kk = adobe ? s[3] : 255 - s[3];
                rgb[k] = (uint8_t)((c * kk + 127) / 255);
            }
        } else {
            rgb[0] = s[0];
            rgb[1] = s[1];
            rgb[2] = s[2];
        }
        if (channels == 3) {
            memcpy(pix + p * 3, rgb, 3);
        } else if (nc == 1) {
            pix[p] = s[0];
        } else {
            /* ITU-R BT.601 luma, as libjpeg/PIL convert RGB to L */
            pix[p] = (uint8_t)lrint(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]);
        }
    }
    jpeg_close(j);
    free(j);
    out->h = h;
    out->w = w;
    out->c = channels;
    out->pix = pix;
    return 0;
}

/* ---- public ------------------------------------------------------------------------------- */

static int probe(const img_src *src, int *h, int *w, int *gray, char *err, size_t errlen) {
    int fmt = FMT_UNKNOWN;
    if (sniff(src, &fmt, err, errlen) != 0) return -1;
    return fmt == FMT_PNG ? png_probe(src, h, w, gray, err, errlen) : jpeg_probe(src, h, w, gray, err, errlen);
}

static int load(const img_src *src, int channels, beit_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (channels != 1 && channels != 3)
        return beit_errf(err, errlen, "cannot decode to %d channels (expected 1 or 3)", channels);
    int fmt = FMT_UNKNOWN;
    if (sniff(src, &fmt, err, errlen) != 0) return -1;
    return fmt == FMT_PNG ? png_load(src, channels, out, err, errlen) : jpeg_load(src, channels, out, err, errlen);
}

int image_probe(const char *path, int *h, int *w, int *gray, char *err, size_t errlen) {
    img_src src = {path, NULL, 0};
    return probe(&src, h, w, gray, err, errlen);
}

int image_load(const char *path, int channels, beit_image *out, char *err, size_t errlen) {
    img_src src = {path, NULL, 0};
    return load(&src, channels, out, err, errlen);
}

int image_probe_buffer(const void *buf, size_t n, int *h, int *w, int *gray, char *err, size_t errlen) {
    img_src src = {NULL, buf, n};
    return probe(&src, h, w, gray, err, errlen);
}

int image_load_buffer(const void *buf, size_t n, int channels, beit_image *out, char *err, size_t errlen) {
    img_src src = {NULL, buf, n};
    return load(&src, channels, out, err, errlen);
}

void image_free(beit_image *im) {
    free(im->pix);
    memset(im, 0, sizeof *im);
}

/* ---- resampling --------------------------------------------------------------------------- */

/* Weights of output pixels i in [0, n_out) over source pixels of [0, n_in): the box
 * [b0, b1) is mapped onto the output; triangle of radius max(scale, 1) around each output
 * centre. first[i], len[i] index into w (stride `maxlen`). */
typedef struct {
    int *first, *len, maxlen;
    double *w;
} coeffs;

static coeffs make_coeffs(int n_in, double b0, double b1, int n_out) {
    coeffs c;
    double scale = (b1 - b0) / n_out;
    double fs = scale > 1.0 ? scale : 1.0; /* filter scale: widen when shrinking */
    double support = fs;                   /* triangle radius 1 in output units */
    c.maxlen = (int)ceil(support) * 2 + 2;
    c.first = xmalloc((size_t)n_out * sizeof(int));
    c.len = xmalloc((size_t)n_out * sizeof(int));
    c.w = xcalloc((size_t)n_out * (size_t)c.maxlen, sizeof(double));
    for (int i = 0; i < n_out; i++) {
        double center = b0 + (i + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        if (hi - lo > c.maxlen) hi = lo + c.maxlen;
        double sum = 0;
        double *w = c.w + (size_t)i * c.maxlen;
        for (int j = lo; j < hi; j++) {
            double d = fabs((j + 0.5 - center) / fs);
            w[j - lo] = d < 1.0 ? 1.0 - d : 0.0;
            sum += w[j - lo];
        }
        if (sum <= 0) {
            /* centre outside every support (degenerate box): nearest source pixel */
            int k = (int)floor(center);
            if (k < 0) k = 0;
            if (k >= n_in) k = n_in - 1;
            lo = k;
            hi = k + 1;
            w[0] = 1.0;
            sum = 1.0;
        }
        for (int j = 0; j < hi - lo; j++) w[j] /= sum;
        c.first[i] = lo;
        c.len[i] = hi - lo;
    }
    return c;
}

static void free_coeffs(coeffs *c) {
    free(c->first);
    free(c->len);
    free(c->w);
}

void image_resample(const uint8_t *src, int sh, int sw, int c, double x0, double y0, double x1, double y1, uint8_t *dst,
                    int dh, int dw) {
    coeffs cx = make_coeffs(sw, x0, x1, dw), cy = make_coeffs(sh, y0, y1, dh);
    /* horizontal pass over the source rows the vertical pass touches */
    int rlo = sh, rhi = 0;
    for (int i = 0; i < dh; i++) {
        if (cy.first[i] < rlo) rlo = cy.first[i];
        if (cy.first[i] + cy.len[i] > rhi) rhi = cy.first[i] + cy.len[i];
    }
    size_t tw = (size_t)dw * c;
    double *tmp = xcalloc((size_t)(rhi > rlo ? rhi - rlo : 1) * tw, sizeof(double));
    for (int y = rlo; y < rhi; y++) {
        const uint8_t *row = src + (size_t)y * sw * c;
        double *t = tmp + (size_t)(y - rlo) * tw;
        for (int i = 0; i < dw; i++) {
            const double *w = cx.w + (size_t)i * cx.maxlen;
            for (int k = 0; k < c; k++) {
                double acc = 0;
                for (int j = 0; j < cx.len[i]; j++) acc += w[j] * row[(size_t)(cx.first[i] + j) * c + k];
                t[(size_t)i * c + k] = acc;
            }
        }
    }
    for (int i = 0; i < dh; i++) {
        const double *w = cy.w + (size_t)i * cy.maxlen;
        uint8_t *out = dst + (size_t)i * tw;
        for (size_t x = 0; x < tw; x++) {
            double acc = 0;
            for (int j = 0; j < cy.len[i]; j++) acc += w[j] * tmp[(size_t)(cy.first[i] + j - rlo) * tw + x];
            long v = lrint(acc);
            out[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(tmp);
    free_coeffs(&cx);
    free_coeffs(&cy);
}

/* ---- PIL's fixed-point resampling (Lanczos) ----------------------------------------------
 * A transcription of the rules of Pillow's src/libImaging/Resample.c (python-pillow/Pillow,
 * commit 01f132fb): precompute_coeffs, normalize_coeffs_8bpc and the two 8-bit passes, so
 * that the bytes equal Image.resize(size, Image.LANCZOS, box) on 8-bit images. */

#define PIL_PRECISION_BITS (32 - 8 - 2)

static double pil_sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * 3.14159265358979323846; /* M_PI */
    return sin(x) / x;
}

static double pil_lanczos(double x) { return -3.0 <= x && x < 3.0 ? pil_sinc(x) * pil_sinc(x / 3) : 0.0; }

/* Fixed-point weights of output pixels [0, n_out) over input [0, n_in) for the box [in0, in1):
 * bounds[2i] = first input, bounds[2i+1] = count, k[i*ksize + j]. Returns ksize. */
static int pil_coeffs(int n_in, float in0, float in1, int n_out, int **boundsp, int32_t **kp) {
    double scale = (double)(in1 - in0) / n_out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 3.0 * filterscale; /* Lanczos a = 3, widened by the downscale factor */
    int ksize = (int)ceil(support) * 2 + 1;
    double *kk = xcalloc((size_t)n_out * ksize, sizeof(double));
    int *bounds = xmalloc((size_t)n_out * 2 * sizeof(int));
    int32_t *k = xmalloc((size_t)n_out * ksize * sizeof(int32_t));
    for (int xx = 0; xx < n_out; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5); /* C truncation, as PIL */
        if (xmin < 0) xmin = 0;
        if (xmax > n_in) xmax = n_in;
        xmax -= xmin;
        double *w = kk + (size_t)xx * ksize;
        for (int x = 0; x < xmax; x++) {
            w[x] = pil_lanczos((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) w[x] /= ww;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)n_out * ksize; i++)
        k[i] = kk[i] < 0 ? (int32_t)(-0.5 + kk[i] * (1 << PIL_PRECISION_BITS))
                         : (int32_t)(0.5 + kk[i] * (1 << PIL_PRECISION_BITS));
    free(kk);
    *boundsp = bounds;
    *kp = k;
    return ksize;
}

static uint8_t pil_clip8(int32_t ss) {
    int32_t v = ss >> PIL_PRECISION_BITS; /* arithmetic shift, as PIL's lookup index */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void image_resample_lanczos(const uint8_t *src, int sh, int sw, int c, float x0, float y0, float x1, float y1,
                            uint8_t *dst, int dh, int dw) {
    const int need_h = dw != sw || x0 != 0.0f || x1 != (float)dw; /* PIL's tests, as written there */
    const int need_v = dh != sh || y0 != 0.0f || y1 != (float)dh;
    int *bv, *bh = NULL;
    int32_t *kv, *kh = NULL;
    int ksv = pil_coeffs(sh, y0, y1, dh, &bv, &kv), ksh = 0;
    const int yfirst = bv[0], ylast = bv[2 * dh - 2] + bv[2 * dh - 1];
    const uint8_t *in = src;
    int in_w = sw;
    uint8_t *tmp = NULL;
    if (need_h) { /* horizontal pass over the source rows the vertical pass reads, rounded to bytes */
        ksh = pil_coeffs(sw, x0, x1, dw, &bh, &kh);
        for (int i = 0; i < dh; i++) bv[2 * i] -= yfirst;
        tmp = xmalloc((size_t)(ylast - yfirst > 0 ? ylast - yfirst : 1) * dw * c);
        for (int y = yfirst; y < ylast; y++) {
            const uint8_t *row = src + (size_t)y * sw * c;
            uint8_t *o = tmp + (size_t)(y - yfirst) * dw * c;
            for (int xx = 0; xx < dw; xx++) {
                const int xmin = bh[2 * xx], n = bh[2 * xx + 1];
                const int32_t *k = kh + (size_t)xx * ksh;
                for (int ch = 0; ch < c; ch++) {
                    int32_t ss = 1 << (PIL_PRECISION_BITS - 1);
                    for (int x = 0; x < n; x++) ss += row[(size_t)(x + xmin) * c + ch] * k[x];
                    o[(size_t)xx * c + ch] = pil_clip8(ss);
                }
            }
        }
        in = tmp;
        in_w = dw;
    }
    if (need_v) {
        for (int yy = 0; yy < dh; yy++) {
            const int ymin = bv[2 * yy], n = bv[2 * yy + 1];
            const int32_t *k = kv + (size_t)yy * ksv;
            uint8_t *o = dst + (size_t)yy * in_w * c;
            for (size_t x = 0; x < (size_t)in_w * c; x++) {
                int32_t ss = 1 << (PIL_PRECISION_BITS - 1);
                for (int y = 0; y < n; y++) ss += in[(size_t)(y + ymin) * in_w * c + x] * k[y];
                o[x] = pil_clip8(ss);
            }
        }
    } else if (need_h) {
        memcpy(dst, tmp, (size_t)dh * dw * c);
    } else {
        memcpy(dst, src, (size_t)dh * dw * c);
    }
    free(tmp);
    free(bv);
    free(kv);
    free(bh);
    free(kh);
}

void image_center_crop_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int s) {
    int side = sh < sw ? sh : sw;
    double x0 = (sw - side) / 2.0, y0 = (sh - side) / 2.0;
    image_resample(src, sh, sw, c, x0, y0, x0 + side, y0 + side, dst, s, s);
}
