/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplug-bus.c — the one error table and path helpers, linked by daemon and client alike. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hotplug-bus.h"

/* Several names share an errno (errno is only a coarse class for callers that want one);
 * the daemon always sets errors by name, never by errno, so the reverse is never needed. */
const sd_bus_error_map hotplug_bus_error_map[] = {
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_NO_SUCH_NODE, ENODEV),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_NO_SUCH_BLOCK, ENXIO),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_NO_SUCH_JOB, ESRCH),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_NODE_HAS_CPUS, EBUSY),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_NOT_REMOVABLE, EPERM),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_INSUFFICIENT_MEMORY, ENOMEM),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_QUARANTINED, EPERM),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_NOT_SUPPORTED, EOPNOTSUPP),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_INVALID_ZONE, EINVAL),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_INVALID_STATE, EINVAL),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_INVALID_CONFIG, EINVAL),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_JOB_FINISHED, EALREADY),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_TIMEOUT, ETIMEDOUT),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_CANCELLED, ECANCELED),
        SD_BUS_ERROR_MAP(HOTPLUG_ERROR_FAILED, EIO),
        SD_BUS_ERROR_MAP_END,
};

int hotplug_bus_register_errors(void) {
        /* sd_bus_error_add_map() is idempotent for the same table (returns 0 the second time). */
        int r = sd_bus_error_add_map(hotplug_bus_error_map);
        return r < 0 ? r : 0;
}

int hotplug_bus_error_to_errno(const char *name) {
        sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(name, NULL);

        if (!name)
                return 0;
        (void) hotplug_bus_register_errors();
        return sd_bus_error_get_errno(&e);
}

int hotplug_bus_error_is_access_denied(const char *name) {
        return name && (strcmp(name, SD_BUS_ERROR_ACCESS_DENIED) == 0 ||
                        strcmp(name, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED) == 0);
}

const char *hotplug_node_path(unsigned id, char buf[static HOTPLUG_PATH_MAX]) {
        snprintf(buf, HOTPLUG_PATH_MAX, HOTPLUG_NODE_PATH_PREFIX "/%u", id);
        return buf;
}

const char *hotplug_job_path(unsigned id, char buf[static HOTPLUG_PATH_MAX]) {
        snprintf(buf, HOTPLUG_PATH_MAX, HOTPLUG_JOB_PATH_PREFIX "/%u", id);
        return buf;
}

int hotplug_path_parse_id(const char *path, const char *prefix, unsigned *ret) {
        size_t l = strlen(prefix);
        unsigned long v;
        char *end;

        if (!path || strncmp(path, prefix, l) != 0 || path[l] != '/')
                return -EINVAL;
        path += l + 1;
        /* Decimal, no sign, no leading zeros: one path per object. */
        if (path[0] < '0' || path[0] > '9' || (path[0] == '0' && path[1]))
                return -EINVAL;
        errno = 0;
        v = strtoul(path, &end, 10);
        if (errno || *end || v > UINT_MAX)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}
