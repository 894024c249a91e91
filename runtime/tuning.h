// Tuning and diagnostic switches read from the environment, for measurements only
// (bench/gpu_run.sh sweeps them): each user documents its own variables next to the default they
// replace.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace kvz {

// Whether environment variable `name` is set to something other than "" or "0".
bool env_flag(const char* name);

// The unsigned value of environment variable `name`; 0 when it is unset or not a number.
uint32_t env_u32(const char* name);
// The value of `name` where it is one of `allowed`, else `fallback` (unset, not a number, other).
uint32_t env_pick(const char* name, std::initializer_list<uint32_t> allowed, uint32_t fallback);
// Comma-separated unsigned values of `name` ("2,4,4,2"); empty when unset or when any entry is
// not a number.
std::vector<uint32_t> env_u32_list(const char* name);

}  // namespace kvz
