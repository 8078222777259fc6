// DecodeImage and ImageFromRaw: untrusted bytes -> an owned BGR8 Image.
//
// Before any pixel is decoded the container is walked (JPEG markers, PNG
// chunks) to read the image size and to make sure the data runs to its
// end-of-image marker. This refuses oversized images without allocating them.
//
// Pixels are then decoded strictly, with libjpeg-turbo and libpng called
// directly: anything the libraries would only warn about (a JPEG whose
// entropy-coded data stops early, even if an end-of-image marker follows; a
// bad Huffman code; extraneous bytes; a PNG chunk with a bad CRC, critical
// or ancillary; a zlib stream cut short or with a wrong checksum) is an
// INVALID_ARGUMENT. A lenient decoder hands back such an image padded with
// grey. Both decode with the same settings as OpenCV's cv::imdecode
// (IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION) against the same system
// libraries, so good images give the same pixels bit for bit.
//
// libjpeg and libpng report errors by longjmp: the functions that call
// setjmp (DecodeJpegPixels, DecodePngPixels) hold only trivially
// destructible locals, and the messages land in fixed char buffers.
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

// jpeglib.h uses size_t and FILE without including their headers.
#include <jpeglib.h>
// JWRN_* message codes.
#include <jerror.h>
#include <png.h>

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
  // A PNG's sides are each below 2^32, so width * height may pass INT64_MAX:
  // compared by division, and the product (then positive) taken unsigned.
  if (width > 0 && height > limits.max_pixels / width) {
    const uint64_t pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
    return InvalidArgument(std::string(what) + " is " + std::to_string(width) + "x" +
                           std::to_string(height) + " = " + std::to_string(pixels) +
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

// ---- JPEG: libjpeg-turbo ------------------------------------------------

// A progressive JPEG may hold any number of scans, each a full pass over the
// coefficients: a small file with thousands of scans costs minutes of CPU.
// Real encoders write about 10 (libjpeg's default script) and never near this.
constexpr int kMaxJpegScans = 256;

// libjpeg's error manager with the jump target and message beside it; `base`
// first, so the jpeg_error_mgr* libjpeg holds is also a JpegErrors*.
struct JpegErrors {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  int code = 0;                     // libjpeg's message code (JERR_*, JWRN_*), -1: ours
  char message[JMSG_LENGTH_MAX]{};  // what went wrong, from libjpeg's table or ours
};

[[noreturn]] void JpegFail(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  errors->code = cinfo->err->msg_code;
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

[[noreturn]] void JpegFailWith(j_common_ptr cinfo, const char* message) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  errors->code = -1;
  std::snprintf(errors->message, sizeof(errors->message), "%s", message);
  std::longjmp(errors->jump, 1);
}

// msg_level -1 is a warning: libjpeg's word for corrupt or missing data it
// papers over. Every one is an error here except the two about header fields
// that do not change a pixel (an unknown JFIF revision; sequential-scan
// parameters some encoders fill in oddly). Levels >= 0 are trace messages.
void JpegEmitMessage(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JFIF_MAJOR || code == JWRN_NOT_SEQUENTIAL) {
    ++cinfo->err->num_warnings;
    return;
  }
  JpegFail(cinfo);
}

void JpegLimitScans(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxJpegScans) {
    char message[96];
    std::snprintf(message, sizeof(message),
                  "more scans than the limit of %d (a decompression bomb?)", kMaxJpegScans);
    JpegFailWith(cinfo, message);
  }
}

// (C, M, Y, K) as libjpeg returns them for Adobe CMYK/YCCK files (stored
// inverted) -> B, G, R, the conversion OpenCV applies: v' = k - (255 - v) * k / 256.
void CmykRowToBgr(const uint8_t* cmyk, int width, uint8_t* bgr) {
  for (int x = 0; x < width; ++x, cmyk += 4, bgr += 3) {
    const int k = cmyk[3];
    bgr[0] = static_cast<uint8_t>(k - (((255 - cmyk[2]) * k) >> 8));
    bgr[1] = static_cast<uint8_t>(k - (((255 - cmyk[1]) * k) >> 8));
    bgr[2] = static_cast<uint8_t>(k - (((255 - cmyk[0]) * k) >> 8));
  }
}

// Decodes into `bgr` (height rows of 3 * width bytes, packed). False with
// errors->message set on any error or warning. Creates the decompressor;
// the caller destroys it, also after a failure.
bool DecodeJpegPixels(jpeg_decompress_struct* cinfo, jpeg_progress_mgr* progress,
                      const uint8_t* data, size_t size, int width, int height, uint8_t* bgr) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  if (setjmp(errors->jump) != 0) return false;
  jpeg_create_decompress(cinfo);  // clears all but cinfo->err
  progress->progress_monitor = JpegLimitScans;
  cinfo->progress = progress;
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  if (static_cast<int64_t>(cinfo->image_width) != width ||
      static_cast<int64_t>(cinfo->image_height) != height) {
    JpegFailWith(reinterpret_cast<j_common_ptr>(cinfo),
                 "libjpeg read a different size from the frame header");
  }
  // OpenCV's choices: BGR straight from libjpeg-turbo's colour converter
  // (from YCbCr, RGB or grey), CMYK converted here; the accurate integer IDCT
  // and fancy upsampling (libjpeg's defaults), full scale.
  const bool cmyk = cinfo->num_components == 4;
  cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_EXT_BGR;
  cinfo->dct_method = JDCT_ISLOW;
  cinfo->do_fancy_upsampling = TRUE;
  cinfo->scale_num = 1;
  cinfo->scale_denom = 1;
  jpeg_start_decompress(cinfo);
  if (static_cast<int>(cinfo->output_width) != width ||
      static_cast<int>(cinfo->output_height) != height ||
      cinfo->output_components != (cmyk ? 4 : 3)) {
    JpegFailWith(reinterpret_cast<j_common_ptr>(cinfo),
                 "libjpeg's output size or channel count differs from the frame header");
  }
  // One CMYK row, from libjpeg's per-image pool (freed by jpeg_destroy).
  JSAMPARRAY cmyk_row =
      cmyk ? (*cinfo->mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(cinfo), JPOOL_IMAGE,
                                         static_cast<JDIMENSION>(4 * width), 1)
           : nullptr;
  const size_t row_bytes = size_t{3} * width;
  while (cinfo->output_scanline < cinfo->output_height) {
    uint8_t* row = bgr + row_bytes * cinfo->output_scanline;
    JSAMPROW target = cmyk ? cmyk_row[0] : row;
    // The memory source never suspends: 0 rows would be a libjpeg bug.
    if (jpeg_read_scanlines(cinfo, &target, 1) != 1) {
      JpegFailWith(reinterpret_cast<j_common_ptr>(cinfo), "libjpeg returned no scanline");
    }
    if (cmyk) CmykRowToBgr(cmyk_row[0], width, row);
  }
  // Reads on to EOI: data after the last row (extraneous bytes, a
  // truncated later scan) warns here, and so fails.
  jpeg_finish_decompress(cinfo);
  return true;
}

Status DecodeJpeg(const uint8_t* data, size_t size, int width, int height, uint8_t* bgr) {
  jpeg_decompress_struct cinfo{};
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = JpegFail;
  errors.base.emit_message = JpegEmitMessage;
  jpeg_progress_mgr progress{};
  const bool ok = DecodeJpegPixels(&cinfo, &progress, data, size, width, height, bgr);
  jpeg_destroy_decompress(&cinfo);
  if (ok) return Status::Ok();
  // Entropy-coded data that stops where more was due: at a marker (a
  // cut-off upload with an end-of-image marker after it, or data damaged
  // so the decoder lost its place) or at the end of the buffer.
  const char* kind = errors.code == JWRN_JPEG_EOF     ? "truncated JPEG"
                     : errors.code == JWRN_HIT_MARKER ? "truncated or corrupt JPEG"
                                                      : "corrupt JPEG";
  return InvalidArgument(std::string(kind) + " (" + std::to_string(width) + "x" +
                         std::to_string(height) + ", " + std::to_string(size) +
                         " bytes): libjpeg: " + errors.message);
}

// ---- PNG: libpng --------------------------------------------------------

// The read source and the error message; libpng's io and error pointer.
struct PngSource {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t position = 0;
  char message[192]{};
};

[[noreturn]] void PngFail(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof(source->message), "%s", message);
  png_longjmp(png, 1);
}

// Strict: a libpng warning is an error too.
void PngWarn(png_structp png, png_const_charp message) { PngFail(png, message); }

void PngRead(png_structp png, png_bytep out, size_t length) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (length > source->size - source->position) {
    PngFail(png, "the data ends inside a chunk");
  }
  std::memcpy(out, source->data + source->position, length);
  source->position += length;
}

// Decodes into `bgr` (height rows of 3 * width bytes, packed). False with
// the source's message set on any error or warning.
bool DecodePngPixels(png_structp png, png_infop info, int width, int height, uint8_t* bgr) {
  if (setjmp(png_jmpbuf(png)) != 0) return false;
  // A bad CRC on any chunk, and libpng's "benign" errors (a zlib stream cut
  // short after the last row or with a wrong Adler-32, extra image data),
  // are errors. Ancillary chunks (colour profiles, text, gamma) are skipped
  // unparsed, their CRCs still checked: the pixels below never use them, and
  // compressed text or profiles are not inflated.
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_set_benign_errors(png, 0);
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, -1);
  png_set_user_limits(png, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height));
  png_read_info(png, info);
  png_uint_32 png_width = 0, png_height = 0;
  int bit_depth = 0, color_type = 0;
  png_get_IHDR(png, info, &png_width, &png_height, &bit_depth, &color_type, nullptr, nullptr,
               nullptr);
  if (png_width != static_cast<png_uint_32>(width) ||
      png_height != static_cast<png_uint_32>(height)) {
    PngFail(png, "libpng read a different size from IHDR");
  }
  // OpenCV's transforms for IMREAD_COLOR: 16 -> 8 bits by the high byte,
  // alpha dropped (not composited), palette and low-bit grey expanded, grey
  // -> three equal channels, colour in BGR order; interlaced passes merged.
  if (bit_depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) {
    png_set_expand_gray_1_2_4_to_8(png);
  }
  if ((color_type & PNG_COLOR_MASK_COLOR) != 0) {
    png_set_bgr(png);
  } else {
    png_set_gray_to_rgb(png);
  }
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t row_bytes = size_t{3} * width;
  if (png_get_rowbytes(png, info) != row_bytes || png_get_channels(png, info) != 3 ||
      png_get_bit_depth(png, info) != 8) {
    PngFail(png, "libpng's output is not 8-bit BGR");
  }
  // Each interlace pass fills in more of every row it touches.
  for (int pass = 0; pass < passes; ++pass) {
    for (int y = 0; y < height; ++y) png_read_row(png, bgr + row_bytes * y, nullptr);
  }
  // Reads on to IEND: the rest of the zlib stream, its checksum and the
  // CRCs of every later chunk.
  png_read_end(png, nullptr);
  return true;
}

Status DecodePng(const uint8_t* data, size_t size, int width, int height, uint8_t* bgr) {
  PngSource source;
  source.data = data;
  source.size = size;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, PngFail, PngWarn);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return Internal("libpng could not allocate its decoder");
  }
  png_set_read_fn(png, &source, PngRead);
  const bool ok = DecodePngPixels(png, info, width, height, bgr);
  png_destroy_read_struct(&png, &info, nullptr);
  if (ok) return Status::Ok();
  const std::string message = source.message;
  // Running out of data (of the buffer or of IDAT chunks) is a cut-off file.
  const bool premature = message.find("ends inside") != std::string::npos ||
                         message.find("Not enough") != std::string::npos ||
                         message.find("runcated") != std::string::npos;
  return InvalidArgument(std::string(premature ? "truncated PNG" : "corrupt PNG") + " (" +
                         std::to_string(width) + "x" + std::to_string(height) + ", " +
                         std::to_string(size) + " bytes): libpng: " + message);
}

}  // namespace

StatusOr<ImageSize> ReadImageHeader(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  LOWBIT_ASSIGN_OR_RETURN(ImageHeader header, WalkHeader(data, size, limits));
  return ImageSize{static_cast<int>(header.width), static_cast<int>(header.height)};
}

Status DecodeImageInto(const uint8_t* data, size_t size, Image* image, const DecodeLimits& limits) {
  image->width = 0;
  image->height = 0;
  StatusOr<ImageHeader> header = WalkHeader(data, size, limits);
  if (!header.ok()) {
    image->bgr.clear();
    return header.status();
  }
  // The decoder writes straight into image->bgr; same size as the last
  // frame: no allocation here.
  const int width = static_cast<int>(header->width);
  const int height = static_cast<int>(header->height);
  image->bgr.resize(size_t{3} * width * height);
  // Pixels keep their stored orientation (EXIF orientation is ignored), so
  // boxes refer to the same pixel grid as the raw file, as with PIL.
  const Status decoded = IsJpeg(data, size)
                             ? DecodeJpeg(data, size, width, height, image->bgr.data())
                             : DecodePng(data, size, width, height, image->bgr.data());
  if (!decoded.ok()) {
    image->bgr.clear();
    return decoded;
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
