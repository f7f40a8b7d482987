/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-uevent.c — uevent property lists as libudev delivers them (KEY=VALUE\0...). */
#include <stdint.h>

#include "uevent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Uevent ev;
        int r = uevent_decode_properties((const char *) data, size, &ev);

        if (r == 0) {
                /* What was accepted must be something the model can take. */
                if (ev.subsystem >= _UEVENT_SUBSYSTEM_MAX || ev.action >= _UEVENT_ACTION_MAX)
                        abort();
                if (ev.subsystem == UEVENT_NODE && ev.index >= 1024)
                        abort();
                if (!memchr(ev.acpi_name, 0, sizeof(ev.acpi_name)))
                        abort();
        } else if (r != -EINVAL && r != -ENOMSG)
                abort();
        return 0;
}
