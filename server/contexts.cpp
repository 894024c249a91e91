// Compressed contexts: metadata, cache files, LRU residency (server/).
#include "server/contexts.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "kvzip/cache_file.h"
#include "model/forward.h"
#include "runtime/atomic_file.h"
#include "server/api.h"

namespace kvz::server {
namespace fs = std::filesystem;
using nlohmann::json;

json ContextInfo::to_json() const {
  return {{"id", id},
          {"object", "context"},
          {"created", created},
          {"method", method},
          {"ratio", ratio},
          {"kept_fraction", kept_fraction},
          {"n_prefix_tokens", n_prefix},
          {"n_context_tokens", n_context},
          {"kv_bytes", bytes},
          {"kv_bytes_full", full_bytes},
          {"cache_type_k", cache_type_k},
          {"cache_type_v", cache_type_v},
          {"resident", resident}};
}

namespace {

ContextInfo info_from_json(const json& j) {
  ContextInfo c;
  c.id = j.at("id").get<std::string>();
  c.method = j.at("method").get<std::string>();
  c.ratio = j.at("ratio").get<double>();
  c.kept_fraction = j.at("kept_fraction").get<double>();
  c.n_prefix = j.at("n_prefix_tokens").get<int64_t>();
  c.n_context = j.at("n_context_tokens").get<int64_t>();
  c.next_pos = j.at("next_pos").get<int32_t>();
  c.created = j.at("created").get<int64_t>();
  c.bytes = j.at("kv_bytes").get<size_t>();
  c.full_bytes = j.at("kv_bytes_full").get<size_t>();
  return c;
}

// The cache's own types are the truth (sidecars written before they were recorded lack them).
void set_types(ContextInfo& c, const KvCache& cache) {
  c.cache_type_k = dtype_name(cache.config().k_type);
  c.cache_type_v = dtype_name(cache.config().v_type);
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char ch : id)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
  return true;
}

}  // namespace

ContextStore::ContextStore(const Model& model, std::string cache_dir, size_t budget_bytes)
    : model_(model), dir_(std::move(cache_dir)), budget_(budget_bytes) {
  if (dir_.empty()) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_))
    throw InputError(fmt::format("--cache-dir {}: cannot create the folder ({})", dir_,
                                 ec ? ec.message() : "not a folder"));
}

std::string ContextStore::cache_path(const std::string& id) const {
  return dir_.empty() ? std::string() : (fs::path(dir_) / (id + ".kvzc")).string();
}

std::string ContextStore::meta_path(const std::string& id) const {
  return (fs::path(dir_) / (id + ".json")).string();
}

std::string ContextStore::new_id() const {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("ctx-{:016x}", rng());
}

// The sidecar goes through the one atomic writer: a crash never leaves half of one.
void ContextStore::write_meta(const ContextInfo& info) const {
  json j = info.to_json();
  j.erase("resident");
  j["next_pos"] = info.next_pos;
  j["model"] = model_.identity();
  write_file_atomic(meta_path(info.id), j.dump(1) + "\n");
}

void ContextStore::load_all(const std::function<void(const std::string&)>& warn) {
  if (dir_.empty()) return;
  std::vector<fs::path> metas;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().extension() == ".json") metas.push_back(e.path());
  std::sort(metas.begin(), metas.end());
  for (const fs::path& p : metas) {
    try {
      std::ifstream f(p);
      const json j = json::parse(f);
      if (j.value("model", "") != model_.identity()) {
        warn(fmt::format("{}: a context of another model, skipped", p.string()));
        continue;
      }
      ContextInfo info = info_from_json(j);
      if (!valid_id(info.id) || p.stem().string() != info.id)
        throw FormatError("the id does not match the file name");
      // Loading checks the file (checksum, model identity) before the context is offered.
      LoadedCache lc = load_cache_file(cache_path(info.id), model_.device(), model_.identity());
      std::lock_guard lock(mu_);
      Entry& e = entries_[info.id];
      info.resident = true;
      set_types(info, *lc.cache);
      e.info = info;
      e.cache = SharedKv::make(std::move(lc.cache));
      e.last_use = ++clock_;
    } catch (const std::exception& ex) {
      warn(fmt::format("{}: not loaded: {}", p.string(), ex.what()));
    }
  }
  {
    std::lock_guard lock(mu_);
    make_room({});
  }
  release_erased();  // counts what was loaded
}

ContextInfo ContextStore::add(ContextInfo info, std::unique_ptr<KvCache> cache) {
  set_types(info, *cache);
  if (!dir_.empty()) write_meta(info);
  std::lock_guard lock(mu_);
  if (dir_.empty() && budget_ > 0 && resident_bytes_locked() + cache->bytes_allocated() > budget_)
    throw ApiError(503,
                   "the memory budget is full and contexts cannot be evicted without --cache-dir");
  info.resident = true;
  Entry& e = entries_[info.id];
  e.info = info;
  e.cache = SharedKv::make(std::move(cache));
  e.last_use = ++clock_;
  make_room(info.id);
  recount_locked();
  return e.info;
}

std::shared_ptr<SharedKv> ContextStore::acquire(const std::string& id) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) throw ApiError(404, fmt::format("context '{}' not found", id));
  it->second.last_use = ++clock_;
  if (!it->second.cache) {
    const std::string path = cache_path(id);
    lock.unlock();  // the file load may take a while; list() and get() go on meanwhile
    LoadedCache lc = load_cache_file(path, model_.device(), model_.identity());
    lock.lock();
    it = entries_.find(id);
    if (it == entries_.end()) throw ApiError(404, fmt::format("context '{}' was deleted", id));
    it->second.cache = SharedKv::make(std::move(lc.cache));
    it->second.info.resident = true;
    make_room(id);
    recount_locked();
  }
  return it->second.cache;
}

void ContextStore::make_room(const std::string& keep) {
  if (budget_ == 0 || dir_.empty()) return;
  while (resident_bytes_locked() > budget_) {
    Entry* victim = nullptr;
    for (auto& [id, e] : entries_)
      if (e.cache && id != keep && (!victim || e.last_use < victim->last_use)) victim = &e;
    if (!victim) return;  // only `keep` is resident: it stays (a request needs it)
    erased_.push_back(std::move(victim->cache));
    victim->info.resident = false;
  }
}

std::vector<ContextInfo> ContextStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<ContextInfo> out;
  for (const auto& [id, e] : entries_) out.push_back(e.info);
  std::sort(out.begin(), out.end(),
            [](const ContextInfo& a, const ContextInfo& b) { return a.created < b.created; });
  return out;
}

std::optional<ContextInfo> ContextStore::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.info;
}

bool ContextStore::erase(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  if (it->second.cache) erased_.push_back(std::move(it->second.cache));
  entries_.erase(it);
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove(meta_path(id), ec);  // the sidecar first: a cache file alone is never offered
    fs::remove(cache_path(id), ec);
  }
  return true;
}

void ContextStore::release_erased() {
  std::vector<std::shared_ptr<SharedKv>> drop;
  {
    std::lock_guard lock(mu_);
    drop.swap(erased_);
  }
  for (const auto& c : drop) pending_.emplace_back(c);
  drop.clear();  // caches no request views are freed here
  std::erase_if(pending_, [](const std::weak_ptr<SharedKv>& w) { return w.expired(); });
  std::lock_guard lock(mu_);
  recount_locked();
}

void ContextStore::recount_locked() {
  Bytes b;
  b.resident = resident_bytes_locked();
  auto add = [&b](const SharedKv& c) {
    b.pending += c.base().bytes_allocated();
    ++b.n_pending;
  };
  for (const auto& c : erased_) add(*c);  // not released yet
  for (const auto& w : pending_)
    if (std::shared_ptr<SharedKv> c = w.lock()) add(*c);  // its views hold it: not the last one
  bytes_ = b;
}

size_t ContextStore::resident_bytes_locked() const {
  size_t n = 0;
  for (const auto& [id, e] : entries_)
    if (e.cache) n += e.cache->base().bytes_allocated();
  return n;
}

ContextStore::Bytes ContextStore::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

int ContextStore::resident_count() const {
  std::lock_guard lock(mu_);
  int n = 0;
  for (const auto& [id, e] : entries_) n += e.cache ? 1 : 0;
  return n;
}

}  // namespace kvz::server
