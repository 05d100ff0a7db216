/* Host tests of the anomaly debounce and hysteresis. */
#include <math.h>
#include <string.h>

#include "vw_anomaly.h"
#include "vw_test.h"

/* Feed scores ("H" at/above threshold 1.0, "r" between release and threshold, "." below
 * release) and return the events as a string: S start, E end, - nothing. */
static const char *run(const vw_anomaly_config_t *config, const char *scores)
{
    static char events[128];
    vw_anomaly_t state;
    VW_CHECK_EQ(vw_anomaly_init(&state, config), VW_OK);
    size_t i = 0;
    for (; scores[i] != '\0' && i + 1 < sizeof events; i++) {
        float score = scores[i] == 'H' ? 1.0f : scores[i] == 'r' ? 0.9f : 0.1f;
        vw_anomaly_event_t event;
        VW_CHECK_EQ(vw_anomaly_update(&state, score, 1.0f, &event), VW_OK);
        events[i] = event == VW_ANOMALY_START ? 'S' : event == VW_ANOMALY_END ? 'E' : '-';
    }
    events[i] = '\0';
    return events;
}

#define CHECK_RUN(config, scores, want)                                                     \
    do {                                                                                    \
        const char *got_ = run(config, scores);                                             \
        if (strcmp(got_, want) != 0) {                                                      \
            fprintf(stderr, "%s:%d: %s gave %s, want %s\n", __FILE__, __LINE__, scores, got_, \
                    want);                                                                  \
        }                                                                                   \
        VW_CHECK(strcmp(got_, want) == 0);                                                  \
    } while (0)

static void test_defaults(void)
{
    vw_anomaly_config_t d = vw_anomaly_defaults();
    VW_CHECK_EQ(vw_anomaly_check(&d), VW_OK);
    /* one or two high windows in five are noise; the third starts it */
    CHECK_RUN(&d, "H..H....H.H", "-----------");
    CHECK_RUN(&d, "H.H.H", "----S");
    CHECK_RUN(&d, "HHH", "--S");
    /* five below the release level end it; a window above the release level restarts the count */
    CHECK_RUN(&d, "HHH.....", "--S----E");
    CHECK_RUN(&d, "HHH....r.....", "--S---------E");
    /* scores between the release level and the threshold keep it open */
    CHECK_RUN(&d, "HHHrrrrrrrr.....", "--S------------E");
    /* after an end the count starts afresh: old high windows do not count */
    CHECK_RUN(&d, "HHH.....HH", "--S----E--");
    CHECK_RUN(&d, "HHH.....HHH", "--S----E--S");
}

static void test_other_settings(void)
{
    vw_anomaly_config_t one = {1u, 1u, 1u, 1.0f}; /* no debounce, no hysteresis */
    CHECK_RUN(&one, "H.H.r", "SESE-");
    vw_anomaly_config_t wide = {2u, 32u, 2u, 0.5f};
    CHECK_RUN(&wide, "H..............................H", "-------------------------------S");
    CHECK_RUN(&wide, "H...............................H", "---------------------------------");
}

static void test_threshold_changes_apply_at_once(void)
{
    vw_anomaly_config_t d = vw_anomaly_defaults();
    vw_anomaly_t state;
    vw_anomaly_init(&state, &d);
    vw_anomaly_event_t event;
    for (int i = 0; i < 3; i++) {
        vw_anomaly_update(&state, 0.5f, 1.0f, &event);
    }
    VW_CHECK(!state.active);
    vw_anomaly_update(&state, 0.5f, 0.4f, &event); /* a lower threshold: three more */
    vw_anomaly_update(&state, 0.5f, 0.4f, &event);
    vw_anomaly_update(&state, 0.5f, 0.4f, &event);
    VW_CHECK_EQ(event, VW_ANOMALY_START);
    VW_CHECK(state.active);
}

static void test_refusals(void)
{
    vw_anomaly_config_t bad[] = {
        {0u, 5u, 5u, 0.8f}, {6u, 5u, 5u, 0.8f},  {3u, 33u, 5u, 0.8f}, {3u, 0u, 5u, 0.8f},
        {3u, 5u, 0u, 0.8f}, {3u, 5u, 5u, 0.0f},  {3u, 5u, 5u, 1.01f}, {3u, 5u, 5u, NAN},
    };
    vw_anomaly_t state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        VW_CHECK_EQ(vw_anomaly_init(&state, &bad[i]), VW_ERR_RANGE);
    }
    VW_CHECK_EQ(vw_anomaly_init(NULL, &bad[0]), VW_ERR_ARG);
    VW_CHECK_EQ(vw_anomaly_check(NULL), VW_ERR_ARG);
    vw_anomaly_config_t d = vw_anomaly_defaults();
    vw_anomaly_init(&state, &d);
    vw_anomaly_event_t event = VW_ANOMALY_START;
    VW_CHECK_EQ(vw_anomaly_update(&state, NAN, 1.0f, &event), VW_ERR_INPUT);
    VW_CHECK_EQ(vw_anomaly_update(&state, 1.0f, 0.0f, &event), VW_ERR_INPUT);
    VW_CHECK_EQ(vw_anomaly_update(&state, 1.0f, INFINITY, &event), VW_ERR_INPUT);
    VW_CHECK_EQ(vw_anomaly_update(&state, 1.0f, -1.0f, &event), VW_ERR_INPUT);
    VW_CHECK_EQ(vw_anomaly_update(&state, 1.0f, 1.0f, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(state.history, 0u); /* refused windows change nothing */
}

/* The rules of vw_anomaly.h written out with the last n windows in an array, against the
 * detector, on pseudo-random scores: K of N, M below, n up to 32. */
static void test_against_reference(void)
{
    const vw_anomaly_config_t configs[] = {
        {3u, 5u, 5u, 0.8f}, {1u, 1u, 1u, 1.0f}, {2u, 3u, 2u, 0.5f}, {7u, 32u, 3u, 0.9f},
        {32u, 32u, 1u, 0.5f}, {5u, 31u, 4u, 1.0f},
    };
    uint32_t seed = 12345u;
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        const vw_anomaly_config_t *config = &configs[c];
        vw_anomaly_t state;
        VW_CHECK_EQ(vw_anomaly_init(&state, config), VW_OK);
        int high[VW_ANOMALY_MAX_N] = {0};
        int active = 0, below = 0;
        for (uint32_t w = 0; w < 20000u; w++) {
            seed = seed * 1103515245u + 12345u;
            /* long runs of one kind, so that anomalies start and end */
            float score = (float)((seed >> 16) % 100u) / 100.0f + ((w / 64u) % 2u ? 0.3f : 0.0f);
            int want = VW_ANOMALY_NONE;
            if (active) {
                below = score < config->release_ratio ? below + 1 : 0;
                if (below >= config->m) {
                    active = 0;
                    below = 0;
                    memset(high, 0, sizeof high);
                    want = VW_ANOMALY_END;
                }
            } else {
                memmove(high + 1, high, (config->n - 1u) * sizeof high[0]);
                high[0] = score >= 1.0f;
                unsigned count = 0;
                for (unsigned i = 0; i < config->n; i++) {
                    count += (unsigned)high[i];
                }
                if (count >= config->k) {
                    active = 1;
                    want = VW_ANOMALY_START;
                }
            }
            vw_anomaly_event_t event;
            VW_CHECK_EQ(vw_anomaly_update(&state, score, 1.0f, &event), VW_OK);
            if ((int)event != want) {
                fprintf(stderr, "config %zu, window %u: event %d, want %d\n", c, (unsigned)w,
                        (int)event, want);
                VW_CHECK_EQ((int)event, want);
                break;
            }
        }
    }
}

int main(void)
{
    test_defaults();
    test_other_settings();
    test_threshold_changes_apply_at_once();
    test_refusals();
    test_against_reference();
    return vw_test_report("test_anomaly");
}
