// Cache file writer and validating reader (kvzip/).
#include "kvzip/cache_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kvzip/checksum.h"

namespace kvz {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'Z', 'C', 'A', 'C', 'H', 'E'};
constexpr uint32_t kVersion = 1;

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
    std::memcpy(dst, b_.data() + pos_, n);
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
  nlohmann::json h = {{"model", meta.model_identity}, {"n_layers", c.n_layers},
                      {"n_kv_heads", c.n_kv_heads},   {"head_dim", c.head_dim},
                      {"n_prefix", meta.n_prefix},    {"n_context", meta.n_context},
                      {"next_pos", meta.next_pos},    {"kept_fraction", meta.kept_fraction},
                      {"tokens", meta.tokens},        {"prunable", c.prunable}};
  std::string hs = h.dump();
  Writer w;
  w.bytes(kMagic, sizeof(kMagic));
  w.put(kVersion);
  w.put(static_cast<uint64_t>(hs.size()));
  w.bytes(hs.data(), hs.size());
  for (int il = 0; il < c.n_layers; ++il)
    for (const HeadRows& r : cache.read_layer(il)) {
      w.put(static_cast<uint32_t>(r.pos.size()));
      w.bytes(r.pos.data(), r.pos.size() * 4);
      w.bytes(r.k.data(), r.k.size() * 2);
      w.bytes(r.v.data(), r.v.size() * 2);
    }
  w.put(static_cast<uint8_t>(has));
  if (has) w.bytes(scores->data.data(), scores->data.size() * 4);
  w.put(fnv1a64(w.buf().data(), w.buf().size()));

  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw InputError(fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
  size_t done = 0;
  while (done < w.buf().size()) {
    ssize_t n = ::write(fd, w.buf().data() + done, w.buf().size() - done);
    if (n <= 0) {
      ::close(fd);
      std::remove(tmp.c_str());
      throw InputError(fmt::format("writing {} failed: {}", tmp, std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::remove(tmp.c_str());
    throw InputError(fmt::format("flushing {} failed: {}", tmp, std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InputError(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(errno)));
  }
  // Make the rename itself durable (best effort: some file systems refuse fsync on directories).
  std::string dir =
      path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

LoadedCache load_cache_file(const std::string& path, Device& dev,
                            const std::string& expected_identity) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError("cannot open cache file " + path);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
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
  if (version != kVersion)
    throw FormatError(
        fmt::format("{}: cache file version {} (this build reads {})", path, version, kVersion));
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
  if (!cfg.prunable.empty() && static_cast<int>(cfg.prunable.size()) != cfg.n_layers)
    throw FormatError(fmt::format("{}: {} prunable flags for {} layers", path, cfg.prunable.size(),
                                  cfg.n_layers));
  if (out.meta.n_prefix < 0 || out.meta.n_context < 0 ||
      static_cast<int64_t>(out.meta.tokens.size()) != out.meta.n_prefix + out.meta.n_context)
    throw FormatError(fmt::format("{}: {} tokens for a {}-token prefix and a {}-token context",
                                  path, out.meta.tokens.size(), out.meta.n_prefix,
                                  out.meta.n_context));
  const size_t hd = static_cast<size_t>(cfg.head_dim);
  std::vector<std::vector<HeadRows>> rows(
      static_cast<size_t>(cfg.n_layers),
      std::vector<HeadRows>(static_cast<size_t>(cfg.n_kv_heads)));
  for (auto& layer : rows)
    for (HeadRows& h : layer) {
      auto n = r.get<uint32_t>("row count");
      if (static_cast<size_t>(n) * (4 + 4 * hd) > b.size() - r.pos())
        throw FormatError(
            fmt::format("{}: row count {} at offset {} exceeds the file", path, n, r.pos() - 4));
      h.pos.resize(n);
      h.k.resize(n * hd);
      h.v.resize(n * hd);
      r.bytes(h.pos.data(), n * 4, "positions");
      r.bytes(h.k.data(), n * hd * 2, "keys");
      r.bytes(h.v.data(), n * hd * 2, "values");
      for (size_t t = 1; t < h.pos.size(); ++t)
        if (h.pos[t] <= h.pos[t - 1])
          throw FormatError(
              fmt::format("{}: positions not increasing at row {} of a head", path, t));
    }
  if (r.get<uint8_t>("score flag")) {
    const size_t n_scores = static_cast<size_t>(cfg.n_layers * cfg.n_kv_heads) *
                            static_cast<size_t>(out.meta.n_context);
    if (n_scores * 4 > b.size() - r.pos())
      throw FormatError(fmt::format("{}: truncated cache file ({} scores at offset {})", path,
                                    n_scores, r.pos()));
    out.scores = Scores(cfg.n_layers, cfg.n_kv_heads, out.meta.n_context);
    r.bytes(out.scores.data.data(), out.scores.data.size() * 4, "scores");
  }
  if (r.pos() != b.size() - 8)
    throw FormatError(fmt::format("{}: {} trailing bytes", path, b.size() - 8 - r.pos()));
  out.cache = KvCache::from_rows(dev, cfg, rows);
  return out;
}

}  // namespace kvz
