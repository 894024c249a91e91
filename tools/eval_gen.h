// Helpers shared by the `kvzip eval` task generators (tools/eval_tasks.cpp, tools/eval_ruler.cpp):
// the project RNG, a portable shuffle, line lists, token counts and the size fitting by binary
// search. Not a public interface of the tool.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "kvzip/splitmix.h"
#include "model/tokenizer.h"
#include "runtime/error.h"
#include "tools/cli_util.h"

namespace kvz::cli {

using Rng = SplitMix64;  // identical samples on every standard library

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// 0, 1, ..., n-1 in an order shuffled by `rng`.
inline std::vector<size_t> shuffled_indices(size_t n, Rng& rng) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  shuffle(idx, rng);
  return idx;
}

// The non-empty lines of a text file, trailing whitespace stripped. Throws InputError when the
// file cannot be read or holds no entries.
inline std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::string text = read_file(path), line;
  for (char c : text + "\n") {
    if (c != '\n') {
      line += c;
      continue;
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) out.push_back(line);
    line.clear();
  }
  if (out.empty()) throw InputError(path + " holds no entries");
  return out;
}

// Largest n in [lo, hi] with fits(n) (fits is monotone decreasing; lo must fit).
template <class F>
int64_t largest_fitting(int64_t lo, int64_t hi, F fits) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid))
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

inline int64_t n_tokens(const Tokenizer& tok, const std::string& s) {
  return static_cast<int64_t>(tok.encode(s, false, false).size());
}

inline std::string join(const std::vector<std::string>& v, const std::string& sep, size_t b = 0,
                        size_t e = std::string::npos) {
  std::string out;
  for (size_t i = b; i < std::min(e, v.size()); ++i) out += (i > b ? sep : "") + v[i];
  return out;
}

// A random 8-4-4-4-12 hex string (the shape of a UUID; no version bits).
inline std::string uuid(Rng& rng) {
  const uint64_t a = rng.next(), b = rng.next();
  std::string h = fmt::format("{:016x}{:016x}", a, b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

}  // namespace kvz::cli
