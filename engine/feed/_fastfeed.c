/* Native decoder for Upstox Market Data Feed V3 frames (proto/MarketDataFeedV3.proto) into engine Ticks.
 *
 * It reads the protobuf wire format directly and builds the same DecodedFrame as the reference decoder
 * `engine.feed.decoder.decode_frame_python` (upb runtime), including upb's rules for odd input:
 *   - a known field with the wrong wire type is an unknown field; unknown fields of every wire type are
 *     skipped (groups recursively); field number 0, wire types 6/7, stray end-groups, varints over 10 bytes,
 *     tags over 5 bytes or 32 bits, lengths >= INT32_MAX or past their enclosing message are errors;
 *   - sub-messages and groups nest at most 100 deep (upb's default depth limit);
 *   - proto3 strings (map keys, OHLC.interval, StatusInfo.status) must be valid UTF-8;
 *   - a singular sub-message that appears again merges; switching a oneof starts the new branch afresh;
 *   - a map entry holding an unknown field is not inserted (upb keeps it as an unknown field of the
 *     parent); a later entry with the same key replaces the earlier one;
 *   - enums are open and read as int32.
 * Every read is bounds-checked against the end of the enclosing message. Malformed bytes raise the error
 * class given to Decoder (FrameDecodeError). Ticks come out in wire order (the reference yields them in
 * upb's hash-map order; neither order carries meaning, keys are unique).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif
#ifndef Py_READONLY
#define Py_READONLY READONLY
#endif

#define MAX_DEPTH 100 /* upb's kUpb_WireFormat_DefaultDepthLimit, used by the Python runtime */
#define TICK_FIELDS 13

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_START_GROUP = 3, WT_END_GROUP = 4, WT_FIXED32 = 5 };

/* Tick fields, positional order of engine.models.Tick. */
static const char *const tick_field_names[TICK_FIELDS] = {
    "instrument_key", "ltp", "ltt_ms", "ltq", "volume", "close_prev", "day_open",
    "day_high", "day_low", "atp", "oi", "bid", "ask",
};

typedef struct {
    const uint8_t *start; /* first byte of the frame, for error offsets */
    const char *error;    /* why the frame is malformed; NULL while it is fine */
    Py_ssize_t error_at;
    int depth; /* nesting levels left */
} Reader;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Span;

static int fail(Reader *r, const uint8_t *at, const char *why) {
    if (r->error == NULL) {
        r->error = why;
        r->error_at = at - r->start;
    }
    return -1;
}

static inline int read_varint(Reader *r, Span *s, uint64_t *out) {
    const uint8_t *p = s->p;
    if (p < s->end && *p < 0x80) {
        *out = *p;
        s->p = p + 1;
        return 0;
    }
    uint64_t value = 0;
    for (int i = 0; i < 10; i++) {
        if (p + i >= s->end) return fail(r, p, "truncated varint");
        uint8_t byte = p[i];
        value |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *out = value;
            s->p = p + i + 1;
            return 0;
        }
    }
    return fail(r, p, "varint longer than 10 bytes");
}

static inline int read_tag(Reader *r, Span *s, uint32_t *field, int *wire_type) {
    const uint8_t *at = s->p;
    uint64_t tag;
    if (read_varint(r, s, &tag) < 0) return -1;
    if (s->p - at > 5 || tag > UINT32_MAX) return fail(r, at, "invalid tag");
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    if (*wire_type == WT_END_GROUP) return 0; /* the caller decides whether it is expected */
    if (*field == 0) return fail(r, at, "field number 0");
    if (*wire_type > WT_FIXED32) return fail(r, at, "invalid wire type");
    return 0;
}

static inline int read_fixed64(Reader *r, Span *s, double *out) {
    if (s->end - s->p < 8) return fail(r, s->p, "truncated fixed64");
    memcpy(out, s->p, 8); /* little-endian hosts only (checked at import) */
    s->p += 8;
    return 0;
}

/* A length-delimited payload: returns its span and moves past it. */
static inline int read_len(Reader *r, Span *s, Span *payload) {
    const uint8_t *at = s->p;
    uint64_t size;
    if (read_varint(r, s, &size) < 0) return -1;
    if (size >= INT32_MAX || size > (uint64_t)(s->end - s->p)) {
        return fail(r, at, "length past the end of its message");
    }
    payload->p = s->p;
    payload->end = s->p + size;
    s->p = payload->end;
    return 0;
}

static int skip_field(Reader *r, Span *s, uint32_t field, int wire_type);

/* An unknown group: fields up to the matching end-group tag. */
static int skip_group(Reader *r, Span *s, uint32_t number) {
    const uint8_t *at = s->p;
    if (--r->depth < 0) return fail(r, at, "nested too deeply");
    while (s->p < s->end) {
        uint32_t field;
        int wire_type;
        if (read_tag(r, s, &field, &wire_type) < 0) return -1;
        if (wire_type == WT_END_GROUP) {
            if (field != number) return fail(r, s->p, "mismatched end-group tag");
            r->depth++;
            return 0;
        }
        if (skip_field(r, s, field, wire_type) < 0) return -1;
    }
    return fail(r, at, "unterminated group");
}

static int skip_field(Reader *r, Span *s, uint32_t field, int wire_type) {
    uint64_t ignored;
    Span payload;
    switch (wire_type) {
    case WT_VARINT:
        return read_varint(r, s, &ignored);
    case WT_FIXED64:
        if (s->end - s->p < 8) return fail(r, s->p, "truncated fixed64");
        s->p += 8;
        return 0;
    case WT_LEN:
        return read_len(r, s, &payload);
    case WT_START_GROUP:
        return skip_group(r, s, field);
    case WT_FIXED32:
        if (s->end - s->p < 4) return fail(r, s->p, "truncated fixed32");
        s->p += 4;
        return 0;
    default: /* end-group outside a group */
        return fail(r, s->p, "unexpected end-group tag");
    }
}

static int valid_utf8(const uint8_t *p, const uint8_t *end) {
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        Py_ssize_t left = end - p;
        if (c >= 0xC2 && c <= 0xDF) {
            if (left < 2 || (p[1] & 0xC0) != 0x80) return 0;
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
            if (c == 0xED && p[1] > 0x9F) return 0; /* surrogate */
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
            if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
            if (c == 0xF4 && p[1] > 0x8F) return 0; /* above U+10FFFF */
            p += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* A proto3 string field: its bytes must be UTF-8. */
static inline int read_string(Reader *r, Span *s, Span *text) {
    const uint8_t *at = s->p;
    if (read_len(r, s, text) < 0) return -1;
    if (!valid_utf8(text->p, text->end)) return fail(r, at, "string field is not UTF-8");
    return 0;
}

/* ---- messages read only to validate them (no field is used) ------------------------------------------- */

/* Which fields of a message are strings (UTF-8 checked) or sub-messages (validated recursively). */
typedef struct Shape {
    uint32_t string_fields; /* bit n: field n is a string */
    const struct Shape *subs[3]; /* subs[n]: shape of sub-message field n (1..2), or NULL */
} Shape;

static const Shape PLAIN = {0, {NULL, NULL, NULL}}; /* DoubleValue, OptionGreeks: scalars only */
static const Shape STATUS_INFO = {1u << 1, {NULL, NULL, NULL}};
static const Shape STATUS_INFO_ENTRY = {1u << 1, {NULL, NULL, &STATUS_INFO}}; /* map<string, StatusInfo> */

static int validate_message(Reader *r, Span s, const Shape *shape) {
    if (--r->depth < 0) return fail(r, s.p, "nested too deeply");
    while (s.p < s.end) {
        uint32_t field;
        int wire_type;
        if (read_tag(r, &s, &field, &wire_type) < 0) return -1;
        if (wire_type == WT_LEN && field < 32 && (shape->string_fields >> field & 1)) {
            Span text;
            if (read_string(r, &s, &text) < 0) return -1;
        } else if (wire_type == WT_LEN && field < 3 && shape->subs[field] != NULL) {
            Span sub;
            if (read_len(r, &s, &sub) < 0 || validate_message(r, sub, shape->subs[field]) < 0) return -1;
        } else if (skip_field(r, &s, field, wire_type) < 0) {
            return -1;
        }
    }
    r->depth++;
    return 0;
}

/* ---- feed messages ----------------------------------------------------------------------------------- */

typedef struct {
    int feed_case; /* Feed.FeedUnion: 0 unset, 1 ltpc, 2 fullFeed, 3 firstLevelWithGreeks */
    int full_case; /* FullFeed.FullFeedUnion: 0 unset, 1 marketFF, 2 indexFF */
    double ltp, close_prev;
    int64_t ltt, ltq, vtt;
    double atp, oi;
    double bid, ask;
    int have_quote; /* marketFF: first bidAskQuote seen */
    double day_open, day_high, day_low;
    int have_day; /* first "1d" candle seen */
} FeedState;

/* Starting a oneof branch afresh clears everything the previous branch left. */
static void start_branch(FeedState *f) {
    int feed_case = f->feed_case, full_case = f->full_case;
    memset(f, 0, sizeof(*f));
    f->feed_case = feed_case;
    f->full_case = full_case;
}

#define BEGIN_MESSAGE(r, s)                                             \
    if (--(r)->depth < 0) return fail((r), (s).p, "nested too deeply"); \
    while ((s).p < (s).end) {                                           \
        uint32_t field;                                                 \
        int wire_type;                                                  \
        if (read_tag((r), &(s), &field, &wire_type) < 0) return -1;     \
        uint32_t key_ = field << 3 | (uint32_t)wire_type;               \
        switch (key_) {
#define END_MESSAGE(r, s)                                                    \
        default:                                                             \
            if (skip_field((r), &(s), field, wire_type) < 0) return -1;      \
        }                                                                    \
    }                                                                        \
    (r)->depth++;                                                            \
    return 0;
#define TAG(field, wire_type) ((uint32_t)(field) << 3 | (wire_type))

static int parse_ltpc(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_FIXED64):
        if (read_fixed64(r, &s, &f->ltp) < 0) return -1;
        break;
    case TAG(2, WT_VARINT): {
        uint64_t v;
        if (read_varint(r, &s, &v) < 0) return -1;
        f->ltt = (int64_t)v;
        break;
    }
    case TAG(3, WT_VARINT): {
        uint64_t v;
        if (read_varint(r, &s, &v) < 0) return -1;
        f->ltq = (int64_t)v;
        break;
    }
    case TAG(4, WT_FIXED64):
        if (read_fixed64(r, &s, &f->close_prev) < 0) return -1;
        break;
    case TAG(5, WT_LEN): /* iep: DoubleValue */
        if (read_len(r, &s, &sub) < 0 || validate_message(r, sub, &PLAIN) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

/* A Quote: bidP and askP land in *bid / *ask when present (merge semantics). */
static int parse_quote(Reader *r, Span s, double *bid, double *ask) {
    BEGIN_MESSAGE(r, s)
    case TAG(2, WT_FIXED64):
        if (read_fixed64(r, &s, bid) < 0) return -1;
        break;
    case TAG(4, WT_FIXED64):
        if (read_fixed64(r, &s, ask) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

static int parse_market_level(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN): { /* repeated Quote bidAskQuote: the first one is the best level */
        double bid = 0.0, ask = 0.0;
        if (read_len(r, &s, &sub) < 0 || parse_quote(r, sub, &bid, &ask) < 0) return -1;
        if (!f->have_quote) {
            f->bid = bid;
            f->ask = ask;
            f->have_quote = 1;
        }
        break;
    }
    END_MESSAGE(r, s)
}

typedef struct {
    Span interval;
    double open, high, low;
} Candle;

static int parse_ohlc(Reader *r, Span s, Candle *c) {
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN):
        if (read_string(r, &s, &c->interval) < 0) return -1;
        break;
    case TAG(2, WT_FIXED64):
        if (read_fixed64(r, &s, &c->open) < 0) return -1;
        break;
    case TAG(3, WT_FIXED64):
        if (read_fixed64(r, &s, &c->high) < 0) return -1;
        break;
    case TAG(4, WT_FIXED64):
        if (read_fixed64(r, &s, &c->low) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

static int parse_market_ohlc(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN): { /* repeated OHLC: the first "1d" candle holds the day's range */
        Candle c = {{NULL, NULL}, 0.0, 0.0, 0.0};
        if (read_len(r, &s, &sub) < 0 || parse_ohlc(r, sub, &c) < 0) return -1;
        if (!f->have_day && c.interval.end - c.interval.p == 2 && c.interval.p[0] == '1' && c.interval.p[1] == 'd') {
            f->day_open = c.open;
            f->day_high = c.high;
            f->day_low = c.low;
            f->have_day = 1;
        }
        break;
    }
    END_MESSAGE(r, s)
}

static int parse_market_full_feed(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN):
        if (read_len(r, &s, &sub) < 0 || parse_ltpc(r, sub, f) < 0) return -1;
        break;
    case TAG(2, WT_LEN):
        if (read_len(r, &s, &sub) < 0 || parse_market_level(r, sub, f) < 0) return -1;
        break;
    case TAG(3, WT_LEN): /* optionGreeks */
        if (read_len(r, &s, &sub) < 0 || validate_message(r, sub, &PLAIN) < 0) return -1;
        break;
    case TAG(4, WT_LEN):
        if (read_len(r, &s, &sub) < 0 || parse_market_ohlc(r, sub, f) < 0) return -1;
        break;
    case TAG(5, WT_FIXED64):
        if (read_fixed64(r, &s, &f->atp) < 0) return -1;
        break;
    case TAG(6, WT_VARINT): {
        uint64_t v;
        if (read_varint(r, &s, &v) < 0) return -1;
        f->vtt = (int64_t)v;
        break;
    }
    case TAG(7, WT_FIXED64):
        if (read_fixed64(r, &s, &f->oi) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

static int parse_index_full_feed(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN):
        if (read_len(r, &s, &sub) < 0 || parse_ltpc(r, sub, f) < 0) return -1;
        break;
    case TAG(2, WT_LEN):
        if (read_len(r, &s, &sub) < 0 || parse_market_ohlc(r, sub, f) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

static int parse_full_feed(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN):
        if (f->full_case != 1) {
            f->full_case = 1;
            start_branch(f);
        }
        if (read_len(r, &s, &sub) < 0 || parse_market_full_feed(r, sub, f) < 0) return -1;
        break;
    case TAG(2, WT_LEN):
        if (f->full_case != 2) {
            f->full_case = 2;
            start_branch(f);
        }
        if (read_len(r, &s, &sub) < 0 || parse_index_full_feed(r, sub, f) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

static int parse_first_level(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN):
        if (read_len(r, &s, &sub) < 0 || parse_ltpc(r, sub, f) < 0) return -1;
        break;
    case TAG(2, WT_LEN): /* firstDepth: a single Quote */
        if (read_len(r, &s, &sub) < 0 || parse_quote(r, sub, &f->bid, &f->ask) < 0) return -1;
        break;
    case TAG(3, WT_LEN): /* optionGreeks */
        if (read_len(r, &s, &sub) < 0 || validate_message(r, sub, &PLAIN) < 0) return -1;
        break;
    case TAG(4, WT_VARINT): {
        uint64_t v;
        if (read_varint(r, &s, &v) < 0) return -1;
        f->vtt = (int64_t)v;
        break;
    }
    case TAG(5, WT_FIXED64):
        if (read_fixed64(r, &s, &f->oi) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

static void switch_feed_case(FeedState *f, int feed_case) {
    if (f->feed_case != feed_case) {
        memset(f, 0, sizeof(*f));
        f->feed_case = feed_case;
    }
}

static int parse_feed(Reader *r, Span s, FeedState *f) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN):
        switch_feed_case(f, 1);
        if (read_len(r, &s, &sub) < 0 || parse_ltpc(r, sub, f) < 0) return -1;
        break;
    case TAG(2, WT_LEN):
        switch_feed_case(f, 2);
        if (read_len(r, &s, &sub) < 0 || parse_full_feed(r, sub, f) < 0) return -1;
        break;
    case TAG(3, WT_LEN):
        switch_feed_case(f, 3);
        if (read_len(r, &s, &sub) < 0 || parse_first_level(r, sub, f) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

/* ---- Python objects ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyTypeObject *tick_type;
    PyObject *frame_type;
    PyObject *error_type;
    PyObject *kinds;    /* tuple: FeedResponse.type -> FrameKind */
    PyObject *statuses; /* tuple: MarketStatus enum number -> engine MarketStatus */
    PyObject *zero;     /* 0.0, shared */
    Py_ssize_t offsets[TICK_FIELDS]; /* slot offsets when filling Ticks directly */
    int fill_slots;
} Decoder;

static inline PyObject *new_float(Decoder *d, double x) {
    if (x == 0.0 && !signbit(x)) {
        Py_INCREF(d->zero);
        return d->zero;
    }
    return PyFloat_FromDouble(x);
}

/* One Tick from a feed; Py_None (new reference) for a feed with no oneof branch set. */
static PyObject *build_tick(Decoder *d, PyObject *key, const FeedState *f) {
    if (f->feed_case == 0) Py_RETURN_NONE;
    int market = f->feed_case == 2 && f->full_case != 2;
    int index = f->feed_case == 2 && f->full_case == 2;
    int first_level = f->feed_case == 3;
    PyObject *values[TICK_FIELDS];
    Py_INCREF(key);
    values[0] = key;
    values[1] = new_float(d, f->ltp);
    values[2] = PyLong_FromLongLong(f->ltt);
    values[3] = PyLong_FromLongLong(f->ltq);
    values[4] = PyLong_FromLongLong(market || first_level ? f->vtt : 0);
    values[5] = new_float(d, f->close_prev);
    values[6] = new_float(d, market || index ? f->day_open : 0.0);
    values[7] = new_float(d, market || index ? f->day_high : 0.0);
    values[8] = new_float(d, market || index ? f->day_low : 0.0);
    values[9] = new_float(d, market ? f->atp : 0.0);
    values[10] = new_float(d, market || first_level ? f->oi : 0.0);
    values[11] = new_float(d, market || first_level ? f->bid : 0.0);
    values[12] = new_float(d, market || first_level ? f->ask : 0.0);
    PyObject *tick = NULL;
    for (int i = 0; i < TICK_FIELDS; i++) {
        if (values[i] == NULL) goto done;
    }
    if (d->fill_slots) {
        tick = d->tick_type->tp_alloc(d->tick_type, 0);
        if (tick == NULL) goto done;
        for (int i = 0; i < TICK_FIELDS; i++) {
            *(PyObject **)((char *)tick + d->offsets[i]) = values[i]; /* the Tick takes the reference */
        }
        return tick;
    }
    tick = PyObject_Vectorcall((PyObject *)d->tick_type, values, TICK_FIELDS, NULL);
done:
    for (int i = 0; i < TICK_FIELDS; i++) Py_XDECREF(values[i]);
    return tick;
}

/* A map entry's key (last occurrence) as str; "" when absent. */
static PyObject *key_string(const Span *key) {
    if (key->p == NULL) return PyUnicode_FromStringAndSize("", 0);
    return PyUnicode_DecodeUTF8((const char *)key->p, key->end - key->p, "strict");
}

/* FeedResponse.feeds entry: map<string, Feed>. Stores key -> Tick (or None) in `feeds`. */
static int parse_feed_entry(Decoder *d, Reader *r, Span s, PyObject *feeds) {
    Span key = {NULL, NULL}, sub;
    FeedState f;
    int has_unknown = 0;
    memset(&f, 0, sizeof(f));
    if (--r->depth < 0) return fail(r, s.p, "nested too deeply");
    while (s.p < s.end) {
        uint32_t field;
        int wire_type;
        if (read_tag(r, &s, &field, &wire_type) < 0) return -1;
        if (field == 1 && wire_type == WT_LEN) {
            if (read_string(r, &s, &key) < 0) return -1;
        } else if (field == 2 && wire_type == WT_LEN) {
            if (read_len(r, &s, &sub) < 0 || parse_feed(r, sub, &f) < 0) return -1;
        } else {
            has_unknown = 1;
            if (skip_field(r, &s, field, wire_type) < 0) return -1;
        }
    }
    r->depth++;
    if (has_unknown) return 0; /* upb keeps such an entry as an unknown field, out of the map */
    PyObject *name = key_string(&key);
    if (name == NULL) return -1;
    PyObject *tick = build_tick(d, name, &f);
    int status = tick == NULL ? -1 : PyDict_SetItem(feeds, name, tick);
    Py_DECREF(name);
    Py_XDECREF(tick);
    return status;
}

/* MarketInfo.segmentStatus entry: map<string, MarketStatus>. Stores key -> int in `statuses`. */
static int parse_segment_entry(Reader *r, Span s, PyObject *statuses) {
    Span key = {NULL, NULL};
    int32_t value = 0;
    int has_unknown = 0;
    if (--r->depth < 0) return fail(r, s.p, "nested too deeply");
    while (s.p < s.end) {
        uint32_t field;
        int wire_type;
        if (read_tag(r, &s, &field, &wire_type) < 0) return -1;
        if (field == 1 && wire_type == WT_LEN) {
            if (read_string(r, &s, &key) < 0) return -1;
        } else if (field == 2 && wire_type == WT_VARINT) {
            uint64_t v;
            if (read_varint(r, &s, &v) < 0) return -1;
            value = (int32_t)(uint32_t)v;
        } else {
            has_unknown = 1;
            if (skip_field(r, &s, field, wire_type) < 0) return -1;
        }
    }
    r->depth++;
    if (has_unknown) return 0;
    PyObject *name = key_string(&key);
    if (name == NULL) return -1;
    PyObject *number = PyLong_FromLong(value);
    int status = number == NULL ? -1 : PyDict_SetItem(statuses, name, number);
    Py_DECREF(name);
    Py_XDECREF(number);
    return status;
}

static int parse_market_info(Reader *r, Span s, PyObject *statuses) {
    Span sub;
    BEGIN_MESSAGE(r, s)
    case TAG(1, WT_LEN):
        if (read_len(r, &s, &sub) < 0 || parse_segment_entry(r, sub, statuses) < 0) return -1;
        break;
    case TAG(2, WT_LEN): /* casMarketStatus */
    case TAG(3, WT_LEN): /* preOpenSessionStatus */
        if (read_len(r, &s, &sub) < 0 || validate_message(r, sub, &STATUS_INFO_ENTRY) < 0) return -1;
        break;
    END_MESSAGE(r, s)
}

static PyObject *decode_bytes(Decoder *d, const uint8_t *data, Py_ssize_t size) {
    Reader r = {data, NULL, 0, MAX_DEPTH};
    Span s = {data, data + size}, sub;
    int32_t type = 0;
    int64_t current_ts = 0;
    PyObject *feeds = PyDict_New(), *raw_statuses = NULL, *result = NULL;
    if (feeds == NULL) return NULL;
    while (s.p < s.end) {
        uint32_t field;
        int wire_type;
        if (read_tag(&r, &s, &field, &wire_type) < 0) goto done;
        switch (TAG(field, wire_type)) {
        case TAG(1, WT_VARINT): {
            uint64_t v;
            if (read_varint(&r, &s, &v) < 0) goto done;
            type = (int32_t)(uint32_t)v;
            break;
        }
        case TAG(2, WT_LEN):
            if (read_len(&r, &s, &sub) < 0 || parse_feed_entry(d, &r, sub, feeds) < 0) goto done;
            break;
        case TAG(3, WT_VARINT): {
            uint64_t v;
            if (read_varint(&r, &s, &v) < 0) goto done;
            current_ts = (int64_t)v;
            break;
        }
        case TAG(4, WT_LEN):
            if (raw_statuses == NULL && (raw_statuses = PyDict_New()) == NULL) goto done;
            if (read_len(&r, &s, &sub) < 0 || parse_market_info(&r, sub, raw_statuses) < 0) goto done;
            break;
        default:
            if (skip_field(&r, &s, field, wire_type) < 0) goto done;
        }
    }
    if (type < 0 || type >= PyTuple_GET_SIZE(d->kinds)) {
        PyErr_Format(d->error_type, "unknown FeedResponse.type %d", (int)type);
        goto done;
    }
    PyObject *args[4] = {PyTuple_GET_ITEM(d->kinds, type), NULL, NULL, Py_None};
    Py_ssize_t count = 0, pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(feeds, &pos, &key, &value)) count += value != Py_None;
    PyObject *ticks = PyList_New(count);
    if (ticks == NULL) goto done;
    for (pos = 0, count = 0; PyDict_Next(feeds, &pos, &key, &value);) {
        if (value != Py_None) {
            Py_INCREF(value);
            PyList_SET_ITEM(ticks, count++, value);
        }
    }
    PyObject *market_status = NULL;
    if (raw_statuses != NULL) {
        market_status = PyDict_New();
        for (pos = 0; market_status != NULL && PyDict_Next(raw_statuses, &pos, &key, &value);) {
            long number = PyLong_AsLong(value);
            if (number >= 0 && number < PyTuple_GET_SIZE(d->statuses) &&
                PyDict_SetItem(market_status, key, PyTuple_GET_ITEM(d->statuses, number)) < 0) {
                Py_CLEAR(market_status);
            }
        }
        if (market_status == NULL) {
            Py_DECREF(ticks);
            goto done;
        }
        args[3] = market_status;
    }
    args[1] = PyLong_FromLongLong(current_ts);
    args[2] = ticks;
    if (args[1] != NULL) result = PyObject_Vectorcall(d->frame_type, args, 4, NULL);
    Py_XDECREF(args[1]);
    Py_DECREF(ticks);
    Py_XDECREF(market_status);
done:
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) { /* a key the UTF-8 check let through */
        PyErr_Clear();
        fail(&r, data, "string field is not UTF-8");
    }
    if (r.error != NULL && !PyErr_Occurred()) {
        PyErr_Format(d->error_type, "not a FeedResponse (%zd bytes): %s at byte %zd", size, r.error, r.error_at);
    }
    Py_DECREF(feeds);
    Py_XDECREF(raw_statuses);
    return result;
}

static PyObject *Decoder_decode(Decoder *d, PyObject *data) {
    if (d->kinds == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Decoder.__init__ was not called");
        return NULL;
    }
    if (PyBytes_CheckExact(data)) {
        return decode_bytes(d, (const uint8_t *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *result = decode_bytes(d, (const uint8_t *)view.buf, view.len);
    PyBuffer_Release(&view);
    return result;
}

/* Slot offsets of the Tick fields, or -1 with TypeError when the class is not a plain slots class. */
static int find_slot_offsets(Decoder *d) {
    PyTypeObject *type = d->tick_type;
    if (type->tp_itemsize != 0 || type->tp_alloc == NULL) {
        PyErr_SetString(PyExc_TypeError, "Tick class has variable size; cannot fill its slots");
        return -1;
    }
    if (type->tp_dict == NULL) {
        PyErr_SetString(PyExc_TypeError, "Tick class has no namespace");
        return -1;
    }
    for (int i = 0; i < TICK_FIELDS; i++) {
        PyObject *descr = PyDict_GetItemString(type->tp_dict, tick_field_names[i]); /* borrowed */
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "Tick.%s is not a slot", tick_field_names[i]);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != Py_T_OBJECT_EX || (member->flags & Py_READONLY) ||
            member->offset < (Py_ssize_t)sizeof(PyObject) ||
            member->offset + (Py_ssize_t)sizeof(PyObject *) > type->tp_basicsize) {
            PyErr_Format(PyExc_TypeError, "Tick.%s is not a writable object slot", tick_field_names[i]);
            return -1;
        }
        d->offsets[i] = member->offset;
    }
    return 0;
}

static int Decoder_init(Decoder *d, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"tick_type", "frame_type", "error_type", "kinds", "statuses", "fill_slots", NULL};
    PyObject *tick_type, *frame_type, *error_type, *kinds, *statuses;
    int fill_slots = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OOO!O!|p", keywords, &PyType_Type, &tick_type, &frame_type,
                                     &error_type, &PyTuple_Type, &kinds, &PyTuple_Type, &statuses, &fill_slots)) {
        return -1;
    }
    if (!PyType_Check(error_type) || !PyType_IsSubtype((PyTypeObject *)error_type, (PyTypeObject *)PyExc_ValueError)) {
        PyErr_SetString(PyExc_TypeError, "error_type must be a ValueError subclass");
        return -1;
    }
    Py_INCREF(tick_type);
    Py_XSETREF(d->tick_type, (PyTypeObject *)tick_type);
    Py_INCREF(frame_type);
    Py_XSETREF(d->frame_type, frame_type);
    Py_INCREF(error_type);
    Py_XSETREF(d->error_type, error_type);
    Py_INCREF(kinds);
    Py_XSETREF(d->kinds, kinds);
    Py_INCREF(statuses);
    Py_XSETREF(d->statuses, statuses);
    if (d->zero == NULL && (d->zero = PyFloat_FromDouble(0.0)) == NULL) return -1;
    d->fill_slots = 0;
    if (fill_slots) {
        if (find_slot_offsets(d) < 0) return -1;
        d->fill_slots = 1;
    }
    return 0;
}

static int Decoder_traverse(Decoder *d, visitproc visit, void *arg) {
    Py_VISIT(d->tick_type);
    Py_VISIT(d->frame_type);
    Py_VISIT(d->error_type);
    Py_VISIT(d->kinds);
    Py_VISIT(d->statuses);
    return 0;
}

static int Decoder_clear(Decoder *d) {
    Py_CLEAR(d->tick_type);
    Py_CLEAR(d->frame_type);
    Py_CLEAR(d->error_type);
    Py_CLEAR(d->kinds);
    Py_CLEAR(d->statuses);
    Py_CLEAR(d->zero);
    return 0;
}

static void Decoder_dealloc(Decoder *d) {
    PyObject_GC_UnTrack(d);
    Decoder_clear(d);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyObject *Decoder_fills_slots(Decoder *d, void *closure) {
    (void)closure;
    return PyBool_FromLong(d->fill_slots);
}

static PyMethodDef Decoder_methods[] = {
    {"decode", (PyCFunction)Decoder_decode, METH_O,
     "decode(data) -> DecodedFrame: one FeedResponse frame; raises error_type on malformed bytes."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Decoder_getset[] = {
    {"fills_slots", (getter)Decoder_fills_slots, NULL, "True when Ticks are built by filling their slots.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.feed._fastfeed.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Decoder(tick_type, frame_type, error_type, kinds, statuses, fill_slots=False)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_traverse = (traverseproc)Decoder_traverse,
    .tp_clear = (inquiry)Decoder_clear,
    .tp_methods = Decoder_methods,
    .tp_getset = Decoder_getset,
};

static struct PyModuleDef fastfeed_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_fastfeed",
    .m_doc = "Native decoder for Upstox Market Data Feed V3 frames.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastfeed(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "_fastfeed supports little-endian hosts only");
        return NULL;
    }
    if (PyType_Ready(&DecoderType) < 0) return NULL;
    PyObject *module = PyModule_Create(&fastfeed_module);
    if (module == NULL) return NULL;
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(module, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
