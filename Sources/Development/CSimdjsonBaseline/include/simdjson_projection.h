#ifndef SIMDJSON_PROJECTION_H
#define SIMDJSON_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// engine-bench's strongest baseline: simdjson's on-demand API doing the
/// engine's per-message work (see simdjson_projection.cpp). Not thread-safe:
/// one projection per thread.
typedef struct simdjson_projection simdjson_projection;

/// `output[outputs[i]] = payload[sources[i]]` for `count` fields; NULL when
/// out of memory.
simdjson_projection *simdjson_projection_new(const char *const *outputs, const char *const *sources, size_t count);
void simdjson_projection_free(simdjson_projection *projection);

/// Validates `payload` (one JSON object), finds the fields, keeps each value's
/// exact text and writes the clean object into `out`. Returns its length;
/// -1 when the payload is not valid JSON or not an object, -2 when a field is
/// missing, -3 when `capacity` is too small. `*all_zero` tells whether every
/// number in the payload is zero (the engine's junk filter).
long simdjson_projection_apply(simdjson_projection *projection, const uint8_t *payload, size_t length,
                               uint8_t *out, size_t capacity, int *all_zero);

/// The simdjson implementation the projection runs (icelake, haswell, ...).
const char *simdjson_projection_implementation(void);

#ifdef __cplusplus
}
#endif

#endif
