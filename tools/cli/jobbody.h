/* The job the CLI submits: a job file read and changed on the client (`-p`, `--input`,
 * `--output`), sent to POST /jobs as JSON in the job file format (common/jobgraph.h),
 * so that the coordinator checks it with the very rules it checks a file with. */
#pragma once

#include <stddef.h>

struct job_graph;

/* Writes g as a JSON job document (graph form, durations in ms, sizes in bytes, only
 * the parameters the job wrote; no job id). The text is read back and compared with g
 * before it is handed out, so what is sent is what was checked. 0 and *ret_text
 * (malloc'ed, NUL-terminated, *ret_len bytes), or a negative errno and err. */
int cli_job_to_json(const struct job_graph *g, char **ret_text, size_t *ret_len, char *err,
                    size_t err_len);
