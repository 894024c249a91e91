// The tuning struct's vendor defaults, its environment overrides (one table: name, parser,
// printer) and the device selector variable (runtime/). The only reader of the environment below
// tools/.
#include "runtime/tuning.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <string_view>

#include "runtime/device.h"
#include "runtime/error.h"

namespace kvz {
namespace {

// The occupancy measurements behind each row are in bench/RESULTS.md ("Occupancy rules").
constexpr VendorRule kVendorRules[] = {
    {0x10DE, "NVIDIA", /*decode_workgroups_per_unit=*/3, /*coopmat_plain_per_unit=*/2},
};

using Setter = std::function<void(Tuning&)>;

[[noreturn]] void bad(std::string_view name, std::string_view value, std::string_view expected) {
  throw InputError(fmt::format("{}={}: expected {}", name, value, expected));
}

uint64_t parse_u64(std::string_view name, std::string_view v, std::string_view expected) {
  uint64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size()) bad(name, v, expected);
  return out;
}

uint32_t parse_u32(std::string_view name, std::string_view v, uint32_t lo, uint32_t hi,
                   std::string_view expected) {
  const uint64_t x = parse_u64(name, v, expected);
  if (x < lo || x > hi) bad(name, v, expected);
  return uint32_t(x);
}

uint32_t parse_pow2(std::string_view name, std::string_view v, uint32_t hi) {
  const std::string what = fmt::format("a power of two from 1 to {}", hi);
  const uint32_t x = parse_u32(name, v, 1, hi, what);
  if (!std::has_single_bit(x)) bad(name, v, what);
  return x;
}

uint32_t parse_one_of(std::string_view name, std::string_view v,
                      std::initializer_list<uint32_t> allowed) {
  std::string what = "one of";
  for (uint32_t a : allowed) what += fmt::format(" {}", a);
  const uint64_t x = parse_u64(name, v, what);
  if (std::find(allowed.begin(), allowed.end(), x) == allowed.end()) bad(name, v, what);
  return uint32_t(x);
}

bool parse_flag(std::string_view name, std::string_view v) {
  if (v == "0") return false;
  if (v == "1") return true;
  bad(name, v, "0 or 1");
}

std::vector<uint32_t> parse_list(std::string_view name, std::string_view v, size_t count,
                                 std::string_view expected) {
  std::vector<uint32_t> out;
  std::string_view s = v;
  while (true) {
    const size_t comma = s.find(',');
    out.push_back(uint32_t(parse_u32(name, s.substr(0, comma), 0, 1u << 16, expected)));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (out.size() != count) bad(name, v, expected);
  return out;
}

std::string show(bool b) { return b ? "1" : "0"; }
std::string show(uint32_t v) { return std::to_string(v); }
std::string show_opt(const std::optional<bool>& b) { return b ? show(*b) : "rule"; }
template <size_t N>
std::string show_list(const std::array<uint32_t, N>& a) {
  if (std::all_of(a.begin(), a.end(), [](uint32_t v) { return v == 0; })) return "default";
  return fmt::format("{}", fmt::join(a, ","));
}
std::string show_api(const std::optional<CoopmatApi>& a) {
  return a ? std::string(coopmat_api_name(*a)) : "auto";
}

// One environment variable: its name, the parser that validates a value into a setter, and the
// value in force (for kvzip devices). docs/TUNING.md mirrors this table.
struct Knob {
  const char* name;
  Setter (*parse)(std::string_view name, std::string_view value);
  std::string (*value)(const Tuning& t);
};

const Knob kKnobs[] = {
    {"KVZ_COOPMAT",
     [](std::string_view n, std::string_view v) -> Setter {
       std::optional<CoopmatApi> api;
       for (CoopmatApi c : {CoopmatApi::kOff, CoopmatApi::kNv, CoopmatApi::kKhr, CoopmatApi::kCm2})
         if (v == coopmat_api_name(c)) api = c;
       if (v == "0") api = CoopmatApi::kOff;
       if (!api && v != "auto") bad(n, v, "auto, nv, khr, cm2 or off");
       return [api](Tuning& t) { t.coopmat = api; };
     },
     [](const Tuning& t) { return show_api(t.coopmat); }},
    // After KVZ_COOPMAT: it wins.
    {"KVZ_NO_COOPMAT",
     [](std::string_view n, std::string_view v) -> Setter {
       if (!parse_flag(n, v)) return [](Tuning&) {};
       return [](Tuning& t) { t.coopmat = CoopmatApi::kOff; };
     },
     [](const Tuning& t) { return show(t.coopmat == CoopmatApi::kOff); }},
    {"KVZ_NO_FAST_DECODE",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool off = parse_flag(n, v);
       return [off](Tuning& t) { t.decode.fast_kernel = !off; };
     },
     [](const Tuning& t) { return show(!t.decode.fast_kernel); }},
    {"KVZ_DECODE_SPLITS",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 1, 512, "1 to 512");
       return [x](Tuning& t) { t.decode.max_splits = x; };
     },
     [](const Tuning& t) { return show(t.decode.max_splits); }},
    {"KVZ_DECODE_MIN_ROWS",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 64, 1u << 20, "a multiple of 64");
       if (x % 64 != 0) bad(n, v, "a multiple of 64");
       return [x](Tuning& t) { t.decode.min_rows_per_split = x; };
     },
     [](const Tuning& t) { return show(t.decode.min_rows_per_split); }},
    {"KVZ_DECODE_WAVE",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.decode.fill_one_round = on; };
     },
     [](const Tuning& t) { return show(t.decode.fill_one_round); }},
    {"KVZ_DECODE_WG",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_pow2(n, v, 1024);
       return [x](Tuning& t) { t.decode.workgroup = x; };
     },
     [](const Tuning& t) { return show(t.decode.workgroup); }},
    {"KVZ_DECODE_KPI",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 1, 16, "1 to 16");
       return [x](Tuning& t) { t.decode.keys_per_iter = x; };
     },
     [](const Tuning& t) {
       return t.decode.keys_per_iter ? show(t.decode.keys_per_iter) : "rule";
     }},
    {"KVZ_DECODE_LPK",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_pow2(n, v, 128);
       return [x](Tuning& t) { t.decode.lanes_per_key = x; };
     },
     [](const Tuning& t) {
       return t.decode.lanes_per_key ? show(t.decode.lanes_per_key) : "rule";
     }},
    {"KVZ_DECODE_PREFETCH",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.decode.prefetch = on; };
     },
     [](const Tuning& t) { return show_opt(t.decode.prefetch); }},
    {"KVZ_MATMUL_TILE",
     [](std::string_view n, std::string_view v) -> Setter {
       constexpr std::string_view kWhat =
           "sg_m,sg_n,fm,fn,stages,bk with the first four 1..8, stages 1..2, bk 32 or 64";
       const std::vector<uint32_t> x = parse_list(n, v, 6, kWhat);
       if (!std::all_of(x.begin(), x.begin() + 4, [](uint32_t e) { return e >= 1 && e <= 8; }) ||
           x[4] < 1 || x[4] > 2 || (x[5] != 32 && x[5] != 64))
         bad(n, v, kWhat);
       std::array<uint32_t, 6> a{};
       std::copy(x.begin(), x.end(), a.begin());
       return [a](Tuning& t) { t.matmul.coopmat_tile = a; };
     },
     [](const Tuning& t) { return show_list(t.matmul.coopmat_tile); }},
    {"KVZ_MATMUL_GROUP_M",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 1, 1024, "1 to 1024");
       return [x](Tuning& t) { t.matmul.coopmat_group_m = x; };
     },
     [](const Tuning& t) { return show(t.matmul.coopmat_group_m); }},
    {"KVZ_CM2_MATMUL",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.matmul.cm2_matmul = on; };
     },
     [](const Tuning& t) { return show(t.matmul.cm2_matmul); }},
    {"KVZ_CM2_TILE",
     [](std::string_view n, std::string_view v) -> Setter {
       const std::vector<uint32_t> x = parse_list(n, v, 3, "bm,bn,bk (positive)");
       if (!x[0] || !x[1] || !x[2]) bad(n, v, "bm,bn,bk (positive)");
       const std::array<uint32_t, 3> a{x[0], x[1], x[2]};
       return [a](Tuning& t) { t.matmul.cm2_tile = a; };
     },
     [](const Tuning& t) { return show_list(t.matmul.cm2_tile); }},
    {"KVZ_MATVEC_VARIANT",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 0, 4, "0 to 4");
       return [x](Tuning& t) { t.matmul.matvec_variant = x; };
     },
     [](const Tuning& t) { return show(t.matmul.matvec_variant); }},
    {"KVZ_FUSED_GATE_UP",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.matmul.fused_gate_up = on; };
     },
     [](const Tuning& t) { return show(t.matmul.fused_gate_up); }},
    {"KVZ_ATTN_NSG",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_one_of(n, v, {4, 8});
       return [x](Tuning& t) { t.attention.coopmat_subgroups = x; };
     },
     [](const Tuning& t) { return show(t.attention.coopmat_subgroups); }},
    {"KVZ_ATTN_CM2_BR",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_one_of(n, v, {64, 128, 256});
       return [x](Tuning& t) { t.attention.cm2_rows = x; };
     },
     [](const Tuning& t) { return show(t.attention.cm2_rows); }},
    {"KVZ_ATTN_CM2_WG",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_one_of(n, v, {128, 256});
       return [x](Tuning& t) { t.attention.cm2_workgroup = x; };
     },
     [](const Tuning& t) { return show(t.attention.cm2_workgroup); }},
    {"KVZ_ATTN_CM2_HOIST",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.attention.cm2_hoist = on; };
     },
     [](const Tuning& t) { return show(t.attention.cm2_hoist); }},
    {"KVZ_ATTN_CM2_SPLITS",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 0, 64, "0 (the rule) to 64");
       return [x](Tuning& t) { t.attention.cm2_splits = x; };
     },
     [](const Tuning& t) {
       return t.attention.cm2_splits ? show(t.attention.cm2_splits) : "rule";
     }},
    {"KVZ_BENCH_ATTN_SKIP",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 0, 15, "a phase mask 0 to 15 (benchmarks only)");
       return [x](Tuning& t) { t.attention.bench_skip_phases = x; };
     },
     [](const Tuning& t) { return show(t.attention.bench_skip_phases); }},
    {"KVZ_SAMPLE_BISECT",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.sampling.radix = !on; };
     },
     [](const Tuning& t) { return show(!t.sampling.radix); }},
    {"KVZ_NO_EARLY_SUBMIT",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool off = parse_flag(n, v);
       return [off](Tuning& t) { t.submit.early_first_layer = !off; };
     },
     [](const Tuning& t) { return show(!t.submit.early_first_layer); }},
    {"KVZ_AHEAD_SUBMIT_LAYERS",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint32_t x = parse_u32(n, v, 0, 1u << 16, "a layer count (0: the whole step)");
       return [x](Tuning& t) { t.submit.ahead_layers = x; };
     },
     [](const Tuning& t) { return show(t.submit.ahead_layers); }},
    {"KVZ_NO_DECODE_AHEAD",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool off = parse_flag(n, v);
       return [off](Tuning& t) { t.submit.decode_ahead = !off; };
     },
     [](const Tuning& t) { return show(!t.submit.decode_ahead); }},
    {"KVZ_VALIDATION",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.diagnostics.validation = on; };
     },
     [](const Tuning& t) { return show(t.diagnostics.validation); }},
    {"KVZ_PIPELINE_STATS",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.diagnostics.pipeline_stats = on; };
     },
     [](const Tuning& t) { return show(t.diagnostics.pipeline_stats); }},
    {"KVZ_PROFILE",
     [](std::string_view n, std::string_view v) -> Setter {
       const bool on = parse_flag(n, v);
       return [on](Tuning& t) { t.diagnostics.profile = on; };
     },
     [](const Tuning& t) { return show(t.diagnostics.profile); }},
    {"KVZ_MAX_STORAGE_BUFFER_RANGE",
     [](std::string_view n, std::string_view v) -> Setter {
       const uint64_t x = parse_u64(n, v, "a byte count");
       if (x == 0) bad(n, v, "a byte count");
       return [x](Tuning& t) { t.diagnostics.max_storage_buffer_range = x; };
     },
     [](const Tuning& t) {
       const uint64_t r = t.diagnostics.max_storage_buffer_range;
       return r ? std::to_string(r) : std::string("device");
     }},
};

// Names that no longer apply: setting one is an error rather than a silent no-op.
constexpr std::pair<const char*, const char*> kRenamed[] = {
    {"KVZ_ATTN_SKIP", "KVZ_BENCH_ATTN_SKIP (benchmarks only: it makes results wrong)"},
};

// An unset or empty variable is "not set".
std::optional<std::string_view> env_value(const char* name) {
  const char* e = std::getenv(name);
  if (!e || !*e) return std::nullopt;
  return std::string_view(e);
}

}  // namespace

std::string_view coopmat_api_name(CoopmatApi api) {
  switch (api) {
    case CoopmatApi::kNv:
      return "nv";
    case CoopmatApi::kKhr:
      return "khr";
    case CoopmatApi::kCm2:
      return "cm2";
    default:
      return "off";
  }
}

const VendorRule* vendor_rule(const DeviceCaps& caps) {
  for (const VendorRule& r : kVendorRules)
    if (r.vendor_id == caps.vendor_id) return &r;
  return nullptr;
}

Tuning default_tuning(const DeviceCaps& caps) {
  Tuning t;
  if (const VendorRule* r = vendor_rule(caps); r && caps.compute_units > 0) {
    t.occupancy_units = caps.compute_units;
    t.decode.workgroups_per_unit = r->decode_workgroups_per_unit;
    t.matmul.coopmat_plain_per_unit = r->coopmat_plain_per_unit;
  }
  return t;
}

TuningEnv read_tuning_env() {
  for (const auto& [old_name, now] : kRenamed)
    if (env_value(old_name)) throw InputError(fmt::format("{} is gone: use {}", old_name, now));
  TuningEnv env;
  for (const Knob& k : kKnobs)
    if (const auto v = env_value(k.name)) {
      env.setters.push_back(k.parse(k.name, *v));
      env.set.emplace_back(k.name, std::string(*v));
    }
  return env;
}

Tuning TuningEnv::apply(Tuning t) const {
  for (const auto& s : setters) s(t);
  return t;
}

Tuning resolve_tuning(const DeviceCaps& caps, const TuningEnv& env) {
  return env.apply(default_tuning(caps));
}

std::vector<std::string> describe_tuning(const Tuning& t) {
  std::vector<std::string> out;
  out.push_back(fmt::format("occupancy units {} (decode {} / matmul {} workgroups per unit)",
                            t.occupancy_units, t.decode.workgroups_per_unit,
                            t.matmul.coopmat_plain_per_unit));
  for (const Knob& k : kKnobs) out.push_back(fmt::format("{}={}", k.name, k.value(t)));
  return out;
}

// Blanks alone mean unset too: a selector of spaces would match any device name with a space.
std::string device_selector_from_env() {
  const auto v = env_value("KVZIP_DEVICE");
  if (!v || std::all_of(v->begin(), v->end(),
                        [](char ch) { return std::isspace(static_cast<unsigned char>(ch)) != 0; }))
    return {};
  return std::string(*v);
}

}  // namespace kvz
