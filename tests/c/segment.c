/*
 * A C99 host of libvoxprompt: segments one label of a real CT volume in 3D through include/voxprompt.h
 * and checks the Dice coefficient against the reference label map.
 *
 *   segment ORT_LIB MODEL_DIR IMAGE.nii.gz LABELS.nii.gz LABEL MIN_DICE [Z0 Z1]
 *
 * ORT_LIB   ONNX Runtime library; "" or "-" uses the library's default search (VXP_ORT_LIB, then next to
 *           libvoxprompt.so).
 * LABEL     the reference label (1-255) whose tight bounding box becomes the box prompt.
 * MIN_DICE  exit status 1 when the Dice coefficient is below this.
 * Z0 Z1     clip the box's slice range to [Z0, Z1] (inclusive); Dice is then computed on those slices only.
 *
 * Environment: SEGMENT_THREADS sets the ONNX Runtime intra-op thread count (default 2); SEGMENT_VERBOSE=1
 * prints each progress report to stderr; SEGMENT_SKIP_INFERENCE=1 stops after the cancelled run (for
 * valgrind, under which one slice of inference takes many minutes), without checking Dice.
 *
 * The image buffer is handed to the library as read from the file, without a copy: the vxp_volume
 * descriptor carries dims, byte strides, spacing and the sform as the IJK -> RAS matrix. The program also
 * makes deliberately invalid calls and checks their result codes and vxp_last_error messages, and frees
 * everything it created, so valgrind and LeakSanitizer can hold it to zero leaks.
 */
#include "voxprompt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define NIFTI1_HEADER_SIZE 348

/* A NIfTI-1 volume: voxels in file order (i fastest), native endianness. */
typedef struct {
    size_t dims[3];
    int16_t datatype;
    size_t bytes_per_voxel;
    double spacing[3];
    double ijk_to_ras[16]; /* row-major */
    double scl_slope, scl_inter;
    void *data;
    size_t data_len;
} nifti_volume;

static int failures = 0;

/* Seconds since the first call (C99 has no monotonic clock; clock() measures this process's CPU time,
 * which is what matters under valgrind). */
static double cpu_seconds(void) {
    return (double)clock() / CLOCKS_PER_SEC;
}

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "segment: FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* The calling thread's last error, in a static buffer (this program is single-threaded). */
static const char *last_error(void) {
    static char buf[1024];
    size_t needed = 0;
    buf[0] = '\0';
    vxp_result r = vxp_last_error(buf, sizeof buf, &needed);
    if (r != VXP_RESULT_OK && r != VXP_RESULT_BUFFER_TOO_SMALL) {
        snprintf(buf, sizeof buf, "(vxp_last_error failed: %s)", vxp_result_str(r));
    }
    return buf;
}

static int16_t rd_i16(const unsigned char *p) {
    int16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int32_t rd_i32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static float rd_f32(const unsigned char *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static size_t dtype_size(int16_t datatype) {
    switch (datatype) {
    case 2: /* uint8 */
    case 256: /* int8 */
        return 1;
    case 4: /* int16 */
    case 512: /* uint16 */
        return 2;
    case 8: /* int32 */
    case 768: /* uint32 */
    case 16: /* float32 */
        return 4;
    case 64: /* float64 */
        return 8;
    default:
        return 0;
    }
}

static uint32_t vxp_dtype_of(int16_t datatype) {
    switch (datatype) {
    case 2: return VXP_DTYPE_U8;
    case 256: return VXP_DTYPE_I8;
    case 4: return VXP_DTYPE_I16;
    case 512: return VXP_DTYPE_U16;
    case 8: return VXP_DTYPE_I32;
    case 768: return VXP_DTYPE_U32;
    case 16: return VXP_DTYPE_F32;
    case 64: return VXP_DTYPE_F64;
    default: return 0;
    }
}

/* Reads all of `len` bytes; zlib's gzread takes an unsigned count, so large reads go in chunks. */
static int gz_read_all(gzFile f, void *dst, size_t len) {
    unsigned char *p = dst;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int n = gzread(f, p, chunk);
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads a 3D NIfTI-1 file (gzip or plain). Returns 0 and fills `v`, or prints why and returns -1. */
static int nifti_read(const char *path, nifti_volume *v) {
    unsigned char h[NIFTI1_HEADER_SIZE];
    memset(v, 0, sizeof *v);
    gzFile f = gzopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "segment: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    if (gz_read_all(f, h, sizeof h) != 0) {
        fprintf(stderr, "segment: %s: shorter than a NIfTI-1 header\n", path);
        goto fail;
    }
    if (rd_i32(h) != NIFTI1_HEADER_SIZE) {
        fprintf(stderr, "segment: %s: sizeof_hdr is not 348 (not NIfTI-1, or not native endianness)\n", path);
        goto fail;
    }
    if (memcmp(h + 344, "n+1", 4) != 0) {
        fprintf(stderr, "segment: %s: magic is not \"n+1\" (only single-file NIfTI-1 is read)\n", path);
        goto fail;
    }
    int16_t ndim = rd_i16(h + 40);
    if (ndim < 1 || ndim > 7) {
        fprintf(stderr, "segment: %s: dim[0] = %d\n", path, ndim);
        goto fail;
    }
    for (int a = 0; a < 3; a++) {
        int16_t d = a < ndim ? rd_i16(h + 42 + 2 * a) : 1;
        if (d < 1) {
            fprintf(stderr, "segment: %s: dim[%d] = %d\n", path, a + 1, d);
            goto fail;
        }
        v->dims[a] = (size_t)d;
    }
    for (int a = 3; a < ndim; a++) {
        if (rd_i16(h + 42 + 2 * a) > 1) {
            fprintf(stderr, "segment: %s: not a 3D volume (dim[%d] = %d)\n", path, a + 1, rd_i16(h + 42 + 2 * a));
            goto fail;
        }
    }
    v->datatype = rd_i16(h + 70);
    v->bytes_per_voxel = dtype_size(v->datatype);
    if (v->bytes_per_voxel == 0) {
        fprintf(stderr, "segment: %s: unsupported NIfTI datatype %d\n", path, v->datatype);
        goto fail;
    }
    for (int a = 0; a < 3; a++) {
        double s = fabs((double)rd_f32(h + 76 + 4 * (a + 1)));
        v->spacing[a] = s > 0.0 ? s : 1.0;
    }
    double vox_offset = (double)rd_f32(h + 108);
    v->scl_slope = (double)rd_f32(h + 112);
    v->scl_inter = (double)rd_f32(h + 116);
    int16_t sform_code = rd_i16(h + 254);
    memset(v->ijk_to_ras, 0, sizeof v->ijk_to_ras);
    if (sform_code > 0) {
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 4; c++) {
                v->ijk_to_ras[4 * r + c] = (double)rd_f32(h + 280 + 16 * r + 4 * c);
            }
        }
    } else {
        /* No sform: a diagonal matrix from pixdim (the qform is not interpreted by this test program). */
        for (int a = 0; a < 3; a++) {
            v->ijk_to_ras[5 * a] = v->spacing[a];
        }
    }
    v->ijk_to_ras[15] = 1.0;

    if (vox_offset < NIFTI1_HEADER_SIZE || vox_offset > 1e9) {
        fprintf(stderr, "segment: %s: vox_offset %g\n", path, vox_offset);
        goto fail;
    }
    size_t skip = (size_t)vox_offset - NIFTI1_HEADER_SIZE;
    unsigned char ext[4096];
    while (skip > 0) {
        size_t n = skip < sizeof ext ? skip : sizeof ext;
        if (gz_read_all(f, ext, n) != 0) {
            fprintf(stderr, "segment: %s: truncated before vox_offset\n", path);
            goto fail;
        }
        skip -= n;
    }
    size_t n = v->dims[0] * v->dims[1] * v->dims[2];
    v->data_len = n * v->bytes_per_voxel;
    v->data = malloc(v->data_len);
    if (v->data == NULL) {
        fprintf(stderr, "segment: %s: out of memory for %zu bytes\n", path, v->data_len);
        goto fail;
    }
    if (gz_read_all(f, v->data, v->data_len) != 0) {
        fprintf(stderr, "segment: %s: truncated voxel data (%zu bytes expected)\n", path, v->data_len);
        goto fail;
    }
    gzclose(f);
    return 0;
fail:
    free(v->data);
    v->data = NULL;
    gzclose(f);
    return -1;
}

static long label_at(const nifti_volume *v, size_t idx) {
    const unsigned char *p = (const unsigned char *)v->data + idx * v->bytes_per_voxel;
    switch (v->datatype) {
    case 2: return p[0];
    case 256: return (signed char)p[0];
    case 4: return rd_i16(p);
    case 512: { uint16_t u; memcpy(&u, p, 2); return u; }
    case 8: return rd_i32(p);
    default: { /* float labels */
        double d;
        if (v->datatype == 16) {
            d = (double)rd_f32(p);
        } else {
            memcpy(&d, p, 8);
        }
        return lround(d);
    }
    }
}

static int parse_long(const char *s, const char *what, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "segment: %s must be an integer in [%ld, %ld], got \"%s\"\n", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

typedef struct {
    unsigned calls;
    float last;
    int bad;
    int verbose;
    int cancel; /* return false (cancel) from the first report */
} progress_state;

static bool on_progress(void *user_data, uint32_t stage, float fraction) {
    progress_state *p = user_data;
    if (stage != VXP_STAGE_SEGMENT || !(fraction >= 0.0f && fraction <= 1.0f) || fraction + 1e-6f < p->last) {
        p->bad++;
    }
    p->last = fraction;
    p->calls++;
    if (p->verbose) {
        fprintf(stderr, "progress %.3f at %.1f s CPU\n", fraction, cpu_seconds());
    }
    return !p->cancel;
}

/* Deliberately invalid calls: each must fail with its documented code, set the thread's last error, and
 * leave out-parameters untouched. */
static void check_error_paths(const vxp_engine *engine, vxp_session *session, const vxp_volume *vol,
                              const int64_t box[6], uint32_t label, size_t nvox) {
    /* An inverted box (i1 < i0). */
    int64_t inverted[6];
    memcpy(inverted, box, sizeof inverted);
    inverted[0] = box[3] + 1;
    vxp_result r = vxp_session_add_box_ijk(session, label == 255 ? 254 : label + 1, inverted);
    CHECK(r == VXP_RESULT_INVALID_PROMPT, "inverted box gave %u (%s)", (unsigned)r, vxp_result_str(r));
    size_t needed = 0;
    r = vxp_last_error(NULL, 0, &needed);
    CHECK(r == VXP_RESULT_BUFFER_TOO_SMALL && needed > 0, "size query gave %u, needed %zu", (unsigned)r, needed);
    const char *msg = last_error();
    CHECK(strlen(msg) == needed, "message length %zu, size query said %zu", strlen(msg), needed);
    printf("inverted box rejected: %s\n", msg);

    /* A truncating read of the message is NUL-terminated and reports the full length. */
    char small[8];
    memset(small, 0x7f, sizeof small);
    r = vxp_last_error(small, sizeof small, &needed);
    CHECK(r == VXP_RESULT_BUFFER_TOO_SMALL && small[sizeof small - 1] == '\0' && strlen(small) == sizeof small - 1,
          "truncated last error");

    /* A box outside the volume, and label 0. */
    int64_t outside[6];
    memcpy(outside, box, sizeof outside);
    outside[5] = (int64_t)vol->dims[2];
    r = vxp_session_add_box_ijk(session, label == 255 ? 254 : label + 1, outside);
    CHECK(r == VXP_RESULT_INVALID_PROMPT, "box outside the volume gave %u", (unsigned)r);
    r = vxp_session_add_box_ijk(session, 0, box);
    CHECK(r == VXP_RESULT_INVALID_PROMPT, "label 0 gave %u", (unsigned)r);
    r = vxp_session_add_box_ijk(session, label, NULL);
    CHECK(r == VXP_RESULT_NULL_ARGUMENT, "NULL box gave %u", (unsigned)r);

    /* Text: a phrase that names nothing, with suggestions in the message; an empty one; NULL. */
    r = vxp_session_add_text(session, label == 255 ? 254 : label + 1, "banana bread");
    CHECK(r == VXP_RESULT_UNKNOWN_CONCEPT && strstr(last_error(), "closest:") != NULL,
          "unknown phrase gave %u (%s)", (unsigned)r, last_error());
    r = vxp_session_add_text(session, label == 255 ? 254 : label + 1, "");
    CHECK(r == VXP_RESULT_INVALID_ARGUMENT, "empty phrase gave %u (%s)", (unsigned)r, last_error());
    r = vxp_session_add_text(session, label, NULL);
    CHECK(r == VXP_RESULT_NULL_ARGUMENT, "NULL phrase gave %u", (unsigned)r);

    /* A session from a descriptor with a wrong struct_size: out-param untouched. */
    vxp_volume bad = *vol;
    bad.struct_size = 8;
    vxp_session *untouched = (vxp_session *)&bad;
    r = vxp_session_new(engine, &bad, &untouched);
    CHECK(r == VXP_RESULT_INVALID_ARGUMENT, "struct_size 8 gave %u", (unsigned)r);
    CHECK(untouched == (vxp_session *)&bad, "out-param written on error");

    /* A buffer one byte short: the run is refused before any inference. */
    uint8_t one = 0;
    const int64_t strides[3] = {1, (int64_t)vol->dims[0], (int64_t)(vol->dims[0] * vol->dims[1])};
    r = vxp_session_run(session, NULL, NULL, &one, nvox - 1, strides);
    CHECK(r == VXP_RESULT_BUFFER_TOO_SMALL, "short mask gave %u (%s)", (unsigned)r, last_error());

    /* A successful call clears the last error. */
    uint32_t major = 0, minor = 0;
    r = vxp_abi_version(&major, &minor);
    CHECK(r == VXP_RESULT_OK, "vxp_abi_version gave %u", (unsigned)r);
    r = vxp_last_error(NULL, 0, &needed);
    CHECK(r == VXP_RESULT_OK && needed == 0, "last error not cleared by a successful call (needed %zu)", needed);
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 9) {
        fprintf(stderr,
                "usage: %s ORT_LIB MODEL_DIR IMAGE LABELS LABEL MIN_DICE [Z0 Z1]\n"
                "  ORT_LIB \"\" or \"-\" uses the default search; SEGMENT_THREADS sets ORT threads (default 2)\n",
                argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* line by line, also into a log file */
    const char *ort_lib = argv[1];
    const char *model_dir = argv[2];
    long label = 0, z0 = -1, z1 = -1, threads = 2;
    if (parse_long(argv[5], "LABEL", 1, 255, &label) != 0) {
        return 2;
    }
    char *end = NULL;
    double min_dice = strtod(argv[6], &end);
    if (end == argv[6] || *end != '\0' || !(min_dice >= 0.0 && min_dice <= 1.0)) {
        fprintf(stderr, "segment: MIN_DICE must be a number in [0, 1], got \"%s\"\n", argv[6]);
        return 2;
    }
    if (argc == 9 && (parse_long(argv[7], "Z0", 0, 1L << 30, &z0) != 0 ||
                      parse_long(argv[8], "Z1", z0, 1L << 30, &z1) != 0)) {
        return 2;
    }
    const char *t = getenv("SEGMENT_THREADS");
    if (t != NULL && *t != '\0' && parse_long(t, "SEGMENT_THREADS", 0, 1024, &threads) != 0) {
        return 2;
    }

    /* The header and the loaded library must agree on the ABI major. */
    uint32_t major = 0, minor = 0;
    if (vxp_abi_version(&major, &minor) != VXP_RESULT_OK || major != VXP_ABI_VERSION_MAJOR ||
        minor < VXP_ABI_VERSION_MINOR) {
        fprintf(stderr, "segment: library ABI %u.%u, header %d.%d\n", major, minor, VXP_ABI_VERSION_MAJOR,
                VXP_ABI_VERSION_MINOR);
        return 1;
    }
    printf("%s, ABI %u.%u\n", vxp_version(), major, minor);

    nifti_volume img, ref;
    if (nifti_read(argv[3], &img) != 0) {
        return 1;
    }
    if (nifti_read(argv[4], &ref) != 0) {
        free(img.data);
        return 1;
    }
    int status = 1;
    vxp_options *options = NULL;
    vxp_engine *engine = NULL;
    vxp_session *session = NULL;
    uint8_t *mask = NULL;

    if (memcmp(img.dims, ref.dims, sizeof img.dims) != 0) {
        fprintf(stderr, "segment: image %zux%zux%zu and labels %zux%zux%zu differ\n", img.dims[0], img.dims[1],
                img.dims[2], ref.dims[0], ref.dims[1], ref.dims[2]);
        goto done;
    }
    const size_t nx = img.dims[0], ny = img.dims[1], nz = img.dims[2], nvox = nx * ny * nz;
    printf("image %s: %zux%zux%zu, datatype %d, spacing %g x %g x %g mm\n", argv[3], nx, ny, nz, img.datatype,
           img.spacing[0], img.spacing[1], img.spacing[2]);

    /* The reference label's tight bounding box, inclusive (x = i, y = j, z = k). */
    int64_t box[6] = {INT64_MAX, INT64_MAX, INT64_MAX, -1, -1, -1};
    for (size_t k = 0; k < nz; k++) {
        for (size_t j = 0; j < ny; j++) {
            for (size_t i = 0; i < nx; i++) {
                if (label_at(&ref, i + nx * (j + ny * k)) == label) {
                    const int64_t ijk[3] = {(int64_t)i, (int64_t)j, (int64_t)k};
                    for (int a = 0; a < 3; a++) {
                        box[a] = ijk[a] < box[a] ? ijk[a] : box[a];
                        box[a + 3] = ijk[a] > box[a + 3] ? ijk[a] : box[a + 3];
                    }
                }
            }
        }
    }
    if (box[3] < 0) {
        fprintf(stderr, "segment: label %ld does not occur in %s\n", label, argv[4]);
        goto done;
    }
    size_t k_lo = 0, k_hi = nz - 1;
    if (z0 >= 0) {
        box[2] = box[2] > z0 ? box[2] : z0;
        box[5] = box[5] < z1 ? box[5] : z1;
        if (box[2] > box[5]) {
            fprintf(stderr, "segment: label %ld has no voxels in slices [%ld, %ld]\n", label, z0, z1);
            goto done;
        }
        k_lo = (size_t)box[2];
        k_hi = (size_t)box[5];
    }
    printf("label %ld: box ijk [%lld %lld %lld] - [%lld %lld %lld]\n", label, (long long)box[0], (long long)box[1],
           (long long)box[2], (long long)box[3], (long long)box[4], (long long)box[5]);

    vxp_result r = vxp_options_new(&options);
    if (r != VXP_RESULT_OK) {
        fprintf(stderr, "segment: vxp_options_new: %s: %s\n", vxp_result_str(r), last_error());
        goto done;
    }
    if (*ort_lib != '\0' && strcmp(ort_lib, "-") != 0) {
        r = vxp_options_set_ort_library(options, ort_lib);
        CHECK(r == VXP_RESULT_OK, "vxp_options_set_ort_library: %s", last_error());
    }
    r = vxp_options_set_model_dir(options, model_dir);
    CHECK(r == VXP_RESULT_OK, "vxp_options_set_model_dir: %s", last_error());
    r = vxp_options_set_threads(options, (uint32_t)threads);
    CHECK(r == VXP_RESULT_OK, "vxp_options_set_threads: %s", last_error());
    r = vxp_options_set_providers(options, "cpu,quantum");
    CHECK(r == VXP_RESULT_INVALID_ARGUMENT, "unknown provider gave %u", (unsigned)r);
    r = vxp_options_set_providers(options, "cpu");
    CHECK(r == VXP_RESULT_OK, "vxp_options_set_providers: %s", last_error());
    double t0 = cpu_seconds();
    r = vxp_engine_new(options, &engine);
    if (r != VXP_RESULT_OK) {
        fprintf(stderr, "segment: vxp_engine_new: %s: %s\n", vxp_result_str(r), last_error());
        goto done;
    }
    vxp_options_free(options); /* the engine keeps what it needs */
    options = NULL;

    char provider[256];
    size_t needed = 0;
    r = vxp_engine_provider(engine, provider, sizeof provider, &needed);
    CHECK(r == VXP_RESULT_OK, "vxp_engine_provider: %s", last_error());
    printf("engine: %s (%.1f s CPU)\n", r == VXP_RESULT_OK ? provider : "?", cpu_seconds() - t0);

    /* The descriptor points at the buffer read from the file: no copy. */
    vxp_volume vol;
    memset(&vol, 0, sizeof vol);
    vol.struct_size = (uint32_t)sizeof vol;
    vol.dtype = vxp_dtype_of(img.datatype);
    vol.data = img.data;
    vol.data_len = img.data_len;
    vol.data_offset = 0;
    memcpy(vol.dims, img.dims, sizeof vol.dims);
    vol.strides[0] = (int64_t)img.bytes_per_voxel;
    vol.strides[1] = (int64_t)(img.bytes_per_voxel * nx);
    vol.strides[2] = (int64_t)(img.bytes_per_voxel * nx * ny);
    memcpy(vol.spacing, img.spacing, sizeof vol.spacing);
    memcpy(vol.ijk_to_ras, img.ijk_to_ras, sizeof vol.ijk_to_ras);
    vol.intensity = VXP_INTENSITY_CT;
    if (img.scl_slope != 0.0 && (img.scl_slope != 1.0 || img.scl_inter != 0.0)) {
        /* Stored values are (HU - inter) / slope: express the CT window (40, 400) in stored units. */
        if (img.scl_slope < 0.0) {
            fprintf(stderr, "segment: negative scl_slope %g is not supported\n", img.scl_slope);
            goto done;
        }
        vol.intensity = VXP_INTENSITY_WINDOW;
        vol.window_level = (40.0 - img.scl_inter) / img.scl_slope;
        vol.window_width = 400.0 / img.scl_slope;
    }
    t0 = cpu_seconds();
    r = vxp_session_new(engine, &vol, &session);
    if (r != VXP_RESULT_OK) {
        fprintf(stderr, "segment: vxp_session_new: %s: %s\n", vxp_result_str(r), last_error());
        goto done;
    }
    /* SEGMENT_TEXT names the object in words instead of the reference box: the library finds it. */
    const char *text = getenv("SEGMENT_TEXT");
    if (text != NULL && *text != '\0') {
        r = vxp_session_add_text(session, (uint32_t)label, text);
        if (r != VXP_RESULT_OK) {
            fprintf(stderr, "segment: vxp_session_add_text(\"%s\"): %s: %s\n", text, vxp_result_str(r), last_error());
            goto done;
        }
        printf("object %ld from the text \"%s\" alone\n", label, text);
        r = vxp_session_add_text(session, (uint32_t)label, text);
        CHECK(r == VXP_RESULT_INVALID_PROMPT, "a second text for label %ld gave %u", label, (unsigned)r);
    } else {
        r = vxp_session_add_box_ijk(session, (uint32_t)label, box);
        if (r != VXP_RESULT_OK) {
            fprintf(stderr, "segment: vxp_session_add_box_ijk: %s: %s\n", vxp_result_str(r), last_error());
            goto done;
        }
        r = vxp_session_add_box_ijk(session, (uint32_t)label, box);
        CHECK(r == VXP_RESULT_INVALID_PROMPT, "a second object with label %ld gave %u", label, (unsigned)r);
    }

    check_error_paths(engine, session, &vol, box, (uint32_t)label, nvox);
    /* Sessions keep the engine alive: release our reference before the run. */
    vxp_engine_free(engine);
    engine = NULL;

    mask = malloc(nvox);
    if (mask == NULL) {
        fprintf(stderr, "segment: out of memory\n");
        goto done;
    }
    memset(mask, 0xee, nvox);
    const int64_t mask_strides[3] = {1, (int64_t)nx, (int64_t)(nx * ny)};
    const char *verbose = getenv("SEGMENT_VERBOSE");
    const int is_verbose = verbose != NULL && *verbose != '\0' && strcmp(verbose, "0") != 0;

    /* A run cancelled from the progress callback returns VXP_RESULT_CANCELLED, leaves the mask untouched
     * and keeps the session usable. */
    progress_state cancelled = {0, 0.0f, 0, is_verbose, 1};
    t0 = cpu_seconds();
    r = vxp_session_run(session, on_progress, &cancelled, mask, nvox, mask_strides);
    CHECK(r == VXP_RESULT_CANCELLED, "cancelled run gave %u (%s)", (unsigned)r, vxp_result_str(r));
    CHECK(cancelled.calls == 1, "progress called %u times after cancelling", cancelled.calls);
    size_t touched = 0;
    for (size_t idx = 0; idx < nvox; idx++) {
        touched += mask[idx] != 0xee;
    }
    CHECK(touched == 0, "cancelled run wrote %zu mask bytes", touched);
    printf("cancelled run: %s (%.1f s CPU)\n", vxp_result_str(r), cpu_seconds() - t0);

    const char *skip = getenv("SEGMENT_SKIP_INFERENCE");
    if (skip != NULL && *skip != '\0' && strcmp(skip, "0") != 0) {
        printf("SEGMENT_SKIP_INFERENCE: no segmentation, Dice not checked\n");
        status = failures == 0 ? 0 : 1;
        goto done;
    }

    progress_state progress = {0, 0.0f, 0, is_verbose, 0};
    t0 = cpu_seconds();
    r = vxp_session_run(session, on_progress, &progress, mask, nvox, mask_strides);
    if (r != VXP_RESULT_OK) {
        fprintf(stderr, "segment: vxp_session_run: %s: %s\n", vxp_result_str(r), last_error());
        goto done;
    }
    printf("run: %u progress calls (%.1f s CPU)\n", progress.calls, cpu_seconds() - t0);
    CHECK(progress.calls > 0 && progress.bad == 0, "progress: %u calls, %d out of order", progress.calls,
          progress.bad);

    size_t inter = 0, seg = 0, truth = 0, other = 0;
    for (size_t k = 0; k < nz; k++) {
        for (size_t idx = k * nx * ny; idx < (k + 1) * nx * ny; idx++) {
            int s = mask[idx] == (uint8_t)label;
            other += mask[idx] != 0 && !s;
            if (k < k_lo || k > k_hi) {
                continue;
            }
            int g = label_at(&ref, idx) == label;
            seg += (size_t)s;
            truth += (size_t)g;
            inter += (size_t)(s && g);
        }
    }
    CHECK(other == 0, "%zu voxels hold a value other than 0 or %ld", other, label);
    double dice = seg + truth > 0 ? 2.0 * (double)inter / (double)(seg + truth) : 0.0;
    printf("label %ld, slices %zu-%zu: %zu voxels segmented, %zu in the reference, Dice %.4f (minimum %.4f)\n",
           label, k_lo, k_hi, seg, truth, dice, min_dice);
    if (dice < min_dice) {
        fprintf(stderr, "segment: FAILED: Dice %.4f is below %.4f\n", dice, min_dice);
        goto done;
    }
    status = failures == 0 ? 0 : 1;

done:
    free(mask);
    vxp_session_free(session);
    vxp_engine_free(engine);
    vxp_options_free(options);
    free(ref.data);
    free(img.data);
    if (failures > 0) {
        fprintf(stderr, "segment: %d check(s) failed\n", failures);
        status = 1;
    }
    printf("%s\n", status == 0 ? "PASS" : "FAIL");
    return status;
}
