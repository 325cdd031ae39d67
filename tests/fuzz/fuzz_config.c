/* libFuzzer target for the config loader and the masters/workers parsers: any input must
 * load or be refused with a message, never crash, leak or overrun; a loaded config's
 * values must read back through cfg_set to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct cfg *c) {
        struct cfg *again = cfg_new_defaults();
        if (!again)
                return;
        for (size_t k = 0; k < cfg_key_count(); k++) {
                enum cfg_key key = (enum cfg_key)k;
                if (cfg_key_type(key) == CFG_T_USERPASS)
                        continue; /* shown masked */
                char text[CFG_MAX_VALUE_BYTES + 64], back[CFG_MAX_VALUE_BYTES + 64], err[1024];
                if (cfg_value_text(c, key, text, sizeof(text)) != 0)
                        abort();
                if (cfg_set(again, cfg_key_name(key), text, err, sizeof(err)) != 0)
                        abort(); /* a value the loader took must read back */
                if (cfg_value_text(again, key, back, sizeof(back)) != 0 || strcmp(text, back) != 0)
                        abort();
        }
        cfg_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char err[2048];
        struct cfg *c = NULL;
        if (cfg_load_string("fuzz.yaml", (const char *)data, size, &c, err, sizeof(err)) == 0) {
                for (size_t i = 0; i < cfg_warning_count(c); i++)
                        if (!cfg_warning(c, i) || !cfg_warning(c, i)[0])
                                abort();
                (void)cfg_validate(c, err, sizeof(err));
                check_round_trip(c);
                cfg_free(c);
        } else if (err[0] == '\0') {
                abort(); /* every refusal says why */
        }

        struct hosts_entry *e = NULL;
        size_t n = 0;
        if (hosts_parse_masters_string("masters", (const char *)data, size, &e, &n, err,
                                       sizeof(err)) == 0) {
                for (size_t i = 0; i < n; i++)
                        if (e[i].port == 0 || !hosts_name_valid(e[i].host))
                                abort();
                free(e);
        }
        e = NULL;
        if (hosts_parse_workers_string("workers", (const char *)data, size, &e, &n, err,
                                       sizeof(err)) == 0)
                free(e);

        /* The unit parsers on the input as one string. */
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t v;
        (void)cfg_parse_duration_ms(s, &v);
        (void)cfg_parse_size_bytes(s, &v);
        struct cfg *d = cfg_new_defaults();
        if (d) {
                char *eq = strchr(s, '=');
                if (eq) {
                        *eq = '\0';
                        (void)cfg_set(d, s, eq + 1, err, sizeof(err));
                }
                cfg_free(d);
        }
        free(s);
        return 0;
}
