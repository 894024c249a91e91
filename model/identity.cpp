// Model identity: XXH3-128 hashing and the remembered tensor hash (model/).
#include "model/identity.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/atomic_file.h"

namespace kvz {
namespace {

class Hasher {
 public:
  Hasher() : s_(XXH3_createState()) {
    if (!s_) throw OutOfMemory("XXH3 state");
    XXH3_128bits_reset(s_);
  }
  ~Hasher() { XXH3_freeState(s_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void add(const void* p, size_t n) { XXH3_128bits_update(s_, p, n); }
  void add(std::string_view s) {
    add_u64(s.size());  // length-prefixed: no two sequences of strings hash the same bytes
    add(s.data(), s.size());
  }
  void add_u64(uint64_t v) { add(&v, sizeof(v)); }
  std::string hex() const {
    const XXH128_hash_t h = XXH3_128bits_digest(s_);
    return fmt::format("{:016x}{:016x}", h.high64, h.low64);
  }

 private:
  XXH3_state_t* s_;
};

struct Stamp {
  std::string path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const Stamp&) const = default;
};

std::vector<Stamp> stamps_of(const std::vector<std::string>& files) {
  std::vector<Stamp> out;
  for (const std::string& f : files) {
    struct stat st {};
    char real[PATH_MAX];
    if (::stat(f.c_str(), &st) != 0 || !::realpath(f.c_str(), real)) return {};
    out.push_back({real, static_cast<uint64_t>(st.st_size),
                   int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec});
  }
  return out;
}

nlohmann::json to_json(const std::vector<Stamp>& s) {
  nlohmann::json j = nlohmann::json::array();
  for (const Stamp& x : s) j.push_back({x.path, x.size, x.mtime_ns});
  return j;
}

// The sidecar's file name: a hash of the real paths (one sidecar per model, however many loads).
std::string sidecar_path(const std::string& dir, const std::vector<Stamp>& stamps) {
  Hasher h;
  for (const Stamp& s : stamps) h.add(s.path);
  return (std::filesystem::path(dir) / ("tensors-" + h.hex() + ".json")).string();
}

std::string remembered(const std::string& sidecar, const std::vector<Stamp>& stamps) {
  try {
    const std::vector<uint8_t> b = read_regular_file(sidecar);
    const nlohmann::json j = nlohmann::json::parse(b.begin(), b.end());
    if (j.at("files") != to_json(stamps)) return {};
    std::string h = j.at("xxh3_128").get<std::string>();
    return h.size() == 32 ? h : std::string();
  } catch (const std::exception&) {
    return {};  // missing, unreadable or stale: hash again
  }
}

}  // namespace

std::string tensor_hash(const std::vector<TensorSample>& tensors,
                        const std::vector<std::string>& files, const std::string& cache_dir) {
  const std::vector<Stamp> stamps = cache_dir.empty() ? std::vector<Stamp>{} : stamps_of(files);
  const std::string sidecar = stamps.empty() ? std::string() : sidecar_path(cache_dir, stamps);
  if (!sidecar.empty())
    if (std::string h = remembered(sidecar, stamps); !h.empty()) return h;
  Hasher h;
  h.add_u64(tensors.size());
  for (const TensorSample& t : tensors) {
    h.add(t.name);
    h.add_u64(t.n_bytes);
    h.add(t.data, t.n_bytes);
  }
  std::string hex = h.hex();
  if (!sidecar.empty()) {
    try {  // remembering is an optimisation: a read-only or full cache folder never fails a load
      std::error_code ec;
      std::filesystem::create_directories(cache_dir, ec);
      const nlohmann::json j = {{"files", to_json(stamps)}, {"xxh3_128", hex}};
      write_file_atomic(sidecar, j.dump(1) + "\n");
    } catch (const std::exception&) {
    }
  }
  return hex;
}

std::string model_identity(const ModelConfig& c, const std::string& tensor_hash,
                           const Tokenizer& tok) {
  Hasher h;
  h.add(tensor_hash);
  const RopeScaling& r = c.rope_scaling;
  std::string sliding;
  for (bool s : c.layer_sliding) sliding += s ? '1' : '0';
  std::string cfg;
  auto field = [&](const auto& v) { cfg += fmt::format("{} ", v); };
  field(c.arch_name);
  for (int v : {c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff, c.n_vocab,
                c.sliding_window, c.rot_dims, static_cast<int>(c.rope_style),
                static_cast<int>(c.act), static_cast<int>(r.type), r.original_context})
    field(v);
  for (float v :
       {c.norm_eps, c.attn_scale, c.attn_softcap, c.rope_base, c.rope_base_local, r.factor,
        r.low_freq_factor, r.high_freq_factor, c.embedding_scale, c.final_softcap})
    field(v);
  for (bool v : {c.qkv_bias, c.qk_norm, c.post_norms, c.tied_embeddings}) field(v);
  field(sliding);
  h.add(cfg);
  h.add_u64(static_cast<uint64_t>(tok.n_vocab()));
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    h.add(tok.token_text(id));
    h.add_u64(static_cast<uint64_t>(tok.token_type(id)));
  }
  return fmt::format("{}:{}:L{}:d{}:{}", c.arch_name, c.name, c.n_layers, c.d_model, h.hex());
}

}  // namespace kvz
