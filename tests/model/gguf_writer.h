// Minimal GGUF v3 writer for tests (tests/model/): builds small valid files in memory so the
// reader tests can corrupt them byte by byte. Not a general writer: no validation.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace kvz::test {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}

  template <typename T>
  static void put(std::vector<uint8_t>& out, T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  static void put_str(std::vector<uint8_t>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
  }

  // Raw key/value: `type` is the GGUF type id, `payload` the encoded value.
  void kv_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& payload) {
    put_str(kv_, key);
    put<uint32_t>(kv_, type);
    kv_.insert(kv_.end(), payload.begin(), payload.end());
    ++n_kv_;
  }
  template <typename T>
  void kv(const std::string& key, uint32_t type, T v) {
    std::vector<uint8_t> p;
    put<T>(p, v);
    kv_raw(key, type, p);
  }
  void kv_str(const std::string& key, const std::string& v) {
    std::vector<uint8_t> p;
    put_str(p, v);
    kv_raw(key, 8, p);
  }
  void kv_arr_str(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> p;
    put<uint32_t>(p, 8);
    put<uint64_t>(p, v.size());
    for (const auto& s : v) put_str(p, s);
    kv_raw(key, 9, p);
  }
  template <typename T>
  void kv_arr(const std::string& key, uint32_t elem_type, const std::vector<T>& v) {
    std::vector<uint8_t> p;
    put<uint32_t>(p, elem_type);
    put<uint64_t>(p, v.size());
    for (T x : v) put<T>(p, x);
    kv_raw(key, 9, p);
  }

  // Adds a tensor with ggml type `ggml_type`, dims in ne order, and its raw bytes.
  void tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& ne,
              const std::vector<uint8_t>& bytes) {
    while (data_.size() % alignment_ != 0) data_.push_back(0);
    put_str(infos_, name);
    put<uint32_t>(infos_, static_cast<uint32_t>(ne.size()));
    for (int64_t d : ne) put<int64_t>(infos_, d);
    put<uint32_t>(infos_, ggml_type);
    put<uint64_t>(infos_, data_.size());
    data_.insert(data_.end(), bytes.begin(), bytes.end());
    ++n_tensors_;
  }

  std::vector<uint8_t> finish(uint32_t version = 3) const {
    std::vector<uint8_t> out;
    put<uint32_t>(out, 0x46554747u);
    put<uint32_t>(out, version);
    put<uint64_t>(out, n_tensors_);
    put<uint64_t>(out, n_kv_);
    out.insert(out.end(), kv_.begin(), kv_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    while (out.size() % alignment_ != 0) out.push_back(0);
    out.insert(out.end(), data_.begin(), data_.end());
    return out;
  }

 private:
  uint32_t alignment_;
  uint64_t n_kv_ = 0;
  uint64_t n_tensors_ = 0;
  std::vector<uint8_t> kv_, infos_, data_;
};

}  // namespace kvz::test
