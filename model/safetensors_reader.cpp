// safetensors parsing (model/). Layout: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data;
// offsets are relative to byte 8 + N.
#include "model/safetensors_reader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace kvz {
namespace {

using nlohmann::json;

// Headers are small; anything this large is corrupt (safetensors itself caps at 100 MB).
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

DType parse_dtype(const std::string& file, const std::string& name, const json& v) {
  if (!v.is_string())
    throw FormatError(fmt::format("{}: tensor '{}': dtype is not a string", file, name));
  const std::string s = v.get<std::string>();
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  throw FormatError(
      fmt::format("{}: tensor '{}': dtype {} is not supported (F32, F16, BF16)", file, name, s));
}

// Validates one header entry; `begin` receives its offset in the data section.
SafetensorsTensor parse_entry(const std::string& file, const std::string& name, const json& e,
                              uint64_t data_size, uint64_t& data_begin) {
  const auto fail = [&](std::string_view what) {
    throw FormatError(fmt::format("{}: tensor '{}': {}", file, name, what));
  };
  if (!e.is_object()) fail("entry is not an object");
  if (!e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
    fail("entry needs dtype, shape and data_offsets");
  SafetensorsTensor t;
  t.name = name;
  t.file = file;
  t.dtype = parse_dtype(file, name, e["dtype"]);
  const json& shape = e["shape"];
  if (!shape.is_array()) fail("shape is not an array");
  uint64_t n_elems = 1;
  for (const json& d : shape) {
    if (!d.is_number_unsigned()) fail("shape entries must be non-negative integers");
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (v != 0 && n_elems > (uint64_t{1} << 62) / v))
      fail("element count overflows");
    n_elems *= v;
    t.shape.push_back(static_cast<int64_t>(v));
  }
  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    fail("data_offsets must be two non-negative integers");
  const uint64_t begin = off[0].get<uint64_t>();
  const uint64_t end = off[1].get<uint64_t>();
  if (begin > end || end > data_size)
    fail(fmt::format("data_offsets [{}, {}) outside the data section of {} bytes", begin, end,
                     data_size));
  const uint64_t want = n_elems * static_cast<uint64_t>(dtype_info(t.dtype).block_bytes);
  if (end - begin != want)
    fail(fmt::format("data_offsets [{}, {}) hold {} bytes, shape and dtype need {}", begin, end,
                     end - begin, want));
  t.n_bytes = static_cast<size_t>(want);
  data_begin = begin;
  return t;
}

}  // namespace

int64_t SafetensorsTensor::n_elems() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : name_(path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const std::string index = path + "/model.safetensors.index.json";
    if (fs::exists(index, ec)) {
      load_index(path, index);
    } else {
      files_.emplace_back(path + "/model.safetensors");
      parse_file(files_.back().bytes(), files_.back().path());
    }
  } else {
    files_.emplace_back(path);
    parse_file(files_.back().bytes(), path);
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (size_t i = 1; i < tensors_.size(); ++i)
    if (tensors_[i].name == tensors_[i - 1].name)
      throw FormatError(fmt::format("{}: tensor '{}' appears in both {} and {}", path,
                                    tensors_[i].name, tensors_[i - 1].file, tensors_[i].file));
}

SafetensorsReader::SafetensorsReader(std::span<const uint8_t> bytes, std::string name)
    : name_(std::move(name)) {
  parse_file(bytes, name_);
  std::sort(tensors_.begin(), tensors_.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
}

void SafetensorsReader::parse_file(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() < 8)
    throw FormatError(fmt::format("{}: truncated: {} bytes, need at least 8 for the header length",
                                  name, bytes.size()));
  uint64_t n_header = 0;
  std::memcpy(&n_header, bytes.data(), 8);
  if (n_header > kMaxHeaderBytes || n_header > bytes.size() - 8)
    throw FormatError(
        fmt::format("{}: header length {} at byte 0 runs past end of file "
                    "(file size {}) or is absurd",
                    name, n_header, bytes.size()));
  const auto* begin = reinterpret_cast<const char*>(bytes.data() + 8);
  json header;
  try {
    header = json::parse(begin, begin + n_header);
  } catch (const json::exception& e) {
    throw FormatError(
        fmt::format("{}: header JSON (bytes 8..{}) is invalid: {}", name, 8 + n_header, e.what()));
  }
  if (!header.is_object()) throw FormatError(fmt::format("{}: header JSON is not an object", name));
  const uint64_t data_start = 8 + n_header;
  const uint64_t data_size = bytes.size() - data_start;
  std::vector<SafetensorsTensor> found;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw FormatError(fmt::format("{}: __metadata__ is not an object", name));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw FormatError(fmt::format("{}: __metadata__ '{}' is not a string", name, mk));
        metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    uint64_t rel = 0;
    SafetensorsTensor t = parse_entry(name, key, value, data_size, rel);
    t.data = t.n_bytes == 0 ? nullptr : bytes.data() + data_start + rel;
    found.push_back(std::move(t));
  }
  // Tensors may not overlap (the format requires a dense, non-overlapping layout).
  std::vector<const SafetensorsTensor*> by_offset;
  for (const auto& t : found)
    if (t.n_bytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->data + by_offset[i - 1]->n_bytes > by_offset[i]->data)
      throw FormatError(fmt::format("{}: tensors '{}' and '{}' overlap", name,
                                    by_offset[i - 1]->name, by_offset[i]->name));
  for (auto& t : found) tensors_.push_back(std::move(t));
}

void SafetensorsReader::load_index(const std::string& dir, const std::string& index_path) {
  MappedFile index_file(index_path);
  const auto bytes = index_file.bytes();
  json index;
  try {
    index = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", index_path, e.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw FormatError(fmt::format("{}: no \"weight_map\" object", index_path));
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string() || shard.get<std::string>().find('/') != std::string::npos)
      throw FormatError(
          fmt::format("{}: tensor '{}' maps to an invalid shard name", index_path, name));
    weight_map[name] = shard.get<std::string>();
  }
  std::vector<std::string> shards;
  for (const auto& entry : weight_map)
    if (std::find(shards.begin(), shards.end(), entry.second) == shards.end())
      shards.push_back(entry.second);
  files_.reserve(shards.size());
  for (const std::string& shard : shards) {
    files_.emplace_back(dir + "/" + shard);
    parse_file(files_.back().bytes(), files_.back().path());
  }
  std::map<std::string_view, const std::string*> file_of;  // tensor name -> shard path
  for (const SafetensorsTensor& t : tensors_) file_of.emplace(t.name, &t.file);
  for (const auto& [name, shard] : weight_map) {
    const auto it = file_of.find(name);
    if (it == file_of.end() || *it->second != dir + "/" + shard)
      throw FormatError(
          fmt::format("{}: tensor '{}' is not in its shard {}", index_path, name, shard));
  }
}

const SafetensorsTensor* SafetensorsReader::find_tensor(std::string_view name) const {
  const auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                                   [](const auto& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const SafetensorsTensor& SafetensorsReader::tensor(std::string_view name) const {
  const SafetensorsTensor* t = find_tensor(name);
  if (t == nullptr) throw FormatError(fmt::format("{}: missing tensor '{}'", name_, name));
  return *t;
}

}  // namespace kvz
