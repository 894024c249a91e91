// Atomic output files (runtime/): see atomic_file.h.
#include "runtime/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "runtime/error.h"

namespace kvz {
namespace {

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw IoError(fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

// A name no other writer picks: pid, random bits and a process-wide counter, in the destination's
// folder (rename is atomic only within one file system). The base name is shortened so the
// temporary stays under NAME_MAX.
std::string temp_name(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   (static_cast<uint64_t>(::getpid()) << 32)};
  std::string base = base_of(path);
  if (base.size() > 200) base.resize(200);
  const std::string dir = folder_of(path);
  return fmt::format("{}/{}.{}.{:016x}{:x}.tmp", dir == "/" ? "" : dir, base, ::getpid(), rng(),
                     counter++);
}

int open_new(const std::string& temp_path) {
  return ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
}

}  // namespace

namespace detail {
int open_exclusive(const std::string& temp_path) {
  const int fd = open_new(temp_path);
  if (fd < 0) fail("cannot create", temp_path, errno);
  return fd;
}
}  // namespace detail

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) throw IoError("cannot write a file with an empty name");
  if (path_.back() == '/') throw IoError(fmt::format("cannot write {}: it names a folder", path_));
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw IoError(fmt::format("cannot write {}: it is a folder", path_));
  for (int attempt = 0;; ++attempt) {
    temp_ = temp_name(path_);
    fd_ = open_new(temp_);
    if (fd_ >= 0) return;
    // Another writer's name (vanishingly rare) or a planted file: pick another name.
    if (errno != EEXIST || attempt == 16) fail("cannot create", temp_, errno);
  }
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(temp_.c_str());
  fd_ = -1;
}

void AtomicFile::write(const void* data, size_t n_bytes) {
  if (fd_ < 0) throw IoError(fmt::format("write to {} after commit", path_));
  const auto* p = static_cast<const uint8_t*>(data);
  while (n_bytes > 0) {
    const ssize_t n = ::write(fd_, p, n_bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      discard();
      fail("writing", path_, err);
    }
    p += n;
    n_bytes -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw IoError(fmt::format("{} was already committed", path_));
  if (::fsync(fd_) != 0) {
    const int err = errno;
    discard();
    fail("flushing", path_, err);
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    fail("flushing", path_, err);
  }
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    fail("cannot replace", path_, err);
  }
  // Make the rename itself durable (best effort: some file systems refuse fsync on folders).
  const int dfd = ::open(folder_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

void write_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

std::vector<uint8_t> read_regular_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw InputError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(fmt::format("cannot read {}: not a regular file", path));
  }
  std::vector<uint8_t> out;
  out.reserve(static_cast<size_t>(st.st_size));
  uint8_t buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw InputError(fmt::format("reading {} failed: {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

void append_file_atomic(const std::string& path, std::string_view text) {
  std::vector<uint8_t> old;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) old = read_regular_file(path);  // refuses a pipe, a folder
  AtomicFile f(path);
  f.write(old.data(), old.size());
  f.write(text);
  f.commit();
}

}  // namespace kvz
