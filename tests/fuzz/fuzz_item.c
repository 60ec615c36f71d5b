/* fuzz_item.c - stream-entry validation (tk_item_parse), as stream.c calls
 * it on an XREAD entry. The input is the entry: lines "name value" (the
 * name ends at the first space), or, when it starts with '{', the whole
 * input is the value of one `json` field. Every name and value gets a heap
 * block of its exact length, so a read past one is caught. A valid item is
 * then encoded, copied and updated as history.c does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/config.h"
#include "tickerd/item.h"

#define MAX_FIELDS 64

static tk_config_t *cfg;

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *s = malloc(n ? n : 1);
    if (s && n) memcpy(s, p, n);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tk_field_t fields[MAX_FIELDS];
    char *owned[2 * MAX_FIELDS];
    size_t nf = 0, no = 0;
    if (!cfg && !(cfg = tk_config_create())) abort();
    if (size && data[0] == '{') {
        owned[no++] = dup_exact((const uint8_t *)"json", 4);
        owned[no++] = dup_exact(data, size);
        fields[0] = (tk_field_t){owned[0], 4, owned[1], size};
        nf = 1;
    } else {
        size_t i = 0;
        while (i < size && nf < MAX_FIELDS) {
            const uint8_t *line = data + i, *nl = memchr(line, '\n', size - i);
            size_t len = nl ? (size_t)(nl - line) : size - i;
            const uint8_t *sp = memchr(line, ' ', len);
            size_t name_len = sp ? (size_t)(sp - line) : len;
            size_t value_len = sp ? len - name_len - 1 : 0;
            fields[nf].name = owned[no++] = dup_exact(line, name_len);
            fields[nf].name_len = name_len;
            fields[nf].value = owned[no++] = dup_exact(sp ? sp + 1 : line, value_len);
            fields[nf].value_len = value_len;
            nf++;
            i += len + 1;
        }
    }
    tk_item_t item, copy;
    tk_reject_t rej;
    tk_id_t id = {1732752000000ULL, 5};
    if (tk_item_parse(cfg, id, fields, nf, &item, &rej) == 0) {
        size_t len;
        char *json = tk_item_encode(item.op == TK_OP_PUBLISH ? "item" : "update", item.id,
                                    item.op == TK_OP_PUBLISH ? NULL : &item.ref, &item, true, &len);
        if (!json || len != strlen(json)) abort();
        free(json);
        if (tk_item_copy(&copy, &item) == 0) {
            tk_item_apply_update(&copy, &item);
            tk_item_clear(&copy);
        }
        tk_item_clear(&item);
    } else if (rej.reason <= TK_REJECT_NONE || rej.reason >= TK_REJECT_REASONS ||
               !tk_reason_names[rej.reason] || item.text || item.url || item.source) {
        abort(); /* a refusal must name its reason and own nothing */
    }
    for (size_t k = 0; k < no; k++)
        free(owned[k]);
    return 0;
}
