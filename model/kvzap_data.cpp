// KVzap data collection and the in-forward surrogate scorer (model/). See kvzap_data.h.
#include "model/kvzap_data.h"

#include "kvzip/compressor.h"
#include "runtime/cpu/half.h"
#include "runtime/ops/activation.h"
#include "runtime/ops/matmul.h"

namespace kvz {

KvzapChat kvzap_chat(const Model& m, std::span<const int32_t> prompt) {
  const Tokenizer& tok = m.tokenizer();
  KvzapChat c;
  c.tokens = tok.encode(m.chat_template().prefix, false, true);
  c.prompt_begin = static_cast<int64_t>(c.tokens.size());
  c.tokens.insert(c.tokens.end(), prompt.begin(), prompt.end());
  c.prompt_end = static_cast<int64_t>(c.tokens.size());
  for (const std::string& s :
       {reconstruction_prompt_text(SinkPolicy::kKvpress).first, m.chat_template().postfix}) {
    std::vector<int32_t> t = tok.encode(s, false, true);
    c.tokens.insert(c.tokens.end(), t.begin(), t.end());
  }
  c.repeat_begin = static_cast<int64_t>(c.tokens.size());
  c.tokens.insert(c.tokens.end(), prompt.begin(), prompt.end());
  c.repeat_end = static_cast<int64_t>(c.tokens.size());
  return c;
}

KvzapCollector::KvzapCollector(const Model& m, int max_prompt_tokens)
    : model_(m),
      max_prompt_(max_prompt_tokens),
      fwd_(m, 2 * max_prompt_tokens + 256, 1),
      rec_(m.device()) {
  const ModelConfig& c = m.config();
  const int64_t qd = int64_t{c.n_heads} * c.head_dim, hd = c.head_dim;
  Device& dev = m.device();
  // W_O columns through the runtime's matmul (any weight type): identity rows give
  // y[c, :] = W_O[:, c], i.e. y = W_O^T [qd, d_model].
  std::vector<float> eye(static_cast<size_t>(qd * qd), 0.0f);
  for (int64_t i = 0; i < qd; ++i) eye[static_cast<size_t>(i * qd + i)] = 1.0f;
  Buffer in = dev.alloc(eye.size() * 4), out = dev.alloc(static_cast<size_t>(qd * c.d_model) * 4);
  Tensor x = in.tensor(DType::kF32, {qd, qd}), y = out.tensor(DType::kF32, {qd, c.d_model});
  dev.upload(x, eye.data());
  std::vector<float> wt(static_cast<size_t>(qd * c.d_model));
  for (int il = 0; il < c.n_layers; ++il) {
    matmul(rec_, {x, m.weights().layers[il].wo, y, {}});
    rec_.finish();
    dev.download(y, wt.data());
    std::vector<float>& g = wo_gram_.emplace_back(static_cast<size_t>(c.n_heads * hd * hd));
    for (int q = 0; q < c.n_heads; ++q)
      for (int64_t a = 0; a < hd; ++a)
        for (int64_t b = 0; b < hd; ++b) {
          double s = 0;
          const float* ra = wt.data() + (q * hd + a) * c.d_model;
          const float* rb = wt.data() + (q * hd + b) * c.d_model;
          for (int64_t e = 0; e < c.d_model; ++e) s += static_cast<double>(ra[e]) * rb[e];
          g[static_cast<size_t>((q * hd + a) * hd + b)] = static_cast<float>(s);
        }
  }
}

void KvzapCollector::collect(std::span<const int32_t> prompt, std::vector<KvzapLayerData>& data) {
  if (prompt.empty() || static_cast<int>(prompt.size()) > max_prompt_)
    throw InputError(
        fmt::format("KVzap prompt of {} tokens: must be 1..{}", prompt.size(), max_prompt_));
  const ModelConfig& c = model_.config();
  Device& dev = model_.device();
  const KvzapChat chat = kvzap_chat(model_, prompt);
  const auto T = static_cast<int64_t>(chat.tokens.size());
  KVZ_CHECK(T <= fwd_.max_tokens(), "chat of {} tokens", T);
  if (data.empty())
    for (int il = 0; il < c.n_layers; ++il) data.push_back({c.d_model, c.n_kv_heads, {}, {}});
  KvCache cache(dev, kv_cache_config(c));
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  const int64_t n_p = chat.prompt_end - chat.prompt_begin, H = c.n_kv_heads, hd = c.head_dim;
  std::vector<float> h(static_cast<size_t>(T * c.d_model)), xn(static_cast<size_t>(T));
  std::vector<float> q(static_cast<size_t>(T * c.n_heads * hd)), k(static_cast<size_t>(T * H * hd)),
      v(k.size());
  HiddenHook hidden = [&](Recorder& rec, int, const Tensor& ht) {
    rec.finish();
    dev.download(ht, h.data());
  };
  LayerHook layer = [&](Recorder& rec, int il, const Tensor& qt, const KvCache::LayerView&) {
    rec.finish();
    dev.download(qt, q.data());
    const std::vector<HeadRows> rows = cache.read_layer(il);
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < hd; ++d) {
          const auto src = static_cast<size_t>(t * hd + d),
                     dst = static_cast<size_t>((t * H + ih) * hd + d);
          k[dst] = cpu::f16_to_f32(rows[ih].k[src]);
          v[dst] = cpu::f16_to_f32(rows[ih].v[src]);
        }
    for (int64_t t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t e = 0; e < c.d_model; ++e)
        s += double{h[t * c.d_model + e]} * h[t * c.d_model + e];
      xn[static_cast<size_t>(t)] = static_cast<float>(std::sqrt(s));
    }
    KvzapTargetInputs in;
    in.n_heads = c.n_heads;
    in.n_kv_heads = c.n_kv_heads;
    in.head_dim = c.head_dim;
    in.n_tokens = T;
    in.scale = c.attn_scale;
    in.q = q.data();
    in.k = k.data();
    in.v = v.data();
    in.x_norm = xn.data();
    in.wo_gram = wo_gram_[static_cast<size_t>(il)].data();
    in.prompt_begin = chat.prompt_begin;
    in.prompt_end = chat.prompt_end;
    in.repeat_begin = chat.repeat_begin;
    in.repeat_end = chat.repeat_end;
    const std::vector<float> y = kvzap_targets(in);
    data[static_cast<size_t>(il)].append(h.data() + chat.prompt_begin * c.d_model, y.data(), n_p);
  };
  fwd_.run(rec_, chat.tokens, pos, cache, 0, &layer, &hidden);
  rec_.finish();
}

KvzapScorer::KvzapScorer(const KvzapModel& m, Device& dev, int max_tokens)
    : model_(m),
      dev_(dev),
      max_tokens_((max_tokens + 63) / 64 * 64),  // layer slices of out_ start 256-byte aligned
      scores_(static_cast<size_t>(m.n_layers())) {
  const int64_t D = m.d_model(), F = m.d_hidden(), H = m.n_kv_heads(), T = max_tokens_;
  const bool mlp = m.kind() == KvzapKind::kMlp;
  auto make = [&](std::initializer_list<int64_t> shape, const float* data) {
    Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, DType::kF32, shape);
    storage_.push_back(dev.alloc(probe.nbytes()));
    Tensor t = storage_.back().tensor(DType::kF32, shape);
    if (data) dev.upload(t, data);
    return t;
  };
  for (int il = 0; il < m.n_layers(); ++il) {
    const KvzapLayer& l = m.layer(il);
    const int64_t out1 = mlp ? F : H;
    LayerTensors t;
    t.w1 = make({out1, D}, l.w1.data());
    t.b1 = make({out1}, l.b1.data());
    if (mlp) {
      t.w2 = make({H, F}, l.w2.data());
      t.b2 = make({H}, l.b2.data());
    }
    layers_.push_back(t);
  }
  if (mlp) {
    hidden_ = make({T, F}, nullptr);
    const std::vector<float> ones(static_cast<size_t>(T * F), 1.0f);
    ones_ = make({T, F}, ones.data());
  }
  out_ = make({int64_t{m.n_layers()}, T, H}, nullptr);
  gathered_ = make({int64_t{m.n_layers()}, T, H}, nullptr);
  hook_ = [this, mlp, T, H](Recorder& rec, int il, const Tensor& h) {
    const int64_t n = h.dim(0);
    KVZ_CHECK(n <= T, "KVzap scorer sized for {} tokens, run of {}", T, n);
    const LayerTensors& t = layers_[static_cast<size_t>(il)];
    Tensor out = out_.reshape({out_.dim(0) * T, H}).slice(il * T, n);
    if (!mlp) {
      matmul(rec, {h, t.w1, out, t.b1});
      return;
    }
    Tensor hid = hidden_.slice(0, n);
    matmul(rec, {h, t.w1, hid, t.b1});
    gated_act(rec, {hid, ones_.slice(0, n), hid, Activation::kGelu});  // GELU(erf) x 1
    matmul(rec, {hid, t.w2, out, t.b2});
  };
}

void KvzapScorer::fetch(Recorder& rec, int64_t n_tokens) {
  const int64_t L = model_.n_layers(), T = max_tokens_, H = model_.n_kv_heads();
  // Pack the layers' [n_tokens, H] rows back to back: one download instead of one per layer.
  const Tensor src = out_.reshape({L * T, H}), dst = gathered_.reshape({L * T, H});
  for (int64_t il = 0; il < L; ++il)
    rec.copy(src.slice(il * T, n_tokens), dst.slice(il * n_tokens, n_tokens));
  rec.finish();
  std::vector<float> all(static_cast<size_t>(L * n_tokens * H));
  dev_.download(dst.slice(0, L * n_tokens), all.data());
  for (int64_t il = 0; il < L; ++il) {
    const float* p = all.data() + il * n_tokens * H;
    scores_[static_cast<size_t>(il)].assign(p, p + n_tokens * H);
  }
}

void check_kvzap_model(const KvzapModel& kvzap, const Model& m, const std::string& path) {
  const ModelConfig& c = m.config();
  if (kvzap.n_layers() != c.n_layers || kvzap.d_model() != c.d_model ||
      kvzap.n_kv_heads() != c.n_kv_heads)
    throw FormatError(
        fmt::format("{}: KVzap surrogate for L{} D{} H{} does not fit the model's "
                    "L{} D{} H{}",
                    path, kvzap.n_layers(), kvzap.d_model(), kvzap.n_kv_heads(), c.n_layers,
                    c.d_model, c.n_kv_heads));
  if (kvzap.model_identity() != m.identity())
    throw FormatError(fmt::format("{}: KVzap surrogate was trained for '{}', not this model '{}'",
                                  path, kvzap.model_identity(), m.identity()));
}

}  // namespace kvz
