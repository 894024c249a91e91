// KVZ_CPU_CLONES: compile a hot CPU function for AVX-512, AVX2 and the baseline ISA and pick one
// at load time (GCC/Clang target_clones, an ELF ifunc), so portable builds still vectorise wide
// where the host allows (runtime/cpu). Helpers inlined into such a function share its ISA.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(KVZ_NO_TARGET_CLONES)
#define KVZ_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KVZ_CPU_CLONES
#endif
