// GGUF parsing (model/). Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, the kv
// pairs, the tensor infos, padding to general.alignment, then the data section.
#include "model/gguf_reader.h"

#include <array>
#include <cstring>
#include <limits>
#include <utility>

#include "runtime/error.h"

namespace kvz {
namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Bounds-checked little-endian reader over the header; every failure names the file, the item
// being read (`ctx`) and the byte offset.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  std::string ctx;  // what is being parsed, e.g. "key 'general.name'"

  [[noreturn]] void fail(std::string_view what, size_t at) const {
    throw FormatError(fmt::format("{}: {}{}{} at byte {} (file size {})", file_, ctx,
                                  ctx.empty() ? "" : ": ", what, at, bytes_.size()));
  }

  template <typename T>
  T read() {
    if (remaining() < sizeof(T))
      fail(fmt::format("truncated: need {} bytes, {} left", sizeof(T), remaining()), pos_);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_str() {
    const size_t at = pos_;
    const uint64_t n = read<uint64_t>();
    if (n > remaining())
      fail(fmt::format("string length {} runs past end of file ({} bytes left)", n, remaining()),
           at);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  // A count of items of at least `min_item_bytes` each must fit in what is left of the file.
  uint64_t read_count(std::string_view what, size_t min_item_bytes) {
    const size_t at = pos_;
    const uint64_t n = read<uint64_t>();
    if (n > remaining() / min_item_bytes)
      fail(fmt::format("absurd {} count {} ({} bytes left)", what, n, remaining()), at);
    return n;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& file_;
  size_t pos_ = 0;
};

// Smallest encoded size of one value of type t (strings: the u64 length).
size_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    default:
      return 8;
  }
}

bool is_valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

std::variant<uint64_t, int64_t, double, bool, std::string> read_scalar(Cursor& c, GgufType t) {
  switch (t) {
    case GgufType::kU8:
      return uint64_t{c.read<uint8_t>()};
    case GgufType::kI8:
      return int64_t{c.read<int8_t>()};
    case GgufType::kU16:
      return uint64_t{c.read<uint16_t>()};
    case GgufType::kI16:
      return int64_t{c.read<int16_t>()};
    case GgufType::kU32:
      return uint64_t{c.read<uint32_t>()};
    case GgufType::kI32:
      return int64_t{c.read<int32_t>()};
    case GgufType::kU64:
      return c.read<uint64_t>();
    case GgufType::kI64:
      return c.read<int64_t>();
    case GgufType::kF32:
      return double{c.read<float>()};
    case GgufType::kF64:
      return c.read<double>();
    case GgufType::kBool: {
      const size_t at = c.pos();
      const uint8_t b = c.read<uint8_t>();
      if (b > 1) c.fail(fmt::format("bool value {} is neither 0 nor 1", b), at);
      return b == 1;
    }
    case GgufType::kString:
      return c.read_str();
    case GgufType::kArray:
      break;
  }
  c.fail("unexpected value type", c.pos());
}

void read_array(Cursor& c, GgufValue& v) {
  const size_t at = c.pos();
  const uint32_t et = c.read<uint32_t>();
  if (!is_valid_type(et)) c.fail(fmt::format("invalid array element type {}", et), at);
  v.elem_type = static_cast<GgufType>(et);
  if (v.elem_type == GgufType::kArray) c.fail("nested arrays are not supported", at);
  const uint64_t n = c.read_count("array element", min_value_bytes(v.elem_type));
  const auto count = static_cast<size_t>(n);
  if (v.elem_type == GgufType::kString) {
    v.strs.reserve(count);
    for (size_t i = 0; i < count; ++i) v.strs.push_back(c.read_str());
  } else if (v.elem_type == GgufType::kF32 || v.elem_type == GgufType::kF64) {
    v.floats.reserve(count);
    for (size_t i = 0; i < count; ++i)
      v.floats.push_back(std::get<double>(read_scalar(c, v.elem_type)));
  } else {
    v.ints.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      auto s = read_scalar(c, v.elem_type);
      if (auto* u = std::get_if<uint64_t>(&s))
        v.ints.push_back(static_cast<int64_t>(*u));
      else if (auto* b = std::get_if<bool>(&s))
        v.ints.push_back(*b ? 1 : 0);
      else
        v.ints.push_back(std::get<int64_t>(s));
    }
  }
}

struct GgmlTypeInfo {
  uint32_t id;
  std::string_view name;
  DType dtype;  // kSentinel: known to ggml but not supported here
};

constexpr std::array<GgmlTypeInfo, 31> kGgmlTypes = {{
    {0, "F32", DType::kF32},           {1, "F16", DType::kF16},
    {2, "Q4_0", DType::kQ4_0},         {3, "Q4_1", DType::kQ4_1},
    {6, "Q5_0", DType::kQ5_0},         {7, "Q5_1", DType::kQ5_1},
    {8, "Q8_0", DType::kQ8_0},         {9, "Q8_1", DType::kSentinel},
    {10, "Q2_K", DType::kSentinel},    {11, "Q3_K", DType::kSentinel},
    {12, "Q4_K", DType::kQ4_K},        {13, "Q5_K", DType::kQ5_K},
    {14, "Q6_K", DType::kQ6_K},        {15, "Q8_K", DType::kSentinel},
    {16, "IQ2_XXS", DType::kSentinel}, {17, "IQ2_XS", DType::kSentinel},
    {18, "IQ3_XXS", DType::kSentinel}, {19, "IQ1_S", DType::kSentinel},
    {20, "IQ4_NL", DType::kSentinel},  {21, "IQ3_S", DType::kSentinel},
    {22, "IQ2_S", DType::kSentinel},   {23, "IQ4_XS", DType::kSentinel},
    {24, "I8", DType::kSentinel},      {25, "I16", DType::kSentinel},
    {26, "I32", DType::kSentinel},     {27, "I64", DType::kSentinel},
    {28, "F64", DType::kSentinel},     {29, "IQ1_M", DType::kSentinel},
    {30, "BF16", DType::kBF16},        {34, "TQ1_0", DType::kSentinel},
    {35, "TQ2_0", DType::kSentinel},
}};

DType dtype_from_ggml(Cursor& c, uint32_t id, size_t at) {
  for (const GgmlTypeInfo& t : kGgmlTypes) {
    if (t.id != id) continue;
    if (t.dtype == DType::kSentinel)
      c.fail(fmt::format("ggml type {} ({}) is not supported", t.name, id), at);
    return t.dtype;
  }
  c.fail(fmt::format("unknown ggml type {}", id), at);
}

// Reads one tensor info; sizes are validated, the data pointer is filled in later.
GgufTensor read_tensor_info(Cursor& c) {
  GgufTensor t;
  t.name = c.read_str();
  c.ctx = fmt::format("tensor '{}'", t.name);
  size_t at = c.pos();
  const uint32_t n_dims = c.read<uint32_t>();
  if (n_dims == 0 || n_dims > kMaxDims)
    c.fail(fmt::format("n_dims {} outside 1..{}", n_dims, kMaxDims), at);
  int64_t n_elems = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    at = c.pos();
    const int64_t ne = c.read<int64_t>();
    if (ne < 0) c.fail(fmt::format("negative dimension ne[{}] = {}", i, ne), at);
    if (ne != 0 && n_elems > std::numeric_limits<int64_t>::max() / ne)
      c.fail("element count overflows int64", at);
    n_elems *= ne;
    t.shape.push_back(ne);
  }
  at = c.pos();
  t.dtype = dtype_from_ggml(c, c.read<uint32_t>(), at);
  const DTypeInfo& info = dtype_info(t.dtype);
  if (t.shape[0] % info.block_elems != 0)
    c.fail(fmt::format("ne[0] = {} is not a multiple of the {} block size {}", t.shape[0],
                       info.name, info.block_elems),
           at);
  const uint64_t n_blocks = static_cast<uint64_t>(n_elems / info.block_elems);
  if (n_blocks > std::numeric_limits<uint64_t>::max() / info.block_bytes)
    c.fail("byte size overflows", at);
  t.n_bytes = static_cast<size_t>(n_blocks * static_cast<uint64_t>(info.block_bytes));
  t.offset = c.read<uint64_t>();
  return t;
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  static constexpr std::array<std::string_view, 13> kNames = {
      "u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
      "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < kNames.size() ? kNames[i] : "invalid";
}

size_t GgufValue::array_size() const { return strs.size() + ints.size() + floats.size(); }

int64_t GgufTensor::n_elems() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

GgufReader::GgufReader(const std::string& path) : file_(std::in_place, path), name_(path) {
  parse(file_->bytes());
}

GgufReader::GgufReader(std::span<const uint8_t> bytes, std::string name) : name_(std::move(name)) {
  parse(bytes);
}

void GgufReader::parse(std::span<const uint8_t> bytes) {
  Cursor c(bytes, name_);
  c.ctx = "header";
  const uint32_t magic = c.read<uint32_t>();
  if (magic != 0x46554747u)  // "GGUF" little-endian
    c.fail(fmt::format("bad magic 0x{:08x}, not a GGUF file", magic), 0);
  version_ = c.read<uint32_t>();
  if (version_ != 2 && version_ != 3)
    c.fail(fmt::format("unsupported GGUF version {} (only 2 and 3; big-endian files are not "
                       "supported)",
                       version_),
           4);
  // A tensor info is at least 8 (name) + 4 + 8 + 4 + 8 bytes, a kv at least 8 + 4 + 1.
  const uint64_t n_tensors = c.read_count("tensor", 32);
  const uint64_t n_kv = c.read_count("key/value", 13);

  for (uint64_t i = 0; i < n_kv; ++i) {
    c.ctx = fmt::format("key/value #{}", i);
    std::string key = c.read_str();
    c.ctx = fmt::format("key '{}'", key);
    const size_t at = c.pos();
    const uint32_t t = c.read<uint32_t>();
    if (!is_valid_type(t)) c.fail(fmt::format("invalid value type {}", t), at);
    GgufValue v;
    v.type = static_cast<GgufType>(t);
    if (v.type == GgufType::kArray)
      read_array(c, v);
    else
      v.scalar = read_scalar(c, v.type);
    if (kv_.count(key) != 0) c.fail("duplicate key", at);
    key_order_.push_back(key);
    kv_.emplace(std::move(key), std::move(v));
  }

  c.ctx = "general.alignment";
  if (const GgufValue* a = find("general.alignment")) {
    const auto* u = std::get_if<uint64_t>(&a->scalar);
    if (a->type != GgufType::kU32 || u == nullptr || *u == 0 || (*u & (*u - 1)) != 0)
      c.fail("must be a u32 power of two", c.pos());
    alignment_ = static_cast<uint32_t>(*u);
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    c.ctx = fmt::format("tensor info #{}", i);
    const size_t at = c.pos();
    GgufTensor t = read_tensor_info(c);
    if (tensor_index_.count(t.name) != 0) c.fail("duplicate tensor name", at);
    if (t.offset % alignment_ != 0)
      c.fail(
          fmt::format("data offset {} is not a multiple of the alignment {}", t.offset, alignment_),
          at);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  const uint64_t end_of_infos = c.pos();
  data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t data_size = bytes.size() > data_offset_ ? bytes.size() - data_offset_ : 0;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      throw FormatError(fmt::format(
          "{}: tensor '{}': data [{}, {}) of the data section at byte {} runs past end of file "
          "(file size {})",
          name_, t.name, t.offset, t.offset + t.n_bytes, data_offset_, bytes.size()));
    t.data = t.n_bytes == 0 ? nullptr : bytes.data() + data_offset_ + t.offset;
  }
}

const GgufValue* GgufReader::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufReader::require(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw FormatError(fmt::format("{}: missing key '{}'", name_, key));
  return *v;
}

[[noreturn]] static void type_error(const std::string& file, std::string_view key,
                                    const GgufValue& v, std::string_view wanted) {
  const std::string got = v.type == GgufType::kArray
                              ? fmt::format("array of {}", gguf_type_name(v.elem_type))
                              : std::string(gguf_type_name(v.type));
  throw FormatError(fmt::format("{}: key '{}' has type {}, expected {}", file, key, got, wanted));
}

int64_t GgufReader::get_int(std::string_view key, int64_t lo, int64_t hi) const {
  const GgufValue& v = require(key);
  if (const auto* u = std::get_if<uint64_t>(&v.scalar); u && v.type != GgufType::kArray) {
    if (*u > static_cast<uint64_t>(hi))
      throw FormatError(fmt::format("{}: key '{}' value {} out of range", name_, key, *u));
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v.scalar); i && v.type != GgufType::kArray) {
    if (*i < lo || *i > hi)
      throw FormatError(fmt::format("{}: key '{}' value {} out of range", name_, key, *i));
    return *i;
  }
  type_error(name_, key, v, "an integer");
}

uint32_t GgufReader::get_u32(std::string_view key) const {
  return static_cast<uint32_t>(get_int(key, 0, std::numeric_limits<uint32_t>::max()));
}

int32_t GgufReader::get_i32(std::string_view key) const {
  return static_cast<int32_t>(
      get_int(key, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

uint64_t GgufReader::get_u64(std::string_view key) const {
  const GgufValue& v = require(key);
  if (const auto* u = std::get_if<uint64_t>(&v.scalar); u && v.type != GgufType::kArray) return *u;
  return static_cast<uint64_t>(get_int(key, 0, std::numeric_limits<int64_t>::max()));
}

int64_t GgufReader::get_i64(std::string_view key) const {
  return get_int(key, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
}

double GgufReader::get_f64(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::kF32 && v.type != GgufType::kF64) type_error(name_, key, v, "f32 or f64");
  return std::get<double>(v.scalar);
}

float GgufReader::get_f32(std::string_view key) const { return static_cast<float>(get_f64(key)); }

bool GgufReader::get_bool(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::kBool) type_error(name_, key, v, "bool");
  return std::get<bool>(v.scalar);
}

const std::string& GgufReader::get_str(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::kString) type_error(name_, key, v, "string");
  return std::get<std::string>(v.scalar);
}

const std::vector<std::string>& GgufReader::get_arr_str(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::kArray || v.elem_type != GgufType::kString)
    type_error(name_, key, v, "array of string");
  return v.strs;
}

std::vector<int32_t> GgufReader::get_arr_i32(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::kArray || (v.ints.empty() && v.array_size() != 0) ||
      v.elem_type == GgufType::kString)
    type_error(name_, key, v, "array of integers");
  std::vector<int32_t> out;
  out.reserve(v.ints.size());
  for (size_t i = 0; i < v.ints.size(); ++i) {
    const int64_t x = v.ints[i];
    if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max())
      throw FormatError(
          fmt::format("{}: key '{}' element {} = {} does not fit int32", name_, key, i, x));
    out.push_back(static_cast<int32_t>(x));
  }
  return out;
}

std::vector<float> GgufReader::get_arr_f32(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::kArray ||
      (v.elem_type != GgufType::kF32 && v.elem_type != GgufType::kF64))
    type_error(name_, key, v, "array of f32");
  return {v.floats.begin(), v.floats.end()};
}

std::optional<uint32_t> GgufReader::opt_u32(std::string_view key) const {
  return has(key) ? std::optional(get_u32(key)) : std::nullopt;
}
std::optional<int32_t> GgufReader::opt_i32(std::string_view key) const {
  return has(key) ? std::optional(get_i32(key)) : std::nullopt;
}
std::optional<float> GgufReader::opt_f32(std::string_view key) const {
  return has(key) ? std::optional(get_f32(key)) : std::nullopt;
}
std::optional<bool> GgufReader::opt_bool(std::string_view key) const {
  return has(key) ? std::optional(get_bool(key)) : std::nullopt;
}
std::optional<std::string> GgufReader::opt_str(std::string_view key) const {
  return has(key) ? std::optional(get_str(key)) : std::nullopt;
}

const GgufTensor* GgufReader::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufReader::tensor(std::string_view name) const {
  const GgufTensor* t = find_tensor(name);
  if (t == nullptr) throw FormatError(fmt::format("{}: missing tensor '{}'", name_, name));
  return *t;
}

}  // namespace kvz
