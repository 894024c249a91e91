// Routes of `kvzip serve` over cpp-httplib (server/).
#include "server/http_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

namespace kvz::server {
namespace {

using nlohmann::json;

constexpr time_t kIoTimeoutS = 60;  // reading a request, writing a response

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string new_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{}-{:016x}", prefix, rng());
}

void send_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& code = {}) {
  send_json(res, error_body(status, message, code), status);
}

const char* default_message(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "no such route";
    case 405:
      return "method not allowed";
    case 413:
      return "request body too large";
    case 414:
      return "request URI too long";
    case 431:
      return "request header too large";
    default:
      return "request failed";
  }
}

json usage_json(const RequestState& st) {
  return {{"prompt_tokens", st.prompt_tokens},
          {"completion_tokens", st.completion_tokens},
          {"total_tokens", st.prompt_tokens + st.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", st.cached_tokens}}}};
}

// One SSE event.
std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace

struct HttpServer::Impl {
  Engine& engine;
  HttpOptions opts;
  httplib::Server http;
  std::mutex mu;
  std::map<int, int64_t> by_status;  // HTTP responses per status code
  int64_t started_at = unix_now();

  Impl(Engine& e, HttpOptions o) : engine(e), opts(std::move(o)) {}

  void check_model(const std::string& m) const {
    if (!m.empty() && m != opts.model_id)
      throw ApiError(
          404, fmt::format("model '{}' not found (this server serves '{}')", m, opts.model_id),
          "model_not_found");
  }

  // The object a finished completion returns.
  json completion_json(bool chat, const std::string& id, int64_t created, const std::string& text,
                       const RequestState& st) const {
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", st.finish_reason}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    else
      choice["text"] = text;
    return {{"id", id},
            {"object", chat ? "chat.completion" : "text_completion"},
            {"created", created},
            {"model", opts.model_id},
            {"choices", json::array({choice})},
            {"usage", usage_json(st)}};
  }

  json chunk_json(bool chat, const std::string& id, int64_t created, const json& delta_or_text,
                  const json& finish) const {
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
    if (chat)
      choice["delta"] = delta_or_text;
    else
      choice["text"] = delta_or_text;
    return {{"id", id},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", opts.model_id},
            {"choices", json::array({choice})}};
  }

  void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    const CompletionRequest cr = parse_completion(req.body, chat);
    check_model(cr.model);
    std::shared_ptr<RequestState> st = engine.submit(cr);
    const std::string id = new_id(chat ? "chatcmpl" : "cmpl");
    const int64_t created = unix_now();
    if (!cr.stream) {
      std::string text;
      while (!st->wait(text, 1000)) {
      }
      if (st->error_status) throw ApiError(st->error_status, st->error_message);
      send_json(res, completion_json(chat, id, created, text, *st));
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    auto started = std::make_shared<bool>(false);
    const bool usage = cr.include_usage;
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st, started, chat, id, created, usage](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          if (!*started && chat &&
              !send(sse(chunk_json(chat, id, created, {{"role", "assistant"}, {"content", ""}},
                                   nullptr)))) {
            st->cancel();
            return false;
          }
          *started = true;
          std::string text;
          const bool done = st->wait(text, 200);
          if (!text.empty() &&
              !send(sse(chunk_json(chat, id, created, chat ? json{{"content", text}} : json(text),
                                   nullptr)))) {
            st->cancel();  // the client went away: its slot is freed at the next step
            return false;
          }
          if (!done) return true;
          if (st->error_status) {
            send(sse(error_body(st->error_status, st->error_message)));
          } else {
            send(sse(chunk_json(chat, id, created, chat ? json::object() : json(""),
                                st->finish_reason)));
            if (usage) {
              json u = chunk_json(chat, id, created, json::object(), nullptr);
              u["choices"] = json::array();
              u["usage"] = usage_json(*st);
              send(sse(u));
            }
          }
          send("data: [DONE]\n\n");
          sink.done();
          return true;
        },
        [st](bool success) {
          if (!success) st->cancel();
        });
  }

  void create_context(const httplib::Request& req, httplib::Response& res) {
    const ContextRequest cr = parse_context(req.body);
    if (!cr.stream) {
      send_json(res, engine.create_context(cr).to_json());
      return;
    }
    // A full build queue is a 429 status while one can still be sent (a build that finished or
    // started meanwhile may make create_context's own check differ: then it is an error event).
    engine.check_build_room();
    // Progress events while the engine builds it; the build runs on its own thread so that this
    // one can write them.
    struct Build {
      std::shared_ptr<RequestState> events = std::make_shared<RequestState>();
      std::thread thread;
      ~Build() {
        if (thread.joinable()) thread.join();
      }
    };
    auto b = std::make_shared<Build>();
    b->thread = std::thread([this, cr, ev = b->events] {
      try {
        ContextInfo info =
            engine.create_context(cr, [&](const std::string& phase, int64_t d, int64_t t) {
              ev->push(sse(
                  {{"object", "context.progress"}, {"phase", phase}, {"done", d}, {"total", t}}));
            });
        ev->push(sse(info.to_json()));
        ev->finish("stop");
      } catch (const ApiError& e) {
        ev->push(sse(error_body(e.status(), e.what(), e.code())));
        ev->finish("error");
      } catch (const std::exception& e) {
        ev->push(sse(error_body(500, e.what())));
        ev->finish("error");
      }
    });
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [b](size_t, httplib::DataSink& sink) {
          std::string text;
          const bool done = b->events->wait(text, 200);
          if (!text.empty() && !sink.write(text.data(), text.size())) return false;
          if (done) {
            const std::string end = "data: [DONE]\n\n";
            sink.write(end.data(), end.size());
            sink.done();
          }
          return true;
        },
        [b](bool) {});
  }

  std::string metrics() const {
    const EngineStats s = engine.stats();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, auto value,
                      const std::string& labels = {}) {
      out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{}{} {}\n", name, help, name, type, name,
                         labels, value);
    };
    out +=
        "# HELP kvzip_requests_total Completion requests ended, by outcome.\n"
        "# TYPE kvzip_requests_total counter\n";
    out += fmt::format("kvzip_requests_total{{outcome=\"done\"}} {}\n", s.requests_done);
    out += fmt::format("kvzip_requests_total{{outcome=\"failed\"}} {}\n", s.requests_failed);
    out += fmt::format("kvzip_requests_total{{outcome=\"cancelled\"}} {}\n", s.requests_cancelled);
    out +=
        "# HELP kvzip_http_responses_total HTTP responses, by status code.\n"
        "# TYPE kvzip_http_responses_total counter\n";
    {
      std::lock_guard lock(const_cast<std::mutex&>(mu));
      for (const auto& [code, n] : by_status)
        out += fmt::format("kvzip_http_responses_total{{code=\"{}\"}} {}\n", code, n);
    }
    metric("kvzip_prompt_tokens_total", "counter", "Prompt tokens prefilled.", s.prompt_tokens);
    metric("kvzip_generated_tokens_total", "counter", "Tokens generated.", s.generated_tokens);
    metric("kvzip_tokens_per_second", "gauge", "Tokens generated per second, last 10 s.",
           fmt::format("{:.3f}", s.decode_tokens_per_s));
    metric("kvzip_decode_steps_total", "counter", "Batched decode steps.", s.steps);
    metric("kvzip_decode_rows_total", "counter", "Requests decoded over all steps (rows).",
           s.batched_rows);
    metric("kvzip_context_build_steps_total", "counter",
           "Decode steps run between the chunks of context builds.", s.build_steps);
    metric("kvzip_requests_active", "gauge", "Requests holding a slot.", s.active);
    metric("kvzip_requests_waiting", "gauge", "Requests waiting for a slot.", s.waiting);
    metric("kvzip_kv_bytes_in_use", "gauge",
           "KV-cache bytes allocated: contexts (with the blocks their requests took; evicted or "
           "deleted ones that requests still read included) and requests' own.",
           s.kv_bytes);
    metric("kvzip_kv_bytes_evicted_pending", "gauge",
           "The part of kvzip_kv_bytes_in_use held by evicted or deleted contexts that requests "
           "still read (freed when the last of them ends).",
           s.evicted_pending_bytes);
    metric("kvzip_contexts_evicted_pending", "gauge",
           "Evicted or deleted contexts still in memory for the requests that read them.",
           s.contexts_evicted_pending);
    metric("kvzip_request_kv_bytes", "gauge",
           "KV-cache bytes the active requests hold of their own (their rows, copies of partial "
           "blocks, index buffers; a context's shared blocks are not counted).",
           s.request_kv_bytes);
    metric("kvzip_last_request_kv_bytes", "gauge",
           "The most KV-cache bytes of its own the last finished request held.",
           s.last_request_kv_bytes);
    metric("kvzip_contexts_resident", "gauge", "Contexts whose cache is in memory.",
           s.contexts_resident);
    metric("kvzip_contexts", "gauge", "Contexts known (resident or on disk).", s.contexts_total);
    metric("kvzip_context_builds_running", "gauge", "Context builds running (one at a time).",
           s.builds_running);
    metric("kvzip_context_builds_waiting", "gauge",
           "Context builds waiting for the running one (beyond --build-queue: 429).",
           s.builds_waiting);
    const KvCacheConfig cc = engine.cache_config();
    metric("kvzip_kv_cache_type_info", "gauge",
           "Storage types of the K and V rows of the caches this server builds.", 1,
           fmt::format("{{k=\"{}\",v=\"{}\"}}", dtype_name(cc.k_type), dtype_name(cc.v_type)));
    return out;
  }

  void routes() {
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, {{"status", "ok"}});
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics(), "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      const KvCacheConfig cc = engine.cache_config();
      send_json(res, {{"object", "list"},
                      {"data", json::array({{{"id", opts.model_id},
                                             {"object", "model"},
                                             {"created", started_at},
                                             {"owned_by", "kvzip"},
                                             {"cache_type_k", dtype_name(cc.k_type)},
                                             {"cache_type_v", dtype_name(cc.v_type)}}})}});
    });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, true); });
    http.Post("/v1/completions",
              [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, false); });
    http.Post("/v1/contexts",
              [this](const httplib::Request& q, httplib::Response& r) { create_context(q, r); });
    http.Get("/v1/contexts", [this](const httplib::Request&, httplib::Response& res) {
      json data = json::array();
      for (const ContextInfo& c : engine.contexts().list()) data.push_back(c.to_json());
      send_json(res, {{"object", "list"}, {"data", data}});
    });
    http.Get(R"(/v1/contexts/([^/]+))", [this](const httplib::Request& q, httplib::Response& r) {
      std::optional<ContextInfo> c = engine.contexts().get(q.matches[1]);
      if (!c) throw ApiError(404, fmt::format("context '{}' not found", q.matches[1].str()));
      send_json(r, c->to_json());
    });
    http.Delete(R"(/v1/contexts/([^/]+))", [this](const httplib::Request& q, httplib::Response& r) {
      const std::string id = q.matches[1];
      if (!engine.erase_context(id)) throw ApiError(404, fmt::format("context '{}' not found", id));
      send_json(r, {{"id", id}, {"object", "context.deleted"}, {"deleted", true}});
    });
  }

  void hooks() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (opts.api_key.empty() || req.path.rfind("/v1/", 0) != 0)
        return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + opts.api_key)
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, 401, "invalid or missing API key (Authorization: Bearer KEY)",
                 "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    });
    // Statuses the library sets itself (unknown route, body or header too large) get a JSON
    // body too.
    http.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
          if (res.body.empty()) send_error(res, res.status, default_message(res.status));
          return httplib::Server::HandlerResponse::Handled;
        }));
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          try {
            std::rethrow_exception(ep);
          } catch (const ApiError& e) {
            send_error(res, e.status(), e.what(), e.code());
          } catch (const InputError& e) {
            send_error(res, 400, e.what());
          } catch (const std::exception& e) {
            send_error(res, 500, e.what());
          } catch (...) {
            send_error(res, 500, "unknown error");
          }
        });
    http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
      std::lock_guard lock(mu);
      ++by_status[res.status];
    });
    http.set_payload_max_length(opts.max_body_bytes);
    // The library's default of 5 s drops connections whose request arrives late on a busy
    // machine (many clients connecting at once); a slow client still cannot hold a thread
    // without end.
    http.set_read_timeout(kIoTimeoutS);
    http.set_write_timeout(kIoTimeoutS);
    const int threads = opts.threads > 0 ? opts.threads : 64;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  }
};

HttpServer::HttpServer(Engine& engine, HttpOptions opts)
    : impl_(std::make_unique<Impl>(engine, std::move(opts))) {
  impl_->routes();
  impl_->hooks();
}

HttpServer::~HttpServer() = default;

void HttpServer::bind() {
  const HttpOptions& o = impl_->opts;
  if (o.port < 0 || o.port > 65535)
    throw InputError(fmt::format("--port {} is not 0..65535", o.port));
  if (o.port == 0) {
    port_ = impl_->http.bind_to_any_port(o.host);
    if (port_ <= 0) throw InputError(fmt::format("cannot bind {} (any port)", o.host));
  } else {
    if (!impl_->http.bind_to_port(o.host, o.port))
      throw InputError(
          fmt::format("cannot bind {}:{} (in use, or not a local address)", o.host, o.port));
    port_ = o.port;
  }
}

void HttpServer::listen() { impl_->http.listen_after_bind(); }

void HttpServer::stop() { impl_->http.stop(); }

}  // namespace kvz::server
