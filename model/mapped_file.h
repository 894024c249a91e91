// Read-only memory map of a whole file (model/): the byte source of the GGUF and safetensors
// readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace kvz {

// Owns a read-only, private mapping of one file. Move-only; the mapping lives until destruction.
// An empty file maps to an empty span. Throws kvz::InputError if the file cannot be opened,
// stat'ed or mapped (the message names the path and the OS error).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kvz
