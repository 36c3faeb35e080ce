// The CRC-32C instruction, which Swift cannot emit: a function compiled for
// SSE4.2 alone (the rest of the build stays portable), chosen at run time by
// the journal (`CRC32C`) when cpuid says the CPU has it.
#include "crc32c_hardware.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>

int crc32c_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint64_t c = crc;
    // 32 bytes a step (a record is usually 100-200 bytes): four dependent
    // crc32q, each with its load folded in, and one test per step.
    while (count >= 32) {
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + 8, 8);
        memcpy(&w2, p + 16, 8);
        memcpy(&w3, p + 24, 8);
        c = _mm_crc32_u64(c, w0);
        c = _mm_crc32_u64(c, w1);
        c = _mm_crc32_u64(c, w2);
        c = _mm_crc32_u64(c, w3);
        p += 32;
        count -= 32;
    }
    while (count >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        count -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    if (count >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        c32 = _mm_crc32_u32(c32, w);
        p += 4;
        count -= 4;
    }
    while (count > 0) {
        c32 = _mm_crc32_u8(c32, *p);
        p += 1;
        count -= 1;
    }
    return c32;
}

#else

int crc32c_hardware_available(void) { return 0; }

uint32_t crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    (void)crc;
    (void)bytes;
    (void)count;
    __builtin_trap();  // never called: crc32c_hardware_available() is 0
}

#endif
