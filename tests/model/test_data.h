// Locates committed test data (tests/model/): files under tests/data/, relative to the repo root
// given by KVZ_SOURCE_DIR (set by CTest), else the working directory.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvz::test {

inline std::string data_path(const std::string& rel) {
  const char* root = std::getenv("KVZ_SOURCE_DIR");
  return std::string(root != nullptr && *root != '\0' ? root : ".") + "/tests/data/" + rel;
}

// Folder of fetched real models (tools/fetch_model.sh): $KVZ_MODEL_DIR, else $KVZIP_MODELS, else
// ~/.cache/kvzip/models. Tests that need a model there skip when it is missing.
inline std::string model_dir() {
  if (const char* e = std::getenv("KVZ_MODEL_DIR")) return e;
  if (const char* e = std::getenv("KVZIP_MODELS")) return e;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/kvzip/models";
}

inline nlohmann::json load_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(f);
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// FNV-1a 64-bit hash, the checksum tools/make_gguf_fixture.py records for tensor bytes.
inline uint64_t fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

}  // namespace kvz::test
