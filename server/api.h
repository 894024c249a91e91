// The OpenAI request/response vocabulary of `kvzip serve` (server/): typed errors that map to
// HTTP statuses and `{"error": {...}}` bodies, request parsing with validation, and the JSON
// shapes of completions, chunks and contexts.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace kvz::server {

// An error a client caused or must handle: the HTTP status and the OpenAI error type and code.
class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string code = {})
      : Error(std::move(message)), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

// {"error": {"message", "type", "param", "code"}} with the type OpenAI uses for `status`.
nlohmann::json error_body(int status, const std::string& message, const std::string& code = {});
// JSON text that never throws on invalid UTF-8 in generated text (replaced by U+FFFD).
std::string dump(const nlohmann::json& j);

struct SamplingParams {
  int max_tokens = 0;  // 0: up to the context size
  float temperature = 1.0f, top_p = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  bool has_seed = false;
  bool ignore_eos = false;        // extension: decode exactly max_tokens (benchmarks)
  std::vector<std::string> stop;  // up to 4 stop sequences
};

// A parsed /v1/chat/completions or /v1/completions body.
struct CompletionRequest {
  bool chat = true;
  std::string model;
  std::string query;       // chat: the message contents joined; completions: the prompt
  std::string context_id;  // extension: answer from this compressed context
  SamplingParams sampling;
  bool stream = false, include_usage = false;
};
// Throws ApiError(400) naming the field on malformed or out-of-range input.
CompletionRequest parse_completion(const std::string& body, bool chat);

enum class ContextMethod { kKvzip, kKvzipHead, kKvzap, kNone };
const char* method_name(ContextMethod m);

// A parsed POST /v1/contexts body.
struct ContextRequest {
  std::string text;  // `text`, or the contents of `messages` joined
  double ratio = 0.3;
  ContextMethod method = ContextMethod::kKvzip;
  float threshold = -4.0f;  // kvzap: log-score threshold
  bool stream = false;      // progress events while it is built
};
ContextRequest parse_context(const std::string& body);

// The JSON body of any request (400 on malformed JSON or a non-object).
nlohmann::json parse_body(const std::string& body);

}  // namespace kvz::server
