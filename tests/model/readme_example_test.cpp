// README.md's Session example, compiled and run here on the CPU backend with the stories260K test
// model (tests/model/). The block between the markers must appear verbatim in README.md, so the
// example cannot rot: change both together.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "model/model.h"
#include "model/session.h"
#include "runtime/device.h"
#include "tests/model/test_data.h"

namespace kvz::test {
namespace {

// README-EXAMPLE-BEGIN
std::string answer(const std::string& model_path, const std::string& context,
                   const std::string& question) {
  std::unique_ptr<kvz::Device> dev = kvz::open_device("cpu");  // "": the best GPU
  std::unique_ptr<kvz::Model> model = kvz::Model::load(*dev, model_path);
  kvz::Session session(*model);
  session.prefill(context);                 // the context's KV cache, once
  session.score();                          // KVzip: how much each KV pair is needed
  kvz::PruneResult p = session.prune(0.3);  // keep 30% of the context's pairs
  std::printf("KV cache %zu -> %zu bytes\n", p.bytes_before, p.bytes_after);
  kvz::GenerateOptions opts;
  opts.max_new_tokens = 32;
  return session.generate(question, opts).text;  // from the compressed cache
}
// README-EXAMPLE-END

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The marked block of this file, without the marker lines.
std::string example_block() {
  const std::string src = read_text(data_path("../model/readme_example_test.cpp"));
  const std::string begin = "// README-EXAMPLE-BEGIN\n", end = "// README-EXAMPLE-END";
  const size_t a = src.find(begin), b = src.find(end);
  if (a == std::string::npos || b == std::string::npos) return {};
  return src.substr(a + begin.size(), b - a - begin.size());
}

TEST(ReadmeExample, MatchesReadme) {
  const std::string block = example_block();
  ASSERT_FALSE(block.empty()) << "markers not found";
  const std::string readme = read_text(data_path("../../README.md"));
  ASSERT_FALSE(readme.empty()) << "README.md not found";
  EXPECT_NE(readme.find("```cpp\n" + block + "```"), std::string::npos)
      << "README.md's Session example differs from tests/model/readme_example_test.cpp:\n"
      << block;
}

TEST(ReadmeExample, RunsOnTheCpuBackend) {
  const std::string text =
      answer(data_path("stories260K/stories260K.bin"),
             "Lily had a red ball. One day she went to the park with her friend Tom. Tom wanted "
             "to play with the ball, so Lily gave it to him and they played all day.",
             "Who did Lily give the ball to?");
  EXPECT_FALSE(text.empty());  // stories260K tells stories; the point is that every step runs
}

}  // namespace
}  // namespace kvz::test
