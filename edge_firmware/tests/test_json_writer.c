/* Host tests of the JSON writer: templates, refused strings, integers, float32 round trips. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vw_json_writer.h"
#include "vw_test.h"

static char text[256];

/* NUL-terminated copy of the payload, or "<status name>" on an error. */
static const char *result(const vw_jsonw_t *w)
{
    size_t len = 0;
    vw_status_t status = vw_jsonw_finish(w, &len);
    if (status != VW_OK) {
        snprintf(text, sizeof text, "<%s>", vw_status_name(status));
    } else {
        memcpy(text, w->buf, len);
        text[len] = '\0';
    }
    return text;
}

#define CHECK_TEXT(w, want)                                                        \
    do {                                                                           \
        const char *got_ = result(w);                                              \
        if (strcmp(got_, want) != 0) {                                             \
            fprintf(stderr, "%s:%d: got %s, want %s\n", __FILE__, __LINE__, got_, want); \
        }                                                                          \
        VW_CHECK(strcmp(got_, want) == 0);                                         \
    } while (0)

static void test_templates(void)
{
    char buf[160];
    vw_jsonw_t w;
    vw_jsonw_init(&w, buf, sizeof buf);
    static const uint8_t bytes[] = {0x00, 0x7f, 0xab, 0xff};
    static const float f[] = {0.8125f, -1e-7f};
    vw_jsonw_put(&w, "{\"seq\":%u,\"zero\":%u,\"s\":%s,\"n\":%S,\"h\":%x,\"f\":[%f,%f]",
                 (uint64_t)UINT64_MAX, (uint64_t)0, " a-Z~{}[]:,'/", "abcdef", (size_t)3, bytes,
                 sizeof bytes, &f[0], &f[1]);
    vw_jsonw_put(&w, ",\"e\":%s,\"none\":%x}", "", bytes, (size_t)0);
    CHECK_TEXT(&w, "{\"seq\":18446744073709551615,\"zero\":0,\"s\":\" a-Z~{}[]:,'/\","
                   "\"n\":\"abc\",\"h\":\"007fabff\",\"f\":[0.8125,-1.00000001e-7],\"e\":\"\","
                   "\"none\":\"\"}");
}

static void test_misuse_is_refused(void)
{
    static const float nan_ = NAN, minus_inf = -INFINITY;
    char buf[64];
    vw_jsonw_t w;
    /* strings that would need an escape, or are not ASCII */
    static const char *const refused[] = {"q\"b", "a\\b", "\n", "\x01", "\x7f", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        vw_jsonw_init(&w, buf, sizeof buf);
        vw_jsonw_put(&w, "[%s]", refused[i]);
        CHECK_TEXT(&w, "<arg>");
    }
    vw_jsonw_init(&w, buf, sizeof buf); /* a NUL byte inside a counted string */
    vw_jsonw_put(&w, "%S", "ab\0cd", (size_t)5);
    CHECK_TEXT(&w, "<arg>");
    vw_jsonw_init(&w, buf, sizeof buf); /* a NULL string */
    vw_jsonw_put(&w, "[%s]", (const char *)NULL);
    CHECK_TEXT(&w, "<arg>");
    vw_jsonw_init(&w, buf, sizeof buf);
    vw_jsonw_put(&w, "%x", (const uint8_t *)NULL, (size_t)1);
    CHECK_TEXT(&w, "<arg>");
    vw_jsonw_init(&w, buf, sizeof buf); /* non-finite */
    vw_jsonw_put(&w, "%f", &nan_);
    CHECK_TEXT(&w, "<input>");
    vw_jsonw_init(&w, buf, sizeof buf);
    vw_jsonw_put(&w, "[1,%f]", &minus_inf);
    CHECK_TEXT(&w, "<input>");
    vw_jsonw_init(&w, buf, sizeof buf); /* unknown conversions, a template ending in % */
    vw_jsonw_put(&w, "{\"a\":%d}", 1);
    CHECK_TEXT(&w, "<arg>");
    vw_jsonw_init(&w, buf, sizeof buf);
    vw_jsonw_put(&w, "100%");
    CHECK_TEXT(&w, "<arg>");
    vw_jsonw_init(&w, buf, sizeof buf); /* the first error stays */
    vw_jsonw_put(&w, "%f", &nan_);
    vw_jsonw_put(&w, "%s", (const char *)NULL);
    CHECK_TEXT(&w, "<input>");
    vw_jsonw_init(&w, buf, sizeof buf);
    vw_jsonw_put(&w, NULL);
    CHECK_TEXT(&w, "<arg>");
    vw_jsonw_init(&w, NULL, 1);
    CHECK_TEXT(&w, "<arg>");
    VW_CHECK_EQ(vw_jsonw_finish(NULL, NULL), VW_ERR_ARG);
}

static void test_buffer_is_never_overrun(void)
{
    /* every size below the payload's fails with VW_ERR_BUFFER and writes nothing beyond */
    const char *want = "{\"id\":\"pump-7\",\"v\":[1,2.5,\"0a\"]}";
    static const uint8_t ten = 10;
    static const float two_and_a_half = 2.5f;
    for (size_t cap = 0; cap <= strlen(want); cap++) {
        char buf[64];
        memset(buf, '#', sizeof buf);
        vw_jsonw_t w;
        vw_jsonw_init(&w, buf, cap);
        vw_jsonw_put(&w, "{\"id\":%s,\"v\":[%u,%f,%x]}", "pump-7", (uint64_t)1, &two_and_a_half, &ten,
                     (size_t)1);
        size_t len = 0;
        vw_status_t status = vw_jsonw_finish(&w, &len);
        if (cap < strlen(want)) {
            VW_CHECK_EQ(status, VW_ERR_BUFFER);
        } else {
            VW_CHECK_EQ(status, VW_OK);
            VW_CHECK(len == strlen(want) && memcmp(buf, want, len) == 0);
        }
        for (size_t i = cap; i < sizeof buf; i++) {
            VW_CHECK(buf[i] == '#');
        }
    }
}

static int format(float v, char *out)
{
    size_t n = vw_jsonw_format_float(v, out);
    out[n] = '\0';
    return (int)n;
}

static void test_float_texts(void)
{
    static const struct {
        float v;
        const char *want;
    } cases[] = {
        {0.0f, "0.0"},
        {-0.0f, "-0.0"},
        {1.0f, "1.0"},
        {3.0f, "3.0"},
        {0.5f, "0.5"},
        {0.8125f, "0.8125"},
        {-2.25f, "-2.25"},
        {1234.5f, "1234.5"},
        {100000000.0f, "100000000.0"},
        {1e9f, "1e9"},
        {2.5e12f, "2.49999996e12"},
        {1099511627776.0f, "1.09951163e12"},
        {4.0e10f, "4e10"},
        {0.1f, "0.100000001"},
        {1e-5f, "9.99999975e-6"},
        {0.0000152587890625f, "0.0000152587891"},
        {1e-7f, "1.00000001e-7"},
        {3.4028235e38f, "3.40282347e38"},
        {1.17549435e-38f, "1.17549435e-38"},
        {1.4e-45f, "1.40129846e-45"},
        {16777216.0f, "16777216.0"},
        {123456789.0f, "123456792.0"},
    };
    char out[VW_JSONW_FLOAT_MAX + 1];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        format(cases[i].v, out);
        if (strcmp(out, cases[i].want) != 0) {
            fprintf(stderr, "float %.9g: got %s, want %s\n", (double)cases[i].v, out,
                    cases[i].want);
        }
        VW_CHECK(strcmp(out, cases[i].want) == 0);
    }
    VW_CHECK_EQ(vw_jsonw_format_float(NAN, out), 0);
    VW_CHECK_EQ(vw_jsonw_format_float(INFINITY, out), 0);
}

/* Every finite float32 reads back as itself; the text is a JSON number with . or e. */
static int check_round_trip(uint32_t bits)
{
    float v;
    memcpy(&v, &bits, sizeof v);
    if (!isfinite(v)) {
        return 1;
    }
    char out[VW_JSONW_FLOAT_MAX + 1];
    int n = format(v, out);
    float back = strtof(out, NULL);
    uint32_t back_bits;
    memcpy(&back_bits, &back, sizeof back_bits);
    int ok = n > 0 && n <= VW_JSONW_FLOAT_MAX && back_bits == bits &&
             (strchr(out, '.') != NULL || strchr(out, 'e') != NULL);
    if (!ok) {
        fprintf(stderr, "float bits %08x: %s reads back as %08x\n", (unsigned)bits, out,
                (unsigned)back_bits);
    }
    return ok;
}

static void test_float_round_trips(void)
{
    uint32_t state = 12345u;
    int failures = 0;
    for (int i = 0; i < 400000; i++) {
        state = state * 1664525u + 1013904223u;
        failures += !check_round_trip(state);
    }
    /* every exponent, with the extreme and middle mantissas */
    for (uint32_t field = 0; field < 255; field++) {
        static const uint32_t mantissas[] = {0, 1, 2, 0x400000, 0x7ffffe, 0x7fffff, 0x2aaaaa};
        for (size_t j = 0; j < sizeof mantissas / sizeof mantissas[0]; j++) {
            failures += !check_round_trip((field << 23) | mantissas[j]);
            failures += !check_round_trip(0x80000000u | (field << 23) | mantissas[j]);
        }
    }
    VW_CHECK_EQ(failures, 0);
}

int main(void)
{
    test_templates();
    test_misuse_is_refused();
    test_buffer_is_never_overrun();
    test_float_texts();
    test_float_round_trips();
    return vw_test_report("test_json_writer");
}
