/*
 * Vibration features of one window (contract in vw_dsp.h).
 *
 * The real N-point FFT packs the window into an N/2-point complex sequence
 * z[m] = x[2m] + i x[2m+1], transforms it in place with an iterative radix-2
 * FFT and splits the result into X[0..N/2]. Every twiddle factor and the Hann
 * window are read from one quarter-wave table cos(2 pi k / N), k = 0..N/4.
 *
 * The mean-removed window is scaled by 1/peak before the moments and the FFT,
 * so neither x^4 nor |X|^2 over- or underflows float32 for any sensible
 * amplitude; the scale is put back into the features at the end.
 */
#include "vw_dsp.h"

#include "vw_sha256.h"

#include <math.h>
#include <string.h>

/* Exponent bits all set: Inf or NaN. Tested on the bits, independent of compiler flags. */
#define VW_DSP_EXP_MASK 0x7f800000u

static int vw_dsp_finite(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & VW_DSP_EXP_MASK) != VW_DSP_EXP_MASK;
}

static int vw_dsp_window_ok(uint32_t n)
{
    return n >= VW_DSP_MIN_WINDOW && n <= VW_DSP_MAX_WINDOW && (n & (n - 1u)) == 0u;
}

/* cos(2 pi k / (4 * quarter)) for any k, from the quarter-wave table q. */
static float vw_dsp_cos(const float *q, uint32_t quarter, uint32_t k)
{
    k &= 4u * quarter - 1u;
    if (k > 2u * quarter) {
        k = 4u * quarter - k;
    }
    return k <= quarter ? q[k] : -q[2u * quarter - k];
}

/*
 * X[k] = E + W^k O with E = (a + conj(b)) / 2, O = (a - conj(b)) / 2i,
 * W = exp(-2 pi i / N), a = Z[k], b = Z[N/2 - k].
 */
static void vw_dsp_split(float *out, float ar, float ai, float br, float bi, const float *q,
                         uint32_t quarter, uint32_t k)
{
    const float er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);
    const float or_ = 0.5f * (ai + bi), oi = 0.5f * (br - ar);
    const float wr = vw_dsp_cos(q, quarter, k), wi = -vw_dsp_cos(q, quarter, k + 3u * quarter);
    out[0] = er + (wr * or_ - wi * oi);
    out[1] = ei + (wr * oi + wi * or_);
}

/* In-place radix-2 FFT of half = N/2 interleaved complex values. */
static void vw_dsp_fft(float *z, uint32_t half, const float *q, uint32_t quarter)
{
    for (uint32_t i = 0, j = 0; i < half; i++) {
        if (i < j) {
            const float re = z[2u * i], im = z[2u * i + 1u];
            z[2u * i] = z[2u * j];
            z[2u * i + 1u] = z[2u * j + 1u];
            z[2u * j] = re;
            z[2u * j + 1u] = im;
        }
        uint32_t bit = half >> 1;
        while ((j & bit) != 0u) {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
    }
    for (uint32_t len = 2u; len <= half; len <<= 1) {
        const uint32_t step = 4u * quarter / len;
        for (uint32_t j = 0; j < len / 2u; j++) {
            const float wr = vw_dsp_cos(q, quarter, j * step);
            const float wi = -vw_dsp_cos(q, quarter, j * step + 3u * quarter);
            for (uint32_t a = j; a < half; a += len) {
                float *u = z + 2u * a, *v = u + len;
                const float tr = wr * v[0] - wi * v[1], ti = wr * v[1] + wi * v[0];
                v[0] = u[0] - tr;
                v[1] = u[1] - ti;
                u[0] += tr;
                u[1] += ti;
            }
        }
    }
}

static vw_spec_fault_t spec_fault(const vw_feature_spec_t *spec)
{
    const uint16_t *bins = spec->band_bins;
    if (spec->sample_rate_hz < 1u || spec->sample_rate_hz > VW_DSP_MAX_RATE_HZ) {
        return VW_SPEC_FAULT_RATE;
    }
    if (!vw_dsp_window_ok(spec->window)) {
        return VW_SPEC_FAULT_WINDOW;
    }
    if (spec->n_bands < 1u || spec->n_bands > VW_DSP_MAX_BANDS) {
        return VW_SPEC_FAULT_BANDS;
    }
    for (uint32_t b = 0; b < spec->n_bands; b++) {
        if (bins[b] >= bins[b + 1u]) {
            return VW_SPEC_FAULT_ORDER;
        }
    }
    if (bins[spec->n_bands] > spec->window / 2u + 1u) {
        return VW_SPEC_FAULT_NYQUIST;
    }
    return VW_SPEC_FAULT_NONE;
}

vw_status_t vw_dsp_check_spec_fault(const vw_feature_spec_t *spec, vw_spec_fault_t *fault)
{
    vw_spec_fault_t found = VW_SPEC_FAULT_NONE;
    vw_status_t status = VW_ERR_ARG;
    if (spec != NULL && spec->band_bins != NULL) {
        found = spec_fault(spec);
        status = found == VW_SPEC_FAULT_NONE ? VW_OK : VW_ERR_FORMAT;
    }
    if (fault != NULL) {
        *fault = found;
    }
    return status;
}

vw_status_t vw_dsp_check_spec(const vw_feature_spec_t *spec)
{
    return vw_dsp_check_spec_fault(spec, NULL);
}

size_t vw_dsp_required_bytes(uint16_t window)
{
    return vw_dsp_window_ok(window) ? ((size_t)window + 2u + window / 4u + 1u) * sizeof(float)
                                    : 0u;
}

vw_status_t vw_dsp_init(vw_dsp_t *dsp, const vw_feature_spec_t *spec, void *work,
                        size_t work_bytes)
{
    if (dsp == NULL || work == NULL) {
        return VW_ERR_ARG;
    }
    const vw_status_t status = vw_dsp_check_spec(spec);
    if (status != VW_OK) {
        return status;
    }
    if (((uintptr_t)work & 3u) != 0u) {
        return VW_ERR_ALIGN;
    }
    if (work_bytes < vw_dsp_required_bytes(spec->window)) {
        return VW_ERR_BUFFER;
    }
    const uint32_t n = spec->window;
    dsp->spec = *spec;
    dsp->work = work;
    dsp->cos_table = dsp->work + n + 2u;
    for (uint32_t k = 0; k <= n / 4u; k++) {
        dsp->cos_table[k] = cosf((float)k * (6.28318531f / (float)n));
    }
    return VW_OK;
}

vw_status_t vw_dsp_features(vw_dsp_t *dsp, const float *samples, float *features)
{
    if (dsp == NULL || dsp->work == NULL || samples == NULL || features == NULL) {
        return VW_ERR_ARG;
    }
    const uint32_t n = dsp->spec.window, half = n / 2u, quarter = n / 4u;
    const uint32_t n_bands = dsp->spec.n_bands;
    const float *q = dsp->cos_table;
    float *x = dsp->work;

    /* Shifting by the first sample keeps the float32 mean accurate under a large offset
       and makes a constant window exactly zero; the second pass removes what the rounding
       of the first mean left (a DC error would show in bins 0 and 1). */
    float sum = 0.0f, residual = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        if (!vw_dsp_finite(samples[i])) {
            return VW_ERR_INPUT;
        }
        x[i] = samples[i] - samples[0];
        sum += x[i];
    }
    const float mean = sum / (float)n;
    for (uint32_t i = 0; i < n; i++) {
        x[i] -= mean;
        residual += x[i];
    }
    const float correction = residual / (float)n;
    float peak = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        x[i] -= correction;
        if (fabsf(x[i]) > peak) {
            peak = fabsf(x[i]);
        }
    }
    const float scale = peak > 0.0f ? 1.0f / peak : 0.0f;
    float s2 = 0.0f, s4 = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        const float y = x[i] * scale, y2 = y * y;
        s2 += y2;
        s4 += y2 * y2;
        x[i] = y * (0.5f - 0.5f * vw_dsp_cos(q, quarter, i));
    }

    vw_dsp_fft(x, half, q, quarter);
    const float z0r = x[0], z0i = x[1];
    x[0] = z0r + z0i;
    x[1] = 0.0f;
    x[n] = z0r - z0i;
    x[n + 1u] = 0.0f;
    for (uint32_t k = 1; k <= half / 2u; k++) {
        float *a = x + 2u * k, *b = x + 2u * (half - k);
        const float ar = a[0], ai = a[1], br = b[0], bi = b[1];
        vw_dsp_split(a, ar, ai, br, bi, q, quarter, k);
        vw_dsp_split(b, br, bi, ar, ai, q, quarter, half - k);
    }

    /* P[k] = |X[k]|^2 / N^2 of the unscaled window: (peak / N)^2 times that of the scaled one. */
    const float gain = peak / (float)n;
    for (uint32_t b = 0; b < n_bands; b++) {
        float power = 0.0f;
        for (uint32_t k = dsp->spec.band_bins[b]; k < dsp->spec.band_bins[b + 1u]; k++) {
            power += x[2u * k] * x[2u * k] + x[2u * k + 1u] * x[2u * k + 1u];
        }
        features[b] = log10f(power * gain * gain + 1e-12f);
    }
    const float m2 = s2 / (float)n;
    features[n_bands] = peak * sqrtf(m2);
    features[n_bands + 1u] = peak;
    features[n_bands + 2u] = peak > 0.0f ? 1.0f / sqrtf(m2) : 0.0f;
    features[n_bands + 3u] = peak > 0.0f ? (s4 / (float)n) / (m2 * m2) : 0.0f;

    /* Finite samples beyond about 1e19 overflow the band powers. */
    for (uint32_t i = 0; i < n_bands + VW_DSP_N_STATS; i++) {
        if (!vw_dsp_finite(features[i])) {
            return VW_ERR_INPUT;
        }
    }
    return VW_OK;
}

/* Decimal text of v at out; returns its length (at most 10). */
static size_t decimal(uint32_t v, char *out)
{
    char text[10];
    size_t n = 0;
    do {
        text[sizeof text - 1 - n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    memcpy(out, text + sizeof text - n, n);
    return n;
}

vw_status_t vw_dsp_spec_id(const vw_feature_spec_t *spec, char id[VW_DSP_SPEC_ID_MAX + 1])
{
    if (id == NULL) {
        return VW_ERR_ARG;
    }
    vw_status_t status = vw_dsp_check_spec(spec);
    if (status != VW_OK) {
        return status;
    }
    vw_sha256_t sha;
    vw_sha256_init(&sha);
    for (uint32_t i = 0; i <= spec->n_bands; i++) {
        char edge[11];
        size_t n = 0;
        if (i > 0) {
            edge[n++] = ',';
        }
        n += decimal(spec->band_bins[i], edge + n);
        vw_sha256_update(&sha, edge, n);
    }
    uint8_t digest[VW_SHA256_DIGEST_BYTES];
    vw_sha256_final(&sha, digest);
    static const char hex[] = "0123456789abcdef";
    const uint32_t fields[3] = {spec->sample_rate_hz, spec->window, spec->n_bands};
    size_t n = 0;
    id[n++] = 'f';
    id[n++] = 's';
    for (int i = 0; i < 3; i++) {
        id[n++] = '-';
        n += decimal(fields[i], id + n);
    }
    id[n++] = '-';
    for (int i = 0; i < 4; i++) {
        id[n++] = hex[digest[i] >> 4];
        id[n++] = hex[digest[i] & 15u];
    }
    id[n] = '\0';
    return VW_OK;
}
