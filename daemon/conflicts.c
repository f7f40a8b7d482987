/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* conflicts.c — finds the kernel's auto-online setting, memhp_default_state= and udev rules that
 * online memory, so that two onliners never race silently (ndctl #171/#246, systemd-rhel #336). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "conflicts.h"

const char *conflict_kind_to_string(ConflictKind k) {
        static const char *const names[_CONFLICT_KIND_MAX] = {
                [CONFLICT_KERNEL_AUTO_ONLINE] = "kernel-auto-online",
                [CONFLICT_CMDLINE] = "cmdline",
                [CONFLICT_UDEV_RULE] = "udev-rule",
        };
        return k >= 0 && k < _CONFLICT_KIND_MAX ? names[k] : NULL;
}

void conflicts_done(Conflicts *c) {
        for (size_t i = 0; i < c->n; i++) {
                free(c->items[i].source);
                free(c->items[i].detail);
        }
        free(c->items);
        *c = (Conflicts){};
}

void conflicts_drop_kind(Conflicts *c, ConflictKind kind) {
        size_t k = 0;

        for (size_t i = 0; i < c->n; i++) {
                if (c->items[i].kind == kind) {
                        free(c->items[i].source);
                        free(c->items[i].detail);
                } else
                        c->items[k++] = c->items[i];
        }
        c->n = k;
}

static int conflicts_add(Conflicts *c, ConflictKind kind, const char *source, const char *detail) {
        Conflict *p = realloc(c->items, (c->n + 1) * sizeof(Conflict));

        if (!p)
                return -ENOMEM;
        c->items = p;
        p[c->n] = (Conflict){ .kind = kind, .source = strdup(source), .detail = strdup(detail) };
        if (!p[c->n].source || !p[c->n].detail) {
                free(p[c->n].source);
                free(p[c->n].detail);
                return -ENOMEM;
        }
        c->n++;
        return 0;
}

/* A rule file onlines memory if it matches the memory subsystem (directly, or by jumping past
 * everything else with SUBSYSTEM!="memory", GOTO=…) and assigns ATTR{state}= or ATTR{online}=. */
unsigned udev_rules_write_memory_state(const char *text) {
        bool memory = false;
        unsigned line = 0;

        for (const char *p = text; *p;) {
                const char *eol = strchr(p, '\n');
                size_t len = eol ? (size_t) (eol - p) : strlen(p);
                char buf[1024];

                line++;
                if (len >= sizeof(buf))
                        len = sizeof(buf) - 1;
                memcpy(buf, p, len);
                buf[len] = 0;
                p = eol ? eol + 1 : p + len;

                const char *s = buf + strspn(buf, " \t");
                if (*s == '#')
                        continue;
                if (strstr(s, "SUBSYSTEM==\"memory\"") || strstr(s, "SUBSYSTEM!=\"memory\""))
                        memory = true;
                if (!memory)
                        continue;
                for (const char *a = s; (a = strstr(a, "ATTR{")); a++) {
                        const char *q = a + STRLEN("ATTR{");
                        if (startswith(q, "state}=") || startswith(q, "online}=")) {
                                const char *eq = strchr(q, '=');
                                /* "=" or ":=" assigns; "==" and "!=" compare. */
                                if (eq[1] != '=' && eq[-1] != '!')
                                        return line;
                        }
                }
        }
        return 0;
}

static int scan_rules_dir(SysRoot *root, const char *dir, Conflicts *c, char (*seen)[256], size_t *n_seen,
                          size_t max_seen) {
        _cleanup_close_ int fd = -1;
        DIR *d;
        struct dirent *de;
        int r = 0;

        fd = openat(root->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT || errno == ENOTDIR ? 0 : negative_errno();
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        fd = -1;
        while ((de = readdir(d))) {
                _cleanup_close_ int ffd = -1;
                _cleanup_free_ char *text = NULL;
                char source[512], detail[64];
                bool masked = false;
                unsigned line;
                struct stat st;
                size_t len = strlen(de->d_name);

                if (len < 7 || !streq(de->d_name + len - 6, ".rules") || len >= 256)
                        continue;
                /* Earlier directories mask later ones by file name, as udev does. */
                for (size_t i = 0; i < *n_seen; i++)
                        if (streq(seen[i], de->d_name))
                                masked = true;
                if (masked)
                        continue;
                if (*n_seen < max_seen)
                        strcpy(seen[(*n_seen)++], de->d_name);

                ffd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (ffd < 0)
                        continue; /* a symlink (e.g. to /dev/null, i.e. masked) or gone */
                if (fstat(ffd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
                        continue;
                r = sysfs_read_full_at(dirfd(d), de->d_name, &text, NULL);
                if (r < 0)
                        continue;
                line = udev_rules_write_memory_state(text);
                if (line == 0)
                        continue;
                snprintf(source, sizeof(source), "/%s/%s:%u", dir, de->d_name, line);
                snprintf(detail, sizeof(detail), "udev rule writes memory block state");
                r = conflicts_add(c, CONFLICT_UDEV_RULE, source, detail);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r < 0 ? r : 0;
}

int conflicts_detect(SysRoot *root, Conflicts *ret) {
        static const char *const rules_dirs[] = {
                "etc/udev/rules.d", "run/udev/rules.d", "usr/local/lib/udev/rules.d", "usr/lib/udev/rules.d",
        };
        Conflicts c = {};
        char buf[4096];
        char (*seen)[256] = NULL;
        size_t n_seen = 0;
        int r;

        r = sysfs_read_at(root->memory_fd, "auto_online_blocks", buf, sizeof(buf));
        if (r >= 0 && !streq(buf, "offline")) {
                r = conflicts_add(&c, CONFLICT_KERNEL_AUTO_ONLINE, "/sys/devices/system/memory/auto_online_blocks", buf);
                if (r < 0)
                        goto fail;
        }

        if (root->proc_fd >= 0 && sysfs_read_at(root->proc_fd, "cmdline", buf, sizeof(buf)) >= 0) {
                for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
                        const char *v = startswith(w, "memhp_default_state=");
                        if (v && !streq(v, "offline")) {
                                r = conflicts_add(&c, CONFLICT_CMDLINE, "/proc/cmdline", w);
                                if (r < 0)
                                        goto fail;
                        }
                }
        }

        seen = calloc(4096, sizeof(*seen));
        if (!seen) {
                r = -ENOMEM;
                goto fail;
        }
        /* /lib is /usr/lib on merged-/usr systems; scanning usr/lib only avoids double reports. */
        for (size_t i = 0; i < ELEMENTSOF(rules_dirs); i++) {
                r = scan_rules_dir(root, rules_dirs[i], &c, seen, &n_seen, 4096);
                if (r < 0)
                        goto fail;
        }
        free(seen);
        *ret = c;
        return 0;
fail:
        free(seen);
        conflicts_done(&c);
        return r;
}
