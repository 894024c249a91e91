// `kvzip devices`: every device with its probed capabilities (tools/).
#include <fmt/format.h>

#include <string>

#include "runtime/device.h"
#include "runtime/ops/coopmat.h"
#include "tools/commands.h"

namespace kvz::cli {
namespace {

// The tunables a device would open with (docs/TUNING.md), wrapped to about 100 columns.
void print_tuning(const Tuning& t) {
  std::string line = "   tuning:";
  for (const std::string& item : describe_tuning(t)) {
    if (line.size() + item.size() > 100) {
      fmt::print("{}\n", line);
      line = "     ";
    }
    line += "  " + item;
  }
  fmt::print("{}\n", line);
}

}  // namespace

int run_devices() {
  auto devs = list_devices();
  const TuningEnv env = read_tuning_env();
  for (size_t i = 0; i < devs.size(); ++i) {
    const DeviceCaps& c = devs[i];
    const Tuning tuning = resolve_tuning(c, env);
    bool is_cpu_backend = i + 1 == devs.size();
    fmt::print("{}: {}{}\n", is_cpu_backend ? std::string("cpu") : std::to_string(i), c.name,
               is_cpu_backend ? " (KVZIP_DEVICE=cpu)" : "");
    fmt::print("   type {}  driver {}  api {}\n", c.type, c.driver, c.api_version);
    if (is_cpu_backend) {
      print_tuning(tuning);
      continue;
    }
    fmt::print("   fp16 {}  storage16 {}  storage8 {}  int8 {}  int8-dot {}  bf16 {}\n", c.fp16,
               c.storage16, c.storage8, c.int8, c.int8_dot, c.bf16);
    fmt::print(
        "   subgroup {} (arithmetic {}, shuffle {}, size control {}: {}..{})  shared memory {} KiB "
        " max workgroup {}  compute units {}\n",
        c.subgroup_size, c.subgroup_arith, c.subgroup_shuffle, c.subgroup_size_control,
        c.subgroup_size_min, c.subgroup_size_max, c.shared_memory_bytes / 1024,
        c.max_workgroup_invocations, c.compute_units ? std::to_string(c.compute_units) : "unknown");
    for (const char* ext : {"KHR", "NV"}) {
      const bool has = std::string_view(ext) == "KHR" ? c.coopmat_khr : c.coopmat_nv;
      fmt::print("   coopmat {} {}", ext, has);
      for (const auto& s : c.coopmat_shapes)
        if (s.ext == ext) fmt::print("  {}x{}x{} {}->{}", s.m, s.n, s.k, s.a_type, s.c_type);
      fmt::print("\n");
    }
    fmt::print("   coopmat NV2 {}", c.coopmat2_nv);
    for (const auto& s : c.coopmat2_shapes)
      fmt::print("  {}x{}x{}/{} {}->{}", s.m_gran, s.n_gran, s.k_gran, s.workgroup, s.a_type,
                 s.c_type);
    fmt::print("\n   tensor-core kernels: {} (usable: nv {}, khr {}, cm2 {}; KVZ_COOPMAT)",
               coopmat_api_name(coopmat_api(c, tuning)), coopmat_api_usable(c, CoopmatApi::kNv),
               coopmat_api_usable(c, CoopmatApi::kKhr), coopmat_api_usable(c, CoopmatApi::kCm2));
    fmt::print(
        "\n   device-local {:.1f} GiB  max binding {} MiB  max allocation {} MiB  timestamps {}\n",
        c.device_local_bytes / 1073741824.0, c.max_storage_buffer_range >> 20,
        c.max_alloc_bytes >> 20, c.timestamps);
    print_tuning(tuning);
  }
  return 0;
}

}  // namespace kvz::cli
