// Every tunable of the runtime in one typed struct (runtime/): defaults derived per vendor from
// DeviceCaps, then the KVZ_* environment overrides, parsed and validated once when a device opens
// (open_device) and held by the Device; the ops read Recorder::tuning(). docs/TUNING.md lists each
// knob. No other file below tools/ reads the environment (STYLE.md B14).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvz {

struct DeviceCaps;

// kCm2: VK_NV_cooperative_matrix2 (workgroup-scope matrices with tensor loads, the *_cm2
// kernels, where one exists) on top of VK_KHR_cooperative_matrix (every other tensor-core kernel
// runs its KHR variant). runtime/ops/coopmat.h decides which one a device uses.
enum class CoopmatApi { kOff, kNv, kKhr, kCm2 };
// "off", "nv", "khr", "cm2": the values KVZ_COOPMAT takes and `kvzip devices` prints.
std::string_view coopmat_api_name(CoopmatApi api);

// One vendor's occupancy figures, as data: the rules that size grids by resident workgroups use
// them only where a row here names the device's vendor (others keep the rules' plain defaults
// until someone measures theirs). bench/RESULTS.md holds the measurements behind each row.
struct VendorRule {
  uint32_t vendor_id = 0;
  const char* vendor = "";
  // paged_decode workgroups (128 invocations) resident per compute unit.
  uint32_t decode_workgroups_per_unit = 0;
  // matmul_coopmat workgroups of the 128 x 128 f16/bf16 tile resident per compute unit.
  uint32_t coopmat_plain_per_unit = 0;
};
// The rule for `caps`' vendor; nullptr where none is written down.
const VendorRule* vendor_rule(const DeviceCaps& caps);

// Decode attention (shaders/paged_decode.comp) and its split-K shares.
struct DecodeTuning {
  bool fast_kernel = true;            // false: the tiled kernel serves decode too
  uint32_t max_splits = 512;          // split-K shares per call, all queries (<= 512)
  uint32_t min_rows_per_split = 128;  // rows per share below which decode splits no further
  bool fill_one_round = true;         // shares grow to one round of resident workgroups
  uint32_t workgroups_per_unit = 0;   // resident workgroups per compute unit (vendor rule)
  uint32_t workgroup = 128;           // invocations (a power of two >= the subgroup size)
  uint32_t keys_per_iter = 0;         // keys per lane group per step, 1..16 (0: by rows)
  uint32_t lanes_per_key = 0;         // lanes per key row, a power of two (0: head_dim / 8)
  std::optional<bool> prefetch;       // next step's loads early (unset: where <= 4 rows)
};

// Matmul and matvec variant choice. Tests and benchmarks pass a modified copy to
// detail::matmul_with to run a variant the device would not pick by itself.
struct MatmulTuning {
  bool allow_subgroup = true;  // matvec: subgroupAdd reduction where the device has it
  // m > 1: tensor-core matmul_coopmat where coopmat_api() is not off and m >= kCoopmatMinTokens.
  // It rounds x and w to f16, so it needs f16 tolerances.
  bool allow_coopmat = true;
  bool force_coopmat = false;  // tests: the tensor-core kernel for any m > 1 where allowed
  // With the cm2 api, f16 weights multiply in shaders/matmul_cm2.comp (otherwise the KHR kernel,
  // which is faster with f32 activations).
  bool cm2_matmul = false;
  bool allow_dequant_pass = true;  // block weights, w_scratch, m >= 256: dequantise to f16 first
  uint32_t coopmat_group_m = 8;    // matmul_coopmat tile raster: rows of tiles per group
  // matmul_coopmat tile {SG_M, SG_N, FM, FN, STAGES, BK}; all 0: the default for m and n.
  std::array<uint32_t, 6> coopmat_tile = {};
  std::array<uint32_t, 3> cm2_tile = {};  // matmul_cm2 tile {BM, BN, BK}; all 0: the default
  // 128 x 128 matmul_coopmat workgroups resident per compute unit (vendor rule; 0: unknown, the
  // large tile always).
  uint32_t coopmat_plain_per_unit = 0;
  uint32_t matvec_rows = 0;  // matvec rows per workgroup (0: the default)
  uint32_t matvec_wg = 0;    // matvec workgroup size (0: the default)
  // Q4_K matvec variant (shaders/matvec.comp, shaders/matvec_wide.comp): 0 contiguous lanes (the
  // default; 4 where the caller gives MatmulArgs::x8), 1 the earlier mapping, 2 64-value units per
  // thread with float nibbles, 3 the same units with x rounded to int8 per 32 values and integer
  // dot products (tolerance amax_32 / 254 per x value), 4 variant 3 on x rounded once per call
  // (needs the x8 scratch; without it variant 3 runs). Variant 4 records two dependent dispatches:
  // never inside a Recorder::Concurrent group.
  uint32_t matvec_variant = 0;
  bool allow_int_dot = true;  // variants 3, 4: OpSDot where DeviceCaps::int8_dot
  // Decode gate/up/activation as one dispatch (runtime/ops/matvec_gate_up.h). Off by default: it
  // decodes slower than the three separate ops (bench/RESULTS.md has the figures).
  bool fused_gate_up = false;
};

// Prefill attention on tensor cores (shaders/paged_attention_coopmat.comp, *_cm2.comp).
struct AttentionTuning {
  uint32_t coopmat_subgroups = 8;  // subgroups of 16 query rows per workgroup (4 or 8)
  uint32_t cm2_rows = 128;         // cm2 kernel: query rows per workgroup (64, 128, 256)
  uint32_t cm2_workgroup = 256;    // cm2 kernel: invocations (128, 256)
  bool cm2_hoist = true;           // cm2 kernel: V loaded together with K
  uint32_t cm2_splits = 0;         // cm2 split-K shares per head (0: the rule; 1: never split)
  // Benchmark only, WRONG RESULTS: bit mask of phases the coopmat prefill kernel leaves out (its
  // SKIP spec constant), for knock-out profiles. Never set outside a benchmark.
  uint32_t bench_skip_phases = 0;
};

struct SamplingTuning {
  bool radix = true;  // false: the bisection top-k/top-p kernel even where the radix one runs
};

// When recorded work is handed to the GPU (model/forward.cpp, model/session.cpp).
struct SubmitTuning {
  bool early_first_layer = true;  // submit after the first layer, not only every few layers
  uint32_t ahead_layers = 0;      // a step recorded ahead: submit every n layers (0: whole)
  bool decode_ahead = true;       // record step i + 1 before token i is read back
};

// Diagnostics that cost time or change what the device reports.
struct DiagnosticTuning {
  bool validation = false;                // Khronos validation layer (instance-wide: first device)
  bool pipeline_stats = false;            // log the driver's statistics of every pipeline
  bool profile = false;                   // per-op GPU timestamps in the forward pass
  uint64_t max_storage_buffer_range = 0;  // lowers (never raises) the device's limit; 0: keep
};

struct Tuning {
  // Compute units the occupancy rules size grids by: DeviceCaps::compute_units where a vendor
  // rule exists, else 0 (the rules keep their plain defaults).
  uint32_t occupancy_units = 0;
  std::optional<CoopmatApi> coopmat;  // the tensor-core api to use (unset: the best usable)
  DecodeTuning decode;
  MatmulTuning matmul;
  AttentionTuning attention;
  SamplingTuning sampling;
  SubmitTuning submit;
  DiagnosticTuning diagnostics;
};

// The environment's overrides: each KVZ_* variable of docs/TUNING.md that is set, parsed and
// validated. Throws InputError naming the variable and what it accepts for a bad value.
struct TuningEnv {
  std::vector<std::pair<std::string, std::string>> set;  // (name, value) of every variable read
  std::vector<std::function<void(Tuning&)>> setters;     // one per entry of `set`, parsed
  Tuning apply(Tuning t) const;                          // t with these overrides
};
TuningEnv read_tuning_env();

// The defaults for `caps` (vendor rules applied), then `env`.
Tuning default_tuning(const DeviceCaps& caps);
Tuning resolve_tuning(const DeviceCaps& caps, const TuningEnv& env);

// "name = value" lines of every knob in force (kvzip devices), with the variable that sets it.
std::vector<std::string> describe_tuning(const Tuning& t);

// The device selector from KVZIP_DEVICE ("" when unset).
std::string device_selector_from_env();

}  // namespace kvz
