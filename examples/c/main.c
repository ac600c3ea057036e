/*
 * VoxPrompt from C: segment one organ of a CT volume in 3D from a box prompt.
 *
 *   voxprompt-example MODEL_DIR IMAGE.nii.gz LABELS.nii.gz LABEL
 *
 * Reads a NIfTI-1 CT image and a label map with zlib, takes the tight bounding box of LABEL in the label
 * map as the prompt, segments, and prints the Dice coefficient of the result against that label. ONNX
 * Runtime is found next to libvoxprompt.so (as scripts/install puts it) or through VXP_ORT_LIB.
 *
 * Build against an installed VoxPrompt:
 *   cc -std=c99 main.c $(pkg-config --cflags --libs voxprompt) -lz -o voxprompt-example
 * or with CMake: find_package(VoxPrompt REQUIRED), target_link_libraries(... VoxPrompt::voxprompt).
 */
#include <voxprompt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* A 3D NIfTI-1 volume (single file, native byte order) with its voxels in file order. */
typedef struct {
    size_t dims[3];
    int16_t datatype; /* NIfTI code: 2 uint8, 4 int16, 16 float32, ... */
    size_t voxel_size;
    double spacing[3];
    double ijk_to_ras[16]; /* the sform, row-major */
    void *data;
    size_t data_len;
} volume;

static int read_nifti(const char *path, volume *v) {
    unsigned char h[348];
    int16_t s16;
    float f32;
    memset(v, 0, sizeof *v);
    gzFile f = gzopen(path, "rb");
    if (f == NULL || gzread(f, h, sizeof h) != (int)sizeof h || memcmp(h + 344, "n+1", 4) != 0) {
        fprintf(stderr, "%s: not a single-file NIfTI-1 image\n", path);
        goto fail;
    }
    for (int a = 0; a < 3; a++) {
        memcpy(&s16, h + 42 + 2 * a, 2);
        v->dims[a] = s16 > 0 ? (size_t)s16 : 1;
        memcpy(&f32, h + 80 + 4 * a, 4);
        v->spacing[a] = f32 > 0 ? f32 : 1.0;
        for (int c = 0; c < 4; c++) {
            memcpy(&f32, h + 280 + 16 * a + 4 * c, 4);
            v->ijk_to_ras[4 * a + c] = f32;
        }
    }
    v->ijk_to_ras[15] = 1.0;
    memcpy(&v->datatype, h + 70, 2);
    v->voxel_size = v->datatype == 2 ? 1 : v->datatype == 4 ? 2 : v->datatype == 16 ? 4 : 0;
    memcpy(&f32, h + 108, 4); /* vox_offset: the header may be followed by extensions */
    if (v->voxel_size == 0 || f32 < 348) {
        fprintf(stderr, "%s: datatype %d or vox_offset %g not handled by this example\n", path, v->datatype, f32);
        goto fail;
    }
    v->data_len = v->dims[0] * v->dims[1] * v->dims[2] * v->voxel_size;
    v->data = malloc(v->data_len);
    if (v->data == NULL || gzseek(f, (z_off_t)f32, SEEK_SET) < 0 ||
        gzread(f, v->data, (unsigned)v->data_len) != (int)v->data_len) {
        fprintf(stderr, "%s: cannot read %zu bytes of voxels\n", path, v->data_len);
        goto fail;
    }
    gzclose(f);
    return 0;
fail:
    free(v->data);
    v->data = NULL;
    if (f != NULL) {
        gzclose(f);
    }
    return -1;
}

static const char *last_error(void) {
    static char buf[512];
    buf[0] = '\0';
    vxp_last_error(buf, sizeof buf, NULL);
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE.nii.gz LABELS.nii.gz LABEL\n", argv[0]);
        return 2;
    }
    const int label = atoi(argv[4]);
    if (label < 1 || label > 255) {
        fprintf(stderr, "LABEL must be 1-255\n");
        return 2;
    }
    printf("%s\n", vxp_version());

    volume img, ref;
    if (read_nifti(argv[2], &img) != 0) {
        return 1;
    }
    if (read_nifti(argv[3], &ref) != 0 || ref.datatype != 2 || memcmp(ref.dims, img.dims, sizeof img.dims) != 0 ||
        img.datatype != 4) {
        fprintf(stderr, "expected an int16 image and a uint8 label map of the same size\n");
        free(img.data);
        free(ref.data);
        return 1;
    }
    const size_t nx = img.dims[0], ny = img.dims[1], nz = img.dims[2], n = nx * ny * nz;
    const uint8_t *labels = ref.data;

    /* Box prompt: the label's bounding box in voxel indices, inclusive {i0, j0, k0, i1, j1, k1}. */
    int64_t box[6] = {INT64_MAX, INT64_MAX, INT64_MAX, -1, -1, -1};
    for (size_t idx = 0; idx < n; idx++) {
        if (labels[idx] == label) {
            const int64_t ijk[3] = {(int64_t)(idx % nx), (int64_t)(idx / nx % ny), (int64_t)(idx / (nx * ny))};
            for (int a = 0; a < 3; a++) {
                box[a] = ijk[a] < box[a] ? ijk[a] : box[a];
                box[a + 3] = ijk[a] > box[a + 3] ? ijk[a] : box[a + 3];
            }
        }
    }

    int status = 1;
    vxp_options *options = NULL;
    vxp_engine *engine = NULL;
    vxp_session *session = NULL;
    uint8_t *mask = calloc(n, 1);
    vxp_result r;
    if (box[3] < 0 || mask == NULL) {
        fprintf(stderr, "label %d is not in %s\n", label, argv[3]);
        goto done;
    }

    /* Options -> engine. The defaults find ONNX Runtime next to libvoxprompt.so and use the CPU. */
    if ((r = vxp_options_new(&options)) != VXP_RESULT_OK ||
        (r = vxp_options_set_model_dir(options, argv[1])) != VXP_RESULT_OK ||
        (r = vxp_engine_new(options, &engine)) != VXP_RESULT_OK) {
        fprintf(stderr, "engine: %s: %s\n", vxp_result_str(r), last_error());
        goto done;
    }

    /* The session reads the image in place through a strided descriptor (no copy on our side). */
    vxp_volume vol;
    memset(&vol, 0, sizeof vol);
    vol.struct_size = (uint32_t)sizeof vol;
    vol.dtype = VXP_DTYPE_I16;
    vol.data = img.data;
    vol.data_len = img.data_len;
    memcpy(vol.dims, img.dims, sizeof vol.dims);
    vol.strides[0] = 2;
    vol.strides[1] = (int64_t)(2 * nx);
    vol.strides[2] = (int64_t)(2 * nx * ny);
    memcpy(vol.spacing, img.spacing, sizeof vol.spacing);
    memcpy(vol.ijk_to_ras, img.ijk_to_ras, sizeof vol.ijk_to_ras);
    vol.intensity = VXP_INTENSITY_CT;
    const int64_t mask_strides[3] = {1, (int64_t)nx, (int64_t)(nx * ny)};
    if ((r = vxp_session_new(engine, &vol, &session)) != VXP_RESULT_OK ||
        (r = vxp_session_add_box_ijk(session, (uint32_t)label, box)) != VXP_RESULT_OK ||
        (r = vxp_session_run(session, NULL, NULL, mask, n, mask_strides)) != VXP_RESULT_OK) {
        fprintf(stderr, "segmentation: %s: %s\n", vxp_result_str(r), last_error());
        goto done;
    }

    size_t both = 0, seg = 0, truth = 0;
    for (size_t idx = 0; idx < n; idx++) {
        seg += mask[idx] == label;
        truth += labels[idx] == label;
        both += mask[idx] == label && labels[idx] == label;
    }
    printf("label %d: box [%lld %lld %lld]-[%lld %lld %lld], %zu voxels, Dice %.4f\n", label, (long long)box[0],
           (long long)box[1], (long long)box[2], (long long)box[3], (long long)box[4], (long long)box[5], seg,
           2.0 * (double)both / (double)(seg + truth));
    status = 0;

done:
    vxp_session_free(session);
    vxp_engine_free(engine);
    vxp_options_free(options);
    free(mask);
    free(img.data);
    free(ref.data);
    return status;
}
