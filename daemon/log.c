/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log.c — journal records with MESSAGE_ID/NODE/BLOCK fields, plain stderr lines otherwise. */
#include <stdarg.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool use_journal;

/* systemd sets JOURNAL_STREAM=dev:ino for services whose stderr is a journal stream; only then
 * are native journal records the right thing (journald(8) "JOURNAL_STREAM"). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(LogTarget target) {
        const char *e = getenv("HOTPLUGD_LOG_LEVEL");

        use_journal = target == LOG_TARGET_JOURNAL || (target == LOG_TARGET_AUTO && stderr_is_journal());
        if (e && log_level_from_string(e) >= 0)
                max_level = log_level_from_string(e);
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (streq(s, "warn"))
                return LOG_WARNING;
        return -EINVAL;
}

int log_internal(int level, int error, const LogFields *fields, const char *file, int line,
                 const char *func, const char *format, ...) {
        char message[2048];
        int saved_errno = errno;
        va_list ap;

        error = error < 0 ? -error : error;
        if (level > max_level)
                return -error;

        /* %m in the format means the given error, as in systemd's log_*_errno(). */
        errno = error;
        va_start(ap, format);
        vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);
        errno = saved_errno;

        if (use_journal) {
                char node[32] = "", block[48] = "", errnostr[32] = "", mid[64] = "";

                if (fields && fields->node >= 0)
                        snprintf(node, sizeof(node), "NODE=%d", fields->node);
                if (fields && fields->block >= 0)
                        snprintf(block, sizeof(block), "BLOCK=%lld", (long long) fields->block);
                if (error > 0)
                        snprintf(errnostr, sizeof(errnostr), "ERRNO=%d", error);
                if (fields && fields->message_id)
                        snprintf(mid, sizeof(mid), "MESSAGE_ID=%s", fields->message_id);

                /* Empty strings are not valid journal fields; "SYSLOG_IDENTIFIER" repeats harmlessly. */
                sd_journal_send("MESSAGE=%s", message, "PRIORITY=%d", level, "CODE_FILE=%s", file,
                                "CODE_LINE=%d", line, "CODE_FUNC=%s", func,
                                *node ? node : "SYSLOG_IDENTIFIER=hotplugd",
                                *block ? block : "SYSLOG_IDENTIFIER=hotplugd",
                                *errnostr ? errnostr : "SYSLOG_IDENTIFIER=hotplugd",
                                *mid ? mid : "SYSLOG_IDENTIFIER=hotplugd",
                                fields && fields->extra ? fields->extra : "SYSLOG_IDENTIFIER=hotplugd",
                                NULL);
        } else {
                fprintf(stderr, "%s\n", message);
        }
        return -error;
}
