// llama2.c checkpoint loading (legacy v0 format: 7 x i32 header, then f32 tensors), used by the
// stories260K test model; the tokenizer is tokenizer.bin / tok*.bin beside it (model/).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "model/families/family.h"
#include "model/identity.h"
#include "model/mapped_file.h"
#include "model/model.h"

namespace kvz {
namespace {

std::string find_tokenizer(const std::filesystem::path& model) {
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(model.parent_path())) {
    auto n = e.path().filename().string();
    if (n == "tokenizer.bin" || (n.rfind("tok", 0) == 0 && e.path().extension() == ".bin"))
      return e.path().string();
  }
  throw FormatError(model.string() +
                    ": llama2.c checkpoint without tokenizer.bin / tok*.bin beside it");
}

// Sum of products of non-negative sizes, or nullopt when it overflows 64 bits (a crafted header
// must not wrap the size check below and send the loader past the end of the file).
std::optional<uint64_t> checked_sum_of_products(
    std::initializer_list<std::initializer_list<int64_t>> terms) {
  uint64_t sum = 0;
  for (const auto& term : terms) {
    uint64_t prod = 1;
    for (int64_t f : term)
      if (f < 0 || __builtin_mul_overflow(prod, static_cast<uint64_t>(f), &prod)) return {};
    if (__builtin_add_overflow(sum, prod, &sum)) return {};
  }
  return sum;
}

}  // namespace

std::unique_ptr<Model> load_llama2c_model(Device& dev, const std::string& path,
                                          const LoadProgress& progress,
                                          const std::string& id_cache) {
  const MappedFile file(path);
  const std::span<const uint8_t> bytes = file.bytes();
  int32_t h[7];
  if (bytes.size() < sizeof(h)) throw FormatError(path + ": truncated llama2.c header");
  std::memcpy(h, bytes.data(), sizeof(h));
  ModelConfig c;
  c.name = std::filesystem::path(path).stem().string();
  c.d_model = h[0];
  c.d_ff = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  c.n_vocab = h[5] == INT32_MIN ? -1 : std::abs(h[5]);
  c.max_context = h[6];
  c.head_dim = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  if (c.n_heads > 0 && c.d_model % c.n_heads)
    throw FormatError(
        fmt::format("{}: d_model {} is not a multiple of {} heads", path, c.d_model, c.n_heads));
  c.rot_dims = c.head_dim;
  c.rope_base = 10000.0f;
  // A llama2.c checkpoint is a LLaMA model that rotates adjacent pairs, as LLaMA GGUFs do.
  c.rope_style = kLlamaFamily.gguf_rope_style;
  apply_family(kLlamaFamily, c);
  c.norm_eps = 1e-5f;
  c.attn_scale = c.head_dim > 0 ? 1.0f / std::sqrt(static_cast<float>(c.head_dim)) : 0.0f;
  c.validate(path);

  const int64_t d = c.d_model, L = c.n_layers, kv = int64_t{c.n_kv_heads} * c.head_dim, ff = c.d_ff,
                V = c.n_vocab;
  size_t off = sizeof(h);
  const auto n_floats =
      checked_sum_of_products({{V, d}, {L, d, 2}, {L, d, d, 2}, {L, kv, d, 2}, {L, ff, d, 3}, {d}});
  if (!n_floats || *n_floats > (bytes.size() - off) / 4)
    throw FormatError(fmt::format(
        "{}: truncated llama2.c checkpoint ({} bytes, its header needs "
        "{} floats)",
        path, bytes.size(), n_floats ? fmt::format("{}", *n_floats) : std::string("over 2^64")));
  auto take = [&](int64_t n) {
    const float* p = reinterpret_cast<const float*>(bytes.data() + off);
    off += static_cast<size_t>(n) * 4;
    return p;
  };
  Weights w;
  auto up = [&](const float* p, std::initializer_list<int64_t> shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    if (progress) progress(off, bytes.size());
    return upload_weight(dev, w, DType::kF32, shape, p, static_cast<size_t>(n) * 4);
  };
  const float* emb = take(V * d);
  w.tok_embd = up(emb, {V, d});
  const float* rms_att = take(L * d);
  const float* wq = take(L * d * d);
  const float* wk = take(L * kv * d);
  const float* wv = take(L * kv * d);
  const float* wo = take(L * d * d);
  const float* rms_ffn = take(L * d);
  const float* w1 = take(L * ff * d);
  const float* w2 = take(L * d * ff);
  const float* w3 = take(L * ff * d);
  const float* rms_final = take(d);
  for (int64_t il = 0; il < L; ++il) {
    LayerWeights l;
    l.attn_norm = up(rms_att + il * d, {d});
    l.wq = up(wq + il * d * d, {d, d});
    l.wk = up(wk + il * kv * d, {kv, d});
    l.wv = up(wv + il * kv * d, {kv, d});
    l.wo = up(wo + il * d * d, {d, d});
    l.ffn_norm = up(rms_ffn + il * d, {d});
    l.w_gate = up(w1 + il * ff * d, {ff, d});
    l.w_down = up(w2 + il * d * ff, {d, ff});
    l.w_up = up(w3 + il * ff * d, {ff, d});
    w.layers.push_back(std::move(l));
  }
  w.output_norm = up(rms_final, {d});
  check_finite(rms_att, L * d, path, "rms_att_weight");
  check_finite(rms_ffn, L * d, path, "rms_ffn_weight");
  check_finite(rms_final, d, path, "rms_final_weight");
  if (c.tied_embeddings) {
    w.output = w.tok_embd;
  } else {
    const int64_t n_freq = int64_t{c.max_context} * c.head_dim;  // freq_cis real + imag (unused)
    if ((bytes.size() - std::min(off, bytes.size())) / 4 < static_cast<size_t>(n_freq + V * d))
      throw FormatError(path + ": truncated classifier weights");
    take(n_freq);
    if (bytes.size() < off + static_cast<size_t>(V * d) * 4)
      throw FormatError(path + ": truncated classifier weights");
    w.output = up(take(V * d), {V, d});
  }
  upload_rope_tables(dev, w, c, {});
  auto tok = std::make_unique<Tokenizer>(Tokenizer::from_llama2c(find_tokenizer(path)));
  // The whole file after the header is weights (and the unused RoPE tables).
  const std::vector<TensorSample> all = {
      {"llama2c", bytes.size() - sizeof(h), bytes.data() + sizeof(h)}};
  std::string id = model_identity(c, tensor_hash(all, {path}, id_cache), *tok);
  return std::make_unique<Model>(dev, std::move(c), std::move(w), std::move(tok), std::move(id));
}

}  // namespace kvz
