// SafetensorsReader tests (tests/model/): goldens written by the Python `safetensors` package
// (tools/make_safetensors_fixture.py) and corruption of small in-memory files.
#include "model/safetensors_reader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "tests/model/test_data.h"

namespace kvz {
namespace {

void expect_matches(const SafetensorsReader& r, const nlohmann::json& want) {
  ASSERT_EQ(r.tensors().size(), want.size());
  for (const auto& [name, e] : want.items()) {
    SCOPED_TRACE(name);
    const SafetensorsTensor& t = r.tensor(name);
    EXPECT_EQ(dtype_name(t.dtype), e["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.n_bytes, static_cast<size_t>(t.n_elems()) * dtype_info(t.dtype).block_bytes);
    EXPECT_EQ(fmt::format("{:016x}", test::fnv1a64(t.data, t.n_bytes)),
              e["fnv1a64"].get<std::string>());
  }
}

nlohmann::json fixture() {
  return nlohmann::json::parse(test::read_text(test::data_path("safetensors/fixture.json")));
}

TEST(SafetensorsReader, MatchesPythonSingleFile) {
  const SafetensorsReader r(test::data_path("safetensors/single.safetensors"));
  expect_matches(r, fixture()["single"]);
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_TRUE(r.tensor("scalar").shape.empty());
  EXPECT_EQ(r.tensor("empty").n_bytes, 0u);
}

TEST(SafetensorsReader, MatchesPythonShardedFolder) {
  const SafetensorsReader r(test::data_path("safetensors/sharded"));
  expect_matches(r, fixture()["sharded"]);
  EXPECT_NE(r.tensor("a.weight").file.find("00001"), std::string::npos);
  EXPECT_NE(r.tensor("c.bias").file.find("00002"), std::string::npos);
  EXPECT_EQ(r.find_tensor("nope"), nullptr);
  EXPECT_THROW((void)r.tensor("nope"), FormatError);
}

TEST(SafetensorsReader, UnsupportedDtypeNamesTensor) {
  try {
    SafetensorsReader r(test::data_path("safetensors/int64.safetensors"));
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'ids': dtype I64 is not supported"),
              std::string::npos)
        << e.what();
  }
}

std::vector<uint8_t> make_file(const std::string& header, size_t n_data) {
  const uint64_t n = header.size();
  std::vector<uint8_t> b;
  b.reserve(8 + header.size() + n_data);
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(n >> (8 * i)));  // little-endian
  b.insert(b.end(), header.begin(), header.end());
  for (size_t i = 0; i < n_data; ++i) b.push_back(static_cast<uint8_t>(i));
  return b;
}

const char* kGood =
    R"({"__metadata__":{"k":"v"},"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
    R"("y":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})";

std::string parse_error(const std::vector<uint8_t>& b) {
  try {
    SafetensorsReader r(b, "t.safetensors");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(SafetensorsReader, SmallFileParses) {
  const auto b = make_file(kGood, 16);
  const SafetensorsReader r(b, "t.safetensors");
  EXPECT_EQ(r.tensor("x").dtype, DType::kBF16);
  EXPECT_EQ(r.tensor("y").data[0], 12);
}

TEST(SafetensorsReader, EveryTruncationThrows) {
  const auto b = make_file(kGood, 16);
  for (size_t n = 0; n < b.size(); ++n)
    EXPECT_NE(parse_error({b.begin(), b.begin() + static_cast<long>(n)}), "") << n;
}

TEST(SafetensorsReader, CorruptHeadersThrow) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "invalid"},
      {"[]", "not an object"},
      {R"({"x":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})", "dtype I8 is not supported"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "need 8"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", "outside"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,400]}})", "outside"},
      {R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "non-negative"},
      {R"({"x":{"dtype":"F32","shape":[1]}})", "needs dtype"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "two non-negative"},
      {R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
       "overflows"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
       "overlap"},
      {R"({"__metadata__":{"k":1}})", "not a string"},
  };
  for (const auto& [header, needle] : cases) {
    const std::string msg = parse_error(make_file(header, 16));
    EXPECT_NE(msg.find(needle), std::string::npos) << header << " -> '" << msg << "'";
  }
  auto b = make_file(kGood, 16);
  const uint64_t huge = uint64_t{1} << 50;
  std::memcpy(b.data(), &huge, 8);
  EXPECT_NE(parse_error(b).find("header length"), std::string::npos);
}

TEST(SafetensorsReader, RandomCorruptionNeverCrashes) {
  const auto good = make_file(kGood, 16);
  uint64_t state = 0x2545F4914F6CDD1Dull;
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int iter = 0; iter < 2000; ++iter) {
    auto b = good;
    for (int i = 0; i < 1 + static_cast<int>(next() % 3); ++i)
      b[next() % b.size()] = static_cast<uint8_t>(next());
    try {
      SafetensorsReader r(b, "fuzz.safetensors");
      for (const auto& t : r.tensors())
        if (t.n_bytes > 0) {
          ASSERT_LE(t.data + t.n_bytes, b.data() + b.size());
        }
    } catch (const FormatError&) {
    }
  }
}

}  // namespace
}  // namespace kvz
