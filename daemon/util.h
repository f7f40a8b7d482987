/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* util.h — ownership helpers and small macros shared by daemon, client and tests. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _sentinel_ __attribute__((sentinel))
#define _fallthrough_ __attribute__((fallthrough))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define STRLEN(s) (sizeof(s) - 1)
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Hand ownership of a pointer or fd to someone else and disarm the local cleanup. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _p_ = (p);    \
                (p) = NULL;                 \
                _p_;                        \
        })
#define TAKE_FD(fd)                         \
        ({                                  \
                int _fd_ = (fd);            \
                (fd) = -1;                  \
                _fd_;                       \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Declares typep() for a destructor "type *func(type *)" that accepts NULL and returns NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        *p = func(*p);                  \
        }

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}
static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}
static inline const char *strna(const char *s) {
        return s ?: "n/a";
}

/* Negative errno from a libc call that sets errno; never returns 0 by accident. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* Returns 0 if the caller wants to go on, negative errno from snprintf truncation. */
#define xsprintf(buf, fmt, ...) \
        ((size_t) snprintf(buf, sizeof(buf), fmt, ##__VA_ARGS__) >= sizeof(buf) ? -ENAMETOOLONG : 0)

/* name_to_string()/name_from_string() for an enum whose names are in a table indexed by value;
 * from_string() returns the table's invalid value for NULL or unknown names. */
#define DEFINE_STRING_TABLE_LOOKUP(name, type, table, max, invalid)                     \
        const char *name##_to_string(type v) {                                          \
                return (int) v >= 0 && (int) v < (int) (max) ? table[v] : NULL;         \
        }                                                                               \
        type name##_from_string(const char *s) {                                        \
                for (int _i = 0; s && _i < (int) (max); _i++)                           \
                        if (table[_i] && streq(s, table[_i]))                           \
                                return (type) _i;                                       \
                return invalid;                                                         \
        }
