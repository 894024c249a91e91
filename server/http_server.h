// The HTTP face of `kvzip serve` (server/): OpenAI-compatible routes over an Engine, API-key
// checks, size limits, JSON errors, server-sent events, Prometheus metrics.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "server/engine.h"

namespace kvz::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;       // 0: any free port (see HttpServer::port())
  std::string api_key;   // empty: no key needed
  std::string model_id;  // the name /v1/models lists and requests may give
  size_t max_body_bytes = 16u << 20;
  int threads = 0;  // HTTP worker threads; 0: enough for every slot and queued request
};

class HttpServer {
 public:
  HttpServer(Engine& engine, HttpOptions opts);
  ~HttpServer();
  // Binds (throws InputError when the address is taken or invalid) and serves until stop().
  void bind();
  int port() const { return port_; }
  void listen();  // blocks
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace kvz::server
