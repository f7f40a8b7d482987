/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* json.c — streaming JSON output with correct string escaping. */
#include <inttypes.h>

#include "json.h"

/* Everything goes through the *_unlocked stdio calls: a dump writes ~180 bytes per block in many
 * small pieces, and the lock taken by every fputc()/fprintf() plus fprintf's format parsing were
 * three quarters of the user-space instructions of --dump-model (callgrind, bench/run-all.py).
 * The caller owns the FILE while writing: dump_model_json() holds flockfile() around it. */

static void put_uint(JsonWriter *w, uint64_t v) {
        char buf[20];
        size_t i = sizeof(buf);

        do
                buf[--i] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        fwrite_unlocked(buf + i, 1, sizeof(buf) - i, w->f);
}

static void json_value_prefix(JsonWriter *w) {
        if (w->depth > 0 && w->need_comma[w->depth])
                putc_unlocked(',', w->f);
        if (w->depth > 0)
                w->need_comma[w->depth] = true;
}

static void json_open(JsonWriter *w, char c) {
        json_value_prefix(w);
        putc_unlocked(c, w->f);
        if (w->depth < (int) ELEMENTSOF(w->need_comma) - 1)
                w->depth++;
        w->need_comma[w->depth] = false;
}

static void json_close(JsonWriter *w, char c) {
        if (w->depth > 0)
                w->depth--;
        putc_unlocked(c, w->f);
}

void json_begin_object(JsonWriter *w) {
        json_open(w, '{');
}
void json_end_object(JsonWriter *w) {
        json_close(w, '}');
}
void json_begin_array(JsonWriter *w) {
        json_open(w, '[');
}
void json_end_array(JsonWriter *w) {
        json_close(w, ']');
}

static void json_raw_string(JsonWriter *w, const char *s) {
        putc_unlocked('"', w->f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs_unlocked("\\\"", w->f);
                        break;
                case '\\':
                        fputs_unlocked("\\\\", w->f);
                        break;
                case '\n':
                        fputs_unlocked("\\n", w->f);
                        break;
                case '\t':
                        fputs_unlocked("\\t", w->f);
                        break;
                default:
                        /* Control bytes and non-ASCII are escaped so output stays valid JSON even
                         * for garbage read from a hostile tree (bytes ≥ 0x80 as U+00XX). */
                        if (*p < 0x20 || *p >= 0x7f)
                                fprintf(w->f, "\\u%04x", *p);
                        else
                                putc_unlocked(*p, w->f);
                }
        }
        putc_unlocked('"', w->f);
}

void json_key(JsonWriter *w, const char *key) {
        json_value_prefix(w);
        json_raw_string(w, key);
        putc_unlocked(':', w->f);
        /* The value that follows must not print another comma. */
        w->need_comma[w->depth] = false;
}

static void json_after_value(JsonWriter *w) {
        if (w->depth > 0)
                w->need_comma[w->depth] = true;
}

void json_string(JsonWriter *w, const char *s) {
        if (!s) {
                json_null(w);
                return;
        }
        json_value_prefix(w);
        json_raw_string(w, s);
        json_after_value(w);
}

void json_uint(JsonWriter *w, uint64_t v) {
        json_value_prefix(w);
        put_uint(w, v);
        json_after_value(w);
}

void json_int(JsonWriter *w, int64_t v) {
        json_value_prefix(w);
        if (v < 0) {
                putc_unlocked('-', w->f);
                put_uint(w, -(uint64_t) v);
        } else
                put_uint(w, (uint64_t) v);
        json_after_value(w);
}

void json_bool(JsonWriter *w, bool v) {
        json_value_prefix(w);
        fputs_unlocked(v ? "true" : "false", w->f);
        json_after_value(w);
}

void json_null(JsonWriter *w) {
        json_value_prefix(w);
        fputs_unlocked("null", w->f);
        json_after_value(w);
}
