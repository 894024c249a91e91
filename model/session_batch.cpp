// Session::generate_batch (session.h): several answers from one cache, one batched forward per
// decode step.
#include <algorithm>
#include <chrono>

#include "model/session.h"
#include "model/slot_picks.h"

namespace kvz {

std::vector<GenerateResult> Session::generate_batch(std::span<const std::vector<int32_t>> prompts,
                                                    const GenerateOptions& opts,
                                                    std::span<const KvCache* const> from) {
  if (!from.empty() && from.size() != prompts.size())
    throw InputError(fmt::format("{} starting caches for {} prompts", from.size(), prompts.size()));
  for (const KvCache* c : from)
    if (!c) throw InputError("generate_batch: a starting cache is missing");
  const bool plain = opts.temperature <= 0.0f && opts.repeat_penalty == 1.0f &&
                     opts.min_p == 0.0f && !opts.update_cache && opts.stop_tokens.empty() &&
                     !opts.on_text && !kvzap_;
  std::vector<GenerateResult> out(prompts.size());
  if (!plain || opts_.max_batch < 2 || prompts.size() < 2) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (from.empty()) {
        out[i] = generate_tokens(prompts[i], opts);
        continue;
      }
      // One at a time from its own cache: the current one steps aside meanwhile.
      std::unique_ptr<KvCache> own = from[i]->clone(rec_);
      std::swap(cache_, own);
      try {
        out[i] = generate_tokens(prompts[i], opts);
      } catch (...) {
        std::swap(cache_, own);
        throw;
      }
      std::swap(cache_, own);
    }
    return out;
  }
  const auto group = static_cast<size_t>(opts_.max_batch);
  for (size_t b = 0; b < prompts.size(); b += group) {
    const size_t n = std::min(prompts.size() - b, group);
    generate_group(prompts.subspan(b, n), opts, from.empty() ? from : from.subspan(b, n),
                   std::span<GenerateResult>(out).subspan(b, n));
  }
  return out;
}

std::unique_ptr<KvCache> Session::copy_cache() {
  std::unique_ptr<KvCache> c = cache_->clone(rec_);
  rec_.finish();
  return c;
}

void Session::generate_group(std::span<const std::vector<int32_t>> prompts,
                             const GenerateOptions& opts, std::span<const KvCache* const> from,
                             std::span<GenerateResult> out) {
  if (n_prefix_ + n_context_ <= 0)
    throw InputError("generate() needs prefill() or load_cache() first");
  const int64_t longest = static_cast<int64_t>(
      std::max_element(prompts.begin(), prompts.end(), [](const auto& a, const auto& b) {
        return a.size() < b.size();
      })->size());
  for (const auto& p : prompts)
    if (p.empty()) throw InputError("empty query");
  if (next_pos_ + longest + opts.max_new_tokens > model_.config().max_context)
    throw InputError(fmt::format(
        "query of {} tokens + {} new tokens after {} cached positions exceeds the model's "
        "{}-token context",
        longest, opts.max_new_tokens, next_pos_, model_.config().max_context));
  rec_.finish();
  Device& dev = model_.device();
  const Tokenizer& tok = model_.tokenizer();
  const auto& stops = model_.chat_template().stop_ids;
  // One slot per prompt: its picked id and logits row.
  const SlotPicks picks(dev, static_cast<int64_t>(prompts.size()), model_.config().n_vocab);
  auto pick = [&](size_t slot, const Tensor& logits_row) {
    picks.record_argmax(rec_, static_cast<int64_t>(slot), logits_row);
  };

  auto t0 = std::chrono::steady_clock::now();
  // Prompts: each on its own copy of the cache, in forwards of at most max_tokens rows.
  std::vector<std::unique_ptr<KvCache>> caches(prompts.size());
  std::vector<int32_t> pos_of(prompts.size());
  std::vector<int32_t> pos;
  for (size_t i = 0; i < prompts.size(); ++i) {
    caches[i] = (from.empty() ? cache_.get() : from[i])->clone(rec_);
    caches[i]->check_capacity(next_pos_ + static_cast<int64_t>(prompts[i].size()) +
                              opts.max_new_tokens);
    const std::span<const int32_t> p = prompts[i];
    int32_t at = next_pos_;
    for (size_t done = 0; done < p.size();) {
      const size_t m = std::min(p.size() - done, static_cast<size_t>(forward_.max_tokens()));
      pos.resize(m);
      for (size_t j = 0; j < m; ++j) pos[j] = at + static_cast<int32_t>(j);
      const bool last = done + m == p.size();
      forward_.run(rec_, p.subspan(done, m), pos, *caches[i], last ? 1 : 0);
      at += static_cast<int32_t>(m);
      done += m;
    }
    pos_of[i] = at;
    out[i].n_prompt_tokens = static_cast<int>(p.size());
    pick(i, forward_.logits().slice(0, 1));
  }

  // The prompts' work runs to its end here, so the two phases are timed apart.
  rec_.submit();
  rec_.wait();
  const double prompt_ms = ms_since(t0);
  t0 = std::chrono::steady_clock::now();

  // Decode: one batched forward per step over the answers that go on.
  std::vector<size_t> live(prompts.size());
  for (size_t i = 0; i < live.size(); ++i) live[i] = i;
  for (int step = 0; step < opts.max_new_tokens && !live.empty(); ++step) {
    rec_.submit();
    rec_.wait();
    const std::vector<int32_t> got = picks.read();
    std::vector<int32_t> tokens, positions;
    std::vector<KvCache*> run;
    std::vector<size_t> next_live;
    for (size_t i : live) {
      const int32_t id = got[i];
      if (!opts.ignore_eos &&
          (std::find(stops.begin(), stops.end(), id) != stops.end() || tok.is_eog(id)))
        continue;
      out[i].tokens.push_back(id);
      if (step + 1 == opts.max_new_tokens) continue;
      tokens.push_back(id);
      positions.push_back(pos_of[i]++);
      run.push_back(caches[i].get());
      next_live.push_back(i);
    }
    live = std::move(next_live);
    if (live.empty()) break;
    forward_.run_batch(rec_, tokens, positions, run);
    for (size_t j = 0; j < live.size(); ++j)
      pick(live[j], forward_.logits().slice(static_cast<int64_t>(j), 1));
  }
  rec_.finish();
  const double decode_ms = ms_since(t0), n = static_cast<double>(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    out[i].text = tok.decode(out[i].tokens, true);
    out[i].prefill_ms = prompt_ms / n;
    out[i].decode_ms = decode_ms / n;
  }
}

}  // namespace kvz
