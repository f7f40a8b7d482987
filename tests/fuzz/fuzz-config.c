/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-config.c — hotplugd.conf parsing: whole files layered like drop-ins (split on "\n--8<--\n").
 * Invariant: a failed layer leaves the config exactly as it was. */
#include <stdint.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char sep[] = "\n--8<--\n";
        char *text, *p;
        Config c;

        log_set_max_level(LOG_CRIT); /* warnings for unknown keys would flood the output */
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        config_init(&c);
        p = text;
        for (unsigned layer = 0; p && layer < 8; layer++) {
                char *next = strstr(p, sep), *error = NULL;
                Config before;
                int r;

                if (next) {
                        *next = 0;
                        next += sizeof(sep) - 1;
                }
                before = c;
                r = config_parse_string("fuzz.conf", p, &c, &error);
                if (r < 0) {
                        /* Nothing half-applied: the struct is bit-for-bit the same. */
                        if (memcmp(&before, &c, sizeof(c)) != 0)
                                abort();
                        if (!error && r != -ENOMEM)
                                abort();
                }
                free(error);
                (void) config_node_policy(&c, 0);
                (void) config_node_movable_ratio(&c, 1023);
                p = next;
        }
        config_done(&c);
        free(text);
        return 0;
}
