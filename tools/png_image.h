// A small RGB raster with filled rectangles and 5x7 bitmap text, encoded as PNG (zlib for the
// pixel data): enough for the CLI's charts (tools/).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kvz::cli {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

class Image {
 public:
  // A width x height image filled with `background`; both sides in [1, 16384].
  Image(int width, int height, Rgb background = {255, 255, 255});
  int width() const { return w_; }
  int height() const { return h_; }
  // Clipped to the image.
  void fill_rect(int x, int y, int w, int h, Rgb c);
  // Text with its top-left corner at (x, y), each glyph 5x7 cells of scale x scale pixels on a
  // 6-cell advance. Letters are drawn as capitals; characters without a glyph as '?'.
  void text(int x, int y, std::string_view s, Rgb c, int scale = 1);
  static int text_width(std::string_view s, int scale = 1) {
    return static_cast<int>(s.size()) * 6 * scale;
  }
  Rgb at(int x, int y) const;
  // The image as a PNG file (8-bit RGB, no interlace).
  std::vector<uint8_t> png() const;

 private:
  int w_, h_;
  std::vector<uint8_t> rgb_;  // [h_, w_, 3] u8, rows top to bottom
};

// zlib stream of `data` (zlib's compress2). Throws Error if zlib fails.
std::vector<uint8_t> zlib_compress(std::span<const uint8_t> data);
// CRC-32 (ISO 3309, the PNG chunk checksum) of `data`.
uint32_t crc32(std::span<const uint8_t> data);

}  // namespace kvz::cli
