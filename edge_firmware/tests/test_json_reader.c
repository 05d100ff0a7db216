/*
 * The JSON reader: the protocol's downlink examples, every prefix of valid payloads,
 * nesting at and past the limit, numbers (syntax, integer range, correctly rounded
 * doubles checked against the C library's strtod), escapes, UTF-8, duplicate keys,
 * types, skipped unknown fields and strings that do not fit.
 *
 * Every payload is copied into a heap block of exactly its length, so AddressSanitizer
 * reports any read past its end (the reader never sees a NUL terminator).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vw_json_reader.h"
#include "vw_test.h"

/* ---- payloads in exactly-sized heap blocks ------------------------------ */

static char *held; /* the payload the current document refers to */

static vw_status_t parse_n(vw_json_doc_t *doc, const char *text, size_t len, unsigned depth)
{
    free(held);
    held = malloc(len > 0 ? len : 1);
    if (held == NULL) {
        abort();
    }
    memcpy(held, text, len);
    return vw_json_parse(doc, len > 0 ? held : NULL, len, depth);
}

static vw_status_t parse(vw_json_doc_t *doc, const char *text)
{
    return parse_n(doc, text, strlen(text), VW_JSON_DEFAULT_DEPTH);
}

/* The status of parsing @p text (NUL-terminated) with the default depth. */
static vw_status_t status_of(const char *text)
{
    vw_json_doc_t doc;
    return parse(&doc, text);
}

/* The status of reading member "v" of @p text as a double; the value in *out. */
static vw_status_t number_of(const char *text, double *out)
{
    vw_json_doc_t doc;
    vw_status_t status = parse(&doc, text);
    return status != VW_OK ? status : vw_json_get_number(&doc, "v", out, NULL);
}

static vw_status_t int_of(const char *text, int64_t *out)
{
    vw_json_doc_t doc;
    vw_status_t status = parse(&doc, text);
    return status != VW_OK ? status : vw_json_get_int(&doc, "v", INT64_MIN, INT64_MAX, out, NULL);
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- the protocol's examples -------------------------------------------- */

static const char CMD[] = "{\n  \"id\": \"cmd-20240610-0001\",\n  \"t\": 1718000020000,\n"
                          "  \"cmd\": \"set_threshold\",\n  \"threshold\": 0.3\n}\n";

static const char JOB[] =
    "{\"job\":\"rollout-42.pump-ae.v8\",\"model_id\":\"pump-ae\",\"model_version\":8,"
    "\"size\":23552,"
    "\"sha256\":\"bcd392227acbf97a54231a00e31c0ac45a4d105f4c0e58c339b544104f708f18\","
    "\"chunk_size\":4096,\"signature\":\"ImfWqG2+f7c2ZkHYJnJCWwmJj7XDtCwytrZqgizpNwzI1bGMApWUP4Po"
    "RlOUe4iSWLACzsc6Dnk4L2g5LIKNRQ==\",\"rollback\":true}";

static void test_command_example(void)
{
    vw_json_doc_t doc;
    char id[65], cmd[32];
    size_t len = 0;
    int64_t t = 0;
    double threshold = 0.0;
    int found = -1;
    VW_CHECK_EQ(parse(&doc, CMD), VW_OK);
    VW_CHECK_EQ(vw_json_get_string(&doc, "id", id, sizeof id, &len, NULL), VW_OK);
    VW_CHECK(strcmp(id, "cmd-20240610-0001") == 0);
    VW_CHECK_EQ(len, 17);
    VW_CHECK_EQ(vw_json_get_int(&doc, "t", 1577836800000, INT64_MAX, &t, NULL), VW_OK);
    VW_CHECK_EQ(t, 1718000020000);
    VW_CHECK_EQ(vw_json_get_string(&doc, "cmd", cmd, sizeof cmd, NULL, NULL), VW_OK);
    VW_CHECK(strcmp(cmd, "set_threshold") == 0);
    VW_CHECK_EQ(vw_json_get_number(&doc, "threshold", &threshold, &found), VW_OK);
    VW_CHECK_EQ(found, 1);
    VW_CHECK(threshold == 0.3);
    /* An absent optional field: VW_OK, found 0, output untouched; required: refused. */
    threshold = 42.0;
    VW_CHECK_EQ(vw_json_get_number(&doc, "missing", &threshold, &found), VW_OK);
    VW_CHECK_EQ(found, 0);
    VW_CHECK(threshold == 42.0);
    VW_CHECK_EQ(vw_json_get_number(&doc, "missing", &threshold, NULL), VW_ERR_MESSAGE);
}

static void test_ota_job_example(void)
{
    vw_json_doc_t doc;
    char sha[65], signature[89], small[64];
    int64_t version = 0, size = 0, chunk = 0;
    int rollback = 0, found = 0;
    VW_CHECK_EQ(parse(&doc, JOB), VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "model_version", 0, UINT32_MAX, &version, NULL), VW_OK);
    VW_CHECK_EQ(version, 8);
    VW_CHECK_EQ(vw_json_get_int(&doc, "size", 1, 16777216, &size, NULL), VW_OK);
    VW_CHECK_EQ(size, 23552);
    VW_CHECK_EQ(vw_json_get_int(&doc, "chunk_size", 64, 65536, &chunk, NULL), VW_OK);
    VW_CHECK_EQ(chunk, 4096);
    VW_CHECK_EQ(vw_json_get_string(&doc, "sha256", sha, sizeof sha, NULL, NULL), VW_OK);
    VW_CHECK(strcmp(sha, "bcd392227acbf97a54231a00e31c0ac45a4d105f4c0e58c339b544104f708f18") == 0);
    VW_CHECK_EQ(vw_json_get_string(&doc, "signature", signature, sizeof signature, NULL, NULL),
                VW_OK);
    VW_CHECK_EQ(strlen(signature), 88);
    VW_CHECK_EQ(vw_json_get_bool(&doc, "rollback", &rollback, &found), VW_OK);
    VW_CHECK_EQ(rollback, 1);
    VW_CHECK_EQ(found, 1);
    /* 88 characters do not fit in 64 bytes: refused, and the output is left empty. */
    memset(small, 'x', sizeof small);
    VW_CHECK_EQ(vw_json_get_string(&doc, "signature", small, sizeof small, NULL, NULL),
                VW_ERR_MESSAGE);
    VW_CHECK_EQ(small[0], '\0');
    /* A range the value is outside of. */
    VW_CHECK_EQ(vw_json_get_int(&doc, "chunk_size", 64, 4095, &chunk, NULL), VW_ERR_MESSAGE);
}

/* ---- truncation: no proper prefix of a valid payload is valid ----------- */

static void check_every_prefix(const char *text)
{
    const size_t n = strlen(text);
    vw_json_doc_t doc;
    int refused = 1;
    for (size_t len = 0; len < n; len++) {
        /* A prefix that ends after the closing brace only loses trailing whitespace. */
        const int complete = strchr(" \t\r\n", text[len]) != NULL &&
                             strspn(text + len, " \t\r\n") == n - len;
        const vw_status_t status = parse_n(&doc, text, len, VW_JSON_DEFAULT_DEPTH);
        if (!complete && status != VW_ERR_JSON) {
            fprintf(stderr, "prefix of %zu bytes accepted: %.*s\n", len, (int)len, text);
            refused = 0;
        }
    }
    VW_CHECK(refused);
    VW_CHECK_EQ(parse_n(&doc, text, n, VW_JSON_DEFAULT_DEPTH), VW_OK);
}

static void test_truncated_at_every_byte(void)
{
    check_every_prefix(CMD);
    check_every_prefix(JOB);
    check_every_prefix("{\"a\":[1,-2.5e+3,true,false,null,{\"b\":{}},[]],"
                       "\"c\":\"\\u00e9\\ud83d\\ude00"
                       "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\n\"}");
    check_every_prefix(" {\"x\" : -0.0 , \"y\" :\t[ ] }\r\n");
}

/* ---- structure ----------------------------------------------------------- */

static void test_structure(void)
{
    static const char *const good[] = {
        "{}", " {}", "{} ", "\t\r\n{ }\n", "{\"a\":1}", "{\"\":1}", "{\"a\":[]}",
        "{\"a\":{}}", "{\"a\":[[],[[]],{}]}", "{\"a\":null}", "{\"a\":\"\"}",
        "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":{\"e\":[true,false,null]}}}",
        "{ \"a\" : 1 , \"b\" : [ 1 , 2 ] }",
    };
    static const char *const bad[] = {
        "", " ", "{", "}", "{{}}", "{]", "[]", "[{}]", "1", "\"s\"", "true", "null",
        "{}{}", "{} x", "{},", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}",
        "{,\"a\":1}", "{\"a\":1,,\"b\":2}", "{\"a\":1 \"b\":2}", "{\"a\":[1,]}", "{\"a\":[,1]}",
        "{\"a\":[1 2]}", "{\"a\":[1}", "{\"a\":{]}", "{a:1}", "{'a':1}", "{\"a\":'x'}",
        "{1:1}", "{null:1}", "{\"a\":1}}", "{\"a\":tru}", "{\"a\":truee}", "{\"a\":True}",
        "{\"a\":nul}", "{\"a\":undefined}", "{\"a\":1}/* c */", "{/* c */}", "{\"a\":1 // c\n}",
        "{\"a\":\v1}", "{\"a\":\f1}", "{\"a\":1}\v", "\xef\xbb\xbf{}", "{\"a\":\xc3\xa9}",
        "{\"a\":[1]]}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        VW_CHECK_EQ(status_of(good[i]), VW_OK);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const vw_status_t status = status_of(bad[i]);
        if (status != VW_ERR_JSON) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
        }
        VW_CHECK_EQ(status, VW_ERR_JSON);
    }
    /* A NUL byte is not whitespace, even after the object. */
    vw_json_doc_t doc;
    VW_CHECK_EQ(parse_n(&doc, "{}\0", 3, 16), VW_ERR_JSON);
    VW_CHECK_EQ(parse_n(&doc, "{\"a\":\0}", 7, 16), VW_ERR_JSON);
}

/* ---- nesting ------------------------------------------------------------- */

/* {"a": then depth - 1 nested containers (alternating [ and {"k":), closed again. */
static size_t nested(char *out, unsigned depth)
{
    size_t n = 0;
    n += (size_t)sprintf(out + n, "{\"a\":");
    for (unsigned d = 1; d < depth; d++) {
        n += (size_t)sprintf(out + n, d % 2 ? "[" : "{\"k\":");
    }
    n += (size_t)sprintf(out + n, "0");
    for (unsigned d = depth - 1; d >= 1; d--) {
        out[n++] = d % 2 ? ']' : '}';
    }
    out[n++] = '}';
    out[n] = '\0';
    return n;
}

static void test_nesting(void)
{
    static char text[8 * VW_JSON_MAX_DEPTH + 64];
    vw_json_doc_t doc;
    for (unsigned limit = 1; limit <= VW_JSON_MAX_DEPTH; limit++) {
        size_t n = nested(text, limit);
        VW_CHECK_EQ(parse_n(&doc, text, n, limit), VW_OK);
        if (limit > 1) {
            VW_CHECK_EQ(parse_n(&doc, text, n, limit - 1), VW_ERR_JSON);
        }
    }
    /* max_depth 1: only scalars under the top level. */
    VW_CHECK_EQ(parse_n(&doc, "{\"a\":1}", 7, 1), VW_OK);
    VW_CHECK_EQ(parse_n(&doc, "{\"a\":[]}", 8, 1), VW_ERR_JSON);
    VW_CHECK_EQ(parse_n(&doc, "{\"a\":{}}", 8, 1), VW_ERR_JSON);
    /* Depth is the number of open containers, not their total: siblings do not add up. */
    VW_CHECK_EQ(parse_n(&doc, "{\"a\":[],\"b\":[],\"c\":{}}", 22, 2), VW_OK);
    /* A million brackets: refused at the limit, with no recursion to overflow. */
    const size_t deep = 1000000;
    char *brackets = malloc(deep + 6);
    if (brackets == NULL) {
        abort();
    }
    memcpy(brackets, "{\"a\":", 5);
    memset(brackets + 5, '[', deep);
    VW_CHECK_EQ(parse_n(&doc, brackets, deep + 5, VW_JSON_MAX_DEPTH), VW_ERR_JSON);
    free(brackets);
    /* The depth argument's range. */
    VW_CHECK_EQ(parse_n(&doc, "{}", 2, 0), VW_ERR_ARG);
    VW_CHECK_EQ(parse_n(&doc, "{}", 2, VW_JSON_MAX_DEPTH + 1), VW_ERR_ARG);
}

/* ---- numbers ------------------------------------------------------------- */

static void test_number_syntax(void)
{
    static const char *const good[] = {
        "0", "-0", "1", "-1", "10", "0.0", "0.5", "-0.5", "1e5", "1E5", "1e+5", "1e-5",
        "1.5e05", "0e0", "-0e-0", "123456789012345678901234567890", "1.000000000000000000001",
    };
    static const char *const bad[] = {
        "01", "-01", "00", "00.5", "+1", ".5", "-.5", "1.", "1.e5", "1e", "1e+", "1e-",
        "-", "--1", "0x10", "1_000", "NaN", "Infinity", "-Infinity", "inf", "1.5.5", "1e5e5",
        "- 1", "1 2", "0-1", "1e5.5",
    };
    char text[64];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, "{\"v\":%s}", good[i]);
        VW_CHECK_EQ(status_of(text), VW_OK);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"v\":%s}", bad[i]);
        const vw_status_t status = status_of(text);
        if (status != VW_ERR_JSON) {
            fprintf(stderr, "accepted number: %s\n", bad[i]);
        }
        VW_CHECK_EQ(status, VW_ERR_JSON);
    }
}

static void test_integers(void)
{
    int64_t v = 0;
    VW_CHECK_EQ(int_of("{\"v\":0}", &v), VW_OK);
    VW_CHECK_EQ(v, 0);
    VW_CHECK_EQ(int_of("{\"v\":-0}", &v), VW_OK);
    VW_CHECK_EQ(v, 0);
    VW_CHECK_EQ(int_of("{\"v\":9223372036854775807}", &v), VW_OK);
    VW_CHECK(v == INT64_MAX);
    VW_CHECK_EQ(int_of("{\"v\":-9223372036854775808}", &v), VW_OK);
    VW_CHECK(v == INT64_MIN);
    VW_CHECK_EQ(int_of("{\"v\":4294967295}", &v), VW_OK);
    VW_CHECK_EQ(v, 4294967295);
    /* Beyond int64, beyond uint64, a thousand digits: out of range, not a wrap-around. */
    VW_CHECK_EQ(int_of("{\"v\":9223372036854775808}", &v), VW_ERR_MESSAGE);
    VW_CHECK_EQ(int_of("{\"v\":-9223372036854775809}", &v), VW_ERR_MESSAGE);
    VW_CHECK_EQ(int_of("{\"v\":18446744073709551615}", &v), VW_ERR_MESSAGE);
    VW_CHECK_EQ(int_of("{\"v\":18446744073709551616}", &v), VW_ERR_MESSAGE);
    VW_CHECK_EQ(int_of("{\"v\":36893488147419103232}", &v), VW_ERR_MESSAGE);
    char big[1100];
    memcpy(big, "{\"v\":", 5);
    memset(big + 5, '9', 1000);
    memcpy(big + 1005, "}", 2);
    VW_CHECK_EQ(int_of(big, &v), VW_ERR_MESSAGE);
    /* Integers only: a fraction or an exponent is a number, not an integer. */
    static const char *const not_int[] = {
        "{\"v\":1.0}", "{\"v\":1e3}", "{\"v\":1E3}", "{\"v\":-0.0}", "{\"v\":0e0}",
        "{\"v\":true}", "{\"v\":false}", "{\"v\":null}", "{\"v\":\"1\"}", "{\"v\":[1]}",
        "{\"v\":{\"v\":1}}",
    };
    for (size_t i = 0; i < sizeof not_int / sizeof not_int[0]; i++) {
        v = 7;
        VW_CHECK_EQ(int_of(not_int[i], &v), VW_ERR_MESSAGE);
        VW_CHECK_EQ(v, 7);
    }
    /* The range is inclusive at both ends. */
    vw_json_doc_t doc;
    VW_CHECK_EQ(parse(&doc, "{\"lo\":64,\"hi\":65536,\"neg\":-5}"), VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "lo", 64, 65536, &v, NULL), VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "lo", 65, 65536, &v, NULL), VW_ERR_MESSAGE);
    VW_CHECK_EQ(vw_json_get_int(&doc, "hi", 64, 65536, &v, NULL), VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "hi", 64, 65535, &v, NULL), VW_ERR_MESSAGE);
    VW_CHECK_EQ(vw_json_get_int(&doc, "neg", 0, 10, &v, NULL), VW_ERR_MESSAGE);
    VW_CHECK_EQ(vw_json_get_int(&doc, "neg", -5, -5, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, -5);
    VW_CHECK_EQ(vw_json_get_int(&doc, "neg", 1, 0, &v, NULL), VW_ERR_ARG);
}

static void test_doubles(void)
{
    /* Literals the compiler rounds correctly, the decimal text the reader reads. */
    static const struct {
        const char *text;
        double value;
    } cases[] = {
        {"0.8125", 0.8125},
        {"1e-7", 1e-7},
        {"1e-07", 1e-7},
        {"0.3", 0.3},
        {"0.1", 0.1},
        {"0.30000000000000004", 0.30000000000000004},
        {"0.0213", 0.0213},
        {"1e12", 1e12},
        {"1000000000000", 1e12},
        {"1718000020000", 1718000020000.0},
        {"-2.5", -2.5},
        {"3", 3.0},
        {"123456789", 123456789.0},
        {"1.7976931348623157e308", 1.7976931348623157e308},   /* largest double */
        {"2.2250738585072014e-308", 2.2250738585072014e-308}, /* smallest normal */
        {"2.2250738585072011e-308", 2.2250738585072011e-308}, /* largest subnormal */
        {"4.9406564584124654e-324", 4.9406564584124654e-324}, /* smallest subnormal */
        {"5e-324", 5e-324},
        {"2.4703282292062328e-324", 5e-324}, /* just above half of it: rounds up */
        {"2.4703282292062327e-324", 0.0},    /* just below half: rounds to zero */
        {"1e-400", 0.0},
        {"9007199254740993", 9007199254740992.0}, /* a tie: to even */
        {"9007199254740995", 9007199254740996.0}, /* a tie: to even */
        {"9007199254740993.0000000000001", 9007199254740994.0}, /* just above the tie */
        {"1.00000000000000011102230246251565404236316680908203125", 1.0}, /* exact tie */
        {"123456789012345678901234567890", 123456789012345678901234567890.0},
        {"0.000000000000000000000000000001", 1e-30},
        {"1e308", 1e308},
        {"8.98846567431158e307", 8.98846567431158e307},
        {"1e23", 1e23},
        {"8.589973e9", 8.589973e9},
        {"2.2250738585072012e-308", 2.2250738585072012e-308},
    };
    char text[160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -1.0;
        snprintf(text, sizeof text, "{\"v\":%s}", cases[i].text);
        VW_CHECK_EQ(number_of(text, &v), VW_OK);
        if (!same_bits(v, cases[i].value)) {
            fprintf(stderr, "%s read as %.17g, expected %.17g\n", cases[i].text, v, cases[i].value);
        }
        VW_CHECK(same_bits(v, cases[i].value));
    }
    double v = 1.0;
    VW_CHECK_EQ(number_of("{\"v\":-0}", &v), VW_OK);
    VW_CHECK(v == 0.0 && signbit(v));
    VW_CHECK_EQ(number_of("{\"v\":-1e-400}", &v), VW_OK);
    VW_CHECK(v == 0.0 && signbit(v));
    /* Past 19 significant digits the rest is only "not zero": a number within 1e-19 of a
     * midpoint may read as either neighbour (documented), here the lower one. */
    VW_CHECK_EQ(number_of("{\"v\":1.00000000000000011102230246251565404236316680908203126}", &v),
                VW_OK);
    VW_CHECK(v == 1.0 || v == 1.0000000000000002);
    /* Beyond the largest double: refused, like the protocol's non_finite. */
    static const char *const too_large[] = {
        "{\"v\":1e999}", "{\"v\":-1e999}", "{\"v\":1.7976931348623159e308}", "{\"v\":1e309}",
        "{\"v\":1e999999999999999999999}",
    };
    for (size_t i = 0; i < sizeof too_large / sizeof too_large[0]; i++) {
        VW_CHECK_EQ(number_of(too_large[i], &v), VW_ERR_MESSAGE);
    }
    /* The largest finite value still reads; the halfway point to 2^1024 does not. */
    VW_CHECK_EQ(number_of("{\"v\":1.7976931348623158e308}", &v), VW_OK);
    VW_CHECK(v == 1.7976931348623157e308);
    VW_CHECK_EQ(number_of("{\"v\":1e-99999999999999999}", &v), VW_OK);
    VW_CHECK(v == 0.0);
    /* Zero is zero whatever its exponent, beyond either end of the range too. */
    static const char *const zeros_with_exponents[] = {
        "{\"v\":0e999}", "{\"v\":0.000e400}", "{\"v\":0e-999}", "{\"v\":-0e999}",
    };
    for (size_t i = 0; i < sizeof zeros_with_exponents / sizeof zeros_with_exponents[0]; i++) {
        v = 1.0;
        VW_CHECK_EQ(number_of(zeros_with_exponents[i], &v), VW_OK);
        VW_CHECK(v == 0.0 && (signbit(v) != 0) == (i == 3));
    }
    /* A long run of zeros before the digits, and after them. */
    char zeros[3000];
    size_t n = (size_t)sprintf(zeros, "{\"v\":0.");
    memset(zeros + n, '0', 2000);
    sprintf(zeros + n + 2000, "8125e2000}");
    VW_CHECK_EQ(number_of(zeros, &v), VW_OK);
    VW_CHECK(v == 0.8125);
    n = (size_t)sprintf(zeros, "{\"v\":8125");
    memset(zeros + n, '0', 2000);
    sprintf(zeros + n + 2000, "e-2004}");
    VW_CHECK_EQ(number_of(zeros, &v), VW_OK);
    VW_CHECK(v == 0.8125);
    /* Not numbers. */
    static const char *const not_number[] = {
        "{\"v\":\"1\"}", "{\"v\":true}", "{\"v\":null}", "{\"v\":[1]}", "{\"v\":{}}",
    };
    for (size_t i = 0; i < sizeof not_number / sizeof not_number[0]; i++) {
        VW_CHECK_EQ(number_of(not_number[i], &v), VW_ERR_MESSAGE);
    }
}

/* A deterministic generator (xorshift64*) for the comparisons with the C library. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

/* Random decimals of 1..19 significant digits over the whole double range, and the text
 * of random doubles: the reader and glibc's strtod (correctly rounded) agree bit for bit. */
static void test_doubles_against_strtod(void)
{
    char text[96], literal[64];
    int mismatches = 0;
    for (int i = 0; i < 100000; i++) {
        if (i % 3 == 0) {
            /* the shortest text of a random double, as a JSON encoder prints it */
            uint64_t bits = rng();
            double d;
            if (rng() % 8 == 0) {
                bits &= ~(UINT64_C(0x7FF) << 52); /* a subnormal */
            }
            memcpy(&d, &bits, sizeof d);
            if (!isfinite(d)) {
                continue;
            }
            snprintf(literal, sizeof literal, "%.17g", d);
        } else {
            const unsigned digits = 1u + (unsigned)(rng() % 19u);
            size_t n = 0;
            if (rng() % 2) {
                literal[n++] = '-';
            }
            const unsigned point = (unsigned)(rng() % (digits + 1u));
            for (unsigned k = 0; k < digits; k++) {
                if (k == point && k > 0) {
                    literal[n++] = '.';
                }
                literal[n++] = (char)('0' + (k == 0 ? 1u + rng() % 9u : rng() % 10u));
            }
            snprintf(literal + n, sizeof literal - n, "e%d", (int)(rng() % 680u) - 360);
        }
        double expected = strtod(literal, NULL), v = 0.0;
        snprintf(text, sizeof text, "{\"v\":%s}", literal);
        const vw_status_t status = number_of(text, &v);
        const int ok = isfinite(expected) ? status == VW_OK && same_bits(v, expected)
                                          : status == VW_ERR_MESSAGE;
        if (!ok && mismatches++ < 10) {
            fprintf(stderr, "%s: read %.17g (status %d), strtod %.17g\n", literal, v, status,
                    expected);
        }
    }
    VW_CHECK_EQ(mismatches, 0);
}

static void test_integers_against_strtoll(void)
{
    char text[64];
    int mismatches = 0;
    for (int i = 0; i < 20000; i++) {
        const int64_t x = (int64_t)(rng() >> (rng() % 64u)) * (rng() % 2 ? 1 : -1);
        int64_t v = 0;
        snprintf(text, sizeof text, "{\"v\":%lld}", (long long)x);
        if (int_of(text, &v) != VW_OK || v != x) {
            mismatches++;
        }
    }
    VW_CHECK_EQ(mismatches, 0);
}

/* ---- strings ------------------------------------------------------------- */

static vw_status_t string_of(const char *text, char *out, size_t out_size, size_t *len)
{
    vw_json_doc_t doc;
    vw_status_t status = parse(&doc, text);
    return status != VW_OK ? status : vw_json_get_string(&doc, "v", out, out_size, len, NULL);
}

static void test_escapes(void)
{
    char out[64];
    size_t len = 0;
    VW_CHECK_EQ(string_of("{\"v\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", out, sizeof out, &len), VW_OK);
    VW_CHECK(strcmp(out, "\"\\/\b\f\n\r\t") == 0);
    VW_CHECK_EQ(len, 8);
    /* \u escapes become UTF-8: 1, 2, 3 bytes, and 4 from a surrogate pair. */
    VW_CHECK_EQ(string_of("{\"v\":\"\\u0041\\u00E9\\u20ac\\uD83D\\uDE00\\u007f\\u0080\\u07ff"
                          "\\u0800\\uffff\\udbff\\udfff\"}",
                          out, sizeof out, &len),
                VW_OK);
    VW_CHECK(strcmp(out, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80"
                         "\xef\xbf\xbf\xf4\x8f\xbf\xbf") == 0);
    VW_CHECK_EQ(len, 25);
    /* Raw UTF-8 is copied as it is. */
    VW_CHECK_EQ(string_of("{\"v\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", out, sizeof out,
                          &len),
                VW_OK);
    VW_CHECK(strcmp(out, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
    /* \u0000 is valid JSON, but not a C string: refused when read, and only then. */
    vw_json_doc_t doc;
    VW_CHECK_EQ(parse(&doc, "{\"v\":\"a\\u0000b\",\"w\":\"ok\"}"), VW_OK);
    VW_CHECK_EQ(vw_json_get_string(&doc, "v", out, sizeof out, NULL, NULL), VW_ERR_MESSAGE);
    VW_CHECK_EQ(out[0], '\0');
    VW_CHECK_EQ(vw_json_get_string(&doc, "w", out, sizeof out, NULL, NULL), VW_OK);
    static const char *const bad[] = {
        "\\x", "\\U0041", "\\u12", "\\u12G4", "\\uZZZZ", "\\", "\\ ", "\\'", "\\0",
        "\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud800x", "\\ud800\\u0041",
        "\\ud800\\ud800", "\\ud800\\n", "\\udc00\\ud800", "\\ud800\\", "\\ud800\\u",
        "\\ud800\\udc0",
    };
    char text[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"v\":\"%s\"}", bad[i]);
        const vw_status_t status = status_of(text);
        if (status != VW_ERR_JSON) {
            fprintf(stderr, "accepted escape: %s\n", bad[i]);
        }
        VW_CHECK_EQ(status, VW_ERR_JSON);
    }
}

static void test_utf8(void)
{
    static const char *const good[] = {
        "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xe1\x80\x80", "\xec\xbf\xbf",
        "\xed\x80\x80", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
        "\xf1\x80\x80\x80", "\xf3\xbf\xbf\xbf", "\xf4\x80\x80\x80", "\xf4\x8f\xbf\xbf",
    };
    static const char *const bad[] = {
        "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2\x7f", "\xc2\xc0",
        "\xe0\x80\x80", "\xe0\x9f\xbf", "\xe0\xa0", "\xe2\x82", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80", "\xfe", "\xff", "\xf0\x90\x80", "\xe2\x28\xa1",
        "\x01", "\x1f", "\n", "\t",
    };
    char text[64];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, "{\"v\":\"a%sb\"}", good[i]);
        VW_CHECK_EQ(status_of(text), VW_OK);
        /* As a key too. */
        snprintf(text, sizeof text, "{\"%s\":1}", good[i]);
        VW_CHECK_EQ(status_of(text), VW_OK);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"v\":\"a%sb\"}", bad[i]);
        VW_CHECK_EQ(status_of(text), VW_ERR_JSON);
        snprintf(text, sizeof text, "{\"%s\":1}", bad[i]);
        VW_CHECK_EQ(status_of(text), VW_ERR_JSON);
    }
    /* A raw NUL inside a string. */
    vw_json_doc_t doc;
    VW_CHECK_EQ(parse_n(&doc, "{\"v\":\"a\0b\"}", 11, 16), VW_ERR_JSON);
}

static void test_strings_that_do_not_fit(void)
{
    char out[8];
    size_t len = 99;
    /* 7 bytes and the NUL fit exactly; 8 do not. */
    VW_CHECK_EQ(string_of("{\"v\":\"1234567\"}", out, sizeof out, &len), VW_OK);
    VW_CHECK(strcmp(out, "1234567") == 0);
    VW_CHECK_EQ(len, 7);
    VW_CHECK_EQ(string_of("{\"v\":\"12345678\"}", out, sizeof out, &len), VW_ERR_MESSAGE);
    VW_CHECK_EQ(out[0], '\0');
    /* The limit counts unescaped UTF-8 bytes, not characters of the JSON text. */
    VW_CHECK_EQ(string_of("{\"v\":\"\\u0041\\u0042\\u0043\\u0044\\u0045\\u0046\\u0047\"}", out,
                          sizeof out, &len),
                VW_OK);
    VW_CHECK(strcmp(out, "ABCDEFG") == 0);
    VW_CHECK_EQ(string_of("{\"v\":\"12345\\u00e9\"}", out, sizeof out, &len), VW_OK);
    VW_CHECK_EQ(len, 7);
    VW_CHECK_EQ(string_of("{\"v\":\"123456\\u00e9\"}", out, sizeof out, &len), VW_ERR_MESSAGE);
    VW_CHECK_EQ(string_of("{\"v\":\"1234\\ud83d\\ude00\"}", out, sizeof out, &len), VW_ERR_MESSAGE);
    VW_CHECK_EQ(string_of("{\"v\":\"123\\ud83d\\ude00\"}", out, sizeof out, &len), VW_OK);
    /* out_size 1 holds only the empty string. */
    VW_CHECK_EQ(string_of("{\"v\":\"\"}", out, 1, &len), VW_OK);
    VW_CHECK_EQ(len, 0);
    VW_CHECK_EQ(string_of("{\"v\":\"a\"}", out, 1, &len), VW_ERR_MESSAGE);
}

/* ---- keys, duplicates, types, unknown fields ----------------------------- */

static void test_keys(void)
{
    vw_json_doc_t doc;
    int64_t v = 0;
    int found = 0;
    /* Escaped keys match their unescaped form. */
    VW_CHECK_EQ(parse(&doc, "{\"\\u0061b\":1,\"\\u00e9\":2,\"q\\\"\":3,\"\\ud83d\\ude00\":4}"),
                VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "ab", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 1);
    VW_CHECK_EQ(vw_json_get_int(&doc, "\xc3\xa9", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 2);
    VW_CHECK_EQ(vw_json_get_int(&doc, "q\"", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 3);
    VW_CHECK_EQ(vw_json_get_int(&doc, "\xf0\x9f\x98\x80", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 4);
    /* No prefix or extension matches. */
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 9, &v, &found), VW_OK);
    VW_CHECK_EQ(found, 0);
    VW_CHECK_EQ(vw_json_get_int(&doc, "abc", 0, 9, &v, &found), VW_OK);
    VW_CHECK_EQ(found, 0);
    VW_CHECK_EQ(vw_json_get_int(&doc, "", 0, 9, &v, &found), VW_OK);
    VW_CHECK_EQ(found, 0);
    /* The empty key, and a key holding \u0000 (never equal to a C string). */
    VW_CHECK_EQ(parse(&doc, "{\"\":5,\"a\\u0000\":6}"), VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 5);
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 9, &v, &found), VW_OK);
    VW_CHECK_EQ(found, 0);
}

static void test_duplicate_keys(void)
{
    vw_json_doc_t doc;
    int64_t v = 0;
    int found = 0;
    VW_CHECK_EQ(parse(&doc, "{\"a\":1,\"b\":2,\"a\":3}"), VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 9, &v, NULL), VW_ERR_MESSAGE);
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 9, &v, &found), VW_ERR_MESSAGE);
    VW_CHECK_EQ(vw_json_get_int(&doc, "b", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 2);
    /* Spelt differently, the same key. */
    VW_CHECK_EQ(parse(&doc, "{\"t\":1,\"\\u0074\":1}"), VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "t", 0, 9, &v, NULL), VW_ERR_MESSAGE);
    /* Repeated keys inside nested objects are not top-level repeats. */
    VW_CHECK_EQ(parse(&doc, "{\"x\":{\"a\":1,\"a\":2},\"y\":[{\"a\":1},{\"a\":2}],"
                            "\"a\":7}"),
                VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 7);
}

static void test_types(void)
{
    vw_json_doc_t doc;
    char s[16];
    int64_t i = 0;
    double d = 0.0;
    int b = 0, found = 0;
    VW_CHECK_EQ(parse(&doc, "{\"s\":\"x\",\"i\":1,\"f\":1.5,\"t\":true,\"n\":null,"
                            "\"a\":[],\"o\":{}}"),
                VW_OK);
    static const char *const keys[] = {"s", "i", "f", "t", "n", "a", "o"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char key = keys[k][0];
        found = 0;
        VW_CHECK_EQ(vw_json_get_string(&doc, keys[k], s, sizeof s, NULL, &found),
                    key == 's' ? VW_OK : VW_ERR_MESSAGE);
        VW_CHECK_EQ(found, 1);
        VW_CHECK_EQ(vw_json_get_int(&doc, keys[k], INT64_MIN, INT64_MAX, &i, NULL),
                    key == 'i' ? VW_OK : VW_ERR_MESSAGE);
        VW_CHECK_EQ(vw_json_get_number(&doc, keys[k], &d, NULL),
                    key == 'i' || key == 'f' ? VW_OK : VW_ERR_MESSAGE);
        VW_CHECK_EQ(vw_json_get_bool(&doc, keys[k], &b, NULL), key == 't' ? VW_OK : VW_ERR_MESSAGE);
    }
    VW_CHECK_EQ(parse(&doc, "{\"f\":false}"), VW_OK);
    b = 1;
    VW_CHECK_EQ(vw_json_get_bool(&doc, "f", &b, NULL), VW_OK);
    VW_CHECK_EQ(b, 0);
    /* The integer field of a number getter reads as a double. */
    VW_CHECK_EQ(parse(&doc, "{\"i\":-42}"), VW_OK);
    VW_CHECK_EQ(vw_json_get_number(&doc, "i", &d, NULL), VW_OK);
    VW_CHECK(d == -42.0);
}

static void test_unknown_fields_are_skipped(void)
{
    vw_json_doc_t doc;
    int64_t v = 0;
    char s[16];
    /* Nested values that contain what looks like the key, brackets and commas in strings. */
    VW_CHECK_EQ(parse(&doc, "{\"x\":{\"a\":[1,{\"b\":\"}],\\\"a\\\":9\"}],\"c\":{}},"
                            "\"y\":[\"a\",\"a\",[[[\"a\"]]],{\"a\":2}],"
                            "\"z\":\"\\\\\",\"w\":-1.5e-3,\"n\":null,\"t\":true,"
                            "\"a\":5,\"s\":\"ok\"}"),
                VW_OK);
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 9, &v, NULL), VW_OK);
    VW_CHECK_EQ(v, 5);
    VW_CHECK_EQ(vw_json_get_string(&doc, "s", s, sizeof s, NULL, NULL), VW_OK);
    VW_CHECK(strcmp(s, "ok") == 0);
    /* Members under nested objects are never found. */
    int found = 1;
    VW_CHECK_EQ(vw_json_get_int(&doc, "b", 0, 9, &v, &found), VW_OK);
    VW_CHECK_EQ(found, 0);
    VW_CHECK_EQ(vw_json_get_int(&doc, "c", 0, 9, &v, &found), VW_OK);
    VW_CHECK_EQ(found, 0);
}

/* ---- arguments ----------------------------------------------------------- */

static void test_arguments(void)
{
    vw_json_doc_t doc;
    char s[8];
    int64_t i = 0;
    double d = 0.0;
    int b = 0;
    VW_CHECK_EQ(vw_json_parse(NULL, "{}", 2, 16), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_parse(&doc, NULL, 2, 16), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_parse(&doc, NULL, 0, 16), VW_ERR_JSON);
    VW_CHECK_EQ(parse(&doc, "{\"a\":1}"), VW_OK);
    VW_CHECK_EQ(vw_json_get_string(NULL, "a", s, sizeof s, NULL, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_string(&doc, NULL, s, sizeof s, NULL, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_string(&doc, "a", NULL, sizeof s, NULL, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_string(&doc, "a", s, 0, NULL, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_int(NULL, "a", 0, 1, &i, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_int(&doc, NULL, 0, 1, &i, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 1, NULL, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_number(NULL, "a", &d, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_number(&doc, NULL, &d, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_number(&doc, "a", NULL, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_bool(NULL, "a", &b, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_bool(&doc, NULL, &b, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_bool(&doc, "a", NULL, NULL), VW_ERR_ARG);
    /* A document whose parse failed is cleared: every getter refuses it. */
    VW_CHECK_EQ(parse(&doc, "{\"a\":1,}"), VW_ERR_JSON);
    VW_CHECK_EQ(vw_json_get_int(&doc, "a", 0, 1, &i, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_number(&doc, "a", &d, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_bool(&doc, "a", &b, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_json_get_string(&doc, "a", s, sizeof s, NULL, NULL), VW_ERR_ARG);
}

int main(void)
{
    test_command_example();
    test_ota_job_example();
    test_truncated_at_every_byte();
    test_structure();
    test_nesting();
    test_number_syntax();
    test_integers();
    test_doubles();
    test_doubles_against_strtod();
    test_integers_against_strtoll();
    test_escapes();
    test_utf8();
    test_strings_that_do_not_fit();
    test_keys();
    test_duplicate_keys();
    test_types();
    test_unknown_fields_are_skipped();
    test_arguments();
    free(held);
    return vw_test_report("test_json_reader");
}
