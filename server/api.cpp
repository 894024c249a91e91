// OpenAI request parsing and error bodies (server/).
#include "server/api.h"

#include <fmt/format.h>

namespace kvz::server {
namespace {

using nlohmann::json;

const char* error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "server_overloaded";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

// The field, if present and not null.
const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void bad(const std::string& what) { throw ApiError(400, what); }

double number(const json& j, const char* name, double lo, double hi) {
  const json* f = field(j, name);
  if (!f->is_number()) bad(fmt::format("'{}' must be a number", name));
  const double v = f->get<double>();
  if (!(v >= lo && v <= hi))
    bad(fmt::format("'{}' = {} is out of range [{}, {}]", name, v, lo, hi));
  return v;
}

int64_t integer(const json& j, const char* name, int64_t lo, int64_t hi) {
  const json* f = field(j, name);
  if (!f->is_number_integer()) bad(fmt::format("'{}' must be an integer", name));
  const int64_t v =
      f->is_number_unsigned() && f->get<uint64_t>() > INT64_MAX ? INT64_MAX : f->get<int64_t>();
  if (v < lo || v > hi) bad(fmt::format("'{}' = {} is out of range [{}, {}]", name, v, lo, hi));
  return v;
}

bool boolean(const json& j, const char* name) {
  const json* f = field(j, name);
  if (!f) return false;
  if (!f->is_boolean()) bad(fmt::format("'{}' must be true or false", name));
  return f->get<bool>();
}

std::string string_field(const json& j, const char* name) {
  const json* f = field(j, name);
  if (!f) return {};
  if (!f->is_string()) bad(fmt::format("'{}' must be a string", name));
  return f->get<std::string>();
}

// A message's content: a string or an array of {"type": "text", "text": ...} parts.
std::string content_text(const json& m, size_t i) {
  const json* c = field(m, "content");
  if (!c) return {};
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad(fmt::format("messages[{}].content must be a string or an array", i));
  std::string out;
  for (const json& part : *c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string())
      bad(fmt::format("messages[{}].content: only text parts are supported", i));
    out += part["text"].get<std::string>();
  }
  return out;
}

// Every message's content, in order, separated by blank lines (roles only validated).
std::string join_messages(const json& j) {
  const json* ms = field(j, "messages");
  if (!ms || !ms->is_array() || ms->empty()) bad("'messages' must be a non-empty array");
  std::string out;
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    if (!m.is_object()) bad(fmt::format("messages[{}] must be an object", i));
    const std::string role = m.value("role", "");
    if (role != "system" && role != "user" && role != "assistant" && role != "developer")
      bad(fmt::format("messages[{}].role '{}' must be system, developer, user or assistant", i,
                      role));
    std::string text = content_text(m, i);
    if (text.empty()) continue;
    if (!out.empty()) out += "\n\n";
    out += text;
  }
  if (out.empty()) bad("'messages' hold no text");
  return out;
}

SamplingParams parse_sampling(const json& j) {
  SamplingParams p;
  for (const char* name : {"max_tokens", "max_completion_tokens"})
    if (field(j, name)) p.max_tokens = static_cast<int>(integer(j, name, 1, 1 << 20));
  if (field(j, "temperature")) p.temperature = static_cast<float>(number(j, "temperature", 0, 2));
  if (field(j, "top_p")) p.top_p = static_cast<float>(number(j, "top_p", 0, 1));
  if (field(j, "top_p") && p.top_p <= 0.0f) bad("'top_p' must be above 0");
  if (field(j, "top_k")) p.top_k = static_cast<int>(integer(j, "top_k", 0, 1 << 20));
  if (field(j, "seed")) {
    p.seed = static_cast<uint64_t>(integer(j, "seed", INT64_MIN, INT64_MAX));
    p.has_seed = true;
  }
  if (field(j, "n") && integer(j, "n", 1, 1) != 1) bad("'n' must be 1");
  p.ignore_eos = boolean(j, "ignore_eos");
  if (const json* s = field(j, "stop")) {
    if (s->is_string()) {
      p.stop.push_back(s->get<std::string>());
    } else if (s->is_array() && s->size() <= 4) {
      for (const json& x : *s) {
        if (!x.is_string()) bad("'stop' entries must be strings");
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("'stop' must be a string or an array of at most 4 strings");
    }
    for (const std::string& x : p.stop)
      if (x.empty()) bad("'stop' sequences must not be empty");
  }
  return p;
}

}  // namespace

json error_body(int status, const std::string& message, const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", error_type(status)},
            {"param", nullptr},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json parse_body(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "request body must be a JSON object");
  return j;
}

CompletionRequest parse_completion(const std::string& body, bool chat) {
  const json j = parse_body(body);
  CompletionRequest r;
  r.chat = chat;
  r.model = string_field(j, "model");
  if (chat) {
    r.query = join_messages(j);
  } else {
    const json* p = field(j, "prompt");
    if (!p || !p->is_string())
      bad("'prompt' must be a string (token arrays and batches of prompts are not supported)");
    r.query = p->get<std::string>();
    if (r.query.empty()) bad("'prompt' is empty");
  }
  r.context_id = string_field(j, "context_id");
  r.sampling = parse_sampling(j);
  r.stream = boolean(j, "stream");
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) bad("'stream_options' must be an object");
    r.include_usage = boolean(*so, "include_usage");
  }
  return r;
}

const char* method_name(ContextMethod m) {
  switch (m) {
    case ContextMethod::kKvzip:
      return "kvzip";
    case ContextMethod::kKvzipHead:
      return "kvzip_head";
    case ContextMethod::kKvzap:
      return "kvzap";
    case ContextMethod::kNone:
      return "none";
  }
  return "?";
}

ContextRequest parse_context(const std::string& body) {
  const json j = parse_body(body);
  ContextRequest r;
  if (field(j, "text")) {
    r.text = string_field(j, "text");
  } else if (field(j, "messages")) {
    r.text = join_messages(j);
  } else {
    bad("a context needs 'text' or 'messages'");
  }
  if (r.text.empty()) bad("the context text is empty");
  if (field(j, "ratio")) r.ratio = number(j, "ratio", 0, 1);
  if (r.ratio <= 0.0) bad("'ratio' must be above 0 (it is the fraction of KV pairs kept)");
  const std::string m = field(j, "method") ? string_field(j, "method") : "kvzip";
  if (m == "kvzip")
    r.method = ContextMethod::kKvzip;
  else if (m == "kvzip_head")
    r.method = ContextMethod::kKvzipHead;
  else if (m == "kvzap")
    r.method = ContextMethod::kKvzap;
  else if (m == "none")
    r.method = ContextMethod::kNone;
  else
    bad(fmt::format("'method' '{}' must be kvzip, kvzip_head, kvzap or none", m));
  if (field(j, "threshold")) r.threshold = static_cast<float>(number(j, "threshold", -1e6, 1e6));
  r.stream = boolean(j, "stream");
  return r;
}

}  // namespace kvz::server
