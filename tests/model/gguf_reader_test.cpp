// GgufReader tests (tests/model/): a golden file written by the Python `gguf` package, and
// corruption of small files written by tests/model/gguf_writer.h (every case must throw
// kvz::FormatError, never crash).
#include "model/gguf_reader.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "tests/model/gguf_writer.h"
#include "tests/model/test_data.h"

namespace kvz {
namespace {

using test::GgufWriter;

TEST(GgufReader, MatchesPythonGgufFixture) {
  const GgufReader r(test::data_path("gguf/fixture.gguf"));
  const auto j = nlohmann::json::parse(test::read_text(test::data_path("gguf/fixture.json")));
  EXPECT_EQ(r.version(), j["version"].get<uint32_t>());
  EXPECT_EQ(r.alignment(), j["alignment"].get<uint32_t>());
  for (const auto& [key, e] : j["metadata"].items()) {
    SCOPED_TRACE(key);
    const std::string type = e["type"];
    const auto& v = e["value"];
    if (type == "string")
      EXPECT_EQ(r.get_str(key), v.get<std::string>());
    else if (type == "bool")
      EXPECT_EQ(r.get_bool(key), v.get<bool>());
    else if (type == "f32")
      EXPECT_EQ(r.get_f32(key), v.get<float>());
    else if (type == "f64")
      EXPECT_EQ(r.get_f64(key), v.get<double>());
    else if (type == "u64")
      EXPECT_EQ(r.get_u64(key), v.get<uint64_t>());
    else if (type == "arr_string")
      EXPECT_EQ(r.get_arr_str(key), v.get<std::vector<std::string>>());
    else if (type == "arr_int")
      EXPECT_EQ(r.get_arr_i32(key), v.get<std::vector<int32_t>>());
    else if (type == "arr_float")
      EXPECT_EQ(r.get_arr_f32(key), v.get<std::vector<float>>());
    else
      EXPECT_EQ(r.get_i64(key), v.get<int64_t>()) << type;
    EXPECT_TRUE(r.has(key));
  }
  EXPECT_EQ(r.get_u32("llama.block_count"), 5u);
  EXPECT_EQ(r.get_i32("kvz.i8"), -100);
  ASSERT_EQ(r.tensors().size(), j["tensors"].size());
  const auto file = test::read_bytes(test::data_path("gguf/fixture.gguf"));
  for (const auto& [name, e] : j["tensors"].items()) {
    SCOPED_TRACE(name);
    const GgufTensor& t = r.tensor(name);
    EXPECT_EQ(dtype_name(t.dtype), e["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, e["ne"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.n_bytes, e["n_bytes"].get<size_t>());
    EXPECT_EQ(r.data_offset() + t.offset, e["file_offset"].get<uint64_t>());
    EXPECT_EQ(fmt::format("{:016x}", test::fnv1a64(t.data, t.n_bytes)),
              e["fnv1a64"].get<std::string>());
    EXPECT_EQ(t.data[0], file[e["file_offset"].get<size_t>()]);
  }
}

TEST(GgufReader, GetterErrorsNameTheKey) {
  const GgufReader r(test::data_path("gguf/fixture.gguf"));
  EXPECT_FALSE(r.opt_u32("no.such.key").has_value());
  EXPECT_EQ(r.opt_u32("llama.block_count"), 5u);
  try {
    (void)r.get_u32("kvz.i8");  // negative value does not fit u32
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("kvz.i8"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)r.get_str("llama.block_count"), FormatError);
  EXPECT_THROW((void)r.get_u32("no.such.key"), FormatError);
  EXPECT_THROW((void)r.get_arr_str("kvz.arr_i32"), FormatError);
  EXPECT_THROW((void)r.opt_bool("kvz.u8"), FormatError);
  EXPECT_THROW((void)r.tensor("missing.weight"), FormatError);
  EXPECT_THROW((void)r.get_i32("kvz.u64"), FormatError);
}

std::vector<uint8_t> small_file() {
  GgufWriter w;
  w.kv_str("general.architecture", "llama");
  w.kv<uint32_t>("llama.block_count", 4, 2);
  w.kv<float>("x.eps", 6, 1e-5f);
  w.kv<uint8_t>("x.flag", 7, 1);
  w.kv_arr_str("tokenizer.ggml.tokens", {"<s>", "a", "bc"});
  w.kv_arr<float>("tokenizer.ggml.scores", 6, {0.f, -1.f, -2.f});
  w.tensor("a.weight", 0, {4, 2}, std::vector<uint8_t>(32, 7));
  w.tensor("b.weight", 8, {32}, std::vector<uint8_t>(34, 9));
  return w.finish();
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    GgufReader r(bytes, "t.gguf");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(GgufReader, SmallFileParses) {
  const auto bytes = small_file();
  const GgufReader r(bytes, "t.gguf");
  EXPECT_EQ(r.get_arr_str("tokenizer.ggml.tokens").size(), 3u);
  EXPECT_EQ(r.tensor("a.weight").shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(r.tensor("b.weight").dtype, DType::kQ8_0);
  EXPECT_EQ(r.tensor("b.weight").data[33], 9);
  EXPECT_EQ(r.keys().front(), "general.architecture");
}

TEST(GgufReader, EveryTruncationThrows) {
  const auto bytes = small_file();
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    EXPECT_NE(parse_error(cut), "") << "prefix of " << n << " bytes parsed";
  }
}

TEST(GgufReader, BadMagicAndVersion) {
  auto bytes = small_file();
  bytes[0] = 'X';
  EXPECT_NE(parse_error(bytes).find("bad magic"), std::string::npos);
  for (uint32_t v : {1u, 4u, 0x03000000u}) {
    bytes = small_file();
    std::memcpy(&bytes[4], &v, 4);
    EXPECT_NE(parse_error(bytes).find("version"), std::string::npos) << v;
  }
}

// Overwrites the u64 at `at` (little-endian).
void poke64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); }

TEST(GgufReader, AbsurdCountsThrow) {
  auto b = small_file();
  poke64(b, 8, uint64_t{1} << 60);  // n_tensors
  EXPECT_NE(parse_error(b).find("absurd tensor count"), std::string::npos) << parse_error(b);
  b = small_file();
  poke64(b, 16, ~uint64_t{0});  // n_kv
  EXPECT_NE(parse_error(b).find("absurd key/value count"), std::string::npos);
  b = small_file();
  poke64(b, 24, uint64_t{1} << 62);  // length of the first key string
  EXPECT_NE(parse_error(b).find("string length"), std::string::npos);
  EXPECT_NE(parse_error(b).find("at byte 24"), std::string::npos) << parse_error(b);
}

TEST(GgufReader, BadValuesThrow) {
  const auto expect_error = [](GgufWriter& w, const std::string& needle) {
    const std::string msg = parse_error(w.finish());
    EXPECT_NE(msg.find(needle), std::string::npos) << "got: '" << msg << "'";
  };
  {
    GgufWriter w;
    w.kv<uint32_t>("k", 13, 0);
    expect_error(w, "invalid value type 13");
  }
  {
    GgufWriter w;
    w.kv<uint8_t>("k", 7, 2);
    expect_error(w, "bool value 2");
  }
  {
    GgufWriter w;
    w.kv<uint32_t>("k", 4, 1);
    w.kv<uint32_t>("k", 4, 2);
    expect_error(w, "duplicate key");
  }
  {
    GgufWriter w;
    w.kv_arr<uint32_t>("k", 9, {});
    expect_error(w, "nested arrays");
  }
  {
    GgufWriter w;
    w.kv<uint32_t>("general.alignment", 4, 24);
    expect_error(w, "power of two");
  }
  {
    GgufWriter w;
    w.tensor("q2.weight", 10, {256}, std::vector<uint8_t>(84));
    expect_error(w, "tensor 'q2.weight': ggml type Q2_K (10) is not supported");
  }
  {
    GgufWriter w;
    w.tensor("odd.weight", 99, {4}, std::vector<uint8_t>(16));
    expect_error(w, "unknown ggml type 99");
  }
  {
    GgufWriter w;
    w.tensor("big.weight", 0, {5, 1, 1, 1, 1}, std::vector<uint8_t>(20));
    expect_error(w, "n_dims 5");
  }
  {
    GgufWriter w;
    w.tensor("neg.weight", 0, {-4}, std::vector<uint8_t>(16));
    expect_error(w, "negative dimension");
  }
  {
    GgufWriter w;
    w.tensor("huge.weight", 0, {int64_t{1} << 40, int64_t{1} << 40}, std::vector<uint8_t>(16));
    expect_error(w, "overflows");
  }
  {
    GgufWriter w;
    w.tensor("blk.weight", 8, {33}, std::vector<uint8_t>(34));
    expect_error(w, "not a multiple of the q8_0 block size");
  }
  {
    GgufWriter w;
    w.tensor("long.weight", 0, {1000}, std::vector<uint8_t>(16));
    expect_error(w, "tensor 'long.weight': data [0, 4000)");
  }
  {
    GgufWriter w;
    w.tensor("a", 0, {4}, std::vector<uint8_t>(16));
    w.tensor("a", 0, {4}, std::vector<uint8_t>(16));
    expect_error(w, "duplicate tensor name");
  }
}

TEST(GgufReader, MisalignedOffsetThrows) {
  auto b = small_file();
  const GgufReader ok(b, "t.gguf");
  // b.weight's info is the last one, so its u64 offset (32) is the last such value before the
  // padding that precedes the data section; make it 33.
  const uint64_t off = ok.tensor("b.weight").offset;
  ASSERT_EQ(off, 32u);
  for (size_t i = ok.data_offset() - 8; i >= 24; --i) {
    uint64_t v;
    std::memcpy(&v, &b[i], 8);
    if (v == off) {
      poke64(b, i, off + 1);
      break;
    }
  }
  EXPECT_NE(parse_error(b).find("not a multiple of the alignment"), std::string::npos)
      << parse_error(b);
}

TEST(GgufReader, RandomCorruptionNeverCrashes) {
  const auto good = small_file();
  uint64_t state = 0x9E3779B97F4A7C15ull;  // fixed-seed xorshift, same on every platform
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = good;
    const int n_flips = 1 + static_cast<int>(next() % 4);
    for (int i = 0; i < n_flips; ++i) b[next() % b.size()] = static_cast<uint8_t>(next());
    try {
      GgufReader r(b, "fuzz.gguf");
      for (const auto& t : r.tensors()) ASSERT_LE(t.data + t.n_bytes, b.data() + b.size());
    } catch (const FormatError&) {
    }
  }
}

}  // namespace
}  // namespace kvz
