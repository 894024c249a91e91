// File-system faults for writer tests (tests/common): a full disk and a read-only folder. As root
// with CAP_SYS_ADMIN both are a small tmpfs mounted on a scratch folder (the real thing); without
// it a full disk is simulated by lowering RLIMIT_FSIZE (writes past it fail with EFBIG) and a
// read-only folder by mode 0555, which root ignores (such a test then skips).
#pragma once

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace kvz::test {

inline std::string make_scratch_dir(const std::string& tag) {
  std::string t = (std::filesystem::temp_directory_path() / ("kvz_" + tag + "_XXXXXX")).string();
  if (!::mkdtemp(t.data())) std::abort();
  return t;
}

inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  return out;
}

inline std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A folder whose file system holds `capacity_bytes` (rounded to pages on tmpfs). Files written
// before full() stay; inside full(fn) a file larger than the capacity cannot be written.
class FullDisk {
 public:
  explicit FullDisk(size_t capacity_bytes = 16384)
      : dir_(make_scratch_dir("full")), cap_(capacity_bytes) {
    const std::string opt = "size=" + std::to_string(capacity_bytes);
    tmpfs_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, opt.c_str()) == 0;
  }
  ~FullDisk() {
    if (tmpfs_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  FullDisk(const FullDisk&) = delete;
  FullDisk& operator=(const FullDisk&) = delete;
  const std::string& dir() const { return dir_; }
  bool is_tmpfs() const { return tmpfs_; }

  template <class F>
  void full(F&& fn) {
    if (tmpfs_) return fn();
    struct rlimit old {};
    ::getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = old;
    lim.rlim_cur = cap_;
    auto prev = ::signal(SIGXFSZ, SIG_IGN);
    ::setrlimit(RLIMIT_FSIZE, &lim);
    struct Restore {
      struct rlimit r;
      decltype(prev) sig;
      ~Restore() {
        ::setrlimit(RLIMIT_FSIZE, &r);
        ::signal(SIGXFSZ, sig);
      }
    } restore{old, prev};
    fn();
  }

 private:
  std::string dir_;
  size_t cap_;
  bool tmpfs_ = false;
};

// A folder that becomes read-only at seal(); plant files in dir() first. seal() returns false
// when the folder cannot be made read-only for this process (root without mount rights).
class ReadOnlyDir {
 public:
  ReadOnlyDir() : dir_(make_scratch_dir("ro")) {
    tmpfs_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=1m") == 0;
  }
  ~ReadOnlyDir() {
    if (tmpfs_) ::umount2(dir_.c_str(), MNT_DETACH);
    ::chmod(dir_.c_str(), 0755);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ReadOnlyDir(const ReadOnlyDir&) = delete;
  ReadOnlyDir& operator=(const ReadOnlyDir&) = delete;
  const std::string& dir() const { return dir_; }
  bool seal() {
    if (tmpfs_)
      return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=1m") == 0;
    return ::geteuid() != 0 && ::chmod(dir_.c_str(), 0555) == 0;
  }

 private:
  std::string dir_;
  bool tmpfs_ = false;
};

}  // namespace kvz::test
