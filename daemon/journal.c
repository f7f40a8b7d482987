/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* journal.c — the retire job's journal: a strict text format with a checksum, saved atomically.
 *
 * Why text: an operator who finds /var/lib/hotplugd/job-7.journal after a crash can read it.
 * Why strict: the journal decides which blocks get onlined again after a crash; acting on a
 * garbled record could online the wrong memory or strand some offline. So a record is either
 * whole and verified (magic, version, every key known and in range, CRC-32 of everything before
 * the last line) or refused with a reason, and the caller then rescans sysfs instead. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "journal.h"
#include "sysfs.h"

#define JOURNAL_MAGIC "hotplugd-job-journal 1"
#define JOURNAL_MAX_SIZE (64u * 1024 * 1024)

static const char *const phase_names[_JOURNAL_PHASE_MAX] = {
        [JOURNAL_PHASE_DRAIN] = "drain",   [JOURNAL_PHASE_ROLLBACK] = "rollback",
        [JOURNAL_PHASE_EJECT] = "eject",   [JOURNAL_PHASE_VERIFY] = "verify",
        [JOURNAL_PHASE_DONE] = "done",
};

static const char *const block_state_names[_JOURNAL_BLOCK_STATE_MAX] = {
        [JOURNAL_BLOCK_OFFLINING] = "offlining",
        [JOURNAL_BLOCK_OFFLINED] = "offlined",
        [JOURNAL_BLOCK_RESTORED] = "restored",
        [JOURNAL_BLOCK_RESTORE_FAILED] = "restore-failed",
};

DEFINE_STRING_TABLE_LOOKUP(journal_phase, JournalPhase, phase_names, _JOURNAL_PHASE_MAX, _JOURNAL_PHASE_INVALID);
DEFINE_STRING_TABLE_LOOKUP(journal_block_state, JournalBlockState, block_state_names, _JOURNAL_BLOCK_STATE_MAX,
                           _JOURNAL_BLOCK_STATE_INVALID);

/* CRC-32 (IEEE 802.3, reflected), bitwise: journals are small and written a few times a second. */
uint32_t crc32_update(uint32_t crc, const void *data, size_t size) {
        const uint8_t *p = data;

        crc = ~crc;
        while (size--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
        }
        return ~crc;
}

void job_journal_done(JobJournal *j) {
        free(j->blocks);
        *j = (JobJournal){};
}

JournalBlock *job_journal_find_block(JobJournal *j, uint64_t index) {
        for (size_t i = 0; i < j->n_blocks; i++)
                if (j->blocks[i].index == index)
                        return &j->blocks[i];
        return NULL;
}

int job_journal_set_block(JobJournal *j, uint64_t index, Zone zone, JournalBlockState state) {
        JournalBlock *b = job_journal_find_block(j, index);

        if (zone < 0 || zone >= _ZONE_MAX || state < 0 || state >= _JOURNAL_BLOCK_STATE_MAX)
                return -EINVAL;
        if (!b) {
                if (j->n_blocks >= JOURNAL_MAX_BLOCKS)
                        return -E2BIG;
                if (j->n_blocks >= j->n_allocated) {
                        size_t a = MAX(j->n_allocated * 2, (size_t) 16);
                        JournalBlock *p = realloc(j->blocks, a * sizeof(JournalBlock));
                        if (!p)
                                return -ENOMEM;
                        j->blocks = p;
                        j->n_allocated = a;
                }
                b = &j->blocks[j->n_blocks++];
                b->index = index;
        }
        b->zone = zone;
        b->state = state;
        return 0;
}

int job_journal_format(const JobJournal *j, char **ret) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        uint32_t crc;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%s\n", JOURNAL_MAGIC);
        fprintf(f, "job=%u\nnode=%d\nflags=%" PRIu64 "\nphase=%s\nstarted=%" PRIu64 "\nblocks=%zu\n", j->job_id,
                j->node, j->flags, journal_phase_to_string(j->phase), j->started_usec, j->n_blocks);
        for (size_t i = 0; i < j->n_blocks; i++)
                fprintf(f, "block=%" PRIu64 " %s %s\n", j->blocks[i].index, zone_to_string(j->blocks[i].zone),
                        journal_block_state_to_string(j->blocks[i].state));
        if (fflush(f) != 0) {
                fclose(f);
                free(buf);
                return -ENOMEM;
        }
        crc = crc32_update(0, buf, size);
        fprintf(f, "crc32=%08x\n", crc);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

_printf_(3, 4) static int fail(char **ret_error, int r, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!*s || (s[0] == '0' && s[1]))
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (v > (max - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return 0;
}

static int parse_terminated(const char *text, size_t size, JobJournal *ret, char **ret_error);

int job_journal_parse(const char *data, size_t size, JobJournal *ret, char **ret_error) {
        _cleanup_free_ char *text = NULL;

        if (ret_error)
                *ret_error = NULL;
        if (size > JOURNAL_MAX_SIZE)
                return fail(ret_error, -EFBIG, "journal is larger than %u bytes", JOURNAL_MAX_SIZE);
        /* The checks below use string functions: work on a NUL-terminated copy, whatever the
         * caller's buffer is (a fuzzer's is not terminated). */
        text = malloc(size + 1);
        if (!text)
                return -ENOMEM;
        memcpy(text, data, size);
        text[size] = 0;
        return parse_terminated(text, size, ret, ret_error);
}

static int parse_terminated(const char *text, size_t size, JobJournal *ret, char **ret_error) {
        JobJournal j = { .node = -1, .phase = _JOURNAL_PHASE_INVALID };
        const char *crc_line = NULL;
        uint64_t declared = UINT64_MAX, v;
        unsigned line = 0, seen = 0;
        char buf[256];
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (size > JOURNAL_MAX_SIZE)
                return fail(ret_error, -EFBIG, "journal is larger than %u bytes", JOURNAL_MAX_SIZE);
        if (memchr(text, 0, size))
                return fail(ret_error, -EBADMSG, "journal contains NUL bytes");
        if (size == 0 || text[size - 1] != '\n')
                return fail(ret_error, -EBADMSG, "journal is truncated (no final newline)");

        /* The checksum covers everything up to its own line, which must be the last one. */
        for (const char *p = text + size - 1; p > text; p--)
                if (p[-1] == '\n') {
                        crc_line = p;
                        break;
                }
        if (!crc_line || !startswith(crc_line, "crc32="))
                return fail(ret_error, -EBADMSG, "journal is truncated (no checksum line)");
        {
                unsigned stored;
                char tail;
                if (sscanf(crc_line, "crc32=%8x%c", &stored, &tail) != 2 || tail != '\n' ||
                    (size_t) (text + size - crc_line) != STRLEN("crc32=00000000\n"))
                        return fail(ret_error, -EBADMSG, "malformed checksum line");
                if (crc32_update(0, text, (size_t) (crc_line - text)) != stored)
                        return fail(ret_error, -EBADMSG, "checksum mismatch: the journal is corrupted");
        }

        for (const char *p = text; p < crc_line;) {
                const char *eol = memchr(p, '\n', (size_t) (crc_line - p));
                size_t len = (size_t) (eol - p);
                char *value;

                line++;
                if (len >= sizeof(buf)) {
                        r = fail(ret_error, -EBADMSG, "line %u: too long", line);
                        goto fail;
                }
                memcpy(buf, p, len);
                buf[len] = 0;
                p = eol + 1;

                if (line == 1) {
                        if (!streq(buf, JOURNAL_MAGIC)) {
                                r = fail(ret_error, -EBADMSG, "line 1: not a hotplugd job journal of version 1");
                                goto fail;
                        }
                        continue;
                }
                value = strchr(buf, '=');
                if (!value) {
                        r = fail(ret_error, -EBADMSG, "line %u: expected key=value", line);
                        goto fail;
                }
                *value++ = 0;

#define ONCE(bit)                                                                              \
        do {                                                                                   \
                if (seen & (bit)) {                                                            \
                        r = fail(ret_error, -EBADMSG, "line %u: duplicate key '%s'", line, buf); \
                        goto fail;                                                             \
                }                                                                              \
                seen |= (bit);                                                                 \
        } while (0)

                if (streq(buf, "job")) {
                        ONCE(1);
                        if (parse_u64(value, UINT32_MAX, &v) < 0 || v == 0)
                                goto bad_value;
                        j.job_id = (unsigned) v;
                } else if (streq(buf, "node")) {
                        ONCE(2);
                        if (parse_u64(value, MODEL_MAX_NODES - 1, &v) < 0)
                                goto bad_value;
                        j.node = (int) v;
                } else if (streq(buf, "flags")) {
                        ONCE(4);
                        if (parse_u64(value, UINT64_MAX, &j.flags) < 0)
                                goto bad_value;
                } else if (streq(buf, "phase")) {
                        ONCE(8);
                        j.phase = journal_phase_from_string(value);
                        if (j.phase < 0)
                                goto bad_value;
                } else if (streq(buf, "started")) {
                        ONCE(16);
                        if (parse_u64(value, UINT64_MAX, &j.started_usec) < 0)
                                goto bad_value;
                } else if (streq(buf, "blocks")) {
                        ONCE(32);
                        if (parse_u64(value, JOURNAL_MAX_BLOCKS, &declared) < 0)
                                goto bad_value;
                } else if (streq(buf, "block")) {
                        char *zone, *state;
                        Zone z;
                        JournalBlockState st;

                        if (!(seen & 32)) {
                                r = fail(ret_error, -EBADMSG, "line %u: block before the block count", line);
                                goto fail;
                        }
                        zone = strchr(value, ' ');
                        state = zone ? strchr(zone + 1, ' ') : NULL;
                        if (!zone || !state)
                                goto bad_value;
                        *zone++ = 0;
                        *state++ = 0;
                        z = zone_from_string(zone);
                        st = journal_block_state_from_string(state);
                        if (parse_u64(value, (UINT64_C(1) << 24) - 1, &v) < 0 || z < 0 || st < 0)
                                goto bad_value;
                        if (job_journal_find_block(&j, v)) {
                                r = fail(ret_error, -EBADMSG, "line %u: block %" PRIu64 " listed twice", line, v);
                                goto fail;
                        }
                        r = job_journal_set_block(&j, v, z, st);
                        if (r < 0) {
                                r = fail(ret_error, r, "line %u: too many blocks", line);
                                goto fail;
                        }
                } else {
                        r = fail(ret_error, -EBADMSG, "line %u: unknown key '%s'", line, buf);
                        goto fail;
                }
                continue;
        bad_value:
                r = fail(ret_error, -EBADMSG, "line %u: invalid value for '%s'", line, buf);
                goto fail;
        }
#undef ONCE
        if (seen != 63) {
                r = fail(ret_error, -EBADMSG, "journal lacks required keys (job, node, flags, phase, started, blocks)");
                goto fail;
        }
        if (declared != j.n_blocks) {
                r = fail(ret_error, -EBADMSG, "journal declares %" PRIu64 " blocks but lists %zu", declared, j.n_blocks);
                goto fail;
        }
        *ret = j;
        return 0;
fail:
        job_journal_done(&j);
        return r;
}

int job_journal_save(int dirfd, const JobJournal *j) {
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -1;
        char name[64], tmp[80];
        size_t len;
        int r;

        r = job_journal_format(j, &text);
        if (r < 0)
                return r;
        len = strlen(text);
        (void) xsprintf(name, "job-%u.journal", j->job_id);
        (void) xsprintf(tmp, ".#job-%u.journal.tmp", j->job_id);

        (void) unlinkat(dirfd, tmp, 0);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, text + off, len - off);
                if (n < 0) {
                        r = negative_errno();
                        goto fail;
                }
                off += (size_t) n;
        }
        /* Data on disk before the rename makes it visible; the directory after, so the rename
         * itself survives a power cut. */
        if (fsync(fd) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (renameat(dirfd, tmp, dirfd, name) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (fsync(dirfd) < 0)
                return negative_errno();
        return 0;
fail:
        (void) unlinkat(dirfd, tmp, 0);
        return r;
}

int job_journal_load(int dirfd, const char *name, JobJournal *ret, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        size_t size;
        int r;

        if (ret_error)
                *ret_error = NULL;
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return fail(ret_error, negative_errno(), "%s: %s", name, strerror(errno));
        if (fstat(fd, &st) < 0)
                return negative_errno();
        /* Written by root with 0600: anything else was not written by us. */
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 0077))
                return fail(ret_error, -EPERM, "%s: not a regular file owned by root with mode 0600", name);
        r = sysfs_read_full_at(dirfd, name, &text, &size);
        if (r < 0)
                return fail(ret_error, r, "%s: %s", name, strerror(-r));
        r = job_journal_parse(text, size, ret, ret_error);
        if (r < 0 && ret_error && *ret_error) {
                char *m;
                if (asprintf(&m, "%s: %s", name, *ret_error) >= 0) {
                        free(*ret_error);
                        *ret_error = m;
                }
        }
        return r;
}

int job_journal_remove(int dirfd, unsigned job_id) {
        char name[64];

        (void) xsprintf(name, "job-%u.journal", job_id);
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return negative_errno();
        if (fsync(dirfd) < 0)
                return negative_errno();
        return 0;
}
