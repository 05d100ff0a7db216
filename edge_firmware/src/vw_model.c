#include "vw_model.h"

#include <string.h>

#include "vw_crc32.h"

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

/* Next n bytes (rounded up to 4), or NULL if they are not all inside the blob. */
static const uint8_t *take(cursor_t *c, size_t n)
{
    size_t padded = pad4(n);
    if (padded < n || padded > c->len - c->off) {
        return NULL;
    }
    const uint8_t *p = c->base + c->off;
    c->off += padded;
    return p;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float rdf32(const uint8_t *p)
{
    uint32_t bits = rd32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static int is_finite(float x)
{
    return x - x == 0.0f; /* NaN and +-Inf give NaN */
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

static vw_status_t parse_header(vw_model_t *m, const uint8_t *h, uint8_t *id_len)
{
    if (rd16(h + 4) != VW_MODEL_FORMAT_VERSION) {
        return VW_ERR_VERSION;
    }
    if (rd16(h + 6) != VW_MODEL_HEADER_BYTES || rd32(h + 56) != 0 || rd32(h + 60) != 0 ||
        h[55] != 0) {
        return VW_ERR_FORMAT;
    }
    m->version = rd32(h + 16);
    m->spec.sample_rate_hz = rd32(h + 20);
    m->spec.window = rd16(h + 24);
    m->spec.n_bands = rd16(h + 26);
    m->n_features = rd16(h + 28);
    m->n_layers = rd16(h + 30);
    m->in_scale = rdf32(h + 32);
    m->in_zero_point = (int32_t)rd32(h + 36);
    m->out_scale = rdf32(h + 40);
    m->out_zero_point = (int32_t)rd32(h + 44);
    m->threshold = rdf32(h + 48);
    m->golden_count = rd16(h + 52);
    *id_len = h[54];

    if (m->spec.n_bands == 0 || m->spec.n_bands > VW_DSP_MAX_BANDS ||
        m->n_features != m->spec.n_bands + VW_DSP_N_STATS || m->n_layers == 0) {
        return VW_ERR_FORMAT;
    }
    if (m->n_layers > VW_MODEL_MAX_LAYERS || m->golden_count > VW_MODEL_MAX_GOLDEN) {
        return VW_ERR_UNSUPPORTED;
    }
    if (!is_finite(m->in_scale) || !(m->in_scale > 0.0f) || !is_finite(m->out_scale) ||
        !(m->out_scale > 0.0f) || !is_finite(m->threshold) || m->threshold < 0.0f ||
        !is_zero_point(m->in_zero_point) || !is_zero_point(m->out_zero_point) || *id_len == 0 ||
        *id_len > VW_MODEL_MAX_ID) {
        return VW_ERR_FORMAT;
    }
    return VW_OK;
}

static vw_status_t parse_layer(cursor_t *c, vw_layer_t *l, uint16_t in_dim, int32_t in_zp)
{
    const uint8_t *h = take(c, 16);
    if (h == NULL) {
        return VW_ERR_TRUNCATED;
    }
    l->in_dim = rd16(h);
    l->out_dim = rd16(h + 2);
    l->act_min = (int8_t)h[4];
    l->act_max = (int8_t)h[5];
    l->per_channel = h[6];
    l->in_zero_point = in_zp;
    l->out_zero_point = (int32_t)rd32(h + 8);
    if (l->in_dim != in_dim || l->out_dim == 0 || l->act_min > l->act_max || l->per_channel > 1 ||
        h[7] != 0 || rd32(h + 12) != 0 || !is_zero_point(l->out_zero_point)) {
        return VW_ERR_FORMAT;
    }
    if (l->out_dim > VW_MODEL_MAX_DIM) {
        return VW_ERR_UNSUPPORTED;
    }
    l->in_pad = (uint16_t)pad4(l->in_dim);
    l->out_pad = (uint16_t)pad4(l->out_dim);
    size_t n_q = l->per_channel ? l->out_pad : 1u;

    const uint8_t *w = take(c, (size_t)l->out_pad * l->in_pad);
    const uint8_t *bias = take(c, 4u * l->out_pad);
    const uint8_t *mult = take(c, 4u * n_q);
    const uint8_t *shift = take(c, n_q);
    if (w == NULL || bias == NULL || mult == NULL || shift == NULL) {
        return VW_ERR_TRUNCATED;
    }
    l->weights = (const int8_t *)w;
    l->bias = (const int32_t *)(const void *)bias;
    l->mult = (const int32_t *)(const void *)mult;
    l->shift = (const int8_t *)shift;
    /* |bias| <= VW_MODEL_MAX_BIAS keeps |bias + sum| (in_dim <= 2048, |x - zp| <= 255,
     * |w| <= 128) below 2^30: no sum overflows, nor the engine's rounding (vw_engine.c). */
    for (size_t i = 0; i < l->out_pad; i++) {
        int32_t b = l->bias[i];
        if (b > VW_MODEL_MAX_BIAS || b < -VW_MODEL_MAX_BIAS) {
            return VW_ERR_FORMAT;
        }
    }
    for (size_t i = 0; i < n_q; i++) {
        int32_t m = l->mult[i];
        if ((m != 0 && m < (1 << 30)) || l->shift[i] < -31 || l->shift[i] > 30) {
            return VW_ERR_FORMAT;
        }
    }
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
    if (memcmp(blob, VW_MODEL_MAGIC, 4) != 0) {
        return VW_ERR_MAGIC;
    }
    uint32_t total = rd32(blob + 8);
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
    if (crc != rd32(blob + 12)) {
        return VW_ERR_CRC;
    }

    uint8_t id_len = 0;
    vw_status_t st = parse_header(model, blob, &id_len);
    if (st != VW_OK) {
        return st;
    }
    model->blob_bytes = total;
    cursor_t c = {blob, total, VW_MODEL_HEADER_BYTES};

    const uint8_t *id = take(&c, id_len);
    const uint8_t *bins = take(&c, 2u * (model->spec.n_bands + 1u));
    if (id == NULL || bins == NULL) {
        return VW_ERR_TRUNCATED;
    }
    if (!vw_model_id_valid((const char *)id, id_len)) {
        return VW_ERR_FORMAT;
    }
    memcpy(model->id, id, id_len);
    model->spec.band_bins = (const uint16_t *)(const void *)bins;
    st = vw_dsp_check_spec(&model->spec);
    if (st != VW_OK) {
        return VW_ERR_FORMAT;
    }

    const uint8_t *mul = take(&c, 4u * model->n_features);
    const uint8_t *add = take(&c, 4u * model->n_features);
    if (mul == NULL || add == NULL) {
        return VW_ERR_TRUNCATED;
    }
    model->in_mul = (const float *)(const void *)mul;
    model->in_add = (const float *)(const void *)add;
    for (size_t i = 0; i < model->n_features; i++) {
        if (!is_finite(model->in_mul[i]) || !is_finite(model->in_add[i])) {
            return VW_ERR_FORMAT;
        }
    }

    uint16_t dim = model->n_features;
    int32_t zp = model->in_zero_point;
    for (size_t i = 0; i < model->n_layers; i++) {
        vw_layer_t *l = &model->layers[i];
        st = parse_layer(&c, l, dim, zp);
        if (st != VW_OK) {
            return st;
        }
        dim = l->out_dim;
        zp = l->out_zero_point;
        model->macs += (uint32_t)l->in_dim * l->out_dim;
        if (l->in_pad > model->max_pad) {
            model->max_pad = l->in_pad;
        }
        if (l->out_pad > model->max_pad) {
            model->max_pad = l->out_pad;
        }
    }
    if (dim != model->n_features || zp != model->out_zero_point) {
        return VW_ERR_FORMAT;
    }

    model->golden = take(&c, model->golden_count * vw_model_golden_record_bytes(model));
    if (model->golden == NULL) {
        return VW_ERR_TRUNCATED;
    }
    return c.off == total ? VW_OK : VW_ERR_FORMAT;
}
