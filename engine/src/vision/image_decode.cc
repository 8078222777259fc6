// DecodeImage and ImageFromRaw: untrusted bytes -> an owned BGR8 Image.
//
// Before any pixel is decoded the container is walked (JPEG markers, PNG
// chunks) to read the image size and to make sure the data runs to its
// end-of-image marker. This refuses oversized images without allocating them
// and catches truncated files, for which libjpeg would otherwise hand OpenCV a
// partial image padded with grey and no error.
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "lowbit/engine/detector.h"

namespace lowbit::engine {
namespace {

struct ImageHeader {
  const char* format = "";
  int64_t width = 0;
  int64_t height = 0;
};

uint32_t ReadBigEndian16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t ReadBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

bool IsJpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}
bool IsPng(const uint8_t* data, size_t size) {
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return size >= 8 && std::memcmp(data, kSignature, 8) == 0;
}

Status CheckPixelLimit(int64_t width, int64_t height, const DecodeLimits& limits,
                       const char* what) {
  if (width * height > limits.max_pixels) {
    return InvalidArgument(std::string(what) + " is " + std::to_string(width) + "x" +
                           std::to_string(height) + " = " + std::to_string(width * height) +
                           " pixels, over the limit of " + std::to_string(limits.max_pixels) +
                           " pixels; send a smaller image");
  }
  return Status::Ok();
}

Status TruncatedJpeg(size_t size) {
  return InvalidArgument("truncated JPEG: the data ends after " + std::to_string(size) +
                         " bytes, before the end-of-image marker (incomplete upload or file?)");
}

// Walks JPEG segments from SOI to EOI. Entropy-coded data after each SOS is
// skipped byte-wise: inside it 0xFF is followed by 0x00 (stuffing), 0xD0-0xD7
// (restart markers) or more 0xFF (fill); anything else is the next marker.
// Progressive files have several scans; each is walked the same way.
StatusOr<ImageHeader> WalkJpeg(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  ImageHeader header{"JPEG", 0, 0};
  bool have_frame = false;
  size_t pos = 2;  // after SOI (FF D8)
  while (true) {
    if (pos >= size) return TruncatedJpeg(size);
    if (data[pos] != 0xFF) {
      return InvalidArgument("corrupt JPEG: expected a marker at byte " + std::to_string(pos));
    }
    while (pos < size && data[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= size) return TruncatedJpeg(size);
    const uint8_t marker = data[pos++];
    if (marker == 0xD9) {  // EOI
      if (!have_frame) return InvalidArgument("corrupt JPEG: no frame header (SOF) before its end");
      return header;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no payload
    if (marker == 0x00 || marker == 0xD8) {
      return InvalidArgument("corrupt JPEG: unexpected marker 0x" +
                             std::string(marker ? "D8" : "00") + " at byte " +
                             std::to_string(pos - 1));
    }
    if (pos + 2 > size) return TruncatedJpeg(size);
    const size_t length = ReadBigEndian16(data + pos);  // includes the 2 length bytes
    if (length < 2) {
      return InvalidArgument("corrupt JPEG: segment length " + std::to_string(length) +
                             " at byte " + std::to_string(pos));
    }
    if (pos + length > size) return TruncatedJpeg(size);
    const bool is_frame_header =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_frame_header) {
      if (length < 8) return InvalidArgument("corrupt JPEG: frame header too short");
      header.height = ReadBigEndian16(data + pos + 3);
      header.width = ReadBigEndian16(data + pos + 5);
      if (header.width == 0 || header.height == 0) {
        return InvalidArgument("JPEG with a zero width or height (" + std::to_string(header.width) +
                               "x" + std::to_string(header.height) + ") is not supported");
      }
      // Refuse oversized images before walking (or decoding) their data.
      LOWBIT_RETURN_IF_ERROR(CheckPixelLimit(header.width, header.height, limits, "JPEG"));
      have_frame = true;
    }
    pos += length;
    if (marker != 0xDA) continue;  // not SOS
    if (!have_frame) return InvalidArgument("corrupt JPEG: scan data before the frame header");
    while (true) {
      const void* next_ff = pos < size ? std::memchr(data + pos, 0xFF, size - pos) : nullptr;
      if (next_ff == nullptr) return TruncatedJpeg(size);
      pos = static_cast<const uint8_t*>(next_ff) - data;
      if (pos + 1 >= size) return TruncatedJpeg(size);
      const uint8_t after = data[pos + 1];
      if (after == 0x00 || (after >= 0xD0 && after <= 0xD7)) {
        pos += 2;
      } else if (after == 0xFF) {
        pos += 1;
      } else {
        break;  // a marker: back to the segment loop
      }
    }
  }
}

// Walks PNG chunks ([length u32][type 4][data][crc u32]) from IHDR to IEND.
// CRCs are left to libpng.
StatusOr<ImageHeader> WalkPng(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  ImageHeader header{"PNG", 0, 0};
  size_t pos = 8;  // after the signature
  const auto truncated = [size] {
    return InvalidArgument("truncated PNG: the data ends after " + std::to_string(size) +
                           " bytes, before the IEND chunk (incomplete upload or file?)");
  };
  bool first = true;
  while (true) {
    if (pos + 8 > size) return truncated();
    const uint32_t length = ReadBigEndian32(data + pos);
    const uint8_t* type = data + pos + 4;
    if (length > 0x7FFFFFFFu) {
      return InvalidArgument("corrupt PNG: chunk length " + std::to_string(length) + " at byte " +
                             std::to_string(pos));
    }
    if (first) {
      if (std::memcmp(type, "IHDR", 4) != 0 || length != 13) {
        return InvalidArgument("corrupt PNG: the first chunk is not a 13-byte IHDR");
      }
      if (pos + 8 + 8 > size) return truncated();
      header.width = ReadBigEndian32(data + pos + 8);
      header.height = ReadBigEndian32(data + pos + 12);
      if (header.width == 0 || header.height == 0) {
        return InvalidArgument("corrupt PNG: zero width or height in IHDR");
      }
      LOWBIT_RETURN_IF_ERROR(CheckPixelLimit(header.width, header.height, limits, "PNG"));
      first = false;
    }
    if (pos + 12 + length > size) return truncated();
    if (std::memcmp(type, "IEND", 4) == 0) return header;
    pos += 12 + size_t{length};
  }
}

// Checks the signature and walks the container of a JPEG or PNG file.
StatusOr<ImageHeader> WalkHeader(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  if (data == nullptr || size == 0) return InvalidArgument("empty image: no bytes to decode");
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return InvalidArgument("image data of " + std::to_string(size) +
                           " bytes is over the decoder's 2 GiB limit");
  }
  if (!IsJpeg(data, size) && !IsPng(data, size)) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string first_bytes;
    for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) {
      first_bytes += kHex[data[i] >> 4];
      first_bytes += kHex[data[i] & 15];
    }
    return InvalidArgument("not a JPEG or PNG image (" + std::to_string(size) +
                           " bytes starting with " + first_bytes + ")");
  }
  return IsJpeg(data, size) ? WalkJpeg(data, size, limits) : WalkPng(data, size, limits);
}

}  // namespace

StatusOr<ImageSize> ReadImageHeader(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  LOWBIT_ASSIGN_OR_RETURN(ImageHeader header, WalkHeader(data, size, limits));
  return ImageSize{static_cast<int>(header.width), static_cast<int>(header.height)};
}

Status DecodeImageInto(const uint8_t* data, size_t size, Image* image,
                       const DecodeLimits& limits) {
  image->width = 0;
  image->height = 0;
  StatusOr<ImageHeader> header = WalkHeader(data, size, limits);
  if (!header.ok()) {
    image->bgr.clear();
    return header.status();
  }

  // The decoder writes straight into image->bgr: a Mat of the header's size
  // over that buffer is one cv::imdecode fills without reallocating (it
  // reallocates only if the decoded size or type differs, checked below).
  const int width = static_cast<int>(header->width);
  const int height = static_cast<int>(header->height);
  // Same size as the last frame: no allocation and no writes here.
  image->bgr.resize(size_t{3} * width * height);
  cv::Mat decoded(height, width, CV_8UC3, image->bgr.data());
  // Pixels keep their stored orientation (EXIF orientation is ignored), so
  // boxes refer to the same pixel grid as the raw file, as with PIL.
  try {
    const cv::Mat encoded(1, static_cast<int>(size), CV_8UC1, const_cast<uint8_t*>(data));
    cv::imdecode(encoded, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION, &decoded);
  } catch (const cv::Exception& e) {
    image->bgr.clear();
    return InvalidArgument(std::string("corrupt ") + header->format + ": " + e.what());
  }
  if (decoded.empty()) {
    image->bgr.clear();
    return InvalidArgument(std::string("corrupt ") + header->format +
                           ": the decoder rejected the " + std::to_string(size) +
                           "-byte image data");
  }
  if (decoded.type() != CV_8UC3 || decoded.cols != width || decoded.rows != height) {
    image->bgr.clear();
    return InvalidArgument(std::string("corrupt ") + header->format + ": header says " +
                           std::to_string(width) + "x" + std::to_string(height) +
                           " but the decoder produced " + std::to_string(decoded.cols) + "x" +
                           std::to_string(decoded.rows));
  }
  if (decoded.data != image->bgr.data()) {
    // Not decoded in place (cannot happen with the checks above, but the
    // copy keeps the result right whatever the decoder did).
    const size_t row_bytes = size_t{3} * width;
    for (int y = 0; y < height; ++y) {
      std::memcpy(image->bgr.data() + y * row_bytes, decoded.ptr<uint8_t>(y), row_bytes);
    }
  }
  image->width = width;
  image->height = height;
  return Status::Ok();
}

StatusOr<Image> DecodeImage(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  Image image;
  LOWBIT_RETURN_IF_ERROR(DecodeImageInto(data, size, &image, limits));
  return image;
}

StatusOr<Image> ImageFromRaw(const ImageView& view, size_t buffer_size,
                             const DecodeLimits& limits) {
  if (view.width <= 0 || view.height <= 0) {
    return InvalidArgument("raw image size " + std::to_string(view.width) + "x" +
                           std::to_string(view.height) + " is not positive");
  }
  const int64_t row_bytes = int64_t{3} * view.width;
  if (view.stride < row_bytes) {
    return InvalidArgument("raw image stride " + std::to_string(view.stride) +
                           " bytes is less than 3 * width = " + std::to_string(row_bytes));
  }
  LOWBIT_RETURN_IF_ERROR(CheckPixelLimit(view.width, view.height, limits, "raw image"));
  const int64_t needed = int64_t{view.stride} * (view.height - 1) + row_bytes;
  if (view.pixels == nullptr || static_cast<int64_t>(buffer_size) < needed) {
    return InvalidArgument("raw image buffer has " + std::to_string(buffer_size) + " bytes; " +
                           std::to_string(view.width) + "x" + std::to_string(view.height) +
                           " RGB8/BGR8 with stride " + std::to_string(view.stride) + " needs " +
                           std::to_string(needed));
  }
  Image image;
  image.width = view.width;
  image.height = view.height;
  image.bgr.resize(static_cast<size_t>(row_bytes) * view.height);
  for (int y = 0; y < view.height; ++y) {
    const uint8_t* src = view.pixels + int64_t{view.stride} * y;
    uint8_t* dst = image.bgr.data() + row_bytes * y;
    if (view.format == PixelFormat::kBgr8) {
      std::memcpy(dst, src, row_bytes);
    } else {
      for (int x = 0; x < view.width; ++x) {
        dst[3 * x + 0] = src[3 * x + 2];
        dst[3 * x + 1] = src[3 * x + 1];
        dst[3 * x + 2] = src[3 * x + 0];
      }
    }
  }
  return image;
}

}  // namespace lowbit::engine
