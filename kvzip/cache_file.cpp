// Cache file writer and validating reader (kvzip/).
#include "kvzip/cache_file.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kvzip/checksum.h"
#include "runtime/atomic_file.h"

namespace kvz {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'Z', 'C', 'A', 'C', 'H', 'E'};
// 2: the model identity is XXH3-128 of all weights (model/identity.h); positions, keys, scores
// and tokens validated on load. Version 1 files are refused (recompress the context).
// 3: the header names the K and V row types ("k_type", "v_type": f16, q8_0, q4_0) and rows are
// stored in them. Version 2 files (f16 rows, no type keys) still load.
constexpr uint32_t kVersion = 3, kOldestVersion = 2;
// Positions beyond any supported context (ModelConfig::kMaxContext); keeps position arithmetic
// far from int32 overflow.
constexpr int32_t kMaxPosition = 1 << 24;

class Writer {
 public:
  template <class T>
  void put(const T& v) {
    bytes(&v, sizeof(T));
  }
  void bytes(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  std::vector<uint8_t>& buf() { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

class Reader {
 public:
  Reader(const std::vector<uint8_t>& b, const std::string& path) : b_(b), path_(path) {}
  void bytes(void* dst, size_t n, const char* what) {
    if (n > b_.size() - pos_)
      throw FormatError(
          fmt::format("{}: truncated cache file ({} at offset {} needs {} bytes, {} left)", path_,
                      what, pos_, n, b_.size() - pos_));
    if (n > 0) std::memcpy(dst, b_.data() + pos_, n);  // a head of 0 rows has no data()
    pos_ += n;
  }
  template <class T>
  T get(const char* what) {
    T v;
    bytes(&v, sizeof(T), what);
    return v;
  }
  size_t pos() const { return pos_; }

 private:
  const std::vector<uint8_t>& b_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

void save_cache_file(const std::string& path, const KvCache& cache, const CacheFileMeta& meta,
                     const Scores* scores) {
  const KvCacheConfig& c = cache.config();
  const bool has = scores && !scores->empty();
  KVZ_CHECK(!has || (scores->n_layers == c.n_layers && scores->n_kv_heads == c.n_kv_heads &&
                     scores->n_ctx == meta.n_context),
            "scores [{}, {}, {}] do not match the cache [{}, {}] and context {}", scores->n_layers,
            scores->n_kv_heads, scores->n_ctx, c.n_layers, c.n_kv_heads, meta.n_context);
  nlohmann::json h = {{"model", meta.model_identity},   {"n_layers", c.n_layers},
                      {"n_kv_heads", c.n_kv_heads},     {"head_dim", c.head_dim},
                      {"n_prefix", meta.n_prefix},      {"n_context", meta.n_context},
                      {"next_pos", meta.next_pos},      {"kept_fraction", meta.kept_fraction},
                      {"tokens", meta.tokens},          {"prunable", c.prunable},
                      {"k_type", dtype_name(c.k_type)}, {"v_type", dtype_name(c.v_type)}};
  std::string hs = h.dump();
  Writer w;
  w.bytes(kMagic, sizeof(kMagic));
  w.put(kVersion);
  w.put(static_cast<uint64_t>(hs.size()));
  w.bytes(hs.data(), hs.size());
  for (int il = 0; il < c.n_layers; ++il)
    for (const HeadRows& r : cache.read_layer_raw(il)) {
      w.put(static_cast<uint32_t>(r.pos.size()));
      w.bytes(r.pos.data(), r.pos.size() * 4);
      w.bytes(r.k.data(), r.k.size() * 2);
      w.bytes(r.v.data(), r.v.size() * 2);
    }
  w.put(static_cast<uint8_t>(has));
  if (has) w.bytes(scores->data.data(), scores->data.size() * 4);
  w.put(fnv1a64(w.buf().data(), w.buf().size()));

  write_file_atomic(path, w.buf());
}

LoadedCache load_cache_file(const std::string& path, Device& dev,
                            const std::string& expected_identity) {
  const std::vector<uint8_t> b = read_regular_file(path);
  if (b.size() < sizeof(kMagic) + 4 + 8 + 1 + 8)
    throw FormatError(fmt::format("{}: truncated cache file ({} bytes)", path, b.size()));
  if (std::memcmp(b.data(), kMagic, sizeof(kMagic)) != 0)
    throw FormatError(path + ": not a kvzip cache file (bad magic)");
  uint64_t stored;
  std::memcpy(&stored, b.data() + b.size() - 8, 8);
  Reader r(b, path);
  char magic[8];
  r.bytes(magic, 8, "magic");
  auto version = r.get<uint32_t>("version");
  if (version < kOldestVersion || version > kVersion)
    throw FormatError(fmt::format("{}: cache file version {} (this build reads {} to {})", path,
                                  version, kOldestVersion, kVersion));
  if (fnv1a64(b.data(), b.size() - 8) != stored)
    throw FormatError(path + ": checksum mismatch (the file is corrupt or was modified)");
  auto hlen = r.get<uint64_t>("header length");
  if (hlen > b.size())
    throw FormatError(fmt::format("{}: header length {} exceeds the file", path, hlen));
  std::string hs(hlen, '\0');
  r.bytes(hs.data(), hlen, "header");
  LoadedCache out;
  KvCacheConfig cfg;
  try {
    auto h = nlohmann::json::parse(hs);
    out.meta.model_identity = h.at("model").get<std::string>();
    cfg.n_layers = h.at("n_layers").get<int>();
    cfg.n_kv_heads = h.at("n_kv_heads").get<int>();
    cfg.head_dim = h.at("head_dim").get<int>();
    cfg.prunable = h.at("prunable").get<std::vector<bool>>();
    out.meta.n_prefix = h.at("n_prefix").get<int64_t>();
    out.meta.n_context = h.at("n_context").get<int64_t>();
    out.meta.next_pos = h.at("next_pos").get<int32_t>();
    out.meta.kept_fraction = h.at("kept_fraction").get<double>();
    out.meta.tokens = h.at("tokens").get<std::vector<int32_t>>();
    out.meta.prunable = cfg.prunable;
    if (version >= 3) {
      for (auto [key, type] :
           {std::pair{"k_type", &cfg.k_type}, std::pair{"v_type", &cfg.v_type}}) {
        const std::string name = h.at(key).get<std::string>();
        *type = dtype_from_name(name);
        if (!is_kv_cache_type(*type))
          throw FormatError(fmt::format("{}: {} '{}' is not a KV cache type", path, key, name));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: malformed cache header: {}", path, e.what()));
  }
  if (!expected_identity.empty() && out.meta.model_identity != expected_identity)
    throw FormatError(fmt::format("{} was made by model '{}', not by the loaded model '{}'", path,
                                  out.meta.model_identity, expected_identity));
  if (cfg.n_layers <= 0 || cfg.n_kv_heads <= 0 || cfg.head_dim <= 0 || cfg.head_dim % 2 ||
      cfg.n_layers > 4096 || cfg.n_kv_heads > 4096 || cfg.head_dim > 4096)
    throw FormatError(fmt::format("{}: implausible cache shape L={} H={} d={}", path, cfg.n_layers,
                                  cfg.n_kv_heads, cfg.head_dim));
  if ((cfg.k_type != DType::kF16 || cfg.v_type != DType::kF16) && cfg.head_dim % 32 != 0)
    throw FormatError(fmt::format("{}: {}/{} rows with head_dim {} (not whole blocks of 32)", path,
                                  dtype_name(cfg.k_type), dtype_name(cfg.v_type), cfg.head_dim));
  if (!cfg.prunable.empty() && static_cast<int>(cfg.prunable.size()) != cfg.n_layers)
    throw FormatError(fmt::format("{}: {} prunable flags for {} layers", path, cfg.prunable.size(),
                                  cfg.n_layers));
  const CacheFileMeta& m = out.meta;
  if (m.n_prefix < 0 || m.n_context < 0 ||
      static_cast<int64_t>(m.tokens.size()) != m.n_prefix + m.n_context)
    throw FormatError(fmt::format("{}: {} tokens for a {}-token prefix and a {}-token context",
                                  path, m.tokens.size(), m.n_prefix, m.n_context));
  if (m.next_pos < m.n_prefix + m.n_context || m.next_pos <= 0 || m.next_pos > kMaxPosition)
    throw FormatError(
        fmt::format("{}: next position {} (a {}-token prefix and context, at most {})", path,
                    m.next_pos, m.n_prefix + m.n_context, kMaxPosition));
  if (!(m.kept_fraction >= 0 && m.kept_fraction <= 1))
    throw FormatError(fmt::format("{}: kept fraction {} outside [0, 1]", path, m.kept_fraction));
  for (size_t i = 0; i < m.tokens.size(); ++i)
    if (m.tokens[i] < 0)
      throw FormatError(fmt::format("{}: token {} has id {}", path, i, m.tokens[i]));
  const size_t kh = kv_row_bytes(cfg.k_type, cfg.head_dim) / 2,
               vh = kv_row_bytes(cfg.v_type, cfg.head_dim) / 2;
  // The f16 words of a row that must be finite: every value of an f16 row, each block's scale
  // (its first word) of a quantised one.
  auto f16_words = [](DType t) -> size_t {
    return t == DType::kF16 ? 1 : t == DType::kQ8_0 ? 17 : 9;
  };
  std::vector<std::vector<HeadRows>> rows(
      static_cast<size_t>(cfg.n_layers),
      std::vector<HeadRows>(static_cast<size_t>(cfg.n_kv_heads)));
  for (auto& layer : rows)
    for (HeadRows& h : layer) {
      auto n = r.get<uint32_t>("row count");
      if (static_cast<size_t>(n) * (4 + 2 * (kh + vh)) > b.size() - r.pos())
        throw FormatError(
            fmt::format("{}: row count {} at offset {} exceeds the file", path, n, r.pos() - 4));
      h.pos.resize(n);
      h.k.resize(n * kh);
      h.v.resize(n * vh);
      r.bytes(h.pos.data(), n * 4, "positions");
      r.bytes(h.k.data(), n * kh * 2, "keys");
      r.bytes(h.v.data(), n * vh * 2, "values");
      for (size_t t = 0; t < h.pos.size(); ++t)
        if ((t > 0 && h.pos[t] <= h.pos[t - 1]) || h.pos[t] < 0 || h.pos[t] >= m.next_pos)
          throw FormatError(fmt::format(
              "{}: position {} at row {} of a head (increasing, in [0, next position {}))", path,
              h.pos[t], t, m.next_pos));
      for (const std::vector<uint16_t>* kv : {&h.k, &h.v})
        for (size_t i = 0, step = f16_words(kv == &h.k ? cfg.k_type : cfg.v_type); i < kv->size();
             i += step)
          if (((*kv)[i] & 0x7c00) == 0x7c00)  // f16 exponent all ones: infinity or NaN
            throw FormatError(fmt::format("{}: a non-finite {} (f16 bits {:#06x})", path,
                                          kv == &h.k ? "key" : "value", (*kv)[i]));
    }
  if (r.get<uint8_t>("score flag")) {
    const size_t n_scores = static_cast<size_t>(cfg.n_layers * cfg.n_kv_heads) *
                            static_cast<size_t>(out.meta.n_context);
    if (n_scores * 4 > b.size() - r.pos())
      throw FormatError(fmt::format("{}: truncated cache file ({} scores at offset {})", path,
                                    n_scores, r.pos()));
    out.scores = Scores(cfg.n_layers, cfg.n_kv_heads, out.meta.n_context);
    r.bytes(out.scores.data.data(), out.scores.data.size() * 4, "scores");
    for (float s : out.scores.data)
      if (!std::isfinite(s)) throw FormatError(fmt::format("{}: a non-finite score", path));
  }
  if (r.pos() != b.size() - 8)
    throw FormatError(fmt::format("{}: {} trailing bytes", path, b.size() - 8 - r.pos()));
  out.cache = KvCache::from_rows(dev, cfg, rows);
  return out;
}

}  // namespace kvz
