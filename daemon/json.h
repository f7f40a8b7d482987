/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* json.h — a minimal streaming JSON writer (no DOM: the block list of a big host is 10^5 rows). */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "util.h"

/* The writer uses unlocked stdio: whoever writes owns f meanwhile (flockfile() it if other threads
 * could touch the same FILE). */
typedef struct JsonWriter {
        FILE *f;
        int depth;
        bool need_comma[64];
        bool pretty;
} JsonWriter;

void json_begin_object(JsonWriter *w);
void json_end_object(JsonWriter *w);
void json_begin_array(JsonWriter *w);
void json_end_array(JsonWriter *w);
void json_key(JsonWriter *w, const char *key);
void json_string(JsonWriter *w, const char *s); /* NULL → null */
void json_uint(JsonWriter *w, uint64_t v);
void json_int(JsonWriter *w, int64_t v);
void json_bool(JsonWriter *w, bool v);
void json_null(JsonWriter *w);
