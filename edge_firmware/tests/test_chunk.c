/* ota/chunk payloads: the documented example, bounds, every truncation, each broken field. */
#include <string.h>

#include "vw_chunk.h"
#include "vw_test.h"

#define MIB16 (16u * 1024u * 1024u)

/* docs/protocol/ota_chunk.example.hex: job "rollout-42.pump-ae.v8", offset 8192, 48 bytes. */
static const uint8_t EXAMPLE[] = {
    0x56, 0x43, 0x01, 0x00,                         /* magic "VC", version 1, reserved */
    0x7b, 0xa8, 0xe4, 0x72,                         /* job reference */
    0x00, 0x20, 0x00, 0x00,                         /* offset 8192 */
    0x30, 0x00, 0x00, 0x00,                         /* length 48 */
    0x56, 0x57, 0x4d, 0x31, 0x01, 0x00, 0x00, 0x00, /* data */
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
    0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
};

/* Room for the largest payload and one byte more, plus one for misalignment. */
static uint8_t big[VW_CHUNK_MAX_PAYLOAD + 2u];

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Writes a valid header for @p length data bytes (data itself left as is); returns the size. */
static size_t header(uint8_t *p, uint32_t job_ref, uint32_t offset, uint32_t length)
{
    p[0] = 'V';
    p[1] = 'C';
    p[2] = VW_CHUNK_VERSION;
    p[3] = 0;
    put32(p + 4, job_ref);
    put32(p + 8, offset);
    put32(p + 12, length);
    return (size_t)VW_CHUNK_HEADER_BYTES + length;
}

static vw_status_t parse(const uint8_t *payload, size_t len)
{
    vw_chunk_t chunk;
    return vw_chunk_parse(payload, len, &chunk);
}

/* A copy of the example with one byte changed. */
static vw_status_t parse_example_with(size_t at, uint8_t value)
{
    uint8_t copy[sizeof EXAMPLE];
    memcpy(copy, EXAMPLE, sizeof copy);
    copy[at] = value;
    return parse(copy, sizeof copy);
}

/* A header with these offset and length fields, followed by @p length bytes when that
 * makes a payload of at most VW_CHUNK_MAX_PAYLOAD bytes, else by 48 bytes. */
static vw_status_t parse_fields(uint32_t offset, uint32_t length)
{
    size_t size = header(big, 0, offset, length);
    if (size > VW_CHUNK_MAX_PAYLOAD) {
        size = VW_CHUNK_HEADER_BYTES + 48u;
    }
    return parse(big, size);
}

static void test_example(void)
{
    vw_chunk_t chunk;
    VW_CHECK_EQ(vw_chunk_parse(EXAMPLE, sizeof EXAMPLE, &chunk), VW_OK);
    VW_CHECK_EQ(chunk.job_ref, 0x72e4a87bu);
    VW_CHECK_EQ(chunk.offset, 8192);
    VW_CHECK_EQ(chunk.length, 48);
    VW_CHECK(chunk.data == EXAMPLE + VW_CHUNK_HEADER_BYTES);  /* no copy */
    VW_CHECK_EQ(chunk.data[0], 'V');
    VW_CHECK_EQ(chunk.data[47], 0x27);

    uint32_t ref = 0;
    const char *job = "rollout-42.pump-ae.v8";
    VW_CHECK_EQ(vw_chunk_job_ref(job, strlen(job), &ref), VW_OK);
    VW_CHECK_EQ(ref, chunk.job_ref);
    VW_CHECK_EQ(vw_chunk_job_ref("rollout-42.pump-ae.v9", strlen(job), &ref), VW_OK);
    VW_CHECK(ref != chunk.job_ref);
}

static void test_job_ref(void)
{
    char id[VW_MODEL_MAX_ID + 1u];
    uint32_t ref = 7;
    memset(id, 'a', sizeof id);
    VW_CHECK_EQ(vw_chunk_job_ref("j1", 2, &ref), VW_OK);
    VW_CHECK_EQ(ref, 0x66362408u); /* sha256("j1") = 08 24 36 66 ... */
    VW_CHECK_EQ(vw_chunk_job_ref(id, VW_MODEL_MAX_ID, &ref), VW_OK);
    VW_CHECK_EQ(ref, 0xfe54e0ffu); /* 64 times 'a' */
    /* Only the given characters are hashed: what follows (no NUL) does not count. */
    VW_CHECK_EQ(vw_chunk_job_ref("j1xyz", 2, &ref), VW_OK);
    VW_CHECK_EQ(ref, 0x66362408u);

    ref = 7;
    VW_CHECK_EQ(vw_chunk_job_ref(id, VW_MODEL_MAX_ID + 1u, &ref), VW_ERR_ARG);
    VW_CHECK_EQ(vw_chunk_job_ref(id, 0, &ref), VW_ERR_ARG);
    VW_CHECK_EQ(vw_chunk_job_ref(NULL, 2, &ref), VW_ERR_ARG);
    VW_CHECK_EQ(vw_chunk_job_ref("j1", 2, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(ref, 7); /* untouched on refusal */
}

static void test_bounds_accepted(void)
{
    vw_chunk_t chunk;
    memset(big, 0xa5, sizeof big);

    /* The largest chunk, ending exactly at 16 MiB. */
    size_t size = header(big, 0xffffffffu, MIB16 - VW_CHUNK_MAX_DATA, VW_CHUNK_MAX_DATA);
    VW_CHECK_EQ(size, VW_CHUNK_MAX_PAYLOAD);
    VW_CHECK_EQ(vw_chunk_parse(big, size, &chunk), VW_OK);
    VW_CHECK_EQ(chunk.job_ref, 0xffffffffu);
    VW_CHECK_EQ(chunk.offset, MIB16 - VW_CHUNK_MAX_DATA);
    VW_CHECK_EQ(chunk.length, VW_CHUNK_MAX_DATA);
    VW_CHECK_EQ(chunk.data[VW_CHUNK_MAX_DATA - 1u], 0xa5);

    /* One byte, at the last offset. */
    size = header(big, 0, MIB16 - 1u, 1);
    VW_CHECK_EQ(vw_chunk_parse(big, size, &chunk), VW_OK);
    VW_CHECK_EQ(chunk.offset, MIB16 - 1u);
    VW_CHECK_EQ(chunk.length, 1);

    /* Any alignment: the header read byte by byte at an odd address. */
    size = header(big + 1, 0x01020304u, 4096, 3);
    VW_CHECK_EQ(vw_chunk_parse(big + 1, size, &chunk), VW_OK);
    VW_CHECK_EQ(chunk.job_ref, 0x01020304u);
    VW_CHECK_EQ(chunk.offset, 4096);
    VW_CHECK(chunk.data == big + 1 + VW_CHUNK_HEADER_BYTES);
}

static void test_every_truncation(void)
{
    for (size_t len = 0; len < sizeof EXAMPLE; len++) {
        vw_status_t st = parse(EXAMPLE, len);
        if (st != VW_ERR_TRUNCATED) {
            fprintf(stderr, "prefix of %zu bytes: status %d\n", len, (int)st);
        }
        VW_CHECK_EQ(st, VW_ERR_TRUNCATED);
    }
    /* The largest chunk, cut anywhere in its data. */
    size_t size = header(big, 0, 0, VW_CHUNK_MAX_DATA);
    VW_CHECK_EQ(parse(big, size - 1u), VW_ERR_TRUNCATED);
    VW_CHECK_EQ(parse(big, VW_CHUNK_HEADER_BYTES + 1u), VW_ERR_TRUNCATED);
}

static void test_header_fields(void)
{
    /* magic: each byte, and a JSON chunk of an older sender */
    VW_CHECK_EQ(parse_example_with(0, 'v'), VW_ERR_MAGIC);
    VW_CHECK_EQ(parse_example_with(1, 'M'), VW_ERR_MAGIC);
    VW_CHECK_EQ(parse_example_with(0, '{'), VW_ERR_MAGIC);
    /* version */
    VW_CHECK_EQ(parse_example_with(2, 0), VW_ERR_VERSION);
    VW_CHECK_EQ(parse_example_with(2, 2), VW_ERR_VERSION);
    VW_CHECK_EQ(parse_example_with(2, 0xff), VW_ERR_VERSION);
    /* reserved */
    VW_CHECK_EQ(parse_example_with(3, 1), VW_ERR_FORMAT);
    VW_CHECK_EQ(parse_example_with(3, 0x80), VW_ERR_FORMAT);
    /* the magic is checked before the version, the version before the reserved byte */
    uint8_t copy[sizeof EXAMPLE];
    memcpy(copy, EXAMPLE, sizeof copy);
    copy[0] = 0;
    copy[2] = 9;
    copy[3] = 9;
    VW_CHECK_EQ(parse(copy, sizeof copy), VW_ERR_MAGIC);
    copy[0] = 'V';
    VW_CHECK_EQ(parse(copy, sizeof copy), VW_ERR_VERSION);
    /* a bad header field is found even when the payload is short of its data */
    VW_CHECK_EQ(parse(copy, VW_CHUNK_HEADER_BYTES), VW_ERR_VERSION);
    /* the job reference is any 32-bit value: the caller compares it */
    VW_CHECK_EQ(parse_example_with(4, 0), VW_OK);
    VW_CHECK_EQ(parse_example_with(7, 0xff), VW_OK);
}

static void test_length_mismatch(void)
{
    uint8_t longer[sizeof EXAMPLE + 1u];
    memcpy(longer, EXAMPLE, sizeof EXAMPLE);
    longer[sizeof EXAMPLE] = 0;
    VW_CHECK_EQ(parse(longer, sizeof longer), VW_ERR_FORMAT);  /* a byte after the data */
    VW_CHECK_EQ(parse_example_with(12, 47), VW_ERR_FORMAT);     /* says 47, 48 follow */
    VW_CHECK_EQ(parse_example_with(12, 49), VW_ERR_TRUNCATED);  /* says 49, 48 follow */
    VW_CHECK_EQ(parse_example_with(12, 0), VW_ERR_FORMAT);      /* says none, 48 follow */
    VW_CHECK_EQ(parse_example_with(15, 1), VW_ERR_TRUNCATED);   /* 2^24 + 48 */
    VW_CHECK_EQ(parse_fields(0, 0xffffffffu), VW_ERR_TRUNCATED);
    VW_CHECK_EQ(parse_fields(0, VW_CHUNK_MAX_DATA + 1u), VW_ERR_TRUNCATED);
}

static void test_ranges(void)
{
    /* no data */
    VW_CHECK_EQ(parse_fields(0, 0), VW_ERR_RANGE);
    /* offset at or past 16 MiB */
    VW_CHECK_EQ(parse_fields(MIB16, 1), VW_ERR_RANGE);
    VW_CHECK_EQ(parse_fields(0xffffffffu, 1), VW_ERR_RANGE);
    /* the end past 16 MiB */
    VW_CHECK_EQ(parse_fields(MIB16 - 1u, 2), VW_ERR_RANGE);
    VW_CHECK_EQ(parse_fields(MIB16 - VW_CHUNK_MAX_DATA + 1u, VW_CHUNK_MAX_DATA), VW_ERR_RANGE);
    /* offset + length wraps a uint32_t to a small number */
    VW_CHECK_EQ(parse_fields(0xfffffff0u, 0x20), VW_ERR_RANGE);
    VW_CHECK_EQ(parse_fields(0xffffffffu - VW_CHUNK_MAX_DATA + 2u, VW_CHUNK_MAX_DATA), VW_ERR_RANGE);
}

static void test_size_and_arguments(void)
{
    vw_chunk_t chunk = {0x11u, 0x22u, 0x33u, NULL};
    size_t size = header(big, 0, 0, VW_CHUNK_MAX_DATA);
    big[size] = 0;
    VW_CHECK_EQ(vw_chunk_parse(big, size + 1u, &chunk), VW_ERR_TOO_LARGE);
    VW_CHECK_EQ(vw_chunk_parse(big, (size_t)-1, &chunk), VW_ERR_TOO_LARGE);
    /* oversized whatever the header says: the size is checked first */
    VW_CHECK_EQ(vw_chunk_parse(big, sizeof big, &chunk), VW_ERR_TOO_LARGE);
    VW_CHECK_EQ(vw_chunk_parse(NULL, sizeof EXAMPLE, &chunk), VW_ERR_ARG);
    VW_CHECK_EQ(vw_chunk_parse(NULL, 0, &chunk), VW_ERR_ARG);
    VW_CHECK_EQ(vw_chunk_parse(EXAMPLE, sizeof EXAMPLE, NULL), VW_ERR_ARG);
    /* a refusal leaves the output as it was */
    VW_CHECK_EQ(vw_chunk_parse(EXAMPLE, sizeof EXAMPLE - 1u, &chunk), VW_ERR_TRUNCATED);
    VW_CHECK_EQ(chunk.job_ref, 0x11u);
    VW_CHECK_EQ(chunk.offset, 0x22u);
    VW_CHECK_EQ(chunk.length, 0x33u);
    VW_CHECK(chunk.data == NULL);
}

int main(void)
{
    test_example();
    test_job_ref();
    test_bounds_accepted();
    test_every_truncation();
    test_header_fields();
    test_length_mismatch();
    test_ranges();
    test_size_and_arguments();
    return vw_test_report("test_chunk");
}
