// KVzap surrogates, weights file, KVzip+ targets and the online threshold evictor (kvzip/).
// See kvzap.h; ALGORITHMS.md 1.4 and 3.
#include "kvzip/kvzap.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "kvzip/checksum.h"
#include "runtime/atomic_file.h"
#include "runtime/error.h"

namespace kvz {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'Z', 'A', 'P', 'W', '0', '1'};
// 2: the model identity is XXH3-128 of all weights (model/identity.h). Version 1 files carry
// the older identity, which cannot be checked, so they are refused: retrain or re-stamp.
constexpr uint32_t kVersion = 2;
constexpr uint32_t kMaxDim = 1u << 20;  // sanity bound on every header size

float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

// out[n, rows] = x[n, cols] W^T + b, W [rows, cols] row-major.
void affine(const float* x, int64_t n, int cols, const std::vector<float>& w,
            const std::vector<float>& b, int rows, float* out) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMat> X(x, n, cols), W(w.data(), rows, cols);
  Eigen::Map<RowMat> Y(out, n, rows);
  Y.noalias() = X * W.transpose();
  Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b.data(), rows);
}

struct Sizes {
  size_t w1, b1, w2, b2;
};
Sizes layer_sizes(KvzapKind kind, int d_model, int d_hidden, int n_kv_heads) {
  const auto D = static_cast<size_t>(d_model), F = static_cast<size_t>(d_hidden),
             H = static_cast<size_t>(n_kv_heads);
  if (kind == KvzapKind::kLinear) return {H * D, H, 0, 0};
  return {F * D, F, H * F, H};
}

}  // namespace

const char* kvzap_kind_name(KvzapKind k) { return k == KvzapKind::kLinear ? "linear" : "mlp"; }

KvzapKind kvzap_kind_from(const std::string& name) {
  if (name == "linear") return KvzapKind::kLinear;
  if (name == "mlp") return KvzapKind::kMlp;
  throw InputError(fmt::format("unknown KVzap surrogate '{}' (known: linear, mlp)", name));
}

KvzapModel::KvzapModel(KvzapKind kind, int n_layers, int d_model, int d_hidden, int n_kv_heads,
                       std::string model_identity)
    : kind_(kind),
      n_layers_(n_layers),
      d_model_(d_model),
      d_hidden_(kind == KvzapKind::kLinear ? 0 : d_hidden),
      n_kv_heads_(n_kv_heads),
      identity_(std::move(model_identity)) {
  KVZ_CHECK(
      n_layers > 0 && d_model > 0 && n_kv_heads > 0 && (kind == KvzapKind::kLinear || d_hidden > 0),
      "KVzap shape L{} D{} F{} H{}", n_layers, d_model, d_hidden, n_kv_heads);
  const Sizes s = layer_sizes(kind_, d_model_, d_hidden_, n_kv_heads_);
  layers_.resize(static_cast<size_t>(n_layers));
  for (KvzapLayer& l : layers_) {
    l.w1.assign(s.w1, 0.0f);
    l.b1.assign(s.b1, 0.0f);
    l.w2.assign(s.w2, 0.0f);
    l.b2.assign(s.b2, 0.0f);
  }
}

size_t KvzapModel::n_params() const {
  const Sizes s = layer_sizes(kind_, d_model_, d_hidden_, n_kv_heads_);
  return static_cast<size_t>(n_layers_) * (s.w1 + s.b1 + s.w2 + s.b2);
}

void KvzapModel::predict(int il, const float* x, int64_t n, float* out) const {
  KVZ_CHECK(il >= 0 && il < n_layers_, "layer {} of {}", il, n_layers_);
  if (n <= 0) return;
  const KvzapLayer& l = layer(il);
  if (kind_ == KvzapKind::kLinear) {
    affine(x, n, d_model_, l.w1, l.b1, n_kv_heads_, out);
    return;
  }
  std::vector<float> hid(static_cast<size_t>(n) * static_cast<size_t>(d_hidden_));
  affine(x, n, d_model_, l.w1, l.b1, d_hidden_, hid.data());
  for (float& h : hid) h = gelu(h);
  affine(hid.data(), n, d_hidden_, l.w2, l.b2, n_kv_heads_, out);
}

// File layout: see kvzap.h. All integers u32/u64 little-endian (the engine's hosts are).
void KvzapModel::save(const std::string& path) const {
  std::vector<uint8_t> buf;
  auto put = [&](const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  };
  auto put32 = [&](uint32_t v) { put(&v, 4); };
  put(kMagic, 8);
  put32(kVersion);
  put32(kind_ == KvzapKind::kLinear ? 0u : 1u);
  put32(static_cast<uint32_t>(n_layers_));
  put32(static_cast<uint32_t>(d_model_));
  put32(static_cast<uint32_t>(d_hidden_));
  put32(static_cast<uint32_t>(n_kv_heads_));
  put32(static_cast<uint32_t>(identity_.size()));
  put(identity_.data(), identity_.size());
  for (const KvzapLayer& l : layers_)
    for (const std::vector<float>* t : {&l.w1, &l.b1, &l.w2, &l.b2}) put(t->data(), t->size() * 4);
  const uint64_t sum = fnv1a64(buf.data(), buf.size());
  put(&sum, 8);
  write_file_atomic(path, buf);
}

KvzapModel KvzapModel::load(const std::string& path) {
  const std::vector<uint8_t> b = read_regular_file(path);
  size_t at = 0;
  auto get = [&](void* dst, size_t n, const char* what) {
    if (n > b.size() - at)
      throw FormatError(
          fmt::format("{}: truncated KVzap weights file ({} at offset {} needs {} "
                      "bytes, {} left)",
                      path, what, at, n, b.size() - at));
    if (n > 0) std::memcpy(dst, b.data() + at, n);  // an empty file has no data() to copy from
    at += n;
  };
  auto get32 = [&](const char* what) {
    uint32_t v = 0;
    get(&v, 4, what);
    return v;
  };
  char magic[8];
  get(magic, 8, "magic");
  if (std::memcmp(magic, kMagic, 8) != 0)
    throw FormatError(fmt::format("{}: not a KVzap weights file (bad magic)", path));
  if (b.size() < 8 + 8) throw FormatError(fmt::format("{}: truncated KVzap weights file", path));
  uint64_t stored = 0;
  std::memcpy(&stored, b.data() + b.size() - 8, 8);
  const uint32_t version = get32("version");
  if (version != kVersion)
    throw FormatError(
        fmt::format("{}: KVzap weights version {} (this build reads {})", path, version, kVersion));
  const uint32_t kind = get32("kind"), L = get32("n_layers"), D = get32("d_model"),
                 F = get32("d_hidden"), H = get32("n_kv_heads"), n_id = get32("identity size");
  if (kind > 1 || L == 0 || D == 0 || H == 0 || L > kMaxDim || D > kMaxDim || F > kMaxDim ||
      H > kMaxDim || n_id > kMaxDim || (kind == 1 && F == 0))
    throw FormatError(fmt::format("{}: implausible KVzap header (kind {}, L {}, D {}, F {}, H {})",
                                  path, kind, L, D, F, H));
  const KvzapKind k = kind == 0 ? KvzapKind::kLinear : KvzapKind::kMlp;
  const Sizes s = layer_sizes(k, static_cast<int>(D), static_cast<int>(F), static_cast<int>(H));
  const uint64_t want = at + n_id + uint64_t{L} * (s.w1 + s.b1 + s.w2 + s.b2) * 4 + 8;
  if (b.size() != want)
    throw FormatError(fmt::format("{}: KVzap weights file has {} bytes, its header implies {}",
                                  path, b.size(), want));
  if (fnv1a64(b.data(), b.size() - 8) != stored)
    throw FormatError(
        fmt::format("{}: checksum mismatch (the file is corrupt or was modified)", path));
  std::string id(n_id, '\0');
  get(id.data(), n_id, "identity");
  KvzapModel m(k, static_cast<int>(L), static_cast<int>(D), static_cast<int>(F),
               static_cast<int>(H), std::move(id));
  for (KvzapLayer& l : m.layers_)
    for (std::vector<float>* t : {&l.w1, &l.b1, &l.w2, &l.b2}) {
      get(t->data(), t->size() * 4, "weights");
      for (float w : *t)
        if (!std::isfinite(w)) throw FormatError(fmt::format("{}: a non-finite weight", path));
    }
  return m;
}

std::vector<float> kvzap_targets(const KvzapTargetInputs& in) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Strided = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
  const int Hq = in.n_heads, H = in.n_kv_heads, d = in.head_dim, G = Hq / H;
  const int64_t T = in.n_tokens, pb = in.prompt_begin, pe = in.prompt_end, rb = in.repeat_begin,
                re = in.repeat_end;
  KVZ_CHECK(Hq > 0 && H > 0 && Hq % H == 0 && d > 0, "heads {} / {}", Hq, H);
  KVZ_CHECK(0 <= pb && pb <= pe && pe <= rb && rb <= re && re <= T, "spans [{},{}) [{},{}) of {}",
            pb, pe, rb, re, T);
  const int64_t n_p = pe - pb, n_r = re - rb;
  std::vector<float> best(static_cast<size_t>(n_p * H), 0.0f);
  std::vector<double> p(static_cast<size_t>(T));
  for (int qh = 0; qh < Hq; ++qh) {
    const int kh = qh / G;
    Strided Q(in.q + static_cast<int64_t>(qh) * d, T, d, Eigen::OuterStride<>(int64_t{Hq} * d));
    Strided K(in.k + static_cast<int64_t>(kh) * d, T, d, Eigen::OuterStride<>(int64_t{H} * d));
    Strided V(in.v + static_cast<int64_t>(kh) * d, T, d, Eigen::OuterStride<>(int64_t{H} * d));
    Eigen::Map<const RowMat> Gq(in.wo_gram + static_cast<int64_t>(qh) * d * d, d, d);
    // ||W_O^(q) v_i|| for the prompt columns.
    Eigen::VectorXf vnorm(n_p);
    for (int64_t i = 0; i < n_p; ++i) {
      Eigen::RowVectorXf v = V.row(pb + i);
      vnorm[i] = std::sqrt(std::max(0.0f, (v * Gq * v.transpose())(0, 0)));
    }
    // Logits of the repeat rows over the keys up to the last repeat row.
    const RowMat Z = (Q.middleRows(rb, n_r) * K.topRows(re).transpose()) * in.scale;
    for (int64_t r = 0; r < n_r; ++r) {
      const int64_t j = rb + r;  // the row attends to keys 0..j
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c <= j; ++c) mx = std::max(mx, static_cast<double>(Z(r, c)));
      double sum = 0;
      for (int64_t c = 0; c <= j; ++c) sum += p[c] = std::exp(static_cast<double>(Z(r, c)) - mx);
      const double inv = 1.0 / (sum * static_cast<double>(in.x_norm[j]));
      for (int64_t i = 0; i < n_p; ++i) {
        const auto val = static_cast<float>(p[pb + i] * inv * vnorm[i]);
        float& b = best[static_cast<size_t>(i * H + kh)];
        b = std::max(b, val);
      }
    }
  }
  for (float& b : best) b = std::log(std::max(b, 1e-30f));
  return best;
}

KvzapEvictor::KvzapEvictor(const KvCacheConfig& cfg, KvzapOptions o)
    : cfg_(cfg),
      opts_(o),
      pending_(static_cast<size_t>(cfg.n_layers) * static_cast<size_t>(cfg.n_kv_heads)) {
  KVZ_CHECK(o.window >= 0, "window {}", o.window);
}

void KvzapEvictor::push(int il, std::span<const int32_t> positions, const float* scores) {
  const int H = cfg_.n_kv_heads;
  for (int ih = 0; ih < H; ++ih) {
    Pending& pd = pending_[static_cast<size_t>(il * H + ih)];
    for (size_t t = 0; t < positions.size(); ++t) {
      KVZ_CHECK(pd.pos.empty() || positions[t] > pd.pos.back(), "KVzap rows out of order");
      pd.pos.push_back(positions[t]);
      pd.score.push_back(scores[t * static_cast<size_t>(H) + static_cast<size_t>(ih)]);
    }
  }
}

KeepSet KvzapEvictor::decide(const KvCache& cache, int32_t next_pos, int32_t min_pos) {
  const int L = cfg_.n_layers, H = cfg_.n_kv_heads;
  const int64_t limit = int64_t{next_pos} - opts_.window;  // positions below left the window
  std::vector<std::vector<std::vector<int32_t>>> evict(
      static_cast<size_t>(L), std::vector<std::vector<int32_t>>(static_cast<size_t>(H)));
  bool any = false;
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih) {
      Pending& pd = pending_[static_cast<size_t>(il * H + ih)];
      // Rows below min_pos stay pending (decided later, e.g. after a query is dropped again).
      size_t i = 0;
      while (i < pd.pos.size() && pd.pos[i] < min_pos) ++i;
      const size_t w = i;  // entries [w, i) are decided below and leave the pending list
      for (; i < pd.pos.size() && pd.pos[i] < limit; ++i) {
        ++n_decided_;
        if (cfg_.is_prunable(il) && !(pd.score[i] >= opts_.threshold)) {
          evict[il][ih].push_back(pd.pos[i]);
          ++n_evicted_;
          any = true;
        }
      }
      pd.pos.erase(pd.pos.begin() + static_cast<std::ptrdiff_t>(w),
                   pd.pos.begin() + static_cast<std::ptrdiff_t>(i));
      pd.score.erase(pd.score.begin() + static_cast<std::ptrdiff_t>(w),
                     pd.score.begin() + static_cast<std::ptrdiff_t>(i));
    }
  KeepSet k;
  if (!any) return k;
  k.rows.resize(static_cast<size_t>(L));
  for (int il = 0; il < L; ++il) {
    k.rows[il].resize(static_cast<size_t>(H));
    for (int ih = 0; ih < H; ++ih) {
      const std::vector<int32_t>& pos = cache.positions(il, ih);
      const std::vector<int32_t>& ev = evict[il][ih];  // sorted
      auto e = ev.begin();
      for (size_t row = 0; row < pos.size(); ++row) {
        while (e != ev.end() && *e < pos[row]) ++e;
        const bool drop = e != ev.end() && *e == pos[row];
        if (!drop) k.rows[il][ih].push_back(static_cast<int32_t>(row));
        k.n_total++;
        k.n_kept += !drop;
      }
    }
  }
  k.kept_fraction =
      k.n_total ? static_cast<double>(k.n_kept) / static_cast<double>(k.n_total) : 1.0;
  return k;
}

void KvzapEvictor::truncate(int32_t end_pos) {
  for (Pending& pd : pending_) {
    auto cut = std::lower_bound(pd.pos.begin(), pd.pos.end(), end_pos) - pd.pos.begin();
    pd.pos.resize(static_cast<size_t>(cut));
    pd.score.resize(static_cast<size_t>(cut));
  }
}

void KvzapEvictor::clear() {
  for (Pending& pd : pending_) pd = {};
  n_decided_ = n_evicted_ = 0;
}

int64_t KvzapEvictor::n_pending(int il, int ih) const {
  return static_cast<int64_t>(pending_[static_cast<size_t>(il * cfg_.n_kv_heads + ih)].pos.size());
}

}  // namespace kvz
