// The one way to write an output file (runtime/): a temporary file created exclusively in the
// destination's folder (never through a link), written, flushed and fsynced, then renamed over
// the destination. A reader sees the old file or the complete new one, never a partial one, and
// a failure (full disk, read-only target, a planted link) leaves the destination untouched and
// removes the temporary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.h"

namespace kvz {

// Reading or writing a file failed for a reason outside the data (full disk, read-only folder,
// permission, a name that exists); names the path and the system error.
class IoError : public Error {
 public:
  using Error::Error;
};

// Streaming form: write() any number of times, then commit(). Destroying an uncommitted
// AtomicFile (an exception on the way) removes the temporary and leaves the destination as it
// was. Throws IoError naming the path and the system error on any failure.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n_bytes);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // fsync, close, rename over the destination, fsync the folder (best effort).
  void commit();
  const std::string& temp_path() const { return temp_; }

 private:
  void discard() noexcept;
  std::string path_, temp_;
  int fd_ = -1;
};

// Whole-file helpers over AtomicFile.
void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);
void write_file_atomic(const std::string& path, std::string_view text);
// Appends `text` to the file (creating it) by rewriting it atomically: a crash or full disk
// keeps every earlier line intact, which an O_APPEND write does not promise.
void append_file_atomic(const std::string& path, std::string_view text);

// Reads a whole regular file; throws InputError naming the path when it cannot be opened or is
// not a regular file (a folder, a named pipe: opened without blocking, then refused).
std::vector<uint8_t> read_regular_file(const std::string& path);

namespace detail {
// Creates `temp_path` with O_CREAT|O_EXCL|O_NOFOLLOW (mode 0666 less the umask) and returns the
// descriptor; throws IoError when the name exists (a file or a link) or cannot be created.
int open_exclusive(const std::string& temp_path);
}  // namespace detail

}  // namespace kvz
