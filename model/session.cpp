// Session: prefill / score / prune / generate over the ragged KV cache (model/).
#include "model/session.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "kvzip/cache_file.h"
#include "model/kvzap_data.h"
#include "runtime/ops/coopmat.h"
#include "runtime/ops/logit_penalty.h"
#include "runtime/ops/paged_attention.h"
#include "runtime/ops/sampling.h"
#include "runtime/tuning.h"

namespace kvz {
namespace {

std::string_view strip(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

double Session::ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

Session::~Session() = default;

int default_prefill_chunk(const Device& dev) {
  return coopmat_api(dev) != CoopmatApi::kOff ? kDefaultPrefillChunkTensorCores
                                              : kDefaultPrefillChunk;
}

namespace {
SessionOptions resolved(SessionOptions o, const Model& model) {
  if (o.prefill_chunk <= 0) o.prefill_chunk = default_prefill_chunk(model.device());
  if (o.max_batch < 1 || o.max_batch > 256)
    throw InputError(fmt::format("max_batch {} outside 1..256", o.max_batch));
  return o;
}
}  // namespace

Session::Session(const Model& model, SessionOptions opts)
    : model_(model),
      opts_(resolved(opts, model)),
      forward_(model, std::max(opts_.prefill_chunk, opts_.score_chunk + 256),
               std::max(opts_.max_batch, 1)),
      rec_(model.device()),
      cache_(std::make_unique<KvCache>(model.device(), cache_config())) {}

KvCacheConfig Session::cache_config() const {
  KvCacheConfig c = kv_cache_config(model_.config());
  c.k_type = opts_.cache_type_k;
  c.v_type = opts_.cache_type_v;
  return c;
}

void Session::feed(std::span<const int32_t> tokens, int n_logits, const ProgressFn& progress,
                   const LayerHook* hook, int chunk, bool kvzap) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (chunk <= 0) chunk = opts_.prefill_chunk;
  std::vector<int32_t> pos;
  for (int64_t done = 0; done < n;) {
    int64_t m = std::min<int64_t>(chunk, n - done);
    pos.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) pos[i] = next_pos_ + static_cast<int32_t>(i);
    bool last = done + m == n;
    const bool zap = kvzap && kvzap_;
    forward_.run(rec_, tokens.subspan(done, m), pos, *cache_, last ? n_logits : 0, hook,
                 zap ? &kvzap_scorer_->hook() : nullptr);
    next_pos_ += static_cast<int32_t>(m);
    if (zap) {
      kvzap_scorer_->fetch(rec_, m);
      kvzap_step(pos);
    }
    done += m;
    if (progress) {
      rec_.wait();
      progress(done, n);
    }
  }
  rec_.wait();
}

void Session::prefill(std::string_view context, const ProgressFn& progress, const LayerHook* hook) {
  std::vector<int32_t> ctx = model_.tokenizer().encode(context, false, false);
  prefill_tokens(prefix_tokens(), ctx, progress, hook);
}

std::vector<int32_t> Session::prefix_tokens() const {
  return kvz::prefix_tokens(model_, opts_.instruction);
}

void Session::prefill_tokens(std::span<const int32_t> prefix, std::span<const int32_t> context,
                             const ProgressFn& progress, const LayerHook* hook) {
  int64_t total = static_cast<int64_t>(prefix.size() + context.size());
  if (total + 16 > model_.config().max_context)
    throw InputError(
        fmt::format("context of {} tokens (with the {}-token system prefix) does not fit "
                    "the model's {}-token context with room for an answer",
                    context.size(), prefix.size(), model_.config().max_context));
  if (total == 0) throw InputError("nothing to prefill: empty context and prefix");
  // Up front: the context plus a reconstruction chunk on top must fit one KV pool binding per
  // layer (DeviceError naming the limit otherwise), before anything is prefilled.
  auto cache = std::make_unique<KvCache>(model_.device(), cache_config());
  cache->check_capacity(total, forward_.max_tokens());
  cache_ = std::move(cache);
  full_cache_.reset();
  scores_ = {};
  next_pos_ = 0;
  prefix_tokens_.assign(prefix.begin(), prefix.end());
  context_tokens_.assign(context.begin(), context.end());
  kept_fraction_ = 1.0;
  n_prefix_ = static_cast<int64_t>(prefix.size());
  n_context_ = static_cast<int64_t>(context.size());
  std::vector<int32_t> all = prefix_tokens_;
  all.insert(all.end(), context_tokens_.begin(), context_tokens_.end());
  if (kvzap_) {
    kvzap_->clear();
    kvzap_min_pos_ = static_cast<int32_t>(n_prefix_);
    const ModelConfig& c = model_.config();
    kvzap_scores_ = Scores(c.n_layers, c.n_kv_heads, n_context_);
  } else {
    kvzap_scores_ = {};
  }
  auto t0 = std::chrono::steady_clock::now();
  feed(all, 0, progress, hook, 0, true);
  prefill_ms_ = ms_since(t0);
}

std::vector<int32_t> prefix_tokens(const Model& model, std::string_view instruction) {
  return model.tokenizer().encode(model.chat_template().prefix + std::string(instruction), false,
                                  true);
}

std::vector<int32_t> query_tokens(const Model& model, std::string_view query) {
  std::string text = "\n\n" + std::string(strip(query)) + model.chat_template().postfix;
  return model.tokenizer().encode(text, false, true);
}

std::vector<int32_t> Session::query_tokens(std::string_view query) const {
  return kvz::query_tokens(model_, query);
}

ReconstructionPrompts Session::reconstruction_prompts(SinkPolicy variant) const {
  const Tokenizer& tok = model_.tokenizer();
  const std::string& post = model_.chat_template().postfix;
  const ReconstructionPromptText text = reconstruction_prompt_text(variant);
  ReconstructionPrompts p;
  p.first = tok.encode(text.first, false, true);
  p.next_prefix = tok.encode(text.next_prefix, false, true);
  p.postfix = tok.encode(post, false, true);
  return p;
}

const Scores& Session::score(const CompressorOptions& opts, const ProgressFn& progress,
                             const ReconstructionPrompts* prompts) {
  if (n_context_ <= 0) throw InputError("score() needs a prefilled context");
  auto t0 = std::chrono::steady_clock::now();
  ReconstructionPass pass = [&](std::span<const int32_t> tokens, const ScoreHook& hook) {
    LayerHook lh = [&](Recorder& rec, int il, const Tensor& q, const KvCache::LayerView& kv) {
      hook(rec, il, q, kv);
    };
    int32_t saved = next_pos_;
    KVZ_CHECK(static_cast<int>(tokens.size()) <= forward_.max_tokens(),
              "reconstruction input of {} tokens exceeds the forward's {}", tokens.size(),
              forward_.max_tokens());
    feed(tokens, 0, {}, &lh, forward_.max_tokens());
    next_pos_ = saved;  // reconstruction tokens reuse positions N.. for every chunk
  };
  const ModelConfig& c = model_.config();
  const int64_t max_rows = static_cast<int64_t>(forward_.max_tokens()) * c.n_heads;
  if (!lse_buf_) lse_buf_ = model_.device().alloc(static_cast<size_t>(max_rows) * 4);
  // The tensor-core kernel's f16 queries (runtime/ops/paged_attention.h AttnScoreArgs::q16).
  const bool want_q16 = model_.device().kind() != BackendKind::kCpu &&
                        paged_attention_coopmat_supported(model_.device(), c.head_dim);
  if (want_q16 && !q16_buf_)
    q16_buf_ = model_.device().alloc(static_cast<size_t>(max_rows * c.head_dim) * 2);
  ScoreKernel kernel = [&](Recorder& r, int, const AttnScoreArgs& args) {
    AttnScoreArgs a = args;
    const int64_t n_q = args.q.dim(0);
    a.lse = lse_buf_.tensor(DType::kF32, {forward_.max_tokens(), c.n_heads}).slice(0, n_q);
    if (want_q16)
      a.q16 = q16_buf_.tensor(DType::kF16, {forward_.max_tokens(), c.n_heads, c.head_dim})
                  .slice(0, n_q);
    attn_score(r, a);
  };
  scores_ = score_context(rec_, *cache_, context_tokens_, n_prefix_,
                          prompts ? *prompts : reconstruction_prompts(opts.sinks), opts, pass,
                          kernel, progress);
  score_ms_ = ms_since(t0);
  return scores_;
}

PruneResult Session::prune(double ratio, PruneLevel level, const HeadScores* head_scores) {
  if (!(ratio > 0.0 && ratio <= 1.0))
    throw InputError(
        fmt::format("ratio {} is out of range (0, 1]: it is the fraction of context "
                    "KV pairs kept",
                    ratio));
  auto t0 = std::chrono::steady_clock::now();
  int64_t n_rows = n_prefix_ + n_context_;
  const std::vector<bool> prunable = kv_cache_config(model_.config()).prunable;
  KeepSet keep;
  switch (level) {
    case PruneLevel::kPair:
      if (scores_.empty())
        throw InputError("prune() needs score() first (or --level head with head scores)");
      keep = prune_pair(scores_, ratio, n_prefix_, n_rows, prunable);
      break;
    case PruneLevel::kPairUniform:
      if (scores_.empty())
        throw InputError("prune() needs score() first (or --level head with head scores)");
      keep = prune_pair_uniform(scores_, ratio, n_prefix_, n_rows, prunable);
      break;
    case PruneLevel::kHead:
      if (!head_scores)
        throw InputError("head-level pruning needs head scores (--head-scores FILE)");
      if (head_scores->n_layers != model_.config().n_layers ||
          head_scores->n_kv_heads != model_.config().n_kv_heads)
        throw FormatError(
            fmt::format("head scores for {} layers x {} KV heads do not fit the "
                        "model's {} x {}",
                        head_scores->n_layers, head_scores->n_kv_heads, model_.config().n_layers,
                        model_.config().n_kv_heads));
      if (head_scores->model_identity != model_.identity())
        throw FormatError(fmt::format("head scores of model '{}', not of this model '{}'",
                                      head_scores->model_identity, model_.identity()));
      keep = prune_head(*head_scores, ratio, n_prefix_, n_rows, n_context_, prunable);
      break;
    case PruneLevel::kKvpress:
      if (scores_.empty())
        throw InputError("prune() needs score() first (or --level head with head scores)");
      keep = prune_kvpress(scores_, ratio, n_prefix_, n_rows, prunable);
      break;
    case PruneLevel::kAdaKv:
      if (scores_.empty()) throw InputError("AdaKV pruning needs scores (set_scores) first");
      keep = prune_adakv(scores_, ratio, n_prefix_, n_rows, prunable);
      break;
    case PruneLevel::kPyramid:
      if (scores_.empty()) throw InputError("pyramid pruning needs scores (set_scores) first");
      keep =
          prune_layer_budgets(scores_, pyramid_budgets(model_.config().n_layers, n_context_, ratio),
                              n_prefix_, n_rows, prunable);
      break;
  }
  return apply_keep(keep, ratio, t0);
}

PruneResult Session::prune_threshold(float threshold, int window) {
  if (scores_.empty()) throw InputError("prune_threshold() needs scores (set_scores)");
  if (window < 0) throw InputError(fmt::format("KVzap window {} must be >= 0", window));
  auto t0 = std::chrono::steady_clock::now();
  KeepSet keep = kvz::prune_threshold(scores_, threshold, window, n_prefix_, n_prefix_ + n_context_,
                                      kv_cache_config(model_.config()).prunable);
  return apply_keep(keep, keep.kept_fraction, t0);
}

PruneResult Session::apply_keep(const KeepSet& keep, double ratio,
                                std::chrono::steady_clock::time_point t0) {
  if (retain_) {
    if (!full_cache_) full_cache_ = cache_->clone(rec_);
    cache_ = full_cache_->clone(rec_);
  }
  PruneResult r;
  r.ratio = ratio;
  r.bytes_before = cache_->bytes_in_use();
  cache_->compact(rec_, keep);
  rec_.finish();
  r.kept_fraction = keep.kept_fraction;
  kept_fraction_ = keep.kept_fraction;
  r.bytes_after = cache_->bytes_in_use();
  r.ms = ms_since(t0);
  return r;
}

void Session::set_kvzap(const KvzapModel* m, KvzapOptions o) {
  kvzap_scorer_.reset();
  kvzap_.reset();
  if (!m) return;
  check_kvzap_model(*m, model_, "KVzap surrogate");
  if (o.window < 0) throw InputError(fmt::format("KVzap window {} must be >= 0", o.window));
  kvzap_opts_ = o;
  kvzap_scorer_ = std::make_unique<KvzapScorer>(*m, model_.device(), forward_.max_tokens());
  kvzap_ = std::make_unique<KvzapEvictor>(kv_cache_config(model_.config()), o);
}

int64_t Session::kvzap_decided() const { return kvzap_ ? kvzap_->n_decided() : 0; }
int64_t Session::kvzap_evicted() const { return kvzap_ ? kvzap_->n_evicted() : 0; }

void Session::kvzap_step(std::span<const int32_t> pos) {
  const ModelConfig& c = model_.config();
  const auto n = static_cast<int64_t>(pos.size());
  // Rows of the system prefix are never pushed, so never evicted.
  int64_t first = 0;
  while (first < n && pos[static_cast<size_t>(first)] < n_prefix_) ++first;
  for (int il = 0; il < c.n_layers; ++il) {
    const std::vector<float>& sc = kvzap_scorer_->scores(il);
    if (first < n)
      kvzap_->push(il, pos.subspan(static_cast<size_t>(first)), sc.data() + first * c.n_kv_heads);
    if (kvzap_scores_.empty()) continue;
    for (int64_t t = first; t < n; ++t) {
      const int64_t j = pos[static_cast<size_t>(t)] - n_prefix_;
      if (j >= kvzap_scores_.n_ctx) continue;
      for (int ih = 0; ih < c.n_kv_heads; ++ih)
        kvzap_scores_.at(il, ih, j) = sc[static_cast<size_t>(t * c.n_kv_heads + ih)];
    }
  }
  KeepSet keep = kvzap_->decide(*cache_, next_pos_, kvzap_min_pos_);
  if (keep.rows.empty()) return;
  rec_.finish();  // the forward's last layers still read the index tensors compact rewrites
  cache_->compact(rec_, keep);
}

void Session::restore_full() {
  if (full_cache_) cache_ = full_cache_->clone(rec_);
}

void Session::set_scores(Scores s) {
  const ModelConfig& c = model_.config();
  if (s.n_ctx != n_context_ || s.n_layers != c.n_layers || s.n_kv_heads != c.n_kv_heads)
    throw InputError(fmt::format("scores of shape {}x{}x{} do not fit the {}x{}x{} context",
                                 s.n_layers, s.n_kv_heads, s.n_ctx, c.n_layers, c.n_kv_heads,
                                 n_context_));
  scores_ = std::move(s);
}

void Session::observe_tokens(std::span<const int32_t> tokens, const LayerHook& hook) {
  if (n_prefix_ + n_context_ <= 0) throw InputError("observe_tokens() needs a prefilled context");
  if (tokens.empty() || static_cast<int>(tokens.size()) > forward_.max_tokens())
    throw InputError(fmt::format("observation window of {} tokens: must be 1..{}", tokens.size(),
                                 forward_.max_tokens()));
  const int32_t saved = next_pos_;
  feed(tokens, 0, {}, &hook, forward_.max_tokens());
  cache_->drop_last(next_pos_ - saved);
  next_pos_ = saved;
}

GenerateResult Session::generate(std::string_view query, const GenerateOptions& opts) {
  std::vector<int32_t> prompt = query_tokens(query);
  return generate_tokens(prompt, opts);
}

GenerateResult Session::generate_tokens(std::span<const int32_t> prompt,
                                        const GenerateOptions& opts) {
  if (n_prefix_ + n_context_ <= 0)
    throw InputError("generate() needs prefill() or load_cache() first");
  if (prompt.empty()) throw InputError("empty query");
  if (!(opts.repeat_penalty > 0) || !(opts.min_p >= 0 && opts.min_p < 1) || opts.repeat_last_n < 0)
    throw InputError(
        fmt::format("repeat penalty {} (must be > 0), min-p {} (0..1), last n {} (>= 0)",
                    opts.repeat_penalty, opts.min_p, opts.repeat_last_n));
  const int64_t end = next_pos_ + static_cast<int64_t>(prompt.size()) + opts.max_new_tokens;
  if (end > model_.config().max_context)
    throw InputError(
        fmt::format("query of {} tokens + {} new tokens after {} cached positions exceeds the "
                    "model's {}-token context",
                    prompt.size(), opts.max_new_tokens, next_pos_, model_.config().max_context));
  const Tokenizer& tok = model_.tokenizer();
  const auto& stops = model_.chat_template().stop_ids;
  GenerateResult r;
  r.n_prompt_tokens = static_cast<int>(prompt.size());
  int32_t start_pos = next_pos_;
  Device& dev = model_.device();
  // Host-visible: the sampled ids move without a staged copy. Two, so that the host reads one
  // step's id while the next step writes the other.
  std::array<Buffer, 2> next_buf = {dev.alloc(4, MemoryKind::kReadback),
                                    dev.alloc(4, MemoryKind::kReadback)};
  const std::array<Tensor, 2> next = {next_buf[0].tensor(DType::kI32, {1}),
                                      next_buf[1].tensor(DType::kI32, {1})};
  Buffer uni_buf = dev.alloc(4);  // the uniform draw of sampling, written in stream order
  const Tensor uni = uni_buf.tensor(DType::kF32, {1});
  uint64_t rng = opts.seed * 0x9E3779B97F4A7C15ull + 1;
  // Repetition history on the device, a ring of the last repeat_last_n ids (-1 = empty): each pick
  // is copied in on the GPU, so decode ahead needs no host round trip. Seeded with the query's
  // text tokens (not its template's special tokens, which include the stop token).
  const bool penalize = opts.repeat_penalty != 1.0f && opts.repeat_last_n > 0;
  const int64_t n_hist = penalize ? opts.repeat_last_n : 0;
  Buffer hist_buf = dev.alloc(static_cast<size_t>(std::max<int64_t>(n_hist, 1)) * 4);
  const Tensor hist = hist_buf.tensor(DType::kI32, {n_hist});
  int64_t hist_slot = 0;
  if (penalize) {
    std::vector<int32_t> h(static_cast<size_t>(n_hist), -1);
    for (int32_t t : prompt)
      if (tok.token_type(t) == TokenType::kNormal) h[hist_slot++ % n_hist] = t;
    rec_.upload(hist.mem(), h.data(), h.size() * 4);
  }
  const LogitPenaltyArgs pen{{}, hist, penalize ? opts.repeat_penalty : 1.0f, opts.min_p};

  // Records the choice of the next token from the logits into `dst` and submits; returns the
  // ticket to wait for before reading dst.
  auto record_pick = [&](const Tensor& dst) -> uint64_t {
    Tensor logits = forward_.logits().slice(0, 1);
    LogitPenaltyArgs p = pen;
    p.logits = logits;
    if (opts.temperature <= 0.0f) p.min_p = 0;  // the most likely token always passes min-p
    logit_penalty(rec_, p);
    if (opts.temperature <= 0.0f) {
      argmax(rec_, {logits, dst});
    } else {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      float u = static_cast<float>(rng >> 40) / static_cast<float>(1 << 24);
      rec_.upload(uni.mem(), &u, sizeof u);
      sample(rec_, {logits, uni, dst, opts.temperature, opts.top_k, opts.top_p});
    }
    if (penalize) rec_.copy(dst, hist.slice(hist_slot++ % n_hist, 1));
    return rec_.submit();
  };
  // Decode ahead (GenerateOptions::decode_ahead): step i + 1, its embedding reading the id the
  // GPU picked, is recorded and submitted before token i is read back; the step fed with a stop
  // token is then undone. KVzap decides rows on the host after each step, so it decodes one step
  // at a time.
  const bool ahead = opts.decode_ahead && model_.device().tuning().submit.decode_ahead && !kvzap_;

  // Without update_cache only this turn's rows may be decided (they are dropped afterwards).
  const int32_t saved_min_pos = kvzap_min_pos_;
  if (!opts.update_cache) kvzap_min_pos_ = start_pos;
  auto t0 = std::chrono::steady_clock::now();
  feed(prompt, 1, {}, nullptr, 0, true);
  r.prefill_ms = ms_since(t0);
  t0 = std::chrono::steady_clock::now();
  std::string streamed;
  uint64_t ticket = record_pick(next[0]);
  for (int i = 0; i < opts.max_new_tokens; ++i) {
    const Tensor& cur = next[i % 2];
    const bool more = i + 1 < opts.max_new_tokens;
    uint64_t next_ticket = 0;
    if (ahead && more) {
      const int32_t pos = next_pos_;
      forward_.run(rec_, cur, std::span<const int32_t>(&pos, 1), *cache_, 1);
      ++next_pos_;
      next_ticket = record_pick(next[(i + 1) % 2]);
    }
    rec_.wait_for(ticket);
    int32_t id = 0;
    dev.download(cur, &id);
    const auto is = [id](const std::vector<int32_t>& ids) {
      return std::find(ids.begin(), ids.end(), id) != ids.end();
    };
    if ((!opts.ignore_eos && (is(stops) || tok.is_eog(id))) || is(opts.stop_tokens)) {
      if (ahead && more) {  // the step fed with the stop token
        rec_.wait();
        --next_pos_;
        cache_->truncate(next_pos_);
      }
      break;
    }
    r.tokens.push_back(id);
    std::string text = tok.decode(r.tokens, true);
    if (opts.on_text && text.size() > streamed.size())
      opts.on_text(std::string_view(text).substr(streamed.size()));
    streamed = text;
    if (!ahead && more) {
      feed(std::span<const int32_t>(&id, 1), 1, {}, nullptr, 0, true);
      next_ticket = record_pick(next[(i + 1) % 2]);
    }
    ticket = next_ticket;
  }
  rec_.wait();
  r.decode_ms = ms_since(t0);
  r.text = tok.decode(r.tokens, true);
  if (!opts.update_cache) {
    rec_.finish();
    cache_->truncate(start_pos);
    next_pos_ = start_pos;
    if (kvzap_) kvzap_->truncate(start_pos);
    kvzap_min_pos_ = saved_min_pos;
  }
  return r;
}

void Session::save_cache(const std::string& path) {
  if (n_prefix_ + n_context_ <= 0) throw InputError("save_cache() needs a prefilled context");
  rec_.finish();
  CacheFileMeta meta;
  meta.model_identity = model_.identity();
  meta.tokens.assign(context_tokens_.begin(), context_tokens_.end());
  meta.tokens.insert(meta.tokens.begin(), prefix_tokens_.begin(), prefix_tokens_.end());
  meta.n_prefix = n_prefix_;
  meta.n_context = n_context_;
  meta.next_pos = next_pos_;
  meta.kept_fraction = kept_fraction_;
  meta.prunable = cache_->config().prunable;
  save_cache_file(path, *cache_, meta, scores_.empty() ? nullptr : &scores_);
}

void Session::load_cache(const std::string& path) {
  rec_.finish();
  LoadedCache lc = load_cache_file(path, model_.device(), model_.identity());
  const KvCacheConfig& want = kv_cache_config(model_.config());
  const KvCacheConfig& got = lc.cache->config();
  if (got.n_layers != want.n_layers || got.n_kv_heads != want.n_kv_heads ||
      got.head_dim != want.head_dim)
    throw FormatError(fmt::format("{}: cache shape {}x{}x{} does not match the model's {}x{}x{}",
                                  path, got.n_layers, got.n_kv_heads, got.head_dim, want.n_layers,
                                  want.n_kv_heads, want.head_dim));
  const CacheFileMeta& m = lc.meta;
  if (m.n_prefix < 0 || m.n_context < 0 ||
      static_cast<int64_t>(m.tokens.size()) != m.n_prefix + m.n_context)
    throw FormatError(fmt::format("{}: token list of {} does not match prefix {} + context {}",
                                  path, m.tokens.size(), m.n_prefix, m.n_context));
  if (m.next_pos > model_.config().max_context)
    throw FormatError(fmt::format("{}: next position {} beyond the model's context of {}", path,
                                  m.next_pos, model_.config().max_context));
  for (int32_t id : m.tokens)
    if (id < 0 || id >= model_.tokenizer().n_vocab())
      throw FormatError(fmt::format("{}: token id {} outside the model's vocabulary of {}", path,
                                    id, model_.tokenizer().n_vocab()));
  cache_ = std::move(lc.cache);
  full_cache_.reset();
  if (kvzap_) kvzap_->clear();  // loaded rows were never scored: KVzap keeps them
  kvzap_scores_ = {};
  scores_ = std::move(lc.scores);
  n_prefix_ = m.n_prefix;
  n_context_ = m.n_context;
  prefix_tokens_.assign(m.tokens.begin(), m.tokens.begin() + m.n_prefix);
  context_tokens_.assign(m.tokens.begin() + m.n_prefix, m.tokens.end());
  next_pos_ = m.next_pos;
  kept_fraction_ = m.kept_fraction;
}

}  // namespace kvz
