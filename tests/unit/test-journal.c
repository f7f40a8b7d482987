/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-journal.c — the retire job journal: round trip, atomic save, and refusal of damaged records. */
#include <fcntl.h>
#include <sys/stat.h>

#include "journal.h"
#include "tests.h"

static void sample(JobJournal *j) {
        *j = (JobJournal){ .job_id = 7, .node = 2, .flags = 5, .phase = JOURNAL_PHASE_DRAIN, .started_usec = 1764140000000000 };
        ASSERT_EQ(job_journal_set_block(j, 271, ZONE_MOVABLE, JOURNAL_BLOCK_OFFLINED), 0);
        ASSERT_EQ(job_journal_set_block(j, 270, ZONE_MOVABLE, JOURNAL_BLOCK_OFFLINING), 0);
        ASSERT_EQ(job_journal_set_block(j, 12, ZONE_NORMAL, JOURNAL_BLOCK_RESTORE_FAILED), 0);
}

static void test_round_trip(void) {
        JobJournal j, k;
        _cleanup_free_ char *text = NULL, *error = NULL;

        sample(&j);
        ASSERT_EQ(job_journal_set_block(&j, 270, ZONE_MOVABLE, JOURNAL_BLOCK_OFFLINED), 0);
        ASSERT_EQ(j.n_blocks, 3);
        ASSERT_EQ(job_journal_format(&j, &text), 0);
        ASSERT_EQ(job_journal_parse(text, strlen(text), &k, &error), 0);
        ASSERT(!error);
        ASSERT_EQ(k.job_id, 7);
        ASSERT_EQ(k.node, 2);
        ASSERT_EQ(k.flags, 5);
        ASSERT_EQ(k.phase, JOURNAL_PHASE_DRAIN);
        ASSERT_EQ(k.started_usec, 1764140000000000);
        ASSERT_EQ(k.n_blocks, 3);
        ASSERT_EQ(job_journal_find_block(&k, 270)->state, JOURNAL_BLOCK_OFFLINED);
        ASSERT_EQ(job_journal_find_block(&k, 12)->zone, ZONE_NORMAL);
        ASSERT_EQ(job_journal_find_block(&k, 12)->state, JOURNAL_BLOCK_RESTORE_FAILED);
        job_journal_done(&j);
        job_journal_done(&k);
}

static void expect_refused(const char *text, const char *why_substring) {
        JobJournal k = { .job_id = 99 };
        char *error = NULL;

        ASSERT(job_journal_parse(text, strlen(text), &k, &error) < 0);
        ASSERT(error);
        if (!strstr(error, why_substring)) {
                fprintf(stderr, "message \"%s\" lacks \"%s\"\n", error, why_substring);
                ASSERT(false);
        }
        ASSERT_EQ(k.job_id, 99); /* untouched */
        free(error);
}

/* Re-signs a hand-written body so that the checks behind the checksum are reached. */
static char *signed_text(const char *body) {
        char *s;
        ASSERT(asprintf(&s, "%scrc32=%08x\n", body, crc32_update(0, body, strlen(body))) > 0);
        return s;
}

static void test_damage(void) {
        JobJournal j;
        _cleanup_free_ char *text = NULL;
        char *t;

        sample(&j);
        ASSERT_EQ(job_journal_format(&j, &text), 0);
        job_journal_done(&j);

        /* Truncated anywhere. */
        for (size_t cut = 0; cut < strlen(text); cut += 7) {
                char *p = strndup(text, cut);
                JobJournal k;
                char *error = NULL;
                ASSERT(job_journal_parse(p, cut, &k, &error) < 0);
                ASSERT(error);
                free(error);
                free(p);
        }
        /* One byte flipped. */
        t = strdup(text);
        t[40] ^= 0x01;
        expect_refused(t, "checksum");
        free(t);
        expect_refused("", "truncated");
        expect_refused("garbage\n", "checksum");

        t = signed_text("not-a-journal\n");
        expect_refused(t, "not a hotplugd job journal");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\nnode=2\nflags=0\nphase=drain\nstarted=1\nblocks=1\n");
        expect_refused(t, "declares 1 blocks but lists 0");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\nnode=2\nflags=0\nphase=explode\nstarted=1\nblocks=0\n");
        expect_refused(t, "invalid value for 'phase'");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\nnode=5000\nflags=0\nphase=drain\nstarted=1\nblocks=0\n");
        expect_refused(t, "invalid value for 'node'");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\njob=2\nnode=1\nflags=0\nphase=drain\nstarted=1\nblocks=0\n");
        expect_refused(t, "duplicate key");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\nnode=1\nflags=0\nphase=drain\nstarted=1\nblocks=2\n"
                        "block=4 Movable offlined\nblock=4 Movable offlined\n");
        expect_refused(t, "listed twice");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\nnode=1\nflags=0\nphase=drain\nstarted=1\nblocks=1\n"
                        "block=4 Sideways offlined\n");
        expect_refused(t, "invalid value for 'block'");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\nnode=1\nflags=0\nphase=drain\nstarted=1\n");
        expect_refused(t, "lacks required keys");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=1\nnode=1\nflags=0\nphase=drain\nstarted=1\nblocks=0\nextra=1\n");
        expect_refused(t, "unknown key");
        free(t);
        t = signed_text("hotplugd-job-journal 1\njob=01\nnode=1\nflags=0\nphase=drain\nstarted=1\nblocks=0\n");
        expect_refused(t, "invalid value for 'job'");
        free(t);
}

static void test_save_load(void) {
        char dir[] = "/tmp/hotplugd-test-journal.XXXXXX";
        _cleanup_close_ int dfd = -1;
        JobJournal j, k;
        char *error = NULL;
        struct stat st;

        ASSERT(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT(dfd >= 0);
        sample(&j);
        ASSERT_EQ(job_journal_save(dfd, &j), 0);
        ASSERT_EQ(fstatat(dfd, "job-7.journal", &st, 0), 0);
        ASSERT_EQ(st.st_mode & 0777, 0600);
        /* A second save replaces the first whole. */
        j.phase = JOURNAL_PHASE_ROLLBACK;
        ASSERT_EQ(job_journal_save(dfd, &j), 0);
        ASSERT_EQ(job_journal_load(dfd, "job-7.journal", &k, &error), 0);
        ASSERT_EQ(k.phase, JOURNAL_PHASE_ROLLBACK);
        ASSERT_EQ(k.n_blocks, 3);
        job_journal_done(&k);
        /* No temporary file is left behind. */
        ASSERT(faccessat(dfd, ".#job-7.journal.tmp", F_OK, 0) < 0);

        /* Loose permissions or a symlink: refused. */
        ASSERT_EQ(fchmodat(dfd, "job-7.journal", 0644, 0), 0);
        ASSERT_EQ(job_journal_load(dfd, "job-7.journal", &k, &error), -EPERM);
        ASSERT(strstr(error, "0600"));
        free(error);
        ASSERT_EQ(fchmodat(dfd, "job-7.journal", 0600, 0), 0);
        ASSERT_EQ(symlinkat("job-7.journal", dfd, "job-8.journal"), 0);
        ASSERT(job_journal_load(dfd, "job-8.journal", &k, &error) < 0);
        free(error);
        ASSERT_EQ(unlinkat(dfd, "job-8.journal", 0), 0);

        ASSERT_EQ(job_journal_remove(dfd, 7), 0);
        ASSERT_EQ(job_journal_remove(dfd, 7), 0); /* already gone is fine */
        ASSERT(faccessat(dfd, "job-7.journal", F_OK, 0) < 0);
        job_journal_done(&j);
        ASSERT_EQ(rmdir(dir), 0);
}

int main(void) {
        RUN(test_round_trip);
        RUN(test_damage);
        RUN(test_save_load);
        return 0;
}
