/* Pointer-store commands for flinc-election --script: run one after the other once the
 * process is elected, each result logged as one `+store {json}` line, so integration
 * tests can drive the stores of ha/stores.h across real failovers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct ha_zk;
struct ha_election;
struct script;

/* Called once the script ran out of commands (code -1: keep running), reached `exit`
 * (code 0) or `resign` (resign true), or failed to start a command (code 1). */
typedef void (*script_finished_fn)(struct script *s, int code, bool resign, void *userdata);

/* Reads and checks the whole script file; err gets a reason naming the line. 0 or a
 * negative errno. */
int script_create(struct ha_zk *zk, struct ha_election *election, const char *base_path,
                  const char *cluster, const char *storage_dir, const char *path,
                  script_finished_fn finished, void *userdata, struct script **ret,
                  char *err, size_t err_len);

/* Starts running the commands (call once, when elected). */
void script_start(struct script *s);

/* Accepts NULL. */
void script_destroy(struct script *s);
