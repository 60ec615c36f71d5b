/* item.h - a stream entry turned into a validated item, or a reason why not,
 * and an item turned into its JSON text. Pure functions, no I/O. */
#ifndef TICKERD_ITEM_H
#define TICKERD_ITEM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tickerd/config.h"
#include "tickerd/id.h"

typedef enum { TK_OP_PUBLISH, TK_OP_UPDATE, TK_OP_RETRACT } tk_op_t;

typedef enum { TK_PRIO_NORMAL, TK_PRIO_BREAKING, TK_PRIO_URGENT, TK_PRIO_FLASH } tk_priority_t;

/* Which fields an entry carried (an update replaces only those). */
enum {
    TK_F_TEXT = 1 << 0,
    TK_F_LANG = 1 << 1,
    TK_F_REGION = 1 << 2,
    TK_F_PRIORITY = 1 << 3,
    TK_F_CATEGORY = 1 << 4,
    TK_F_URL = 1 << 5,
    TK_F_SOURCE = 1 << 6,
    TK_F_TTL = 1 << 7,
    TK_F_PIN = 1 << 8,
};

/* Why an entry was rejected; also the label of
 * tickerd_items_rejected_total{reason=...}. Keep in step with
 * tk_reason_names. */
typedef enum {
    TK_REJECT_NONE = 0,
    TK_REJECT_MISSING_TEXT,
    TK_REJECT_TEXT_TOO_LONG,
    TK_REJECT_BAD_UTF8,
    TK_REJECT_BAD_LANG,
    TK_REJECT_BAD_REGION,
    TK_REJECT_BAD_PRIORITY,
    TK_REJECT_BAD_CATEGORY,
    TK_REJECT_BAD_URL,
    TK_REJECT_BAD_SOURCE,
    TK_REJECT_BAD_TTL,
    TK_REJECT_BAD_OP,
    TK_REJECT_BAD_REF,
    TK_REJECT_UNKNOWN_REF,
    TK_REJECT_RETRACTED_REF,
    TK_REJECT_OUT_OF_ORDER,
    TK_REJECT_BAD_JSON,
    TK_REJECT_DUPLICATE_FIELD,
    TK_REJECT_BAD_ENTRY,
    TK_REJECT_BAD_PIN,
    TK_REJECT_REASONS
} tk_reason_t;

extern const char *const tk_reason_names[TK_REJECT_REASONS];

typedef struct tk_reject {
    tk_reason_t reason;
    char detail[160];
} tk_reject_t;

/* One field of a stream entry, pointing into the caller's reply. */
typedef struct tk_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} tk_field_t;

/* A validated item, or the fields of an update/retract. Strings are owned
 * (malloc'd) and released by tk_item_clear(). */
typedef struct tk_item {
    tk_id_t id;  /* the stream ID of the entry */
    tk_id_t ref; /* update/retract: the original */
    tk_op_t op;
    unsigned has; /* TK_F_* the entry carried */
    uint8_t lang;
    uint8_t priority;
    int8_t category;  /* -1: none */
    uint64_t regions; /* 0: global */
    char *text;
    char *url;
    char *source;
    uint32_t ttl_s;
    int64_t expires_ms;
    bool pinned; /* clients keep it first (SPEC §1 `pin`) */
} tk_item_t;

/* Validates the fields of the stream entry id against cfg. On success fills
 * item (publish: every default applied) and returns 0; the caller then owns
 * item's strings. On failure returns -1, fills rej and leaves item empty. */
int tk_item_parse(const tk_config_t *cfg, tk_id_t id, const tk_field_t *fields, size_t nfields,
                  tk_item_t *item, tk_reject_t *rej);

/* The check every publisher runs before it writes an entry (tickerctl,
 * POST /v1/items): tk_item_parse, the daemon's own, with the item dropped,
 * so that all three give the same reason for the same input. id: the ID
 * the entry is expected to get (now). Returns 0, or -1 and fills rej. */
int tk_item_check(const tk_config_t *cfg, tk_id_t id, const tk_field_t *fields, size_t nfields,
                  tk_reject_t *rej);
/* The same for a JSON object with the §1 keys (body[0..len)), as the
 * entry's one `json` field: what POST /v1/items and tickerctl post XADD. */
int tk_item_check_json(const tk_config_t *cfg, tk_id_t id, const char *body, size_t len,
                       tk_reject_t *rej);

/* Applies the fields an update carries to the item it corrects. */
int tk_item_apply_update(tk_item_t *dst, const tk_item_t *upd);
int tk_item_copy(tk_item_t *dst, const tk_item_t *src);
void tk_item_clear(tk_item_t *item);

/* Encodes one server frame as compact JSON: {"type","id"[,"ref"][, the
 * item's fields][,"replay":true]}. item may be NULL (a retract); its ID
 * gives "ts". Returns a malloc'd NUL-terminated string the caller frees
 * (its length in *len), or NULL on allocation failure. */
char *tk_item_encode(const char *type, tk_id_t event_id, const tk_id_t *ref, const tk_item_t *item,
                     bool replay, size_t *len);

/* json_dumps(o, JSON_COMPACT) for frames: a malloc'd string (its length in
 * *len unless len is NULL), or NULL. jansson 2.14's json_dumps can leave an
 * object key out when an allocation fails and still return the text (not
 * JSON then); json_dumpb into a buffer of the measured size allocates
 * nothing that it does not check. */
char *tk_json_dump(const json_t *o, size_t *len);

/* True when s (len bytes) is valid UTF-8 with no NUL or C0 control other
 * than tab/newline. */
bool tk_utf8_valid(const char *s, size_t len);

const char *tk_priority_name(int prio);
int tk_priority_lookup(const char *s, size_t len);

/* Limits of an entry's fields (SPEC §1), besides cfg->max_text_bytes. */
#define TK_MAX_URL_BYTES 2048
#define TK_MAX_SOURCE_BYTES 200
#define TK_MAX_TTL_S 2592000

/* GET /v1/lists (SPEC §3): what cfg accepts, for clients that build forms:
 * its languages, regions and categories, the priorities and the limits. A
 * new reference, or NULL on allocation failure. */
json_t *tk_item_lists_json(const tk_config_t *cfg);

#endif
