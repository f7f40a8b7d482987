/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* journal.h — crash-safe record of a retire job in StateDirectory, so a restart can reconcile. */
#pragma once

#include <stdint.h>

#include "model.h"

#define JOURNAL_MAX_BLOCKS (1u << 20)

typedef enum JournalPhase {
        JOURNAL_PHASE_DRAIN,            /* offlining the node's blocks */
        JOURNAL_PHASE_ROLLBACK,         /* onlining back what this job offlined */
        JOURNAL_PHASE_EJECT,            /* all blocks offline; ejecting the memory devices */
        JOURNAL_PHASE_VERIFY,           /* devices ejected; waiting for the node to go */
        JOURNAL_PHASE_DONE,             /* final; the record is about to be removed */
        _JOURNAL_PHASE_MAX,
        _JOURNAL_PHASE_INVALID = -EINVAL,
} JournalPhase;

typedef enum JournalBlockState {
        JOURNAL_BLOCK_OFFLINING,        /* the write is (or was, at the crash) in flight */
        JOURNAL_BLOCK_OFFLINED,         /* this job offlined it */
        JOURNAL_BLOCK_RESTORED,         /* onlined back into its zone */
        JOURNAL_BLOCK_RESTORE_FAILED,   /* could not be onlined back */
        _JOURNAL_BLOCK_STATE_MAX,
        _JOURNAL_BLOCK_STATE_INVALID = -EINVAL,
} JournalBlockState;

typedef struct JournalBlock {
        uint64_t index;
        Zone zone;                      /* where it was online before the job touched it */
        JournalBlockState state;
} JournalBlock;

typedef struct JobJournal {
        unsigned job_id;
        int node;
        uint64_t flags;
        JournalPhase phase;
        uint64_t started_usec;          /* CLOCK_REALTIME */
        JournalBlock *blocks;
        size_t n_blocks, n_allocated;
} JobJournal;

void job_journal_done(JobJournal *j);
/* Records a block's state, adding it if new. */
int job_journal_set_block(JobJournal *j, uint64_t index, Zone zone, JournalBlockState state);
JournalBlock *job_journal_find_block(JobJournal *j, uint64_t index);

/* Serialises to text (malloc'ed): "key=value" lines, block lines, a CRC-32 over all of it. */
int job_journal_format(const JobJournal *j, char **ret);
/* Pure and strict: anything truncated, corrupted or out of range is refused with a message in
 * *ret_error ("line N: …"); *ret is untouched then. Fuzzed. */
int job_journal_parse(const char *text, size_t size, JobJournal *ret, char **ret_error);

/* job-<id>.journal in dirfd, written to a temporary file, fsync'ed, renamed over the old one, and
 * the directory fsync'ed: after a crash there is the old record or the new one, never a mix.
 * Files are 0600 and never followed through symlinks. */
int job_journal_save(int dirfd, const JobJournal *j);
int job_journal_load(int dirfd, const char *name, JobJournal *ret, char **ret_error);
int job_journal_remove(int dirfd, unsigned job_id);

const char *journal_phase_to_string(JournalPhase p);
JournalPhase journal_phase_from_string(const char *s);
const char *journal_block_state_to_string(JournalBlockState s);
JournalBlockState journal_block_state_from_string(const char *s);
uint32_t crc32_update(uint32_t crc, const void *data, size_t size);
