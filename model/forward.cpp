// Transformer forward pass over the paged KV cache (model/). Reads like the paper: norm,
// QKV, (qk-norm), RoPE, append K/V, attention, output projection, residual; norm, gated MLP,
// residual.
#include "model/forward.h"

#include <algorithm>
#include <optional>

#include "runtime/ops/activation.h"
#include "runtime/ops/elementwise.h"
#include "runtime/ops/matmul.h"
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
  const char* phase = n == 1 ? "decode/" : "prefill/";
  auto mark = [&](const char* op) {
    if (profile_) rec.timestamp(std::string(phase) + op);
  };
  mark("start");
  // Device ids are read where they are (no copy: a transfer and a barrier less per step).
  Tensor ids = device_ids ? *device_ids : ids_.slice(0, n), pos = pos_.slice(0, n);
  if (!device_ids) rec.upload(ids.mem(), tokens.data(), tokens.size_bytes());
  rec.upload(pos.mem(), positions.data(), positions.size_bytes());
  for (const Seq& s : seqs)
    s.cache->begin_append(rec, static_cast<int>(s.n),
                          positions.subspan(static_cast<size_t>(s.row0), static_cast<size_t>(s.n)));
  // The positions of each sequence as a tensor of its own: `pos` itself for one sequence, else
  // one-token sequences' positions copied to aligned offsets of seq_pos_.
  if (seqs.size() > 1) {
    KVZ_CHECK(static_cast<int64_t>(seqs.size()) <= max_logits_, "{} sequences", seqs.size());
    std::vector<int32_t> sp(seqs.size() * static_cast<size_t>(seq_pos_stride_), 0);
    for (size_t i = 0; i < seqs.size(); ++i) {
      KVZ_CHECK(seqs[i].n == 1, "batched sequences run one token each");
      sp[i * static_cast<size_t>(seq_pos_stride_)] = positions[static_cast<size_t>(seqs[i].row0)];
    }
    rec.upload(seq_pos_.mem(), sp.data(), sp.size() * 4);
  }
  auto seq_pos = [&](size_t i) {
    return seqs.size() == 1 ? pos : seq_pos_.slice(static_cast<int64_t>(i) * seq_pos_stride_, 1);
  };

  Tensor x = x_.slice(0, n), h = h_.slice(0, n), o = o_.slice(0, n), q = q_.slice(0, n),
         k = k_.slice(0, n), v = v_.slice(0, n), attn = attn_.slice(0, n), g = gate_.slice(0, n),
         u = up_.slice(0, n);
  // Many tokens: block weights are dequantised into w_scratch_ before each matmul, so the
  // matmuls of a layer run one after another (they share the scratch).
  const Tensor ws = n >= kMatmulDequantMinTokens ? w_scratch_ : Tensor{};
  Tensor q3 = q.reshape({n, H, hd}), k3 = k.reshape({n, KV, hd}), v3 = v.reshape({n, KV, hd});
  Tensor attn3 = attn.reshape({n, H, hd});

  embedding(rec, {w.tok_embd, ids, x, c.embedding_scale});
  mark("embedding");
  // The FFN output waiting to be added to the residual stream x: the add is fused into the next
  // norm (next layer's attention norm, or the output norm).
  Tensor pending;
  for (int il = 0; il < c.n_layers; ++il) {
    const LayerWeights& l = w.layers[il];
    const bool local = c.sliding(il);
    // Decode: the norm also rounds h to int8 for the Q4_K matvecs (one dispatch fewer).
    const Tensor hx8 = x8_for(h, {&l.wq, &l.wk, &l.wv});
    rms_norm(rec, {x, l.attn_norm, h, c.norm_eps, 0.0f, pending, hx8});
    mark("norm/add");
    if (hidden) {
      (*hidden)(rec, il, h);
      mark("layer hook");
    }
    {
      std::optional<Recorder::Concurrent> group;
      if (!ws.defined()) group.emplace(rec);
      matmul(rec, {h, l.wq, q, l.bq, ws, hx8});
      matmul(rec, {h, l.wk, k, l.bk, ws, hx8});
      matmul(rec, {h, l.wv, v, l.bv, ws, hx8});
    }
    mark("matmul qkv");
    if (c.qk_norm) {
      Recorder::Concurrent group(rec);
      rms_norm(rec, {q.reshape({n * H, hd}), l.q_norm, q.reshape({n * H, hd}), c.norm_eps});
      rms_norm(rec, {k.reshape({n * KV, hd}), l.k_norm, k.reshape({n * KV, hd}), c.norm_eps});
    }
    if (c.qk_norm) mark("norm/add");
    RopeArgs ra;
    ra.pos = pos;
    ra.inv_freq = local ? w.rope_inv_freq_local : w.rope_inv_freq;
    ra.style = c.rope_style;
    ra.rot_dims = c.rot_dims;
    ra.attn_factor = local ? 1.0f : rope_attn_factor(c.rope_scaling);
    ra.x = q3;
    {
      // rope writes q3; each kv_write reads its rows of k3, v3 and writes its own cache's pools.
      Recorder::Concurrent group(rec);
      rope(rec, ra);
      for (size_t is = 0; is < seqs.size(); ++is) {
        const Seq& s = seqs[is];
        const KvCache::LayerView kv = s.cache->layer(il);
        KvWriteArgs kw{k3.slice(s.row0, s.n),
                       v3.slice(s.row0, s.n),
                       seq_pos(is),
                       s.cache->dst_slots(il),
                       kv.k_pool,
                       kv.v_pool,
                       kv.pos_pool};
        // K is roped on its way into the pool (k3 itself stays unrotated: nothing reads it later).
        kw.rope = ra;  // q's rotation
        kv_write(rec, kw);
      }
    }
    mark("rope/kv write");
    if (hook) {
      (*hook)(rec, il, q3, seqs[0].cache->layer(il));
      mark("layer hook");
    }
    // Without logits nothing reads what the last layer computes after its cache append and its
    // hook (x_ is private): a context prefill or a reconstruction pass stops here.
    if (n_logits == 0 && il == c.n_layers - 1) {
      pending = {};
      break;
    }
    // One attention per sequence, over its own cache (they share the split-K scratch, so they
    // run one after another).
    const Tensor ax8 = x8_for(attn, {&l.wo});  // rounded in the split-K combine pass if any
    for (size_t is = 0; is < seqs.size(); ++is) {
      const Seq& s = seqs[is];
      const KvCache::LayerView kv = s.cache->layer(il);
      PagedAttentionArgs pa;
      pa.q = q3.slice(s.row0, s.n);
      pa.q_pos = seq_pos(is);
      pa.k_pool = kv.k_pool;
      pa.v_pool = kv.v_pool;
      pa.pos_pool = kv.pos_pool;
      pa.block_table = kv.block_table;
      pa.lens = kv.lens;
      pa.out = attn3.slice(s.row0, s.n);
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
    mark("attention");
    matmul(rec, {attn, l.wo, o, {}, ws, ax8});
    mark("matmul o");
    if (c.post_norms) rms_norm(rec, {o, l.post_attn_norm, o, c.norm_eps});
    const Tensor fx8 = x8_for(h, {&l.w_gate, &l.w_up});
    rms_norm(rec, {x, l.ffn_norm, h, c.norm_eps, 0.0f, o, fx8});  // x += o, then the FFN norm
    mark("norm/add");
    {
      std::optional<Recorder::Concurrent> group;
      if (!ws.defined()) group.emplace(rec);
      matmul(rec, {h, l.w_gate, g, {}, ws, fx8});
      matmul(rec, {h, l.w_up, u, {}, ws, fx8});
    }
    mark("matmul gate up");
    const Tensor gx8 = x8_for(g, {&l.w_down});
    gated_act(rec, {g, u, g, c.act, gx8});
    mark("act");
    matmul(rec, {g, l.w_down, o, {}, ws, gx8});
    mark("matmul down");
    if (c.post_norms) {
      rms_norm(rec, {o, l.post_ffn_norm, o, c.norm_eps});
      mark("norm/add");
    }
    pending = o;
    // Hand finished layers to the GPU while the rest is recorded.
    // The GPU idles from the start of a step until the first submit: hand over the first layer
    // at once (SubmitTuning::early_first_layer), then every kLayersPerSubmit layers. A step
    // recorded ahead (device ids) finds the GPU busy with the previous one: each submission
    // costs GPU time, so it is submitted whole, by the caller, with what it records after it
    // (SubmitTuning::ahead_layers: every n layers instead).
    const SubmitTuning& st = model_.device().tuning().submit;
    const bool submit_first = st.early_first_layer;
    const uint32_t ahead_layers = st.ahead_layers;
    if (device_ids) {
      if (ahead_layers && il % ahead_layers == ahead_layers - 1) rec.submit();
    } else if ((submit_first && il == 0) || il % kLayersPerSubmit == kLayersPerSubmit - 1) {
      rec.submit();
    }
  }
  const Tensor hl = h.slice(0, n_logits), lx8 = x8_for(hl, {&w.output});
  if (n_logits == n) {
    rms_norm(rec, {x, w.output_norm, h, c.norm_eps, 0.0f, pending, lx8});
    pending = {};
  } else if (pending.defined()) {
    add(rec, {x, pending, x});  // the whole residual stream stays up to date
    pending = {};
  }
  if (n_logits > 0) {
    Tensor xl = x.slice(n - n_logits, n_logits);
    if (n_logits < n) rms_norm(rec, {xl, w.output_norm, hl, c.norm_eps, 0.0f, {}, lx8});
    matmul(rec, {hl, w.output, logits_.slice(0, n_logits), {}, {}, lx8});
    mark("lm head");
  }
  if (!device_ids) rec.submit();
}

}  // namespace kvz
