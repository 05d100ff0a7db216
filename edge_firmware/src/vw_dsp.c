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
 *
 * The cosine table and the band logarithms come from vw_dsp_sin and
 * vw_dsp_log10 below, not from the C library: float32 +, -, *, / and bit
 * operations only, which IEEE 754 rounds the same way everywhere, so the host
 * and the Cortex-M4 compute the same bits (the builds keep -ffp-contract=off).
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
 * sin x for |x| <= pi/2 (float(pi/2), a little more, included), within 2 ulp:
 * x + x z P(z), z = x^2, P a minimax polynomial of degree 3.
 */
float vw_dsp_sin(float x)
{
    const float z = x * x;
    return x + x * z * (((2.605776172e-06f * z - 1.980960100e-04f) * z + 8.333066222e-03f) * z -
                        1.666665955e-01f);
}

/*
 * log10 x for a positive normal x, within 0.84 ulp (fdlibm's and musl's log10f with
 * a shorter polynomial); +inf and NaN are returned as they are. x = 2^k (1 + f) with
 * 1 + f in [sqrt(2)/2, sqrt(2)), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with
 * s = f / (2 + f) and R a minimax polynomial; hi, f - f^2/2 cut to 12 bits, and k are
 * multiplied exactly by the leading bits of 1/ln 10 and log10 2.
 */
float vw_dsp_log10(float x)
{
    uint32_t ix;
    memcpy(&ix, &x, sizeof ix);
    if (ix >= VW_DSP_EXP_MASK) {
        return x;
    }
    const int32_t k = (int32_t)((ix + (0x3f800000u - 0x3f3504f3u)) >> 23) - 127;
    ix -= (uint32_t)k << 23;
    float f, hi;
    memcpy(&f, &ix, sizeof f);
    f -= 1.0f;
    const float s = f / (2.0f + f), z = s * s, hfsq = 0.5f * f * f;
    const float r = s * (hfsq + z * ((2.987179768e-01f * z + 3.997753920e-01f) * z +
                                     6.666677640e-01f));
    hi = f - hfsq;
    memcpy(&ix, &hi, sizeof ix);
    ix &= 0xfffff000u;
    memcpy(&hi, &ix, sizeof hi);
    const float lo = ((f - hi) - hfsq) + r, dk = (float)k;
    return (dk * 7.9034151668e-07f + (lo + hi) * -3.1689971365e-05f + lo * 4.3432617188e-01f) +
           hi * 4.3432617188e-01f + dk * 3.0102920532e-01f;
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
            /* W^(j step) = wr - i ws */
            const float wr = vw_dsp_cos(q, quarter, j * step);
            const float ws = vw_dsp_cos(q, quarter, j * step + 3u * quarter);
            for (uint32_t a = j; a < half; a += len) {
                float *u = z + 2u * a, *v = u + len;
                const float ur = u[0], ui = u[1];
                const float tr = wr * v[0] + ws * v[1], ti = wr * v[1] - ws * v[0];
                v[0] = ur - tr;
                v[1] = ui - ti;
                u[0] = ur + tr;
                u[1] = ui + ti;
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
    float *table = (float *)work + n + 2u;
    dsp->spec = *spec;
    dsp->work = work;
    dsp->cos_table = table;
    /* cos(2 pi k / N) as sin(2 pi (N/4 - k) / N): exactly 0 at k = N/4 */
    for (uint32_t k = 0; k <= n / 4u; k++) {
        table[n / 4u - k] = vw_dsp_sin((float)k * (6.28318531f / (float)n));
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
    const float first = samples[0];
    float sum = 0.0f, residual = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        if (!vw_dsp_finite(samples[i])) {
            return VW_ERR_INPUT;
        }
        x[i] = samples[i] - first;
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
    /* d[i] = y[i] - y[i-1], i = 1..N-1, has the mean (y[N-1] - y[0]) / (N-1). */
    const float d_mean = (x[n - 1u] - x[0]) * scale / (float)(n - 1u);
    float s2 = 0.0f, s4 = 0.0f, d2 = 0.0f, d4 = 0.0f, previous = x[0] * scale;
    for (uint32_t i = 0; i < n; i++) {
        const float y = x[i] * scale, y2 = y * y;
        s2 += y2;
        s4 += y2 * y2;
        if (i > 0u) {
            const float d = y - previous - d_mean, dd = d * d;
            d2 += dd;
            d4 += dd * dd;
        }
        previous = y;
        x[i] = y * (0.5f - 0.5f * vw_dsp_cos(q, quarter, i));
    }

    vw_dsp_fft(x, half, q, quarter);
    const float z0r = x[0], z0i = x[1];
    x[0] = z0r + z0i;
    x[1] = 0.0f;
    x[n] = z0r - z0i;
    x[n + 1u] = 0.0f;
    /* a = Z[k], b = Z[N/2 - k], E = (a + conj(b)) / 2, O = (a - conj(b)) / 2i,
       T = W^k O with W = exp(-2 pi i / N): X[k] = E + T, X[N/2 - k] = conj(E - T). */
    for (uint32_t k = 1; k <= quarter; k++) {
        float *a = x + 2u * k, *b = x + 2u * (half - k);
        const float er = 0.5f * (a[0] + b[0]), ei = 0.5f * (a[1] - b[1]);
        const float or_ = 0.5f * (a[1] + b[1]), oi = 0.5f * (b[0] - a[0]);
        const float wr = q[k], ws = q[quarter - k]; /* W^k = wr - i ws */
        const float tr = wr * or_ + ws * oi, ti = wr * oi - ws * or_;
        b[0] = er - tr;
        b[1] = ti - ei;
        a[0] = er + tr;
        a[1] = ei + ti;
    }

    /* P[k] = |X[k]|^2 / N^2 of the unscaled window: (peak / N)^2 times that of the scaled one. */
    const float gain = peak / (float)n;
    const uint16_t *bins = dsp->spec.band_bins;
    for (uint32_t b = 0; b < n_bands; b++) {
        float power = 0.0f;
        for (uint32_t k = bins[b]; k < bins[b + 1u]; k++) {
            power += x[2u * k] * x[2u * k] + x[2u * k + 1u] * x[2u * k + 1u];
        }
        features[b] = vw_dsp_log10(power * gain * gain + 1e-12f);
    }
    const float m2 = s2 / (float)n, rms = sqrtf(m2);
    float *stats = features + n_bands;
    stats[0] = peak * rms;
    stats[1] = peak;
    stats[2] = 0.0f;
    stats[3] = 0.0f;
    stats[4] = 0.0f;
    if (peak > 0.0f) {
        stats[2] = 1.0f / rms;
        stats[3] = (s4 / (float)n) / (m2 * m2);
    }
    if (d2 > 0.0f) {
        stats[4] = d4 * (float)(n - 1u) / (d2 * d2);
    }

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
    static const char stats[] = ";" VW_DSP_STAT_NAMES;
    vw_sha256_update(&sha, stats, sizeof stats - 1u);
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
