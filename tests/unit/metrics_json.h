/* Test helper: the metrics as the next flush writes them, parsed.  Opens a temporary file as
 * the metrics path, flushes once (which also takes every delta back to zero), reads that line
 * and closes the metrics again, so any test can call it before and after the work it counts. */
#ifndef IGNITION_TESTS_METRICS_JSON_H
#define IGNITION_TESTS_METRICS_JSON_H

#include <jansson.h>
#include <stdint.h>

/* The flushed object (json_decref it), or NULL if anything failed. */
json_t *metrics_json_take(void);
/* Integer at "section.key" of `root` (a missing key fails the test). */
uint64_t metrics_json_get(json_t *root, const char *section, const char *key);

#endif
