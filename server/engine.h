// Engine: the scheduler of `kvzip serve` (server/). One thread owns the device and runs steps:
// between steps requests join (their prompt is prefilled in chunks, interleaved with the others'
// decode) and leave (finished, failed or cancelled); in each step every decoding request gets
// one token from one batched forward (Forward::run_batch), each over its own ragged cache view:
// its context's compressed blocks shared read-only plus the rows it appends (kvzip/kv_share.h),
// dropped when it leaves, so a context is never modified by a request. Context builds (prefill +
// scoring + pruning) run on the same thread, one step of the active requests after each of their
// chunks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/forward.h"
#include "model/model.h"
#include "model/session.h"
#include "server/api.h"
#include "server/contexts.h"

namespace kvz::server {

struct EngineOptions {
  int parallel = 4;          // requests decoded together
  int max_queue = 64;        // requests waiting for a free slot before 429
  int ctx_size = 0;          // tokens per sequence (context + prompt + answer); 0: the model's
  int prefill_chunk = 0;     // prompt tokens per step (all joining requests together); 0: default
  std::string cache_dir;     // contexts as files (reloaded at start); empty: memory only
  size_t memory_budget = 0;  // bytes of resident context caches; 0: no limit
  std::string head_scores;   // head-score file for method kvzip_head (optional)
  std::string kvzap;         // KVzap weights for method kvzap (optional)
  // Storage types of the K and V rows of every cache the engine builds (contexts and requests
  // without one): f16, q8_0 or q4_0. Contexts loaded from files keep the types they were built
  // with.
  DType cache_type_k = DType::kF16, cache_type_v = DType::kF16;
  int build_queue = 4;  // context builds waiting while one runs before 429
};

// What a request produced so far, read by the HTTP thread that serves it. Text arrives in pieces
// (a stream); done() once finished, with the reason or an error.
class RequestState {
 public:
  // Waits up to `timeout_ms` for news; moves new text into `out`. Returns true when finished
  // (everything was delivered).
  bool wait(std::string& out, int timeout_ms);
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Set once finished (read after wait() returned true).
  std::string finish_reason;  // "stop" | "length"
  int error_status = 0;       // 0: no error
  std::string error_message;
  int prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;

  // Engine side.
  void push(std::string text);
  void finish(std::string reason);
  void fail(int status, std::string message);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool done_ = false;
  std::atomic<bool> cancelled_{false};
};

struct EngineStats {
  int64_t requests_done = 0, requests_failed = 0, requests_cancelled = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double decode_tokens_per_s = 0;  // over the last few seconds
  int active = 0, waiting = 0;
  // Contexts in memory (resident, and evicted or deleted ones requests still read; with the
  // blocks their views took) + requests' own outside them.
  size_t kv_bytes = 0;
  size_t request_kv_bytes = 0;  // the active requests' own KV bytes (SharedKv::View::own_bytes)
  size_t last_request_kv_bytes = 0;  // the most own KV bytes the last finished request held
  int contexts_resident = 0, contexts_total = 0;
  int64_t steps = 0, batched_rows = 0;  // decode steps and the rows they ran
  int64_t build_steps = 0;              // decode steps run between the chunks of context builds
  size_t evicted_pending_bytes = 0;     // evicted/deleted contexts that requests still read
  int contexts_evicted_pending = 0;
  int builds_running = 0, builds_waiting = 0;  // context builds
};

class Engine {
 public:
  Engine(const Model& model, EngineOptions opts);
  ~Engine();  // stops the thread; waiting and active requests fail with 503
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Model& model() const { return model_; }
  int ctx_size() const { return ctx_size_; }
  ContextStore& contexts() { return store_; }
  // The configuration of the caches the engine builds (its K and V types).
  KvCacheConfig cache_config() const;
  // Deletes a context (false if unknown) and wakes the engine thread, which frees its cache at
  // once unless requests still read it.
  bool erase_context(const std::string& id);

  // Tokenises and checks the request, then queues it. Throws ApiError: 404 unknown context, 413
  // longer than ctx_size, 429 queue full, 503 stopping.
  std::shared_ptr<RequestState> submit(const CompletionRequest& req);

  // Builds a context on the engine thread and waits for it; `progress` (phase, done, total) is
  // called on the engine thread. Builds run one at a time: one waiting for another first reports
  // the phase "queued" (done: builds ahead of it; called on the calling thread). Throws ApiError
  // (400 method not available, 413 too long, 429 build_queue builds already waiting).
  ContextInfo create_context(
      const ContextRequest& req,
      const std::function<void(const std::string&, int64_t, int64_t)>& progress = {});

  // Throws the ApiError(429) create_context would throw now for a full build queue (a streamed
  // build checks first, so that it is refused with a status rather than an event).
  void check_build_room() const;

  EngineStats stats() const;

 private:
  struct Active;
  struct Job {
    std::function<void()> fn;
  };
  void loop();
  // Admits waiting requests, runs one step, drops the finished ones.
  void serve_requests();
  // Called by a context build between its chunks: one serve_requests(); throws ApiError(503)
  // when the server is stopping (the build is abandoned).
  void between_build_chunks();
  void admit();
  bool step();
  void start(Active& a);
  void handle_token(Active& a, int32_t id);
  void finish(Active& a, const std::string& reason);
  void record_pick(Active& a, const Tensor& logits_row);
  // Takes the blocks of an append of n_tokens for a request's view; on failure (no room under
  // the device's binding limit) the request ends with 503 and false is returned.
  bool reserve(Active& a, int n_tokens);
  static size_t own_bytes(const Active& a);
  void check_build_room_locked() const;  // mu_ held

  const Model& model_;
  EngineOptions opts_;
  int ctx_size_;
  ContextStore store_;
  Forward forward_;
  Recorder rec_;
  // Per slot, at offsets aligned for binding (slot_stride_ elements apart): the picked id
  // (readback), the uniform draw of sampling, and a copy of the logits row it samples from.
  int64_t slot_stride_ = 1, row_stride_ = 0;
  Buffer ids_buf_, uni_buf_;  // [parallel * slot_stride_] i32, f32
  Buffer rows_buf_;           // [parallel * row_stride_] f32 (n_vocab used of each)
  std::vector<std::unique_ptr<Active>> active_;
  std::unique_ptr<HeadScores> head_scores_;
  std::unique_ptr<KvzapModel> kvzap_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Active>> waiting_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  bool wake_ = false;  // a context was deleted: the engine thread releases it
  int builds_ = 0;     // context builds submitted and not finished (one runs, the others wait)
  bool build_running_ = false;
  EngineStats stats_;
  std::deque<std::pair<double, int64_t>> rate_;   // (seconds, tokens) of recent steps
  size_t request_bytes_ = 0, outside_bytes_ = 0;  // of the active requests (step())
  int n_active_ = 0;
  std::thread thread_;  // last: started after everything it reads
};

}  // namespace kvz::server
