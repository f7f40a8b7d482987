/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* output.c — how hotplugctl talks to people: errors, tables, JSON, sizes, pager, progress. */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hotplugctl.h"

/* ---- errors ----------------------------------------------------------------------------- */

int print_error(int code, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

/* Errors that come from the bus itself rather than from hotplugd: say what they mean here. */
static const char *bus_error_text(const char *name) {
        static const struct {
                const char *name, *text;
        } table[] = {
                { SD_BUS_ERROR_SERVICE_UNKNOWN, "hotplugd is not running (nothing owns " HOTPLUG_BUS_NAME " on the system bus)." },
                { SD_BUS_ERROR_NAME_HAS_NO_OWNER, "hotplugd is not running (nothing owns " HOTPLUG_BUS_NAME " on the system bus)." },
                { SD_BUS_ERROR_NO_REPLY, "hotplugd did not answer in time." },
                { SD_BUS_ERROR_TIMEOUT, "hotplugd did not answer in time." },
                { SD_BUS_ERROR_DISCONNECTED, "The connection to the bus was lost." },
                { SD_BUS_ERROR_UNKNOWN_METHOD, "hotplugd does not know this request; is it an older version than hotplugctl?" },
        };
        for (size_t i = 0; name && i < ELEMENTSOF(table); i++)
                if (streq(name, table[i].name))
                        return table[i].text;
        return NULL;
}

int print_bus_error(const sd_bus_error *error, int r, const char *what) {
        const char *name = error && sd_bus_error_is_set(error) ? error->name : NULL;
        int code = hotplug_bus_error_is_access_denied(name) || (!name && r == -EACCES) ? EXIT_DENIED : EXIT_FAIL;

        if (name) {
                const char *text = bus_error_text(name) ?: error->message;

                if (text)
                        fputs(text, stderr);
                else
                        fprintf(stderr, "%s: %s.", what ?: "Failed", strerror(hotplug_bus_error_to_errno(name) ?: EIO));
        } else
                fprintf(stderr, "%s: %s.", what ?: "Failed", strerror(r < 0 ? -r : EIO));
        if (name && streq(name, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED) && !arg_ask_password)
                fputs(" (--no-ask-password was given)", stderr);
        if (arg_verbose && name)
                fprintf(stderr, " [%s]", name);
        fputc('\n', stderr);
        return code;
}

/* ---- tables ----------------------------------------------------------------------------- */

struct Table {
        size_t n_columns;
        char **cells;           /* headers first */
        size_t n_cells, n_allocated;
        bool right[16];
};

Table *table_new(const char *const *headers, size_t n_columns) {
        Table *t = calloc(1, sizeof(Table));

        if (!t)
                return NULL;
        t->n_columns = n_columns;
        for (size_t i = 0; i < n_columns; i++)
                if (table_add(t, headers[i]) < 0)
                        return table_free(t);
        return t;
}

void table_set_right(Table *t, size_t column) {
        if (column < ELEMENTSOF(t->right))
                t->right[column] = true;
}

static int table_take(Table *t, char *s) {
        if (!s)
                return -ENOMEM;
        if (t->n_cells >= t->n_allocated) {
                size_t n = t->n_allocated ? t->n_allocated * 2 : 64;
                char **p = realloc(t->cells, n * sizeof(char *));
                if (!p) {
                        free(s);
                        return -ENOMEM;
                }
                t->cells = p;
                t->n_allocated = n;
        }
        t->cells[t->n_cells++] = s;
        return 0;
}

int table_add(Table *t, const char *cell) {
        return table_take(t, strdup(cell ?: ""));
}

int table_addf(Table *t, const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        return r < 0 ? -ENOMEM : table_take(t, s);
}

void table_print(Table *t, FILE *f) {
        size_t widths[16] = {};
        size_t first = arg_no_legend ? t->n_columns : 0;

        for (size_t i = first; i < t->n_cells; i++) {
                size_t c = i % t->n_columns, l = strlen(t->cells[i]);
                if (c < ELEMENTSOF(widths) && l > widths[c])
                        widths[c] = l;
        }
        for (size_t i = first; i < t->n_cells; i++) {
                size_t c = i % t->n_columns;
                bool last = c == t->n_columns - 1;

                if (last && !t->right[c])
                        fputs(t->cells[i], f);
                else
                        fprintf(f, t->right[c] ? "%*s" : "%-*s", (int) widths[c], t->cells[i]);
                fputs(last ? "\n" : " ", f);
        }
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

/* ---- JSON ------------------------------------------------------------------------------- */

void json_init(Json *j, FILE *f) {
        *j = (Json) { .f = f, .pretty = arg_json == JSON_PRETTY };
        j->first[0] = true;
}

static void json_indent(Json *j) {
        if (!j->pretty)
                return;
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
                fputs("  ", j->f);
}

/* Separator and indentation before any value or key. */
static void json_pre(Json *j) {
        if (j->after_key) {
                j->after_key = false;
                return;
        }
        if (!j->first[j->depth])
                fputc(',', j->f);
        j->first[j->depth] = false;
        if (j->depth > 0)
                json_indent(j);
}

static void json_open(Json *j, char c) {
        json_pre(j);
        fputc(c, j->f);
        if (j->depth < (int) ELEMENTSOF(j->first) - 1)
                j->depth++;
        j->first[j->depth] = true;
}

static void json_close(Json *j, char c) {
        bool empty = j->first[j->depth];

        if (j->depth > 0)
                j->depth--;
        if (!empty)
                json_indent(j);
        fputc(c, j->f);
}

void json_begin_object(Json *j) {
        json_open(j, '{');
}
void json_end_object(Json *j) {
        json_close(j, '}');
}
void json_begin_array(Json *j) {
        json_open(j, '[');
}
void json_end_array(Json *j) {
        json_close(j, ']');
}

static void json_quoted(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        fputc('"', f);
}

void json_key(Json *j, const char *key) {
        json_pre(j);
        json_quoted(j->f, key);
        fputs(j->pretty ? ": " : ":", j->f);
        j->after_key = true;
}

void json_string(Json *j, const char *s) {
        json_pre(j);
        if (s)
                json_quoted(j->f, s);
        else
                fputs("null", j->f);
}

void json_uint(Json *j, uint64_t v) {
        json_pre(j);
        fprintf(j->f, "%" PRIu64, v);
}

void json_int(Json *j, int64_t v) {
        json_pre(j);
        fprintf(j->f, "%" PRIi64, v);
}

void json_double(Json *j, double v) {
        json_pre(j);
        if (isfinite(v))
                fprintf(j->f, "%.6g", v);
        else
                fputs("null", j->f);
}

void json_bool(Json *j, bool b) {
        json_pre(j);
        fputs(b ? "true" : "false", j->f);
}

void json_null(Json *j) {
        json_pre(j);
        fputs("null", j->f);
}

void json_finish(Json *j) {
        fputc('\n', j->f);
}

int json_bus_value(Json *j, sd_bus_message *m) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -ENXIO;
        switch (type) {
        case 'a': {
                bool dict = contents[0] == '{';

                r = sd_bus_message_enter_container(m, 'a', contents);
                if (r < 0)
                        return r;
                dict ? json_begin_object(j) : json_begin_array(j);
                while ((r = sd_bus_message_at_end(m, false)) == 0) {
                        if (dict) {
                                const char *c;
                                char t;

                                r = sd_bus_message_peek_type(m, &t, &c);
                                if (r >= 0)
                                        r = sd_bus_message_enter_container(m, 'e', c);
                                if (r >= 0) {
                                        const char *k = NULL;
                                        char kbuf[32];
                                        union {
                                                uint64_t t;
                                                int64_t x;
                                                uint32_t u;
                                                int32_t i;
                                        } v;
                                        char kt = c[0];

                                        if (kt == 's' || kt == 'o' || kt == 'g')
                                                r = sd_bus_message_read_basic(m, kt, &k);
                                        else {
                                                r = sd_bus_message_read_basic(m, kt, &v);
                                                if (kt == 'u' || kt == 'q' || kt == 'y')
                                                        snprintf(kbuf, sizeof(kbuf), "%" PRIu32, kt == 'u' ? v.u : (uint32_t) v.t);
                                                else
                                                        snprintf(kbuf, sizeof(kbuf), "%" PRIi64, v.x);
                                                k = kbuf;
                                        }
                                        if (r >= 0) {
                                                json_key(j, k);
                                                r = json_bus_value(j, m);
                                        }
                                        if (r >= 0)
                                                r = sd_bus_message_exit_container(m);
                                }
                        } else
                                r = json_bus_value(j, m);
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
                dict ? json_end_object(j) : json_end_array(j);
                return sd_bus_message_exit_container(m);
        }
        case 'r':
        case 'v':
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                if (type == 'r')
                        json_begin_array(j);
                while ((r = sd_bus_message_at_end(m, false)) == 0) {
                        r = json_bus_value(j, m);
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
                if (type == 'r')
                        json_end_array(j);
                return sd_bus_message_exit_container(m);
        default: {
                union {
                        uint8_t y;
                        int b;
                        int16_t n;
                        uint16_t q;
                        int32_t i;
                        uint32_t u;
                        int64_t x;
                        uint64_t t;
                        double d;
                        const char *s;
                } v;

                r = sd_bus_message_read_basic(m, type, &v);
                if (r < 0)
                        return r;
                switch (type) {
                case 'y': json_uint(j, v.y); break;
                case 'b': json_bool(j, v.b); break;
                case 'n': json_int(j, v.n); break;
                case 'q': json_uint(j, v.q); break;
                case 'i': json_int(j, v.i); break;
                case 'u': json_uint(j, v.u); break;
                case 'x': json_int(j, v.x); break;
                case 't': json_uint(j, v.t); break;
                case 'd': json_double(j, v.d); break;
                case 's': case 'o': case 'g': json_string(j, v.s); break;
                default: json_null(j); break;
                }
                return 0;
        }
        }
}

/* ---- formatting ------------------------------------------------------------------------- */

const char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char suffixes[] = "BKMGTPE";
        double v = (double) bytes;
        size_t i = 0;

        while (v >= 1024 && i + 1 < sizeof(suffixes) - 1) {
                v /= 1024;
                i++;
        }
        if (i == 0)
                snprintf(buf, size, "%" PRIu64 "B", bytes);
        else if (v == floor(v) || v >= 100)
                snprintf(buf, size, "%.0f%c", v, suffixes[i]);
        else
                snprintf(buf, size, "%.1f%c", v, suffixes[i]);
        return buf;
}

const char *format_id_list(char *buf, size_t size, const uint32_t *ids, size_t n) {
        size_t l = 0;

        buf[0] = 0;
        for (size_t i = 0; i < n && l + 24 < size; i++) {
                size_t e = i;

                while (e + 1 < n && ids[e + 1] == ids[e] + 1)
                        e++;
                l += (size_t) snprintf(buf + l, size - l, e == i ? "%s%" PRIu32 : "%s%" PRIu32 "-%" PRIu32,
                                       l ? "," : "", ids[i], ids[e]);
                i = e;
        }
        if (l == 0)
                snprintf(buf, size, "none");
        return buf;
}

const char *yes_no(bool b) {
        return b ? "yes" : "no";
}

/* ---- pager ------------------------------------------------------------------------------ */

static pid_t pager_pid;

void pager_open(void) {
        const char *pager;
        int fds[2];

        if (arg_no_pager || pager_pid > 0 || !isatty(STDOUT_FILENO))
                return;
        pager = getenv("HOTPLUGCTL_PAGER") ?: getenv("SYSTEMD_PAGER") ?: getenv("PAGER");
        if (pager && (!*pager || streq(pager, "cat")))
                return;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return;
        fflush(stdout);
        pager_pid = fork();
        if (pager_pid < 0) {
                close(fds[0]);
                close(fds[1]);
                pager_pid = 0;
                return;
        }
        if (pager_pid == 0) {
                dup2(fds[0], STDIN_FILENO);
                setenv("LESS", "FRSXMK", 0);
                if (pager)
                        execl("/bin/sh", "sh", "-c", pager, (char *) NULL);
                execlp("less", "less", (char *) NULL);
                execlp("more", "more", (char *) NULL);
                /* No pager at all: be cat. */
                for (char b[4096]; ;) {
                        ssize_t n = read(STDIN_FILENO, b, sizeof(b));
                        if (n <= 0 || write(STDOUT_FILENO, b, (size_t) n) != n)
                                _exit(EXIT_SUCCESS);
                }
        }
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        (void) signal(SIGPIPE, SIG_IGN);
}

void pager_close(void) {
        if (pager_pid <= 0)
                return;
        fflush(stdout);
        fclose(stdout);
        (void) waitpid(pager_pid, NULL, 0);
        pager_pid = 0;
}

/* ---- progress --------------------------------------------------------------------------- */

static bool progress_drawn;

void progress_show(const char *state, double progress, uint64_t blocks_done, uint64_t blocks_total,
                   uint64_t bytes_done, uint64_t bytes_total, uint64_t estimated_end) {
        char done[32], total[32], eta[32] = "";
        struct winsize ws = {};
        int percent = (int) (progress * 100 + 0.5), width, bar;
        struct timespec now;

        if (arg_quiet)
                return;
        clock_gettime(CLOCK_REALTIME, &now);
        if (estimated_end > 0) {
                uint64_t n = (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
                uint64_t left = estimated_end > n ? (estimated_end - n) / 1000000 : 0;
                snprintf(eta, sizeof(eta), " ETA %" PRIu64 ":%02" PRIu64, left / 60, left % 60);
        }
        format_bytes(done, sizeof(done), bytes_done);
        format_bytes(total, sizeof(total), bytes_total);

        if (!isatty(STDERR_FILENO)) {
                /* Logs and pipes get plain lines, one per change of percentage or state. */
                fprintf(stderr, "%s: %d%%, %" PRIu64 "/%" PRIu64 " blocks, %s/%s%s\n", state, percent, blocks_done,
                        blocks_total, done, total, eta);
                return;
        }
        width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
        bar = width - 60;
        if (bar > 40)
                bar = 40;
        fputc('\r', stderr);
        if (bar >= 10) {
                int filled = (int) (progress * bar);
                fputc('[', stderr);
                for (int i = 0; i < bar; i++)
                        fputc(i < filled ? '#' : '.', stderr);
                fputs("] ", stderr);
        }
        fprintf(stderr, "%3d%% %s %" PRIu64 "/%" PRIu64 " blocks %s/%s%s\033[K", percent, state, blocks_done,
                blocks_total, done, total, eta);
        progress_drawn = true;
}

void progress_clear(void) {
        if (progress_drawn) {
                fputs("\r\033[K", stderr);
                progress_drawn = false;
        }
}

/* ---- polkit agent ----------------------------------------------------------------------- */

static pid_t agent_pid;

void polkit_agent_open(void) {
        static const char *const agent = "/usr/bin/pkttyagent";
        char fdbuf[16], pidbuf[16];
        int fds[2];

        if (!arg_ask_password || agent_pid > 0 || geteuid() == 0 || !isatty(STDIN_FILENO) || access(agent, X_OK) < 0)
                return;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return;
        snprintf(fdbuf, sizeof(fdbuf), "%d", fds[1]);
        snprintf(pidbuf, sizeof(pidbuf), "%d", (int) getpid());
        agent_pid = fork();
        if (agent_pid == 0) {
                /* The notify fd must survive exec. */
                (void) fcntl(fds[1], F_SETFD, 0);
                execl(agent, agent, "--notify-fd", fdbuf, "--fallback", "--process", pidbuf, (char *) NULL);
                _exit(EXIT_FAILURE);
        }
        close(fds[1]);
        if (agent_pid > 0) {
                /* Wait until it registered (it closes the fd), so polkit knows it is there. */
                struct pollfd p = { .fd = fds[0], .events = POLLIN };
                (void) poll(&p, 1, 5000);
        } else
                agent_pid = 0;
        close(fds[0]);
}

void polkit_agent_close(void) {
        if (agent_pid <= 0)
                return;
        (void) kill(agent_pid, SIGTERM);
        (void) waitpid(agent_pid, NULL, 0);
        agent_pid = 0;
}
