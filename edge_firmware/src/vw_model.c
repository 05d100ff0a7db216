#include "vw_model.h"

#include <string.h>

#include "vw_crc32.h"
#include "vw_inline.h"

/* The 64-byte header, field by field (docs/vwm-format.md), read in place like the rest of
 * the blob: it is little endian, as every target of the core, and 4-byte aligned. */
typedef struct {
    char magic[4];
    uint16_t format_version, header_bytes;
    uint32_t total_bytes, crc, version, sample_rate_hz;
    uint16_t window, n_bands, n_features, n_layers;
    float in_scale;
    int32_t in_zero_point;
    float out_scale;
    int32_t out_zero_point;
    float threshold;
    uint16_t golden_count;
    uint8_t id_len, reserved8;
    float threshold_ceiling;
    uint32_t reserved;
} header_t;

/* A layer's 16-byte header. */
typedef struct {
    uint16_t in_dim, out_dim;
    int8_t act_min, act_max;
    uint8_t per_channel, reserved8;
    int32_t out_zero_point;
    uint32_t reserved;
} layer_header_t;

_Static_assert(sizeof(header_t) == VW_MODEL_HEADER_BYTES, "the header is 64 bytes");
_Static_assert(sizeof(layer_header_t) == 16u, "a layer header is 16 bytes");

/* A bounds-checked reader over the blob: nothing is dereferenced before take() said yes. */
typedef struct {
    const uint8_t *base;
    size_t len;
    size_t off;
} cursor_t;

static size_t pad4(size_t n)
{
    return (n + 3u) & ~(size_t)3u;
}

/* Next n bytes (rounded up to 4), or NULL if they are not all inside the blob. Every n
 * the parser asks for is below 2^24 (sizes of uint16_t counts, dims up to 2048), so
 * rounding it up cannot wrap. */
static const uint8_t *take(cursor_t *c, size_t n)
{
    size_t padded = pad4(n);
    if (padded > c->len - c->off) {
        return NULL;
    }
    const uint8_t *p = c->base + c->off;
    c->off += padded;
    return p;
}

static int is_finite(float x)
{
    return x - x == 0.0f; /* NaN and +-Inf give NaN */
}

/* A finite scale > 0 (NaN fails both tests). */
VW_OUTLINE int is_scale(float x)
{
    return is_finite(x) && x > 0.0f;
}

static int is_zero_point(int32_t zp)
{
    return zp >= -128 && zp <= 127;
}

int vw_model_id_valid(const char *id, size_t len)
{
    if (id == NULL || len < 1u || len > VW_MODEL_MAX_ID) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            return 0;
        }
    }
    return 1;
}

size_t vw_model_golden_record_bytes(const vw_model_t *model)
{
    return model == NULL ? 0u : 2u * pad4(model->n_features) + 4u;
}

static vw_status_t parse_header(vw_model_t *m, const header_t *h)
{
    if (h->format_version != VW_MODEL_FORMAT_VERSION) {
        return VW_ERR_VERSION;
    }
    if (h->header_bytes != VW_MODEL_HEADER_BYTES || h->reserved != 0 ||
        h->reserved8 != 0 || h->n_bands == 0 || h->n_bands > VW_DSP_MAX_BANDS ||
        h->n_features != h->n_bands + VW_DSP_N_STATS || h->n_layers == 0) {
        return VW_ERR_FORMAT;
    }
    if (h->n_layers > VW_MODEL_MAX_LAYERS || h->golden_count > VW_MODEL_MAX_GOLDEN) {
        return VW_ERR_UNSUPPORTED;
    }
    if (!is_scale(h->in_scale) || !is_scale(h->out_scale) || !is_finite(h->threshold) ||
        h->threshold < 0.0f || !is_finite(h->threshold_ceiling) ||
        (h->threshold_ceiling != 0.0f && h->threshold_ceiling < h->threshold) ||
        !is_zero_point(h->in_zero_point) ||
        !is_zero_point(h->out_zero_point) || h->id_len == 0 || h->id_len > VW_MODEL_MAX_ID) {
        return VW_ERR_FORMAT;
    }
    m->version = h->version;
    m->spec.sample_rate_hz = h->sample_rate_hz;
    m->spec.window = h->window;
    m->spec.n_bands = h->n_bands;
    m->n_features = h->n_features;
    m->n_layers = h->n_layers;
    m->in_scale = h->in_scale;
    m->in_zero_point = h->in_zero_point;
    m->out_scale = h->out_scale;
    m->out_zero_point = h->out_zero_point;
    m->threshold = h->threshold;
    m->threshold_ceiling = h->threshold_ceiling != 0.0f ? h->threshold_ceiling : h->threshold;
    m->crc = h->crc;
    m->golden_count = h->golden_count;
    return VW_OK;
}

VW_OUTLINE vw_status_t parse_layer(cursor_t *c, vw_layer_t *l, uint16_t in_dim, int32_t in_zp)
{
    const layer_header_t *h = (const layer_header_t *)(const void *)take(c, sizeof *h);
    if (h == NULL) {
        return VW_ERR_TRUNCATED;
    }
    if (h->in_dim != in_dim || h->out_dim == 0 || h->act_min > h->act_max || h->per_channel > 1 ||
        h->reserved8 != 0 || h->reserved != 0 || !is_zero_point(h->out_zero_point)) {
        return VW_ERR_FORMAT;
    }
    if (h->out_dim > VW_MODEL_MAX_DIM) {
        return VW_ERR_UNSUPPORTED;
    }
    const size_t in_pad = pad4(h->in_dim), out_pad = pad4(h->out_dim);
    const size_t n_q = h->per_channel ? out_pad : 1u;
    /* weights, bias, multipliers and shifts follow each other, each padded to 4 */
    const uint8_t *w = take(c, out_pad * in_pad + 4u * out_pad + 4u * n_q + n_q);
    if (w == NULL) {
        return VW_ERR_TRUNCATED;
    }
    const int32_t *bias = (const int32_t *)(const void *)(w + out_pad * in_pad);
    const int32_t *mult = bias + out_pad;
    const int8_t *shift = (const int8_t *)(mult + n_q);
    /* |bias| <= VW_MODEL_MAX_BIAS keeps |bias + sum| (in_dim <= 2048, |x - zp| <= 255,
     * |w| <= 128) below 2^30: no sum overflows, nor the engine's rounding (vw_engine.c). */
    for (size_t i = 0; i < out_pad; i++) {
        if (bias[i] > VW_MODEL_MAX_BIAS || bias[i] < -VW_MODEL_MAX_BIAS) {
            return VW_ERR_FORMAT;
        }
    }
    for (size_t i = 0; i < n_q; i++) {
        if ((mult[i] != 0 && mult[i] < (1 << 30)) || shift[i] < -31 || shift[i] > 30) {
            return VW_ERR_FORMAT;
        }
    }
    l->in_dim = h->in_dim;
    l->out_dim = h->out_dim;
    l->in_pad = (uint16_t)in_pad;
    l->out_pad = (uint16_t)out_pad;
    l->act_min = h->act_min;
    l->act_max = h->act_max;
    l->per_channel = h->per_channel;
    l->in_zero_point = in_zp;
    l->out_zero_point = h->out_zero_point;
    l->weights = (const int8_t *)w;
    l->bias = bias;
    l->mult = mult;
    l->shift = shift;
    return VW_OK;
}

vw_status_t vw_model_parse(vw_model_t *model, const uint8_t *blob, size_t len)
{
    if (model == NULL || blob == NULL) {
        return VW_ERR_ARG;
    }
    if (((uintptr_t)blob & 3u) != 0) {
        return VW_ERR_ALIGN;
    }
    memset(model, 0, sizeof *model);
    if (len < VW_MODEL_HEADER_BYTES) {
        return VW_ERR_TRUNCATED;
    }
    const header_t *h = (const header_t *)(const void *)blob;
    if (memcmp(h->magic, VW_MODEL_MAGIC, 4) != 0) {
        return VW_ERR_MAGIC;
    }
    const uint32_t total = h->total_bytes;
    if (total > VW_MODEL_MAX_BYTES) {
        return VW_ERR_UNSUPPORTED;
    }
    if (total > len) {
        return VW_ERR_TRUNCATED;
    }
    if (total < VW_MODEL_HEADER_BYTES || (total & 3u) != 0) {
        return VW_ERR_FORMAT;
    }
    static const uint8_t zero[4] = {0, 0, 0, 0};
    uint32_t crc = vw_crc32_update(0, blob, 12);
    crc = vw_crc32_update(crc, zero, 4);
    crc = vw_crc32_update(crc, blob + 16, total - 16u);
    if (crc != h->crc) {
        return VW_ERR_CRC;
    }

    vw_status_t st = parse_header(model, h);
    if (st != VW_OK) {
        return st;
    }
    model->blob_bytes = total;
    cursor_t c = {blob, total, VW_MODEL_HEADER_BYTES};

    const uint8_t *id = take(&c, h->id_len);
    const uint8_t *bins = take(&c, 2u * (h->n_bands + 1u));
    if (id == NULL || bins == NULL) {
        return VW_ERR_TRUNCATED;
    }
    if (!vw_model_id_valid((const char *)id, h->id_len)) {
        return VW_ERR_FORMAT;
    }
    memcpy(model->id, id, h->id_len);
    model->spec.band_bins = (const uint16_t *)(const void *)bins;
    st = vw_dsp_check_spec(&model->spec);
    if (st != VW_OK) {
        return VW_ERR_FORMAT;
    }

    const float *mul = (const float *)(const void *)take(&c, 8u * h->n_features);
    if (mul == NULL) {
        return VW_ERR_TRUNCATED;
    }
    model->in_mul = mul;
    model->in_add = mul + h->n_features; /* the add terms follow the multipliers */
    for (size_t i = 0; i < 2u * h->n_features; i++) {
        if (!is_finite(mul[i])) {
            return VW_ERR_FORMAT;
        }
    }

    uint16_t dim = h->n_features;
    int32_t zp = h->in_zero_point;
    for (size_t i = 0; i < h->n_layers; i++) {
        vw_layer_t *l = &model->layers[i];
        st = parse_layer(&c, l, dim, zp);
        if (st != VW_OK) {
            return st;
        }
        dim = l->out_dim;
        zp = l->out_zero_point;
        model->macs += (uint32_t)l->in_dim * l->out_dim;
        /* every in_pad is an out_pad too: the previous layer's, layer 0's the last layer's */
        if (l->out_pad > model->max_pad) {
            model->max_pad = l->out_pad;
        }
    }
    if (dim != h->n_features || zp != h->out_zero_point) {
        return VW_ERR_FORMAT;
    }

    model->golden = take(&c, h->golden_count * vw_model_golden_record_bytes(model));
    if (model->golden == NULL) {
        return VW_ERR_TRUNCATED;
    }
    return c.off == total ? VW_OK : VW_ERR_FORMAT;
}
