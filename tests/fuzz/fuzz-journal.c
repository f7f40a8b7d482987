/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-journal.c — the job journal reader: damaged records are refused with a message, never
 * acted on; accepted ones are within range and format back to an identical record. */
#include <stdint.h>

#include "journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        JobJournal j = {}, k = {};
        char *error = NULL, *text = NULL;
        int r = job_journal_parse((const char *) data, size, &j, &error);

        if (r < 0) {
                if (!error)
                        abort();
                free(error);
                return 0;
        }
        if (j.node < 0 || j.node >= MODEL_MAX_NODES || j.phase < 0 || j.phase >= _JOURNAL_PHASE_MAX)
                abort();
        if (job_journal_format(&j, &text) < 0 || job_journal_parse(text, strlen(text), &k, &error) < 0)
                abort();
        if (k.n_blocks != j.n_blocks || k.job_id != j.job_id)
                abort();
        free(text);
        job_journal_done(&j);
        job_journal_done(&k);
        return 0;
}
