#ifndef CRC32C_HARDWARE_H
#define CRC32C_HARDWARE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this CPU has the CRC-32C instruction (x86-64: SSE4.2's `crc32`,
/// asked of cpuid), 0 otherwise. Cheap, but the caller keeps the answer.
int crc32c_hardware_available(void);

/// The raw CRC-32C update step (Castagnoli, reflected) on the inverted
/// register `crc` over `count` bytes at `bytes`, with the `crc32` instruction:
/// the same result as the journal's table-driven step. Only when
/// `crc32c_hardware_available()` said 1 (elsewhere it traps).
uint32_t crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count);

#ifdef __cplusplus
}
#endif

#endif
