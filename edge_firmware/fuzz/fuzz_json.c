/*
 * libFuzzer target: the JSON reader (vw_json_reader.h) of the device's downlink payloads.
 *
 * Input: one configuration byte, then the text.
 *   cfg bits 0-1  mode: 0 and 3, the text is a whole payload; 1, it is a number literal
 *                 read as {"v":TEXT}; 2, it is the inside of a string read as {"v":"TEXT"}
 *   cfg bits 2-6  max_depth - 1 (1..32)
 * The seeds (seeds_json/, and the protocol's cmd and ota/job examples) start with '<'
 * (mode 0, depth 16), '=' (number) or '>' (string), so they stay readable text.
 *
 * The payload is copied into a heap block of exactly its length, so AddressSanitizer
 * reports any read past its end; string outputs go to a block of exactly the size
 * the getter is given.
 *
 * Invariants checked (a violation aborts, which the fuzzer reports as a crash):
 *   - vw_json_parse returns VW_OK or VW_ERR_JSON; a smaller depth never accepts what
 *     the largest refuses, nor the largest refuse what a smaller one accepts;
 *   - an accepted payload cut just before its closing brace is refused;
 *   - getters return VW_OK or VW_ERR_MESSAGE and agree on whether a key is present;
 *     an absent field leaves the output untouched; at most one of the string, number
 *     and boolean getters accepts a field; an integer also reads as the same number;
 *   - a string read is valid UTF-8 without NUL, of the length reported, no longer
 *     than its JSON text, and refused by a buffer one byte shorter;
 *   - a number literal reads as glibc's strtod does (correctly rounded) when its digits
 *     past the 19th significant one are zeros, else as one of the two neighbours of it;
 *     an integer literal reads as strtoll does, and is refused exactly when strtoll
 *     overflows.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_json_reader.h"

#include "vw_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The keys looked up: the protocol's downlink fields, and short ones for the fuzzer. */
static const char *const KEYS[] = {"id",  "t",         "cmd", "threshold", "model_version",
                                   "rollback", "signature", "v",   "a",         ""};

/* Whether s[0..n-1] is valid UTF-8 (RFC 3629) with no NUL, checked by code points. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        const unsigned c = s[i];
        size_t more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                                   : (c & 0xF8) == 0xF0 ? 3 : 9;
        if (c == 0 || more == 9 || n - i <= more) {
            return 0;
        }
        uint32_t cp = more == 0 ? c : c & (0x3Fu >> more);
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < least[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += more + 1;
    }
    return 1;
}

/* Reads one key with every getter and checks that they agree. */
static void check_key(const vw_json_doc_t *doc, const char *key, size_t text_len)
{
    const size_t cap = 96;
    char *out = malloc(cap);
    require(out != NULL);
    size_t len = 12345;
    int found_s = -1, found_i = -1, found_n = -1, found_b = -1, b = 7;
    int64_t i = 77;
    double d = 7.5;

    const vw_status_t ss = vw_json_get_string(doc, key, out, cap, &len, &found_s);
    const vw_status_t si = vw_json_get_int(doc, key, INT64_MIN, INT64_MAX, &i, &found_i);
    const vw_status_t sn = vw_json_get_number(doc, key, &d, &found_n);
    const vw_status_t sb = vw_json_get_bool(doc, key, &b, &found_b);
    require(ss == VW_OK || ss == VW_ERR_MESSAGE);
    require(si == VW_OK || si == VW_ERR_MESSAGE);
    require(sn == VW_OK || sn == VW_ERR_MESSAGE);
    require(sb == VW_OK || sb == VW_ERR_MESSAGE);

    /* A repeated key is refused by all, before anything is found. */
    const int repeated = ss == VW_ERR_MESSAGE && found_s == -1;
    if (repeated) {
        require(found_i == -1 && found_n == -1 && found_b == -1);
        require(si == VW_ERR_MESSAGE && sn == VW_ERR_MESSAGE && sb == VW_ERR_MESSAGE);
    } else {
        require(found_s == 0 || found_s == 1);
        require(found_i == found_s && found_n == found_s && found_b == found_s);
    }
    if (found_s == 0) {
        require(ss == VW_OK && si == VW_OK && sn == VW_OK && sb == VW_OK);
        require(len == 12345 && i == 77 && d == 7.5 && b == 7);
    }
    if (found_s == 1) {
        require((ss == VW_OK) + (sn == VW_OK) + (sb == VW_OK) <= 1);
        require(si != VW_OK || sn == VW_OK);
    }
    if (ss == VW_OK && found_s == 1) {
        require(len < cap && strlen(out) == len && len <= text_len);
        require(valid_utf8((const unsigned char *)out, len));
        /* Exactly the room it needs: accepted; one byte less: refused. */
        char *exact = malloc(len + 1);
        require(exact != NULL);
        size_t len2 = 0;
        require(vw_json_get_string(doc, key, exact, len + 1, &len2, NULL) == VW_OK);
        require(len2 == len && memcmp(exact, out, len + 1) == 0);
        if (len > 0) {
            require(vw_json_get_string(doc, key, exact, len, &len2, NULL) == VW_ERR_MESSAGE);
            require(exact[0] == '\0');
        }
        free(exact);
    }
    if (ss == VW_ERR_MESSAGE) {
        require(out[0] == '\0');
    }
    if (si == VW_OK && found_i == 1) {
        require(isfinite(d));
        if (i >= -(INT64_C(1) << 53) && i <= (INT64_C(1) << 53)) {
            require(d == (double)i);
        }
        /* The range is applied at both ends. */
        int64_t j = 0;
        require(vw_json_get_int(doc, key, i, i, &j, NULL) == VW_OK && j == i);
        if (i != INT64_MAX) {
            require(vw_json_get_int(doc, key, i + 1, INT64_MAX, &j, NULL) == VW_ERR_MESSAGE);
        }
        if (i != INT64_MIN) {
            require(vw_json_get_int(doc, key, INT64_MIN, i - 1, &j, NULL) == VW_ERR_MESSAGE);
        }
    }
    if (sn == VW_OK && found_n == 1) {
        require(isfinite(d));
    }
    if (sb == VW_OK && found_b == 1) {
        require(b == 0 || b == 1);
    }
    free(out);
}

static void whole_payload(const char *text, size_t len, unsigned depth)
{
    char *buf = malloc(len > 0 ? len : 1);
    require(buf != NULL);
    memcpy(buf, text, len);
    vw_json_doc_t doc;
    const vw_status_t status = vw_json_parse(&doc, buf, len, depth);
    const vw_status_t widest = vw_json_parse(&doc, buf, len, VW_JSON_MAX_DEPTH);
    require(status == VW_OK || status == VW_ERR_JSON);
    require(widest == VW_OK || widest == VW_ERR_JSON);
    require(status != VW_OK || widest == VW_OK);
    if (widest == VW_OK) {
        /* Cut just before the closing brace (the last byte that is not whitespace). */
        size_t last = len;
        while (last > 0 && strchr(" \t\r\n", buf[last - 1]) != NULL && buf[last - 1] != '\0') {
            last--;
        }
        require(last > 0 && buf[last - 1] == '}');
        vw_json_doc_t cut;
        require(vw_json_parse(&cut, buf, last - 1, VW_JSON_MAX_DEPTH) == VW_ERR_JSON);
        for (size_t k = 0; k < sizeof KEYS / sizeof KEYS[0]; k++) {
            check_key(&doc, KEYS[k], len);
        }
    }
    free(buf);
}

/* The number literal's digits past the 19th significant one are all zeros. */
static int exactly_read(const char *lit)
{
    unsigned significant = 0;
    for (const char *p = lit; *p != '\0' && *p != 'e' && *p != 'E'; p++) {
        if (*p < '0' || *p > '9') {
            continue;
        }
        if (significant > 0 || *p != '0') {
            significant++;
            if (significant > 19 && *p != '0') {
                return 0;
            }
        }
    }
    return 1;
}

static void number_literal(const char *text, size_t len)
{
    char *buf = malloc(len + 6), *lit = malloc(len + 1);
    require(buf != NULL && lit != NULL);
    memcpy(buf, "{\"v\":", 5);
    memcpy(buf + 5, text, len);
    buf[len + 5] = '}';
    memcpy(lit, text, len);
    lit[len] = '\0';
    vw_json_doc_t doc;
    if (vw_json_parse(&doc, buf, len + 6, VW_JSON_DEFAULT_DEPTH) == VW_OK) {
        check_key(&doc, "v", len + 6);
        /* Whitespace may surround the literal inside the payload. */
        const size_t lead = strspn(lit, " \t\r\n");
        const char *const start = lit + lead;
        char *end = NULL;
        const double expected = strtod(start, &end);
        /* Only when the literal is the whole value: the text may hold more members. */
        if (end != start && strspn(end, " \t\r\n") == strlen(end)) {
            double d = 0.0;
            const vw_status_t sn = vw_json_get_number(&doc, "v", &d, NULL);
            if (!isfinite(expected)) {
                require(sn == VW_ERR_MESSAGE);
            } else if (exactly_read(start)) {
                require(sn == VW_OK && memcmp(&d, &expected, sizeof d) == 0);
            } else {
                require(sn == VW_OK);
                require(d == expected || d == nextafter(expected, INFINITY) ||
                        d == nextafter(expected, -INFINITY));
            }
            if (strpbrk(start, ".eE") == NULL) {
                int64_t i = 0;
                errno = 0;
                const long long ll = strtoll(start, NULL, 10);
                const vw_status_t si = vw_json_get_int(&doc, "v", INT64_MIN, INT64_MAX, &i, NULL);
                require(errno == ERANGE ? si == VW_ERR_MESSAGE : si == VW_OK && i == ll);
            }
        }
    }
    free(lit);
    free(buf);
}

static void string_content(const char *text, size_t len)
{
    char *buf = malloc(len + 8);
    require(buf != NULL);
    memcpy(buf, "{\"v\":\"", 6);
    memcpy(buf + 6, text, len);
    memcpy(buf + 6 + len, "\"}", 2);
    vw_json_doc_t doc;
    if (vw_json_parse(&doc, buf, len + 8, VW_JSON_DEFAULT_DEPTH) == VW_OK) {
        check_key(&doc, "v", len + 8);
        /* A bigger buffer than check_key's: every string of the input fits. */
        char *out = malloc(len + 1);
        require(out != NULL);
        size_t n = 0;
        const vw_status_t ss = vw_json_get_string(&doc, "v", out, len + 1, &n, NULL);
        if (ss == VW_OK) {
            require(n <= len && valid_utf8((const unsigned char *)out, n));
        } else {
            /* Only a \u0000 can make it fail (the rest of the text is a whole string). */
            require(ss == VW_ERR_MESSAGE && len >= 6);
        }
        free(out);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const unsigned mode = data[0] & 3u, depth = 1u + ((data[0] >> 2) & 31u);
    const char *const text = (const char *)data + 1;
    const size_t len = size - 1;
    if (mode == 1) {
        number_literal(text, len);
    } else if (mode == 2) {
        string_content(text, len);
    } else {
        whole_payload(text, len, depth);
    }
    return 0;
}
