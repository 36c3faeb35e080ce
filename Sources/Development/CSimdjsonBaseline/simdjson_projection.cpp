// engine-bench's baseline with the strongest JSON parser there is: simdjson's
// on-demand API, used the way a C++ program would, for the same per-message
// work as the engine (Engine.process):
//   - validate the whole payload: simdjson checks UTF-8 and the structure of
//     the whole document in its first stage; every member is then visited,
//     every string unescaped and every number parsed (which checks its
//     syntax), and nothing may follow the object;
//   - find the wanted tags among the members;
//   - keep each value's exact text (raw_json_token: `6.6905`, not a double
//     printed again);
//   - note whether every number is zero (the engine's all-zero filter);
//   - write the clean object into the caller's buffer (no allocation).
// The payload is copied into a padded buffer first, as simdjson requires
// (a broker's message buffer has no padding).
//
// simdjson's on-demand front end exists only for the implementation chosen at
// compile time, which a portable build makes its scalar fallback. On x86-64
// this file is compiled for AVX2 (simdjson's haswell kernel) whatever the
// compiler flags, and simdjson_projection_new refuses to run it (returns
// NULL) on a CPU without AVX2; elsewhere the compile-time choice stands.
#if defined(__x86_64__) && defined(__clang__) && !defined(__AVX2__)
#define PROJECTION_FORCED_HASWELL 1
#pragma clang attribute push(__attribute__((target("avx2,bmi,bmi2,pclmul,lzcnt,popcnt"))), apply_to = function)
#define SIMDJSON_BUILTIN_IMPLEMENTATION haswell
#endif
#include <simdjson.h>

#include "simdjson_projection.h"

#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#define STRINGIFY2(x) #x
#define STRINGIFY(x) STRINGIFY2(x)

using namespace simdjson;

struct simdjson_projection {
    ondemand::parser parser;
    std::vector<std::string> outputs;   // `"name":`, pre-encoded
    std::vector<std::string> sources;
    std::vector<std::string_view> found;
    std::vector<uint8_t> padded;
    // Spelled out: the target attribute above applies to declared functions only.
    simdjson_projection() {}
    ~simdjson_projection() {}
};

static inline std::string_view trimmed(std::string_view token) {
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\n' || token.back() == '\r')) {
        token.remove_suffix(1);
    }
    return token;
}

extern "C" long simdjson_projection_apply(simdjson_projection *p, const uint8_t *payload, size_t length,
                                          uint8_t *out, size_t capacity, int *all_zero) {
    if (p->padded.size() < length + SIMDJSON_PADDING) p->padded.resize(length + SIMDJSON_PADDING);
    std::memcpy(p->padded.data(), payload, length);
    const size_t count = p->sources.size();
    for (size_t i = 0; i < count; i++) p->found[i] = std::string_view();
    bool zero = true;

    ondemand::document doc;
    if (p->parser.iterate(reinterpret_cast<const char *>(p->padded.data()), length, p->padded.size()).get(doc)) return -1;
    ondemand::object object;
    if (doc.get_object().get(object)) return -1;
    for (auto member : object) {
        std::string_view key;
        if (member.unescaped_key().get(key)) return -1;
        ondemand::value value;
        if (member.value().get(value)) return -1;
        ondemand::json_type type;
        if (value.type().get(type)) return -1;
        std::string_view token = trimmed(value.raw_json_token());
        switch (type) {
        case ondemand::json_type::number: {
            double d;
            if (value.get_double().get(d)) return -1;
            if (d != 0) zero = false;
            break;
        }
        case ondemand::json_type::string: {
            std::string_view s;
            if (value.get_string().get(s)) return -1;
            break;
        }
        case ondemand::json_type::boolean: {
            bool b;
            if (value.get_bool().get(b)) return -1;
            break;
        }
        case ondemand::json_type::null:
            if (!value.is_null()) return -1;
            break;
        default:
            // The meters' payloads are flat; a nested value is skipped (and
            // so checked) when the iteration moves on.
            break;
        }
        for (size_t i = 0; i < count; i++) {
            if (p->found[i].empty() && key == p->sources[i]) {
                p->found[i] = token;
                break;
            }
        }
    }
    // Nothing may follow the object: past its end there is no location.
    const char *rest;
    if (doc.current_location().get(rest) == SUCCESS) return -1;

    size_t n = 0;
    auto put = [&](std::string_view text) {
        if (n + text.size() > capacity) return false;
        std::memcpy(out + n, text.data(), text.size());
        n += text.size();
        return true;
    };
    if (!put("{")) return -3;
    for (size_t i = 0; i < count; i++) {
        if (p->found[i].empty()) return -2;
        if ((i > 0 && !put(",")) || !put(p->outputs[i]) || !put(p->found[i])) return -3;
    }
    if (!put("}")) return -3;
    *all_zero = zero ? 1 : 0;
    return static_cast<long>(n);
}

extern "C" simdjson_projection *simdjson_projection_new(const char *const *outputs, const char *const *sources, size_t count) {
#ifdef PROJECTION_FORCED_HASWELL
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("bmi2")) return nullptr;
#endif
    auto *p = new (std::nothrow) simdjson_projection();
    if (!p) return nullptr;
    try {
        for (size_t i = 0; i < count; i++) {
            p->outputs.push_back(std::string("\"") + outputs[i] + "\":");
            p->sources.emplace_back(sources[i]);
        }
        p->found.resize(count);
        p->padded.resize(4096 + SIMDJSON_PADDING);
    } catch (...) {
        delete p;
        return nullptr;
    }
    return p;
}

extern "C" void simdjson_projection_free(simdjson_projection *projection) { delete projection; }

extern "C" const char *simdjson_projection_implementation(void) { return STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION); }

#ifdef PROJECTION_FORCED_HASWELL
#pragma clang attribute pop
#endif
