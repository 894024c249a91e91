// Transformer forward pass over the paged KV cache (model/). Reads like the paper: norm,
// QKV, (qk-norm), RoPE, append K/V, attention, output projection, residual; norm, gated MLP,
// residual.
#include "model/forward.h"

#include <algorithm>
#include <optional>

#include "runtime/ops/activation.h"
#include "runtime/ops/elementwise.h"
#include "runtime/ops/matmul.h"
#include "runtime/ops/matvec_gate_up.h"
#include "runtime/ops/paged_attention.h"
#include "runtime/ops/paged_kv.h"
#include "runtime/ops/rms_norm.h"
#include "runtime/ops/rope.h"
#include "runtime/tuning.h"

namespace kvz {

KvCacheConfig kv_cache_config(const ModelConfig& c) {
  KvCacheConfig kc;
  kc.n_layers = c.n_layers;
  kc.n_kv_heads = c.n_kv_heads;
  kc.head_dim = c.head_dim;
  kc.prunable.assign(c.n_layers, true);
  for (int il = 0; il < c.n_layers; ++il) kc.prunable[il] = !c.sliding(il);
  return kc;
}

Forward::Forward(const Model& model, int max_tokens, int max_logits)
    : model_(model), max_tokens_(max_tokens), max_logits_(max_logits) {
  profile_ = model.device().tuning().diagnostics.profile;
  const ModelConfig& c = model.config();
  Device& dev = model.device();
  const int64_t T = max_tokens, qd = int64_t{c.n_heads} * c.head_dim,
                kvd = int64_t{c.n_kv_heads} * c.head_dim;
  auto make = [&](DType t, std::initializer_list<int64_t> shape) {
    Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, t, shape);
    storage_.push_back(dev.alloc(probe.nbytes()));
    return storage_.back().tensor(t, shape);
  };
  ids_ = make(DType::kI32, {T});
  pos_ = make(DType::kI32, {T});
  seq_pos_stride_ =
      static_cast<int64_t>(std::max<size_t>(dev.caps().storage_offset_alignment, 4) / 4);
  seq_pos_ = make(DType::kI32, {int64_t{max_logits} * seq_pos_stride_});
  x_ = make(DType::kF32, {T, c.d_model});
  h_ = make(DType::kF32, {T, c.d_model});
  o_ = make(DType::kF32, {T, c.d_model});
  q_ = make(DType::kF32, {T, qd});
  attn_ = make(DType::kF32, {T, qd});
  k_ = make(DType::kF32, {T, kvd});
  v_ = make(DType::kF32, {T, kvd});
  gate_ = make(DType::kF32, {T, c.d_ff});
  up_ = make(DType::kF32, {T, c.d_ff});
  logits_ = make(DType::kF32, {max_logits, c.n_vocab});
  // Split-K scratch for decode-sized query counts over the longest cache the model allows.
  int64_t scratch = 0;
  for (int n_q = 1; n_q <= kMaxSplitQueries; ++n_q)
    scratch = std::max(scratch, paged_attention_scratch_elems(dev, n_q, c.n_heads, c.head_dim,
                                                              c.max_context + 64));
  // ... and for prefill-sized runs where the device's prefill kernel splits long heads.
  if (T > kMaxSplitQueries)
    scratch = std::max(scratch,
                       paged_attention_prefill_scratch_elems(dev, int(T), c.n_heads, c.n_kv_heads,
                                                             c.head_dim, c.max_context + int(T)));
  if (scratch > 0) attn_scratch_ = make(DType::kF32, {scratch});
  // From the layer weights (runtime/ops/matmul.h): the f16 scratch of the matmuls' dequantising
  // pre-pass on many tokens, and whether decode rounds x to int8 once per input for Q4_K matvecs.
  int64_t w_scratch = 0;
  bool x8 = matvec_uses_x8(dev, model.weights().output.dtype());
  for (const LayerWeights& l : model.weights().layers)
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (!t->defined()) continue;
      w_scratch = std::max(w_scratch, matmul_scratch_elems(dev, *t, T));
      x8 |= matvec_uses_x8(dev, t->dtype());
    }
  if (w_scratch > 0) w_scratch_ = make(DType::kF16, {w_scratch});
  if (x8)
    x8_ = make(DType::kI32, {matvec_x8_elems(std::max({int64_t{c.d_model}, qd, int64_t{c.d_ff}}))});
}

// x8_, to be filled with x rounded by quantize_x8 (or by the op writing x, in the same
// dispatch), when some of `ws` would use it for this x (decode); else nothing (the matvecs then
// read x itself).
Tensor Forward::x8_for(const Tensor& x, std::initializer_list<const Tensor*> ws) const {
  if (!x8_.defined() || x.rows() != 1 || x.cols() % 256 != 0) return {};
  if (std::none_of(ws.begin(), ws.end(),
                   [&](const Tensor* w) { return matvec_uses_x8(model_.device(), w->dtype()); }))
    return {};
  return x8_;
}

void Forward::collect(Recorder& rec) {
  if (!profile_) return;
  for (const TimedSpan& t : rec.timings()) {
    if (t.label.ends_with("/start")) continue;  // the span before the first op of a run
    OpTime& e = profile_table_[t.label];
    e.ms += t.ms;
    ++e.count;
  }
}

void Forward::run(Recorder& rec, std::span<const int32_t> tokens,
                  std::span<const int32_t> positions, KvCache& cache, int n_logits,
                  const LayerHook* hook, const HiddenHook* hidden) {
  KVZ_CHECK(positions.size() == tokens.size(), "{} tokens at {} positions", tokens.size(),
            positions.size());
  const Seq seq{&cache, 0, static_cast<int64_t>(positions.size())};
  run_(rec, tokens, nullptr, positions, std::span<const Seq>(&seq, 1), n_logits, hook, hidden);
}

void Forward::run(Recorder& rec, const Tensor& ids, std::span<const int32_t> positions,
                  KvCache& cache, int n_logits) {
  KVZ_CHECK(ids.dtype() == DType::kI32 && ids.numel() == static_cast<int64_t>(positions.size()),
            "device ids {} for {} positions", ids.shape_str(), positions.size());
  const Seq seq{&cache, 0, static_cast<int64_t>(positions.size())};
  run_(rec, {}, &ids, positions, std::span<const Seq>(&seq, 1), n_logits, nullptr, nullptr);
}

void Forward::run_batch(Recorder& rec, std::span<const int32_t> tokens,
                        std::span<const int32_t> positions, std::span<KvCache* const> caches) {
  KVZ_CHECK(tokens.size() == caches.size() && positions.size() == caches.size(),
            "{} tokens at {} positions for {} caches", tokens.size(), positions.size(),
            caches.size());
  std::vector<Seq> seqs;
  for (size_t i = 0; i < caches.size(); ++i) {
    for (size_t j = 0; j < i; ++j) KVZ_CHECK(caches[j] != caches[i], "cache {} repeats {}", i, j);
    seqs.push_back({caches[i], static_cast<int64_t>(i), 1});
  }
  run_(rec, tokens, nullptr, positions, seqs, static_cast<int>(caches.size()), nullptr, nullptr);
}

// What every piece of one run reads: its rows, sequences, positions and activation views.
struct Forward::Step {
  int64_t n = 0;
  std::span<const Seq> seqs;
  Tensor pos;          // [n] i32
  Tensor seq_pos_all;  // run_batch: seq_pos_ (one aligned position per sequence)
  int64_t seq_pos_stride = 1;
  const char* phase = "";  // "prefill/" or "decode/" (profile keys)
  // Views of this run's rows, [n, width] f32 unless noted.
  Tensor x, h, o, q, k, v, attn, g, u;
  Tensor q3, k3, v3, attn3;  // q, k, v, attn as [n, heads, head_dim]
  Tensor ws;                 // the f16 w_scratch_ when the matmuls dequantise first (many rows)
  const LayerHook* hook = nullptr;
  const HiddenHook* hidden = nullptr;
  bool device_ids = false;
  // The positions of sequence i as a tensor of its own: `pos` itself for one sequence, else its
  // aligned slot of seq_pos_.
  Tensor seq_pos(size_t i) const {
    return seqs.size() == 1 ? pos : seq_pos_all.slice(static_cast<int64_t>(i) * seq_pos_stride, 1);
  }
};

void Forward::mark_(Recorder& rec, const Step& st, const char* op) {
  if (profile_) rec.timestamp(std::string(st.phase) + op);
}

void Forward::run_(Recorder& rec, std::span<const int32_t> tokens, const Tensor* device_ids,
                   std::span<const int32_t> positions, std::span<const Seq> seqs, int n_logits,
                   const LayerHook* hook, const HiddenHook* hidden) {
  const ModelConfig& c = model_.config();
  const Weights& w = model_.weights();
  const int64_t n = static_cast<int64_t>(positions.size());
  KVZ_CHECK(n > 0 && n <= max_tokens_, "forward of {} tokens", n);
  KVZ_CHECK(n_logits >= 0 && n_logits <= std::min<int64_t>(n, max_logits_));
  const int64_t H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  KVZ_CHECK(!seqs.empty() && seqs.back().row0 + seqs.back().n == n, "sequences cover {} rows", n);
  KVZ_CHECK(seqs.size() == 1 || (!hook && !hidden), "layer hooks need one sequence");

  // The index writes below go in stream order. Host-token runs still finish earlier work first
  // (their callers' hooks may rely on it); device-token runs only when the cache reallocates a
  // buffer that work in flight may read.
  const bool in_place = std::all_of(seqs.begin(), seqs.end(), [](const Seq& s) {
    return s.cache->append_in_place(static_cast<int>(s.n));
  });
  if (!device_ids || !in_place) rec.finish();
  if (profile_) collect(rec);
  Step st;
  st.n = n, st.seqs = seqs, st.phase = n == 1 ? "decode/" : "prefill/";
  st.hook = hook, st.hidden = hidden, st.device_ids = device_ids != nullptr;
  mark_(rec, st, "start");
  // Device ids are read where they are (no copy: a transfer and a barrier less per step).
  Tensor ids = device_ids ? *device_ids : ids_.slice(0, n);
  st.pos = pos_.slice(0, n);
  if (!device_ids) rec.upload(ids.mem(), tokens.data(), tokens.size_bytes());
  rec.upload(st.pos.mem(), positions.data(), positions.size_bytes());
  for (const Seq& s : seqs)
    s.cache->begin_append(rec, static_cast<int>(s.n),
                          positions.subspan(static_cast<size_t>(s.row0), static_cast<size_t>(s.n)));
  // One-token sequences' positions copied to aligned offsets of seq_pos_.
  if (seqs.size() > 1) {
    KVZ_CHECK(static_cast<int64_t>(seqs.size()) <= max_logits_, "{} sequences", seqs.size());
    std::vector<int32_t> sp(seqs.size() * static_cast<size_t>(seq_pos_stride_), 0);
    for (size_t i = 0; i < seqs.size(); ++i) {
      KVZ_CHECK(seqs[i].n == 1, "batched sequences run one token each");
      sp[i * static_cast<size_t>(seq_pos_stride_)] = positions[static_cast<size_t>(seqs[i].row0)];
    }
    rec.upload(seq_pos_.mem(), sp.data(), sp.size() * 4);
  }
  st.seq_pos_all = seq_pos_, st.seq_pos_stride = seq_pos_stride_;

  st.x = x_.slice(0, n), st.h = h_.slice(0, n), st.o = o_.slice(0, n), st.q = q_.slice(0, n);
  st.k = k_.slice(0, n), st.v = v_.slice(0, n), st.attn = attn_.slice(0, n);
  st.g = gate_.slice(0, n), st.u = up_.slice(0, n);
  // Many tokens: block weights are dequantised into w_scratch_ before each matmul, so the
  // matmuls of a layer run one after another (they share the scratch).
  st.ws = n >= kMatmulDequantMinTokens ? w_scratch_ : Tensor{};
  st.q3 = st.q.reshape({n, H, hd}), st.k3 = st.k.reshape({n, KV, hd});
  st.v3 = st.v.reshape({n, KV, hd}), st.attn3 = st.attn.reshape({n, H, hd});

  embedding(rec, {w.tok_embd, ids, st.x, c.embedding_scale});
  mark_(rec, st, "embedding");
  // The FFN output waiting to be added to the residual stream x: the add is fused into the next
  // norm (next layer's attention norm, or the output norm).
  Tensor pending;
  for (int il = 0; il < c.n_layers; ++il) {
    // Without logits nothing reads what the last layer computes after its cache append and its
    // hook (x_ is private): a context prefill or a reconstruction pass stops there.
    const bool last_without_logits = n_logits == 0 && il == c.n_layers - 1;
    attention_(rec, st, il, pending, last_without_logits);
    if (last_without_logits) {
      pending = {};
      break;
    }
    ffn_(rec, st, il);
    pending = st.o;
    submit_after_layer_(rec, il, st.device_ids);
  }
  const Tensor hl = st.h.slice(0, n_logits), lx8 = x8_for(hl, {&w.output});
  if (n_logits == n) {
    rms_norm(rec, {st.x, w.output_norm, st.h, c.norm_eps, 0.0f, pending, lx8});
    pending = {};
  } else if (pending.defined()) {
    add(rec, {st.x, pending, st.x});  // the whole residual stream stays up to date
    pending = {};
  }
  if (n_logits > 0) {
    Tensor xl = st.x.slice(n - n_logits, n_logits);
    if (n_logits < n) rms_norm(rec, {xl, w.output_norm, hl, c.norm_eps, 0.0f, {}, lx8});
    matmul(rec, {hl, w.output, logits_.slice(0, n_logits), {}, {}, lx8});
    mark_(rec, st, "lm head");
  }
  if (!device_ids) rec.submit();
}

// Norm (adding `pending` to x first), q/k/v, (qk-norm), RoPE with the K/V append, the hooks,
// then, unless `stop_after_append`, attention over each sequence's cache and the output
// projection into st.o.
void Forward::attention_(Recorder& rec, const Step& st, int il, const Tensor& pending,
                         bool stop_after_append) {
  const ModelConfig& c = model_.config();
  const Weights& w = model_.weights();
  const LayerWeights& l = w.layers[il];
  const bool local = c.sliding(il);
  const int64_t n = st.n, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  // Decode: the norm also rounds h to int8 for the Q4_K matvecs (one dispatch fewer).
  const Tensor hx8 = x8_for(st.h, {&l.wq, &l.wk, &l.wv});
  rms_norm(rec, {st.x, l.attn_norm, st.h, c.norm_eps, 0.0f, pending, hx8});
  mark_(rec, st, "norm/add");
  if (st.hidden) {
    (*st.hidden)(rec, il, st.h);
    mark_(rec, st, "layer hook");
  }
  {
    std::optional<Recorder::Concurrent> group;
    if (!st.ws.defined()) group.emplace(rec);
    matmul(rec, {st.h, l.wq, st.q, l.bq, st.ws, hx8});
    matmul(rec, {st.h, l.wk, st.k, l.bk, st.ws, hx8});
    matmul(rec, {st.h, l.wv, st.v, l.bv, st.ws, hx8});
  }
  mark_(rec, st, "matmul qkv");
  if (c.qk_norm) {
    {
      Recorder::Concurrent group(rec);
      rms_norm(rec, {st.q.reshape({n * H, hd}), l.q_norm, st.q.reshape({n * H, hd}), c.norm_eps});
      rms_norm(rec, {st.k.reshape({n * KV, hd}), l.k_norm, st.k.reshape({n * KV, hd}), c.norm_eps});
    }
    mark_(rec, st, "norm/add");
  }
  RopeArgs ra;
  ra.pos = st.pos;
  ra.inv_freq = local ? w.rope_inv_freq_local : w.rope_inv_freq;
  ra.style = c.rope_style;
  ra.rot_dims = c.rot_dims;
  ra.attn_factor = local ? 1.0f : rope_attn_factor(c.rope_scaling);
  ra.x = st.q3;
  {
    // rope writes q3; each kv_write reads its rows of k3, v3 and writes its own cache's pools.
    Recorder::Concurrent group(rec);
    rope(rec, ra);
    for (size_t is = 0; is < st.seqs.size(); ++is) {
      const Seq& s = st.seqs[is];
      const KvCache::LayerView kv = s.cache->layer(il);
      KvWriteArgs kw{st.k3.slice(s.row0, s.n),
                     st.v3.slice(s.row0, s.n),
                     st.seq_pos(is),
                     s.cache->dst_slots(il),
                     kv.k_pool,
                     kv.v_pool,
                     kv.pos_pool};
      // K is roped on its way into the pool (k3 itself stays unrotated: nothing reads it later).
      kw.rope = ra;  // q's rotation
      kv_write(rec, kw);
    }
  }
  mark_(rec, st, "rope/kv write");
  if (st.hook) {
    (*st.hook)(rec, il, st.q3, st.seqs[0].cache->layer(il));
    mark_(rec, st, "layer hook");
  }
  if (stop_after_append) return;
  // One attention per sequence, over its own cache (they share the split-K scratch, so they
  // run one after another).
  const Tensor ax8 = x8_for(st.attn, {&l.wo});  // rounded in the split-K combine pass if any
  for (size_t is = 0; is < st.seqs.size(); ++is) {
    const Seq& s = st.seqs[is];
    const KvCache::LayerView kv = s.cache->layer(il);
    PagedAttentionArgs pa;
    pa.q = st.q3.slice(s.row0, s.n);
    pa.q_pos = st.seq_pos(is);
    pa.k_pool = kv.k_pool;
    pa.v_pool = kv.v_pool;
    pa.pos_pool = kv.pos_pool;
    pa.block_table = kv.block_table;
    pa.lens = kv.lens;
    pa.out = st.attn3.slice(s.row0, s.n);
    pa.rows_sorted = true;                // KvCache keeps each head's positions increasing
    pa.max_rows = s.cache->max_rows(il);  // includes this append's rows
    pa.total_rows = s.cache->layer_rows(il);
    pa.scale = c.attn_scale;
    pa.window = local ? c.sliding_window : 0;
    pa.softcap = c.attn_softcap;
    // Split-K scratch where it holds what the kernels would split into (the cm2 prefill kernel
    // checks its own need and runs unsplit without).
    if (attn_scratch_.defined() &&
        paged_attention_scratch_elems(model_.device(), static_cast<int>(s.n), c.n_heads, c.head_dim,
                                      static_cast<int>(kv.block_table.dim(1)) * kKvBlockTokens) <=
            attn_scratch_.numel())
      pa.scratch = attn_scratch_;
    pa.x8 = ax8;
    paged_attention(rec, pa);
  }
  mark_(rec, st, "attention");
  matmul(rec, {st.attn, l.wo, st.o, {}, st.ws, ax8});
  mark_(rec, st, "matmul o");
  if (c.post_norms) rms_norm(rec, {st.o, l.post_attn_norm, st.o, c.norm_eps});
}

// x += o, the FFN norm, the gated MLP, its down projection into st.o (the caller adds it to x
// in the next norm).
void Forward::ffn_(Recorder& rec, const Step& st, int il) {
  const ModelConfig& c = model_.config();
  const LayerWeights& l = model_.weights().layers[il];
  const Tensor fx8 = x8_for(st.h, {&l.w_gate, &l.w_up});
  rms_norm(rec, {st.x, l.ffn_norm, st.h, c.norm_eps, 0.0f, st.o, fx8});  // x += o, then the norm
  mark_(rec, st, "norm/add");
  const Tensor gx8 = x8_for(st.g, {&l.w_down});
  if (st.n == 1) {
    // Decode: gate, up and the activation in one dispatch where the tuning and the weights allow
    // (runtime/ops/matvec_gate_up.h: MatmulTuning::fused_gate_up), else the three ops below.
    matvec_gate_up(rec, {st.h, l.w_gate, l.w_up, st.g, st.u, c.act, fx8, gx8});
    mark_(rec, st, "matvec gate up act");
  } else {
    {
      std::optional<Recorder::Concurrent> group;
      if (!st.ws.defined()) group.emplace(rec);
      matmul(rec, {st.h, l.w_gate, st.g, {}, st.ws, fx8});
      matmul(rec, {st.h, l.w_up, st.u, {}, st.ws, fx8});
    }
    mark_(rec, st, "matmul gate up");
    gated_act(rec, {st.g, st.u, st.g, c.act, gx8});
    mark_(rec, st, "act");
  }
  matmul(rec, {st.g, l.w_down, st.o, {}, st.ws, gx8});
  mark_(rec, st, "matmul down");
  if (c.post_norms) {
    rms_norm(rec, {st.o, l.post_ffn_norm, st.o, c.norm_eps});
    mark_(rec, st, "norm/add");
  }
}

// Hand finished layers to the GPU while the rest is recorded. The GPU idles from the start of a
// step until the first submit: hand over the first layer at once
// (SubmitTuning::early_first_layer), then every kLayersPerSubmit layers. A step recorded ahead
// (device ids) finds the GPU busy with the previous one: each submission costs GPU time, so it
// is submitted whole, by the caller, with what it records after it (SubmitTuning::ahead_layers:
// every n layers instead).
void Forward::submit_after_layer_(Recorder& rec, int il, bool device_ids) const {
  const SubmitTuning& st = model_.device().tuning().submit;
  const uint32_t ahead_layers = st.ahead_layers;
  if (device_ids) {
    if (ahead_layers && il % ahead_layers == ahead_layers - 1) rec.submit();
  } else if ((st.early_first_layer && il == 0) || il % kLayersPerSubmit == kLayersPerSubmit - 1) {
    rec.submit();
  }
}

}  // namespace kvz
