/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* uevent.h — decoding memory/node/cpu/acpi uevents into what the model needs to know. */
#pragma once

#include <stdint.h>

#include "util.h"

typedef enum UeventSubsystem {
        UEVENT_MEMORY,
        UEVENT_NODE,
        UEVENT_CPU,
        UEVENT_ACPI,            /* PNP0C80 memory devices and ACPI0004 containers */
        _UEVENT_SUBSYSTEM_MAX,
} UeventSubsystem;

typedef enum UeventAction {
        UEVENT_ADD,
        UEVENT_REMOVE,
        UEVENT_ONLINE,
        UEVENT_OFFLINE,
        UEVENT_CHANGE,
        UEVENT_MOVE,
        UEVENT_BIND,
        UEVENT_UNBIND,
        _UEVENT_ACTION_MAX,
} UeventAction;

typedef struct Uevent {
        UeventSubsystem subsystem;
        UeventAction action;
        uint64_t index;         /* memory block index, node id or cpu id */
        char acpi_name[32];     /* "PNP0C80:03", "ACPI0004:00" */
        uint64_t seqnum;        /* 0 if unknown */
        bool eject_request;     /* ACPI container change with EVENT=offline */
} Uevent;

/* Pure. Returns 0 and fills ret, -ENOMSG for events hotplugd does not care about (other
 * subsystems, the memory root, ACPI devices other than memory devices and containers), or
 * -EINVAL for malformed input. */
int uevent_decode(const char *action, const char *subsystem, const char *devpath, const char *seqnum,
                  Uevent *ret);

/* The same from a NUL-separated KEY=VALUE property list (what the netlink message carries). */
int uevent_decode_properties(const char *buf, size_t size, Uevent *ret);

const char *uevent_action_to_string(UeventAction a);
const char *uevent_subsystem_to_string(UeventSubsystem s);
