/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysfs.h — root-relative access to /sys and /proc, and parsers for what the kernel writes there. */
#pragma once

#include <stdint.h>

#include "model.h"

/* Directory fds under the root prefix (--root, default "/"). Nothing in hotplugd opens an
 * absolute /sys or /proc path: everything goes through these with openat(). */
typedef struct SysRoot {
        char *path;             /* the root prefix, for messages */
        int root_fd;
        int memory_fd;          /* sys/devices/system/memory */
        int node_fd;            /* sys/devices/system/node (may be -1: no NUMA) */
        int cpu_fd;             /* sys/devices/system/cpu */
        int proc_fd;            /* proc */
} SysRoot;

int sysroot_open(const char *path, SysRoot **ret);
SysRoot *sysroot_free(SysRoot *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(SysRoot *, sysroot_free);

/* Reads a small attribute into buf (NUL-terminated, trailing newline stripped). Returns length.
 * Paths with several components must resolve beneath dirfd (a symlink out of it: -ELOOP); the last
 * component is never followed. sysfs_read_attr_at() also refuses (-EFBIG) a file that does not fit,
 * where a prefix would read as something valid. */
int sysfs_read_at(int dirfd, const char *path, char *buf, size_t size);
int sysfs_read_attr_at(int dirfd, const char *path, char *buf, size_t size);
/* Reads a whole file of any size (e.g. /proc/zoneinfo) into a malloc'ed buffer. */
int sysfs_read_full_at(int dirfd, const char *path, char **ret, size_t *ret_size);
/* Writes value with a single write(2); returns 0 or the kernel's negative errno. The parent must
 * resolve beneath dirfd and the file itself must not be a symlink (-ELOOP). */
int sysfs_write_at(int dirfd, const char *path, const char *value);

/* Parsers: pure functions, fuzzed and unit-tested. All return 0 or negative errno. */
int parse_block_size(const char *s, uint64_t *ret);                  /* hex without 0x */
int parse_block_state(const char *s, BlockState *ret);               /* online|offline|going-offline */
int parse_valid_zones(const char *s, Zone *ret_first, uint8_t *ret_mask);
int parse_index_list(const char *s, int max, uint64_t *bits, size_t n_words, unsigned *ret_count);
int parse_memory_block_name(const char *name, uint64_t *ret);        /* "memory123" */
int parse_prefixed_uint(const char *name, const char *prefix, unsigned *ret); /* "node3", "cpu7" */

/* /proc/zoneinfo: calls cb for every "Node N, zone NAME" with its spanned/present/managed pages. */
typedef int (*ZoneinfoCallback)(int node, Zone zone, const ZonePages *pages, void *userdata);
int parse_zoneinfo(const char *text, ZoneinfoCallback cb, void *userdata);

/* /proc/iomem: calls cb for every "System RAM (virtio_mem)" / "System RAM (kmem)" range. */
typedef int (*IomemCallback)(uint64_t start, uint64_t end, BlockOwner owner, void *userdata);
int parse_iomem(const char *text, IomemCallback cb, void *userdata);
