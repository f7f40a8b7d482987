/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* state.h — what hotplugd keeps across restarts in StateDirectory: quarantine and job journals. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "model.h"

/* Opens the state directory: path, else $STATE_DIRECTORY (systemd's StateDirectory=), else
 * /var/lib/hotplugd; with create, made 0700 if missing. Returns an O_DIRECTORY fd. */
int state_dir_open(const char *path, bool create, int *ret_fd, char **ret_path);

/* mkdir -p: parents 0755, the directory itself with mode. */
int mkdir_parents(const char *path, mode_t mode);

/* The quarantine: a file "quarantine" with the node list ("1,4-5"), 0600, saved atomically. */
int quarantine_load(int dirfd, uint64_t bits[MODEL_MAX_NODES / 64]);
int quarantine_save(int dirfd, const uint64_t bits[MODEL_MAX_NODES / 64]);
/* Formats a node bitmap as a list ("0-2,7"); buf of size at least 8 bytes. */
void node_list_format(const uint64_t *bits, size_t n_bits, char *buf, size_t size);
