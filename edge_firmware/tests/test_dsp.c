/* Unit tests of vw_dsp: spec validation, buffers, features checked against closed forms, and
 * the DSP's own sine and logarithm against the C library's double precision. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vw_dsp.h"
#include "vw_test.h"

#define PI 3.14159265358979323846

static const uint16_t three_bands[] = {0, 10, 100, 513};

static vw_feature_spec_t spec_of(uint16_t window, uint16_t n_bands, const uint16_t *bins)
{
    vw_feature_spec_t spec = {48000u, window, n_bands, bins};
    return spec;
}

/* Deterministic uniform noise in [-1, 1). */
static float noise(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / 8388608.0f - 1.0f;
}

/* A DSP on a malloc'd work buffer of exactly the required size (ASan sees any overrun). */
static float *open_dsp(vw_dsp_t *dsp, const vw_feature_spec_t *spec)
{
    const size_t bytes = vw_dsp_required_bytes(spec->window);
    float *work = malloc(bytes);
    VW_CHECK(work != NULL);
    VW_CHECK_EQ(vw_dsp_init(dsp, spec, work, bytes), VW_OK);
    return work;
}

static int close_to(double got, double want, double rel)
{
    return fabs(got - want) <= rel * fabs(want);
}

static void test_spec_validation(void)
{
    vw_feature_spec_t spec = spec_of(1024u, 3u, three_bands);
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_OK);
    VW_CHECK_EQ(vw_dsp_check_spec(NULL), VW_ERR_ARG);
    spec.band_bins = NULL;
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_ARG);

    const uint16_t bad_windows[] = {0u, 128u, 255u, 257u, 1000u, 3072u, 8192u};
    static const uint16_t one_band[] = {0, 2};
    for (size_t i = 0; i < sizeof bad_windows / sizeof bad_windows[0]; i++) {
        spec = spec_of(bad_windows[i], 1u, one_band);
        VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);
    }
    for (uint32_t w = VW_DSP_MIN_WINDOW; w <= VW_DSP_MAX_WINDOW; w *= 2u) {
        spec = spec_of((uint16_t)w, 1u, one_band);
        VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_OK);
    }

    spec = spec_of(1024u, 3u, three_bands);
    spec.sample_rate_hz = 0u;
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);
    spec.sample_rate_hz = 1000001u;
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);
    spec.sample_rate_hz = 1u;
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_OK);
    spec.sample_rate_hz = 1000000u;
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_OK);

    spec = spec_of(1024u, 0u, three_bands);
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);
    uint16_t many[VW_DSP_MAX_BANDS + 2u];
    for (uint16_t i = 0; i < VW_DSP_MAX_BANDS + 2u; i++) {
        many[i] = i;
    }
    spec = spec_of(4096u, VW_DSP_MAX_BANDS, many); /* one bin per band */
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_OK);
    spec.n_bands = VW_DSP_MAX_BANDS + 1u;
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);

    static const uint16_t equal_edges[] = {0, 10, 10, 20};
    static const uint16_t falling_edges[] = {0, 20, 10, 30};
    static const uint16_t nyquist_plus_one[] = {0, 10, 513};
    static const uint16_t past_nyquist[] = {0, 10, 514};
    spec = spec_of(1024u, 3u, equal_edges);
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);
    spec = spec_of(1024u, 3u, falling_edges);
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);
    spec = spec_of(1024u, 2u, nyquist_plus_one);
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_OK);
    spec = spec_of(1024u, 2u, past_nyquist);
    VW_CHECK_EQ(vw_dsp_check_spec(&spec), VW_ERR_FORMAT);
}

/* The fault names the first broken rule, in the order of vw_spec_fault_t. */
static void test_spec_fault(void)
{
    static const uint16_t falling_past_nyquist[] = {0, 600, 10};
    static const uint16_t past_nyquist[] = {0, 10, 514};
    vw_spec_fault_t fault = VW_SPEC_FAULT_RATE;
    vw_feature_spec_t spec = spec_of(1024u, 3u, three_bands);
    VW_CHECK_EQ(vw_dsp_check_spec_fault(&spec, &fault), VW_OK);
    VW_CHECK_EQ(fault, VW_SPEC_FAULT_NONE);
    VW_CHECK_EQ(vw_dsp_check_spec_fault(NULL, &fault), VW_ERR_ARG);
    VW_CHECK_EQ(fault, VW_SPEC_FAULT_NONE);

    spec = spec_of(1000u, 0u, falling_past_nyquist); /* rate, window, bands, order broken */
    spec.sample_rate_hz = 0u;
    VW_CHECK_EQ(vw_dsp_check_spec_fault(&spec, &fault), VW_ERR_FORMAT);
    VW_CHECK_EQ(fault, VW_SPEC_FAULT_RATE);
    spec.sample_rate_hz = VW_DSP_MAX_RATE_HZ;
    VW_CHECK_EQ(vw_dsp_check_spec_fault(&spec, &fault), VW_ERR_FORMAT);
    VW_CHECK_EQ(fault, VW_SPEC_FAULT_WINDOW);
    spec.window = 1024u;
    VW_CHECK_EQ(vw_dsp_check_spec_fault(&spec, &fault), VW_ERR_FORMAT);
    VW_CHECK_EQ(fault, VW_SPEC_FAULT_BANDS);
    spec.n_bands = 2u;
    VW_CHECK_EQ(vw_dsp_check_spec_fault(&spec, &fault), VW_ERR_FORMAT);
    VW_CHECK_EQ(fault, VW_SPEC_FAULT_ORDER);
    spec = spec_of(1024u, 2u, past_nyquist);
    VW_CHECK_EQ(vw_dsp_check_spec_fault(&spec, &fault), VW_ERR_FORMAT);
    VW_CHECK_EQ(fault, VW_SPEC_FAULT_NYQUIST);
    VW_CHECK_EQ(vw_dsp_check_spec_fault(&spec, NULL), VW_ERR_FORMAT);
}

static void test_buffers(void)
{
    VW_CHECK_EQ(vw_dsp_required_bytes(1024u), (1026u + 257u) * sizeof(float));
    VW_CHECK_EQ(vw_dsp_required_bytes(256u), (258u + 65u) * sizeof(float));
    VW_CHECK_EQ(vw_dsp_required_bytes(4096u), (4098u + 1025u) * sizeof(float));
    VW_CHECK_EQ(vw_dsp_required_bytes(0u), 0);
    VW_CHECK_EQ(vw_dsp_required_bytes(1000u), 0);
    VW_CHECK_EQ(vw_dsp_required_bytes(8192u), 0);

    const vw_feature_spec_t spec = spec_of(1024u, 3u, three_bands);
    const size_t bytes = vw_dsp_required_bytes(1024u);
    uint32_t *work = malloc(bytes + sizeof(uint32_t));
    VW_CHECK(work != NULL);
    vw_dsp_t dsp;
    memset(&dsp, 0, sizeof dsp);
    VW_CHECK_EQ(vw_dsp_init(NULL, &spec, work, bytes), VW_ERR_ARG);
    VW_CHECK_EQ(vw_dsp_init(&dsp, &spec, NULL, bytes), VW_ERR_ARG);
    VW_CHECK_EQ(vw_dsp_init(&dsp, NULL, work, bytes), VW_ERR_ARG);
    const vw_feature_spec_t bad = spec_of(1000u, 3u, three_bands);
    VW_CHECK_EQ(vw_dsp_init(&dsp, &bad, work, bytes), VW_ERR_FORMAT);
    for (size_t offset = 1; offset < 4; offset++) {
        VW_CHECK_EQ(vw_dsp_init(&dsp, &spec, (uint8_t *)work + offset, bytes), VW_ERR_ALIGN);
    }
    VW_CHECK_EQ(vw_dsp_init(&dsp, &spec, work, bytes - 1u), VW_ERR_BUFFER);
    VW_CHECK(dsp.work == NULL); /* untouched by a failed init */
    VW_CHECK_EQ(vw_dsp_init(&dsp, &spec, work + 1, bytes), VW_OK); /* any 4-byte alignment */
    VW_CHECK(dsp.work == (float *)(work + 1));
    VW_CHECK(dsp.cos_table >= dsp.work + 1026);
    VW_CHECK(dsp.cos_table + 257 <= (float *)(work + 1) + bytes / sizeof(float));

    float samples[1024] = {0};
    float features[3 + VW_DSP_N_STATS];
    VW_CHECK_EQ(vw_dsp_features(NULL, samples, features), VW_ERR_ARG);
    VW_CHECK_EQ(vw_dsp_features(&dsp, NULL, features), VW_ERR_ARG);
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, NULL), VW_ERR_ARG);
    vw_dsp_t blank;
    memset(&blank, 0, sizeof blank);
    VW_CHECK_EQ(vw_dsp_features(&blank, samples, features), VW_ERR_ARG);
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_OK);
    free(work);
}

/* A cosine on bin 100: periodic Hann gives X[100] = A N / 4 and X[99] = X[101] = -A N / 8. */
static void test_sine_in_band(double offset)
{
    static const uint16_t bins[] = {0, 50, 99, 102, 200, 513};
    const vw_feature_spec_t spec = spec_of(1024u, 5u, bins);
    vw_dsp_t dsp;
    float *work = open_dsp(&dsp, &spec);
    const double amp = 0.75;
    float samples[1024], features[5 + VW_DSP_N_STATS];
    for (int i = 0; i < 1024; i++) {
        samples[i] = (float)(offset + amp * cos(2.0 * PI * 100.0 * i / 1024.0));
    }
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_OK);
    const double band = amp * amp * (1.0 / 16.0 + 2.0 / 64.0);
    VW_CHECK(fabs(features[2] - log10(band + 1e-12)) < 1e-5);
    for (int b = 0; b < 5; b++) {
        if (b != 2) {
            VW_CHECK(features[b] < log10(band) - 8.0); /* no leakage, no DC */
        }
    }
    VW_CHECK(close_to(features[5], amp / sqrt(2.0), 1e-5)); /* rms */
    VW_CHECK(close_to(features[6], amp, 1e-5));             /* peak, at n = 0 */
    VW_CHECK(close_to(features[7], sqrt(2.0), 1e-5));       /* crest */
    VW_CHECK(close_to(features[8], 1.5, 1e-5));             /* kurtosis of a sine */
    free(work);
}

static float float_of(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* |got - want| in units in the last place of float32 at want (subnormal spacing below). */
static double ulps(float got, double want)
{
    int e;
    frexp(want, &e);
    const double ulp = ldexp(1.0, (e - 24 < -149 ? -149 : e - 24));
    return fabs((double)got - want) / ulp;
}

/* Largest error of vw_dsp_sin over [0, pi/2], every float at a stride and every argument
 * vw_dsp_init gives it; odd; exact at the ends of the range that matter. */
static void test_sin(void)
{
    double worst = 0.0;
    const uint32_t top = bits_of(1.57079637f) + 4u; /* float(pi/2) and a little more */
    for (uint32_t b = 0; b <= top; b += 97u) {
        const float x = float_of(b);
        worst = fmax(worst, ulps(vw_dsp_sin(x), sin((double)x)));
    }
    for (uint32_t b = bits_of(1.4f); b <= top; b++) { /* where the error is largest */
        const float x = float_of(b);
        worst = fmax(worst, ulps(vw_dsp_sin(x), sin((double)x)));
    }
    for (uint32_t k = 0; k <= VW_DSP_MAX_WINDOW / 4u; k++) { /* the arguments used */
        const float x = (float)k * (6.28318531f / (float)VW_DSP_MAX_WINDOW);
        worst = fmax(worst, ulps(vw_dsp_sin(x), sin((double)x)));
    }
    if (worst > 2.0) {
        fprintf(stderr, "vw_dsp_sin: largest error %.3f ulp\n", worst);
    }
    VW_CHECK(worst <= 2.0);
    VW_CHECK(vw_dsp_sin(0.0f) == 0.0f);
    VW_CHECK(vw_dsp_sin(1.57079637f) == 1.0f);
    VW_CHECK(vw_dsp_sin(1e-30f) == 1e-30f);
    VW_CHECK(vw_dsp_sin(FLT_TRUE_MIN) == FLT_TRUE_MIN);
    for (float x = 0.001f; x < 1.5f; x *= 1.7f) {
        VW_CHECK(vw_dsp_sin(-x) == -vw_dsp_sin(x));
    }
}

/* Largest error of vw_dsp_log10 over every positive normal float at a stride and every float
 * of [0.5, 2], where the result is smallest; exact where log10 is; non-finite kept. */
static void test_log10(void)
{
    double worst = 0.0;
    for (uint32_t b = bits_of(FLT_MIN); b <= bits_of(FLT_MAX); b += 331u) {
        const float x = float_of(b);
        worst = fmax(worst, ulps(vw_dsp_log10(x), log10((double)x)));
    }
    for (uint32_t b = bits_of(0.5f); b <= bits_of(2.0f); b++) {
        const float x = float_of(b);
        if (x != 1.0f) {
            worst = fmax(worst, ulps(vw_dsp_log10(x), log10((double)x)));
        }
    }
    if (worst > 1.0) {
        fprintf(stderr, "vw_dsp_log10: largest error %.3f ulp\n", worst);
    }
    VW_CHECK(worst <= 1.0);
    float power = 1.0f;
    for (int k = 0; k <= 10; k++) { /* 10^k is exact in float32 up to 10^10 */
        VW_CHECK(vw_dsp_log10(power) == (float)k);
        power *= 10.0f;
    }
    VW_CHECK(vw_dsp_log10(1e-12f) == -12.0f); /* a band of zero power */
    VW_CHECK(vw_dsp_log10(FLT_MAX) == (float)log10((double)FLT_MAX));
    VW_CHECK(vw_dsp_log10(FLT_MIN) == (float)log10((double)FLT_MIN));
    VW_CHECK(vw_dsp_log10(INFINITY) == INFINITY);
    VW_CHECK(isnan(vw_dsp_log10(NAN)));
    VW_CHECK(isnan(vw_dsp_log10(-NAN)));
}

/* The cosine table of every window size: cos(2 pi k / N) within the sine's 2 ulp and the
 * rounding of its argument, 1 and 0 exactly at the ends, never increasing. */
static void test_cos_table(void)
{
    static const uint16_t one_band[] = {0, 2};
    double worst = 0.0;
    for (uint32_t n = VW_DSP_MIN_WINDOW; n <= VW_DSP_MAX_WINDOW; n *= 2u) {
        const vw_feature_spec_t spec = spec_of((uint16_t)n, 1u, one_band);
        vw_dsp_t dsp;
        float *work = open_dsp(&dsp, &spec);
        const float *table = dsp.cos_table;
        VW_CHECK(table[0] == 1.0f && table[n / 4u] == 0.0f);
        for (uint32_t k = 0; k < n / 4u; k++) {
            worst = fmax(worst, ulps(table[k], cos(2.0 * PI * k / n)));
            VW_CHECK(table[k + 1u] <= table[k]);
        }
        free(work);
    }
    if (worst > 4.0) {
        fprintf(stderr, "cosine table: largest error %.3f ulp\n", worst);
    }
    VW_CHECK(worst <= 4.0);
}

static void test_constant_window(float value)
{
    const vw_feature_spec_t spec = spec_of(1024u, 3u, three_bands);
    vw_dsp_t dsp;
    float *work = open_dsp(&dsp, &spec);
    float samples[1024], features[3 + VW_DSP_N_STATS];
    for (int i = 0; i < 1024; i++) {
        samples[i] = value;
    }
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_OK);
    for (int b = 0; b < 3; b++) {
        VW_CHECK(features[b] == -12.0f); /* log10(0 + 1e-12) */
    }
    for (int s = 3; s < 3 + (int)VW_DSP_N_STATS; s++) {
        VW_CHECK(features[s] == 0.0f);
    }
    free(work);
}

/* The kurtosis of the first difference: (N - 1) / 2 for one impact (d = +a, -a) on a
 * constant; large for a small impact on a slow sine whose plain kurtosis stays 1.5. */
static void test_diff_kurtosis(void)
{
    const vw_feature_spec_t spec = spec_of(1024u, 3u, three_bands);
    vw_dsp_t dsp;
    float *work = open_dsp(&dsp, &spec);
    float samples[1024], features[3 + VW_DSP_N_STATS];
    for (int i = 0; i < 1024; i++) {
        samples[i] = 0.5f;
    }
    samples[500] = 2.5f;
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_OK);
    VW_CHECK(close_to(features[7], 1023.0 / 2.0, 1e-5));
    /* a slow sine of amplitude 1 with an impact of 0.2: the plain kurtosis barely moves
       from the sine's 1.5, the difference's is about 54 */
    for (int i = 0; i < 1024; i++) {
        samples[i] = (float)sin(2.0 * PI * 3.0 * i / 1024.0);
    }
    samples[700] += 0.2f;
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_OK);
    VW_CHECK(features[6] < 1.6f);
    VW_CHECK(features[7] > 50.0f);
    free(work);
}

static void test_non_finite_rejected(void)
{
    const vw_feature_spec_t spec = spec_of(1024u, 3u, three_bands);
    vw_dsp_t dsp;
    float *work = open_dsp(&dsp, &spec);
    float samples[1024], features[3 + VW_DSP_N_STATS];
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    const int where[] = {0, 1, 511, 1023};
    for (size_t v = 0; v < 4; v++) {
        for (size_t w = 0; w < 4; w++) {
            uint32_t state = 7u;
            for (int i = 0; i < 1024; i++) {
                samples[i] = noise(&state);
            }
            samples[where[w]] = bad[v];
            VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_ERR_INPUT);
        }
    }
    /* Finite, but the band powers overflow float32. */
    for (int i = 0; i < 1024; i++) {
        samples[i] = (i & 1) ? 1e30f : -1e30f;
    }
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_ERR_INPUT);
    free(work);
}

/* Parseval: P[0] + 2 sum P[1..N/2-1] + P[N/2] = mean((w x)^2) of the mean-removed window. */
static void test_parseval(void)
{
    for (uint32_t n = VW_DSP_MIN_WINDOW; n <= VW_DSP_MAX_WINDOW; n *= 2u) {
        const uint16_t bins[] = {0, 1, (uint16_t)(n / 2u), (uint16_t)(n / 2u + 1u)};
        const vw_feature_spec_t spec = spec_of((uint16_t)n, 3u, bins);
        vw_dsp_t dsp;
        float *work = open_dsp(&dsp, &spec);
        float *samples = malloc(n * sizeof(float));
        VW_CHECK(samples != NULL);
        uint32_t state = n;
        double mean = 0.0;
        for (uint32_t i = 0; i < n; i++) {
            samples[i] = 2.5f + 0.2f * noise(&state);
            mean += samples[i];
        }
        mean /= n;
        double energy = 0.0;
        for (uint32_t i = 0; i < n; i++) {
            const double w = 0.5 - 0.5 * cos(2.0 * PI * i / n), v = w * (samples[i] - mean);
            energy += v * v;
        }
        float features[3 + VW_DSP_N_STATS];
        const float before = samples[n / 3u];
        VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_OK);
        VW_CHECK(samples[n / 3u] == before); /* input unchanged */
        const double total = pow(10.0, features[0]) + 2.0 * pow(10.0, features[1]) +
                             pow(10.0, features[2]) - 4e-12;
        VW_CHECK(close_to(total, energy / n, 1e-5));
        free(samples);
        free(work);
    }
}

/* Every bin of a 256-point window against a direct DFT in double precision. */
static void test_bins_match_dft(void)
{
    uint16_t bins[130];
    for (uint16_t k = 0; k < 130; k++) {
        bins[k] = k;
    }
    const vw_feature_spec_t spec = spec_of(256u, 129u, bins);
    vw_dsp_t dsp;
    float *work = open_dsp(&dsp, &spec);
    float samples[256], features[129 + VW_DSP_N_STATS];
    double x[256], mean = 0.0;
    uint32_t state = 99u;
    for (int i = 0; i < 256; i++) {
        samples[i] = noise(&state) + (float)sin(2.0 * PI * 17.3 * i / 256.0);
        mean += samples[i];
    }
    mean /= 256.0;
    for (int i = 0; i < 256; i++) {
        x[i] = (samples[i] - mean) * (0.5 - 0.5 * cos(2.0 * PI * i / 256.0));
    }
    VW_CHECK_EQ(vw_dsp_features(&dsp, samples, features), VW_OK);
    int bad_bins = 0;
    for (int k = 0; k <= 128; k++) {
        double re = 0.0, im = 0.0;
        for (int i = 0; i < 256; i++) {
            re += x[i] * cos(2.0 * PI * k * i / 256.0);
            im -= x[i] * sin(2.0 * PI * k * i / 256.0);
        }
        const double power = (re * re + im * im) / (256.0 * 256.0);
        bad_bins += fabs(features[k] - log10(power + 1e-12)) > 1e-4;
    }
    VW_CHECK_EQ(bad_bins, 0);
    free(work);
}

static void test_spec_id(void)
{
    /* the ids the back end computes for the same specs (hashlib, in Python) */
    static const uint16_t small[] = {1, 2, 4, 8, 16, 32, 64, 129};
    static const uint16_t wide[] = {0, 2049};
    const vw_feature_spec_t a = {16000, 256, 7, small};
    const vw_feature_spec_t b = {1000000, 4096, 1, wide};
    char id[VW_DSP_SPEC_ID_MAX + 1];
    VW_CHECK_EQ(vw_dsp_spec_id(&a, id), VW_OK);
    VW_CHECK(strcmp(id, "fs-16000-256-7-a1e58675") == 0);
    VW_CHECK_EQ(vw_dsp_spec_id(&b, id), VW_OK);
    VW_CHECK(strcmp(id, "fs-1000000-4096-1-55e13188") == 0);
    VW_CHECK(strlen(id) <= VW_DSP_SPEC_ID_MAX);
    const vw_feature_spec_t bad = {16000, 300, 7, small};
    VW_CHECK_EQ(vw_dsp_spec_id(&bad, id), VW_ERR_FORMAT);
    VW_CHECK_EQ(vw_dsp_spec_id(&a, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_dsp_spec_id(NULL, id), VW_ERR_ARG);
}

int main(void)
{
    test_sin();
    test_log10();
    test_cos_table();
    test_spec_id();
    test_spec_validation();
    test_spec_fault();
    test_buffers();
    test_sine_in_band(0.0);
    test_sine_in_band(3.0); /* the DC offset is removed */
    test_constant_window(0.1f);
    test_constant_window(-7.5f);
    test_constant_window(0.0f);
    test_diff_kurtosis();
    test_non_finite_rejected();
    test_parseval();
    test_bins_match_dft();
    return vw_test_report("test_dsp");
}
