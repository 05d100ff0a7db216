#include "vw_status.h"

/* The names in the order of the codes, each ending in a NUL, and last the name of every
 * other value: one string, no table of pointers. */
static const char names[] = "ok\0arg\0buffer\0align\0magic\0version\0truncated\0crc\0format\0"
                            "unsupported\0input\0golden\0signature\0downgrade\0hash\0spec\0"
                            "state\0range\0storage\0too_large\0incomplete\0no_model\0json\0"
                            "message\0unknown";

const char *vw_status_name(vw_status_t status)
{
    const char *const unknown = names + sizeof names - sizeof "unknown";
    const char *name = names;
    for (unsigned skip = (unsigned)status; skip > 0u && name != unknown; skip--) {
        while (*name++ != '\0') {
        }
    }
    return name;
}
