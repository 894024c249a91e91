// The serving scheduler: admission, chunked prompt prefill, batched decode, context builds
// (server/).
#include "server/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <random>

#include "runtime/ops/sampling.h"

namespace kvz::server {
namespace {

constexpr double kRateWindowS = 10.0;  // tokens/s in the metrics: over this many seconds

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Length of the longest prefix of `s` that does not end inside a UTF-8 sequence, so that a
// streamed piece never splits a character.
size_t utf8_safe_prefix(const std::string& s, size_t n) {
  size_t back = 0;
  while (back < 4 && back < n && (static_cast<unsigned char>(s[n - 1 - back]) & 0xC0) == 0x80)
    ++back;
  if (back == n) return n;
  const auto lead = static_cast<unsigned char>(s[n - 1 - back]);
  const size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return len > back + 1 ? n - 1 - back : n;
}

}  // namespace

// ---- RequestState ----

bool RequestState::wait(std::string& out, int timeout_ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
               [&] { return done_ || !pending_.empty(); });
  out += pending_;
  pending_.clear();
  return done_;
}

void RequestState::push(std::string text) {
  std::lock_guard lock(mu_);
  pending_ += text;
  cv_.notify_all();
}

void RequestState::finish(std::string reason) {
  std::lock_guard lock(mu_);
  finish_reason = std::move(reason);
  done_ = true;
  cv_.notify_all();
}

void RequestState::fail(int status, std::string message) {
  std::lock_guard lock(mu_);
  error_status = status;
  error_message = std::move(message);
  done_ = true;
  cv_.notify_all();
}

// ---- Engine ----

// One request between admission and its end.
struct Engine::Active {
  std::shared_ptr<RequestState> state;
  std::string context_id;
  SamplingParams sampling;
  std::vector<int32_t> prompt;  // tokens after the context (all of them without one)
  size_t prefilled = 0;
  int max_tokens = 0;
  int slot = -1;  // row of ids_buf_ / uni_buf_
  // With a context: a view of its cache (the context's blocks shared, the rows this request
  // appends its own); without one: a cache of its own. `cache` is the one it runs on.
  std::unique_ptr<SharedKv::View> view;
  std::unique_ptr<KvCache> own;
  KvCache* cache = nullptr;
  size_t peak_bytes = 0;  // the most KV bytes it held of its own
  int32_t pos = 0;        // position of the next token fed
  int32_t next = -1;      // token to feed in the next decode step
  bool decoding = false, done = false;
  std::vector<int32_t> out;
  size_t sent = 0;  // bytes of the answer delivered
  uint64_t rng = 0;
};

Engine::Engine(const Model& model, EngineOptions opts)
    : model_(model),
      opts_(std::move(opts)),
      ctx_size_(opts_.ctx_size > 0 ? opts_.ctx_size : model.config().max_context),
      store_(model, opts_.cache_dir, opts_.memory_budget),
      forward_(model,
               std::max(opts_.prefill_chunk > 0 ? opts_.prefill_chunk
                                                : default_prefill_chunk(model.device()),
                        opts_.parallel),
               opts_.parallel),
      rec_(model.device()) {
  if (opts_.parallel < 1 || opts_.parallel > 1024)
    throw InputError(fmt::format("--parallel {} must be 1..1024", opts_.parallel));
  if (ctx_size_ < 32 || ctx_size_ > model.config().max_context)
    throw InputError(fmt::format("--ctx-size {} must be 32..{} (the model's context)", ctx_size_,
                                 model.config().max_context));
  if (opts_.prefill_chunk <= 0) opts_.prefill_chunk = forward_.max_tokens();
  if (opts_.build_queue < 0 || opts_.build_queue > (1 << 16))
    throw InputError(fmt::format("--build-queue {} must be 0..65536", opts_.build_queue));
  // A cache of the configured types checks them against the model (InputError: a quantised
  // type needs a head_dim that is a multiple of 32) before any request is taken.
  KvCache(model.device(), cache_config());
  if (!opts_.head_scores.empty()) {
    head_scores_ = std::make_unique<HeadScores>(HeadScores::load(opts_.head_scores));
    if (head_scores_->model_identity != model.identity())
      throw InputError(fmt::format("{}: head scores of another model", opts_.head_scores));
  }
  if (!opts_.kvzap.empty()) kvzap_ = std::make_unique<KvzapModel>(KvzapModel::load(opts_.kvzap));
  Device& dev = model.device();
  slot_stride_ = static_cast<int64_t>(std::max<size_t>(dev.caps().storage_offset_alignment, 4) / 4);
  const int64_t n_vocab = model.config().n_vocab;
  row_stride_ = (n_vocab + slot_stride_ - 1) / slot_stride_ * slot_stride_;
  const auto slots = static_cast<size_t>(opts_.parallel);
  ids_buf_ = dev.alloc(slots * static_cast<size_t>(slot_stride_) * 4, MemoryKind::kReadback);
  uni_buf_ = dev.alloc(slots * static_cast<size_t>(slot_stride_) * 4);
  rows_buf_ = dev.alloc(slots * static_cast<size_t>(row_stride_) * 4);
  store_.load_all([](const std::string& w) { fmt::print(stderr, "kvzip serve: {}\n", w); });
  thread_ = std::thread([this] { loop(); });
}

KvCacheConfig Engine::cache_config() const {
  KvCacheConfig c = kv_cache_config(model_.config());
  c.k_type = opts_.cache_type_k;
  c.v_type = opts_.cache_type_v;
  return c;
}

bool Engine::erase_context(const std::string& id) {
  if (!store_.erase(id)) return false;
  {
    std::lock_guard lock(mu_);  // the engine thread may be between its check and its wait
    wake_ = true;
  }
  cv_.notify_all();
  return true;
}

Engine::~Engine() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<RequestState> Engine::submit(const CompletionRequest& req) {
  const Tokenizer& tok = model_.tokenizer();
  auto a = std::make_unique<Active>();
  int64_t cached = 0;
  if (!req.context_id.empty()) {
    std::optional<ContextInfo> info = store_.get(req.context_id);
    if (!info) throw ApiError(404, fmt::format("context '{}' not found", req.context_id));
    a->context_id = req.context_id;
    a->pos = info->next_pos;
    cached = info->n_prefix + info->n_context;
    a->prompt = req.chat ? query_tokens(model_, req.query) : tok.encode(req.query, false, false);
  } else if (req.chat) {
    a->prompt = prefix_tokens(model_, "");
    const std::vector<int32_t> q = query_tokens(model_, req.query);
    a->prompt.insert(a->prompt.end(), q.begin(), q.end());
  } else {
    a->prompt = tok.encode(req.query, true, false);
  }
  if (a->prompt.empty()) throw ApiError(400, "the prompt encodes to no tokens");
  const int64_t used = a->pos + static_cast<int64_t>(a->prompt.size());
  if (used >= ctx_size_)
    throw ApiError(413,
                   fmt::format("the prompt needs {} tokens (with the context), over the {}-token "
                               "context size",
                               used, ctx_size_),
                   "context_length_exceeded");
  a->max_tokens =
      req.sampling.max_tokens > 0 ? req.sampling.max_tokens : static_cast<int>(ctx_size_ - used);
  if (used + a->max_tokens > ctx_size_)
    throw ApiError(413,
                   fmt::format("{} prompt tokens (with the context) + max_tokens {} exceed the "
                               "{}-token context size",
                               used, a->max_tokens, ctx_size_),
                   "context_length_exceeded");
  a->sampling = req.sampling;
  const uint64_t seed = req.sampling.has_seed ? req.sampling.seed : std::random_device{}();
  a->rng = seed * 0x9E3779B97F4A7C15ull + 1;  // Session::generate's draw sequence
  a->state = std::make_shared<RequestState>();
  a->state->prompt_tokens = static_cast<int>(used);
  a->state->cached_tokens = static_cast<int>(cached);
  std::shared_ptr<RequestState> state = a->state;
  {
    std::lock_guard lock(mu_);
    if (stop_) throw ApiError(503, "the server is shutting down");
    if (n_active_ + static_cast<int>(waiting_.size()) >= opts_.parallel + opts_.max_queue)
      throw ApiError(429,
                     fmt::format("{} requests are already waiting for one of {} slots",
                                 waiting_.size(), opts_.parallel),
                     "queue_full");
    waiting_.push_back(std::move(a));
  }
  cv_.notify_all();
  return state;
}

void Engine::loop() {
  for (;;) {
    std::deque<Job> jobs;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || wake_ || !jobs_.empty() || !waiting_.empty() || !active_.empty();
      });
      if (stop_) break;
      wake_ = false;
      jobs.swap(jobs_);
    }
    for (Job& j : jobs) j.fn();
    serve_requests();
  }
  std::lock_guard lock(mu_);
  for (auto& a : active_) a->state->fail(503, "the server is shutting down");
  for (auto& a : waiting_) a->state->fail(503, "the server is shutting down");
  active_.clear();
  waiting_.clear();
  jobs_.clear();  // their promises break: create_context reports 503
}

void Engine::serve_requests() {
  admit();
  try {
    step();
  } catch (const std::exception& e) {
    // A device failure ends the requests of this step, not the server.
    for (auto& a : active_) {
      a->state->fail(500, fmt::format("decode failed: {}", e.what()));
      a->done = true;
    }
  }
  std::erase_if(active_, [](const std::unique_ptr<Active>& a) { return a->done; });
  store_.release_erased();
  std::lock_guard lock(mu_);
  n_active_ = static_cast<int>(active_.size());
}

void Engine::between_build_chunks() {
  {
    std::lock_guard lock(mu_);
    if (stop_) throw ApiError(503, "the server is shutting down");
  }
  int64_t before = 0;
  {
    std::lock_guard lock(mu_);
    before = stats_.steps;
  }
  serve_requests();
  std::lock_guard lock(mu_);
  stats_.build_steps += stats_.steps - before;
}

void Engine::admit() {
  for (auto& a : active_)
    if (a->state->cancelled()) {
      a->done = true;
      std::lock_guard lock(mu_);
      ++stats_.requests_cancelled;
    }
  std::erase_if(active_, [](const std::unique_ptr<Active>& a) { return a->done; });
  while (static_cast<int>(active_.size()) < opts_.parallel) {
    std::unique_ptr<Active> a;
    {
      std::lock_guard lock(mu_);
      if (waiting_.empty()) break;
      a = std::move(waiting_.front());
      waiting_.pop_front();
      if (a->state->cancelled()) {
        ++stats_.requests_cancelled;
        continue;
      }
    }
    std::vector<bool> used(static_cast<size_t>(opts_.parallel), false);
    for (auto& b : active_) used[static_cast<size_t>(b->slot)] = true;
    a->slot = static_cast<int>(std::find(used.begin(), used.end(), false) - used.begin());
    try {
      start(*a);
      active_.push_back(std::move(a));
      std::lock_guard lock(mu_);
      n_active_ = static_cast<int>(active_.size());
    } catch (const ApiError& e) {
      a->state->fail(e.status(), e.what());
      std::lock_guard lock(mu_);
      ++stats_.requests_failed;
    } catch (const std::exception& e) {
      a->state->fail(500, e.what());
      std::lock_guard lock(mu_);
      ++stats_.requests_failed;
    }
  }
}

void Engine::start(Active& a) {
  if (!a.context_id.empty()) {
    a.view = store_.acquire(a.context_id)->fork(rec_);
    a.cache = &a.view->cache();
  } else {
    a.own = std::make_unique<KvCache>(model_.device(), cache_config());
    a.cache = a.own.get();
  }
  a.cache->check_capacity(a.pos + static_cast<int64_t>(a.prompt.size()) + a.max_tokens);
}

void Engine::record_pick(Active& a, const Tensor& logits_row) {
  const int64_t n_slots = opts_.parallel, n_vocab = model_.config().n_vocab;
  const Tensor dst =
      ids_buf_.tensor(DType::kI32, {n_slots * slot_stride_}).slice(a.slot * slot_stride_, 1);
  // The row is copied to this slot's aligned place first: a logits row's own offset need not
  // be aligned for binding.
  const Tensor row = rows_buf_.tensor(DType::kF32, {n_slots * row_stride_})
                         .slice(a.slot * row_stride_, n_vocab)
                         .reshape({1, n_vocab});
  rec_.copy(logits_row, row);
  const SamplingParams& p = a.sampling;
  if (p.temperature <= 0.0f) {
    argmax(rec_, {row, dst});
    return;
  }
  a.rng ^= a.rng << 13, a.rng ^= a.rng >> 7, a.rng ^= a.rng << 17;
  const float u = static_cast<float>(a.rng >> 40) / static_cast<float>(1 << 24);
  const Tensor uni =
      uni_buf_.tensor(DType::kF32, {n_slots * slot_stride_}).slice(a.slot * slot_stride_, 1);
  rec_.upload(uni.mem(), &u, sizeof u);
  sample(rec_, {row, uni, dst, p.temperature, p.top_k, p.top_p});
}

size_t Engine::own_bytes(const Active& a) {
  return a.view ? a.view->own_bytes() : a.own ? a.own->bytes_allocated() : 0;
}

bool Engine::reserve(Active& a, int n_tokens) {
  if (!a.view) return true;
  try {
    a.view->reserve(n_tokens);
    return true;
  } catch (const std::exception& e) {
    a.state->fail(503, fmt::format("no room for the request's KV rows: {}", e.what()));
    a.done = true;
    std::lock_guard lock(mu_);
    ++stats_.requests_failed;
    return false;
  }
}

bool Engine::step() {
  if (active_.empty()) {
    std::lock_guard lock(mu_);  // the last requests may have left without a step (cancelled)
    request_bytes_ = outside_bytes_ = 0;
    return false;
  }
  std::vector<Active*> picked;
  // Prompts: at most prefill_chunk tokens per step over all joining requests, so the decoding
  // ones wait at most one chunk's forward between their tokens.
  int budget = opts_.prefill_chunk;
  std::vector<std::pair<Active*, int>> chunks;
  for (auto& ap : active_) {
    Active& a = *ap;
    if (a.decoding || budget <= 0) continue;
    const size_t left = a.prompt.size() - a.prefilled;
    const int m = static_cast<int>(std::min<size_t>(left, static_cast<size_t>(budget)));
    chunks.emplace_back(&a, m);
    budget -= m;
  }
  // Views take the blocks of this step's appends before anything is recorded: taking them may
  // reallocate their context's pools, which recorded work would read.
  std::erase_if(chunks, [&](const auto& c) { return !reserve(*c.first, c.second); });
  for (auto& ap : active_)
    if (ap->decoding && !reserve(*ap, 1)) ap->decoding = false;
  int64_t n_prompt = 0;
  std::vector<int32_t> pos;
  for (auto [ap, m] : chunks) {
    Active& a = *ap;
    const size_t left = a.prompt.size() - a.prefilled;
    pos.resize(static_cast<size_t>(m));
    for (int i = 0; i < m; ++i) pos[static_cast<size_t>(i)] = a.pos + i;
    const bool last = static_cast<size_t>(m) == left;
    forward_.run(rec_, std::span<const int32_t>(a.prompt).subspan(a.prefilled, m), pos, *a.cache,
                 last ? 1 : 0);
    a.pos += m;
    a.prefilled += static_cast<size_t>(m);
    n_prompt += m;
    if (last) {
      record_pick(a, forward_.logits().slice(0, 1));
      picked.push_back(&a);
    }
  }
  // Decode: one token for every request that has one, in one batched forward.
  std::vector<Active*> dec;
  for (auto& ap : active_)
    if (ap->decoding) dec.push_back(ap.get());
  if (!dec.empty()) {
    std::vector<int32_t> tokens, positions;
    std::vector<KvCache*> caches;
    for (Active* a : dec) {
      tokens.push_back(a->next);
      positions.push_back(a->pos++);
      caches.push_back(a->cache);
    }
    forward_.run_batch(rec_, tokens, positions, caches);
    for (size_t i = 0; i < dec.size(); ++i) {
      record_pick(*dec[i], forward_.logits().slice(static_cast<int64_t>(i), 1));
      picked.push_back(dec[i]);
    }
  }
  rec_.submit();
  rec_.wait();
  const int64_t n_ids = opts_.parallel * slot_stride_;
  std::vector<int32_t> ids(static_cast<size_t>(n_ids));
  model_.device().download(ids_buf_.tensor(DType::kI32, {n_ids}), ids.data());
  for (Active* a : picked) handle_token(*a, ids[static_cast<size_t>(a->slot * slot_stride_)]);
  size_t own = 0, outside = 0;  // requests' own bytes; the part not in a context's pools
  for (auto& a : active_) {
    const size_t b = own_bytes(*a);
    a->peak_bytes = std::max(a->peak_bytes, b);
    own += b;
    outside += a->view ? a->view->index_bytes() : b;
  }
  std::lock_guard lock(mu_);
  stats_.prompt_tokens += n_prompt;
  stats_.generated_tokens += static_cast<int64_t>(picked.size());
  if (!dec.empty()) {
    ++stats_.steps;
    stats_.batched_rows += static_cast<int64_t>(dec.size());
  }
  const double t = now_s();
  rate_.emplace_back(t, static_cast<int64_t>(picked.size()));
  while (rate_.front().first < t - kRateWindowS) rate_.pop_front();
  request_bytes_ = own;
  outside_bytes_ = outside;
  n_active_ = static_cast<int>(active_.size());
  return true;
}

void Engine::handle_token(Active& a, int32_t id) {
  const Tokenizer& tok = model_.tokenizer();
  const auto& stops = model_.chat_template().stop_ids;
  a.decoding = false;
  if (!a.sampling.ignore_eos &&
      (std::find(stops.begin(), stops.end(), id) != stops.end() || tok.is_eog(id))) {
    finish(a, "stop");
    return;
  }
  a.out.push_back(id);
  const std::string text = tok.decode(a.out, true);
  // A stop sequence ends the answer before it; text that could still become one is held back.
  size_t hold = 0, cut = std::string::npos;
  for (const std::string& s : a.sampling.stop) {
    hold = std::max(hold, s.size() - 1);
    const size_t from = a.sent > s.size() ? a.sent - s.size() : 0;
    if (size_t at = text.find(s, from); at != std::string::npos) cut = std::min(cut, at);
  }
  const bool length = static_cast<int>(a.out.size()) >= a.max_tokens || a.pos >= ctx_size_;
  const bool end = cut != std::string::npos || length;
  size_t deliver = cut != std::string::npos ? cut
                   : end                    ? text.size()
                         : utf8_safe_prefix(text, text.size() - std::min(hold, text.size()));
  if (deliver > a.sent) {
    a.state->push(text.substr(a.sent, deliver - a.sent));
    a.sent = deliver;
  }
  if (cut != std::string::npos) {
    finish(a, "stop");
  } else if (length) {
    finish(a, "length");
  } else {
    a.next = id;
    a.decoding = true;
  }
}

void Engine::finish(Active& a, const std::string& reason) {
  a.state->completion_tokens = static_cast<int>(a.out.size());
  a.state->finish(reason);
  a.done = true;
  a.peak_bytes = std::max(a.peak_bytes, own_bytes(a));
  a.cache = nullptr;
  a.view.reset();
  a.own.reset();
  std::lock_guard lock(mu_);
  ++stats_.requests_done;
  stats_.last_request_kv_bytes = a.peak_bytes;
}

ContextInfo Engine::create_context(
    const ContextRequest& req,
    const std::function<void(const std::string&, int64_t, int64_t)>& progress) {
  auto done = std::make_shared<std::promise<ContextInfo>>();
  std::future<ContextInfo> fut = done->get_future();
  auto build = [this, req, progress]() -> ContextInfo {
    if (req.method == ContextMethod::kKvzap && !kvzap_)
      throw ApiError(400, "method 'kvzap' needs the server started with --kvzap FILE");
    if (req.method == ContextMethod::kKvzipHead && !head_scores_)
      throw ApiError(400, "method 'kvzip_head' needs the server started with --head-scores FILE");
    const std::vector<int32_t> prefix = prefix_tokens(model_, kInstructionQa);
    const std::vector<int32_t> ctx = model_.tokenizer().encode(req.text, false, false);
    const auto total = static_cast<int64_t>(prefix.size() + ctx.size());
    if (total + 16 > ctx_size_)
      throw ApiError(413,
                     fmt::format("the context is {} tokens with the system prefix, over the "
                                 "{}-token context size (with room for a question)",
                                 total, ctx_size_),
                     "context_length_exceeded");
    SessionOptions so;
    so.prefill_chunk = opts_.prefill_chunk;
    so.cache_type_k = opts_.cache_type_k;
    so.cache_type_v = opts_.cache_type_v;
    Session s(model_, so);
    if (req.method == ContextMethod::kKvzap) {
      KvzapOptions ko;
      ko.threshold = req.threshold;
      s.set_kvzap(kvzap_.get(), ko);
    }
    // After every chunk (the session's work finished), the active requests run one step: a
    // build stalls them by one chunk's forward at most, not by the whole build.
    auto phase = [&](const char* name) -> ProgressFn {
      return [this, &progress, name](int64_t d, int64_t t) {
        if (progress) progress(name, d, t);
        between_build_chunks();
      };
    };
    s.prefill_tokens(prefix, ctx, phase("prefill"));
    ContextInfo info;
    info.full_bytes = s.cache().bytes_in_use();
    info.kept_fraction = 1.0;
    info.ratio = req.ratio;
    if (req.method == ContextMethod::kKvzip && req.ratio < 1.0) {
      s.score({}, phase("score"));
      info.kept_fraction = s.prune(req.ratio).kept_fraction;
    } else if (req.method == ContextMethod::kKvzipHead && req.ratio < 1.0) {
      info.kept_fraction = s.prune(req.ratio, PruneLevel::kHead, head_scores_.get()).kept_fraction;
    } else if (req.method == ContextMethod::kKvzap) {
      const ModelConfig& c = model_.config();
      const double pairs = static_cast<double>(s.n_context()) * c.n_layers * c.n_kv_heads;
      info.kept_fraction = pairs > 0 ? 1.0 - static_cast<double>(s.kvzap_evicted()) / pairs : 1.0;
      info.ratio = info.kept_fraction;
      s.set_kvzap(nullptr);
    } else {
      info.ratio = 1.0;
    }
    info.id = store_.new_id();
    info.method = method_name(req.method);
    info.n_prefix = s.n_prefix();
    info.n_context = s.n_context();
    info.next_pos = static_cast<int32_t>(total);
    info.created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
    info.bytes = s.cache().bytes_in_use();
    if (const std::string path = store_.cache_path(info.id); !path.empty()) s.save_cache(path);
    return store_.add(info, s.cache().clone(rec_));
  };
  int ahead = 0;
  {
    std::lock_guard lock(mu_);
    if (stop_) throw ApiError(503, "the server is shutting down");
    // Builds run one at a time on the engine thread (each would otherwise compete for the
    // device and its memory); a bounded number wait, each holding an HTTP thread meanwhile.
    check_build_room_locked();
    ahead = builds_++;
  }
  // Before the job is queued, so that it comes before the build's own progress.
  if (ahead > 0 && progress) progress("queued", ahead, ahead);
  {
    std::lock_guard lock(mu_);
    if (stop_) {
      --builds_;
      throw ApiError(503, "the server is shutting down");
    }
    jobs_.push_back({[this, done, build] {
      {
        std::lock_guard l(mu_);
        build_running_ = true;
      }
      std::optional<ContextInfo> info;
      std::exception_ptr error;
      try {
        info = build();
      } catch (...) {
        error = std::current_exception();
      }
      {
        // Counted out before the caller hears of it: its next build finds this one gone.
        std::lock_guard l(mu_);
        build_running_ = false;
        --builds_;
      }
      if (error)
        done->set_exception(error);
      else
        done->set_value(std::move(*info));
    }});
  }
  cv_.notify_all();
  try {
    return fut.get();
  } catch (const std::future_error&) {
    throw ApiError(503, "the server stopped before the context was built");
  }
}

void Engine::check_build_room_locked() const {
  if (builds_ > opts_.build_queue)
    throw ApiError(429,
                   fmt::format("a context build is running and {} more are waiting (at most {} "
                               "may wait); try again when one has finished",
                               builds_ - 1, opts_.build_queue),
                   "build_queue_full");
}

void Engine::check_build_room() const {
  std::lock_guard lock(mu_);
  check_build_room_locked();
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mu_);
  EngineStats s = stats_;
  const double t = now_s(), window = kRateWindowS;
  int64_t n = 0;
  double first = t;
  for (const auto& [when, k] : rate_)
    if (when >= t - window) {
      n += k;
      first = std::min(first, when);
    }
  s.decode_tokens_per_s = n > 0 ? static_cast<double>(n) / std::max(t - first, 1.0) : 0.0;
  s.active = n_active_;
  s.waiting = static_cast<int>(waiting_.size());
  const ContextStore::Bytes b = store_.bytes();
  s.kv_bytes = outside_bytes_ + b.resident + b.pending;
  s.evicted_pending_bytes = b.pending;
  s.contexts_evicted_pending = b.n_pending;
  s.builds_running = build_running_ ? 1 : 0;
  s.builds_waiting = builds_ - s.builds_running;
  s.request_kv_bytes = request_bytes_;
  s.contexts_resident = store_.resident_count();
  s.contexts_total = static_cast<int>(store_.list().size());
  return s;
}

}  // namespace kvz::server
