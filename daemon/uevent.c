/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* uevent.c — pure decoding of uevents; the manager turns them into model updates. */
#include "sysfs.h"
#include "uevent.h"

static const char *const action_names[_UEVENT_ACTION_MAX] = {
        [UEVENT_ADD] = "add",       [UEVENT_REMOVE] = "remove", [UEVENT_ONLINE] = "online",
        [UEVENT_OFFLINE] = "offline", [UEVENT_CHANGE] = "change", [UEVENT_MOVE] = "move",
        [UEVENT_BIND] = "bind",     [UEVENT_UNBIND] = "unbind",
};

static const char *const subsystem_names[_UEVENT_SUBSYSTEM_MAX] = {
        [UEVENT_MEMORY] = "memory",
        [UEVENT_NODE] = "node",
        [UEVENT_CPU] = "cpu",
        [UEVENT_ACPI] = "acpi",
};

const char *uevent_action_to_string(UeventAction a) {
        return a < _UEVENT_ACTION_MAX ? action_names[a] : NULL;
}

const char *uevent_subsystem_to_string(UeventSubsystem s) {
        return s < _UEVENT_SUBSYSTEM_MAX ? subsystem_names[s] : NULL;
}

int uevent_decode(const char *action, const char *subsystem, const char *devpath, const char *seqnum,
                  Uevent *ret) {
        Uevent ev = {};
        const char *sysname;
        unsigned v;
        int i;

        if (!action || !subsystem || !devpath)
                return -EINVAL;
        for (i = 0; i < _UEVENT_SUBSYSTEM_MAX; i++)
                if (streq(subsystem, subsystem_names[i]))
                        break;
        if (i == _UEVENT_SUBSYSTEM_MAX)
                return -ENOMSG;
        ev.subsystem = i;
        for (i = 0; i < _UEVENT_ACTION_MAX; i++)
                if (streq(action, action_names[i]))
                        break;
        if (i == _UEVENT_ACTION_MAX)
                return -EINVAL;
        ev.action = i;
        if (devpath[0] != '/' || strstr(devpath, "/../") || strlen(devpath) > 4096)
                return -EINVAL;
        sysname = strrchr(devpath, '/') + 1;

        switch (ev.subsystem) {
        case UEVENT_MEMORY:
                /* Only /devices/system/memory/memoryN: the path is fixed by the kernel. */
                if (!startswith(devpath, "/devices/system/memory/"))
                        return -EINVAL;
                if (parse_prefixed_uint(sysname, "memory", &v) < 0)
                        return streq(devpath, "/devices/system/memory") ? -ENOMSG : -EINVAL;
                if (sysname != devpath + STRLEN("/devices/system/memory/"))
                        return -EINVAL;
                ev.index = v;
                break;
        case UEVENT_NODE:
                if (!startswith(devpath, "/devices/system/node/") ||
                    sysname != devpath + STRLEN("/devices/system/node/"))
                        return -EINVAL;
                if (parse_prefixed_uint(sysname, "node", &v) < 0 || v >= 1024)
                        return -EINVAL;
                ev.index = v;
                break;
        case UEVENT_CPU:
                if (!startswith(devpath, "/devices/system/cpu/"))
                        return -EINVAL;
                /* cpu/cpufreq, cpu/cpuidle… are not CPUs. */
                if (parse_prefixed_uint(sysname, "cpu", &v) < 0 ||
                    sysname != devpath + STRLEN("/devices/system/cpu/"))
                        return -ENOMSG;
                ev.index = v;
                break;
        case UEVENT_ACPI:
                if (!startswith(sysname, "PNP0C80:") && !startswith(sysname, "ACPI0004:"))
                        return -ENOMSG;
                if (strlen(sysname) >= sizeof(ev.acpi_name))
                        return -EINVAL;
                strcpy(ev.acpi_name, sysname);
                break;
        default:
                return -ENOMSG;
        }

        if (seqnum) {
                char *end;
                errno = 0;
                ev.seqnum = strtoull(seqnum, &end, 10);
                if (errno != 0 || *end != 0 || end == seqnum)
                        return -EINVAL;
        }
        *ret = ev;
        return 0;
}

int uevent_decode_properties(const char *buf, size_t size, Uevent *ret) {
        const char *action = NULL, *subsystem = NULL, *devpath = NULL, *seqnum = NULL, *event = NULL;
        size_t off = 0;
        int r;

        while (off < size) {
                const char *kv = buf + off;
                size_t len = strnlen(kv, size - off);

                if (len == size - off)
                        return -EINVAL; /* not NUL-terminated */
                if (startswith(kv, "ACTION="))
                        action = kv + STRLEN("ACTION=");
                else if (startswith(kv, "SUBSYSTEM="))
                        subsystem = kv + STRLEN("SUBSYSTEM=");
                else if (startswith(kv, "DEVPATH="))
                        devpath = kv + STRLEN("DEVPATH=");
                else if (startswith(kv, "SEQNUM="))
                        seqnum = kv + STRLEN("SEQNUM=");
                else if (startswith(kv, "EVENT="))
                        event = kv + STRLEN("EVENT=");
                off += len + 1;
        }
        r = uevent_decode(action, subsystem, devpath, seqnum, ret);
        if (r < 0)
                return r;
        ret->eject_request = ret->subsystem == UEVENT_ACPI && ret->action == UEVENT_CHANGE && event &&
                             streq(event, "offline");
        return 0;
}
