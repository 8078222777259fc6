// Strict image decode: what libjpeg and libpng only warn about (data that
// stops early, garbage in the entropy-coded data, a bad CRC, a damaged zlib
// stream) is refused, and good images decode to the same pixels as OpenCV's
// cv::imdecode, bit for bit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <vector>

// After <cstdio>: jpeglib.h uses FILE and size_t without including them.
#include <jpeglib.h>

#include "lowbit/engine/detector.h"
#include "test_vision_util.h"

namespace lowbit::engine {
namespace {

using ::testing::HasSubstr;
using testing::ReadTestImage;

// What the engine decoded with before: OpenCV, BGR8, EXIF orientation ignored.
std::vector<uint8_t> OpenCvPixels(const std::vector<uint8_t>& bytes, int* width, int* height) {
  const cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  *width = decoded.cols;
  *height = decoded.rows;
  if (decoded.empty()) return {};
  const cv::Mat packed = decoded.isContinuous() ? decoded : decoded.clone();
  return std::vector<uint8_t>(packed.data, packed.data + packed.total() * 3);
}

void ExpectSameAsOpenCv(const std::vector<uint8_t>& bytes) {
  int width = 0, height = 0;
  const std::vector<uint8_t> expected = OpenCvPixels(bytes, &width, &height);
  ASSERT_FALSE(expected.empty()) << "OpenCV refused the reference image";
  StatusOr<Image> image = DecodeImage(bytes.data(), bytes.size());
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, width);
  EXPECT_EQ(image->height, height);
  ASSERT_EQ(image->bgr.size(), expected.size());
  size_t differing = 0;
  for (size_t i = 0; i < expected.size(); ++i) differing += image->bgr[i] != expected[i];
  EXPECT_EQ(differing, 0u) << "of " << expected.size() << " bytes";
}

// ---- PNG chunks: [length u32 BE][type 4][data][CRC-32 of type+data] ----

struct Chunk {
  std::string type;
  std::vector<uint8_t> data;
  uint32_t crc = 0;
};

uint32_t ChunkCrc(const Chunk& chunk) {
  // zlib's crc32 of a null buffer is its initial value, not a no-op.
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(chunk.type.data()), 4);
  if (!chunk.data.empty()) crc = crc32(crc, chunk.data.data(), chunk.data.size());
  return static_cast<uint32_t>(crc);
}

std::vector<Chunk> SplitPng(const std::vector<uint8_t>& bytes) {
  std::vector<Chunk> chunks;
  size_t pos = 8;
  const auto be32 = [&](size_t i) {
    return (uint32_t{bytes[i]} << 24) | (uint32_t{bytes[i + 1]} << 16) |
           (uint32_t{bytes[i + 2]} << 8) | bytes[i + 3];
  };
  while (pos + 12 <= bytes.size()) {
    const uint32_t length = be32(pos);
    Chunk chunk;
    chunk.type.assign(bytes.begin() + pos + 4, bytes.begin() + pos + 8);
    chunk.data.assign(bytes.begin() + pos + 8, bytes.begin() + pos + 8 + length);
    chunk.crc = be32(pos + 8 + length);
    chunks.push_back(std::move(chunk));
    pos += 12 + length;
  }
  return chunks;
}

// Joins chunks; a chunk whose crc is 0 gets its right CRC.
std::vector<uint8_t> JoinPng(const std::vector<Chunk>& chunks) {
  std::vector<uint8_t> bytes = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  const auto put32 = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(v >> shift));
  };
  for (const Chunk& chunk : chunks) {
    put32(static_cast<uint32_t>(chunk.data.size()));
    bytes.insert(bytes.end(), chunk.type.begin(), chunk.type.end());
    bytes.insert(bytes.end(), chunk.data.begin(), chunk.data.end());
    put32(chunk.crc != 0 ? chunk.crc : ChunkCrc(chunk));
  }
  return bytes;
}

Chunk Fresh(std::string type, std::vector<uint8_t> data) {
  return Chunk{std::move(type), std::move(data), 0};
}

// A PNG of any colour type and bit depth, filter 0 on every row, optionally
// Adam7-interlaced: `sample(x, y, channel)` gives each sample's value.
template <typename Sample>
std::vector<uint8_t> MakePng(int width, int height, int bit_depth, int color_type, bool interlaced,
                             const std::vector<Chunk>& before_idat, Sample sample) {
  const int channels = color_type == 0   ? 1
                       : color_type == 2 ? 3
                       : color_type == 3 ? 1
                       : color_type == 4 ? 2
                                         : 4;
  struct Pass {
    int x0, y0, dx, dy;
  };
  const std::vector<Pass> passes =
      interlaced ? std::vector<Pass>{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                     {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
                 : std::vector<Pass>{{0, 0, 1, 1}};
  std::vector<uint8_t> raw;
  for (const Pass& pass : passes) {
    for (int y = pass.y0; y < height; y += pass.dy) {
      if (pass.x0 >= width) break;
      raw.push_back(0);  // filter: none
      int bits = 0, accumulator = 0;
      for (int x = pass.x0; x < width; x += pass.dx) {
        for (int c = 0; c < channels; ++c) {
          const int value = sample(x, y, c);
          if (bit_depth == 16) {
            raw.push_back(static_cast<uint8_t>(value >> 8));
            raw.push_back(static_cast<uint8_t>(value));
          } else if (bit_depth == 8) {
            raw.push_back(static_cast<uint8_t>(value));
          } else {
            accumulator = (accumulator << bit_depth) | value;
            bits += bit_depth;
            if (bits == 8)
              raw.push_back(static_cast<uint8_t>(accumulator)), bits = 0, accumulator = 0;
          }
        }
      }
      if (bits > 0) raw.push_back(static_cast<uint8_t>(accumulator << (8 - bits)));
    }
  }
  uLongf compressed_size = compressBound(raw.size());
  std::vector<uint8_t> compressed(compressed_size);
  EXPECT_EQ(compress(compressed.data(), &compressed_size, raw.data(), raw.size()), Z_OK);
  compressed.resize(compressed_size);
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {uint32_t(width), uint32_t(height)}) {
    for (int shift = 24; shift >= 0; shift -= 8) ihdr.push_back(static_cast<uint8_t>(v >> shift));
  }
  ihdr.insert(ihdr.end(), {uint8_t(bit_depth), uint8_t(color_type), 0, 0, uint8_t(interlaced)});
  std::vector<Chunk> chunks = {Fresh("IHDR", ihdr)};
  chunks.insert(chunks.end(), before_idat.begin(), before_idat.end());
  chunks.push_back(Fresh("IDAT", compressed));
  chunks.push_back(Fresh("IEND", {}));
  return JoinPng(chunks);
}

// ---- JPEGs OpenCV cannot write, encoded with libjpeg ----

// Encodes `pixels` (height rows of width * components bytes, in
// `color_space`) as JPEG; `scans`, if not empty, is the progressive scan
// script; `stored` the colour space in the file (JCS_UNKNOWN: libjpeg's
// default for the input).
std::vector<uint8_t> EncodeJpeg(const std::vector<uint8_t>& pixels, int width, int height,
                                int components, J_COLOR_SPACE color_space,
                                const std::vector<jpeg_scan_info>& scans = {},
                                J_COLOR_SPACE stored = JCS_UNKNOWN) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr errors{};
  cinfo.err = jpeg_std_error(&errors);  // an encoder error exits the test binary
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = components;
  cinfo.in_color_space = color_space;
  jpeg_set_defaults(&cinfo);
  if (stored != JCS_UNKNOWN) jpeg_set_colorspace(&cinfo, stored);
  jpeg_set_quality(&cinfo, 90, TRUE);
  if (!scans.empty()) {
    cinfo.scan_info = scans.data();
    cinfo.num_scans = static_cast<int>(scans.size());
  }
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row =
        const_cast<uint8_t*>(pixels.data()) + size_t{cinfo.next_scanline} * width * components;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> bytes(buffer, buffer + size);
  std::free(buffer);
  return bytes;
}

// A valid progressive script for 3 components: one DC scan, then every AC
// coefficient of every component in a scan of its own, with
// `refinement` adding a successive-approximation pass (Al 1, then Ah 1 Al 0)
// for each: 190 scans without it, 379 with.
std::vector<jpeg_scan_info> OneCoefficientPerScan(bool refinement) {
  std::vector<jpeg_scan_info> scans;
  scans.push_back(jpeg_scan_info{3, {0, 1, 2, 0}, 0, 0, 0, 0});
  for (int pass = 0; pass < (refinement ? 2 : 1); ++pass) {
    for (int component = 0; component < 3; ++component) {
      for (int k = 1; k < 64; ++k) {
        const int ah = refinement && pass == 1 ? 1 : 0;
        const int al = refinement && pass == 0 ? 1 : 0;
        scans.push_back(jpeg_scan_info{1, {component, 0, 0, 0}, k, k, ah, al});
      }
    }
  }
  return scans;
}

size_t IndexOf(const std::vector<Chunk>& chunks, const std::string& type, bool last = false) {
  size_t found = chunks.size();
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i].type == type) {
      found = i;
      if (!last) break;
    }
  }
  EXPECT_LT(found, chunks.size()) << "no " << type << " chunk";
  return found;
}

void ExpectRefused(const std::vector<uint8_t>& bytes, const std::string& message) {
  Image frame;
  frame.bgr.assign(16, 1);
  const Status status = DecodeImageInto(bytes.data(), bytes.size(), &frame);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(message));
  EXPECT_EQ(frame.width, 0);
  EXPECT_TRUE(frame.bgr.empty());
}

// ---- good images: the same pixels as OpenCV ----

TEST(StrictDecodeTest, EveryTestImageMatchesOpenCvBitForBit) {
  for (const char* name :
       {"dog.jpg", "eagle.jpg", "fruits.jpg", "giraffe.jpg", "horses.jpg", "kite.jpg", "messi5.jpg",
        "person.jpg", "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png"}) {
    SCOPED_TRACE(name);
    ExpectSameAsOpenCv(ReadTestImage(name));
  }
}

// JPEG variants OpenCV's encoder writes: grey, progressive, restart markers,
// quality 100; PNG grey, 16-bit, with alpha.
TEST(StrictDecodeTest, EncodedVariantsMatchOpenCvBitForBit) {
  const std::vector<uint8_t> dog = ReadTestImage("dog.jpg");
  const cv::Mat bgr = cv::imdecode(dog, cv::IMREAD_COLOR);
  ASSERT_FALSE(bgr.empty());
  cv::Mat grey, bgra, wide;
  cv::extractChannel(bgr, grey, 1);
  std::vector<cv::Mat> planes;
  cv::split(bgr, planes);
  planes.push_back(planes[0]);
  cv::merge(planes, bgra);
  bgr.convertTo(wide, CV_16UC3, 257.0);
  struct Variant {
    const char* name;
    const cv::Mat* image;
    const char* extension;
    std::vector<int> params;
  };
  const Variant variants[] = {
      {"grey jpeg", &grey, ".jpg", {}},
      {"progressive jpeg", &bgr, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}},
      {"restart markers", &bgr, ".jpg", {cv::IMWRITE_JPEG_RST_INTERVAL, 3}},
      {"quality 100", &bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 100}},
      {"grey png", &grey, ".png", {}},
      {"bgra png", &bgra, ".png", {}},
      {"16-bit png", &wide, ".png", {}},
  };
  for (const Variant& variant : variants) {
    SCOPED_TRACE(variant.name);
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(variant.extension, *variant.image, bytes, variant.params));
    ExpectSameAsOpenCv(bytes);
  }
}

// PNG kinds OpenCV's encoder never writes: palette with transparency, 1-,
// 2- and 4-bit grey, grey+alpha, 16-bit RGBA, Adam7 interlacing.
TEST(StrictDecodeTest, PngColourTypesAndInterlacingMatchOpenCvBitForBit) {
  const auto pattern = [](int x, int y, int c) { return (x * 7 + y * 13 + c * 61) & 0xFF; };
  std::vector<uint8_t> palette;
  for (int i = 0; i < 16; ++i)
    palette.insert(palette.end(), {uint8_t(i * 16), uint8_t(255 - i), uint8_t(i * 5)});
  const std::vector<Chunk> with_palette = {Fresh("PLTE", palette), Fresh("tRNS", {0, 128, 255})};
  struct Kind {
    const char* name;
    int bit_depth, color_type;
    bool interlaced;
  };
  for (const Kind& kind : {Kind{"palette 4-bit", 4, 3, false}, Kind{"grey 1-bit", 1, 0, false},
                           Kind{"grey 2-bit", 2, 0, false}, Kind{"grey 4-bit", 4, 0, true},
                           Kind{"grey+alpha", 8, 4, false}, Kind{"rgba 16-bit", 16, 6, false},
                           Kind{"rgb adam7", 8, 2, true}, Kind{"palette adam7", 4, 3, true}}) {
    SCOPED_TRACE(kind.name);
    const int max_value = (1 << kind.bit_depth) - 1;
    for (const auto& [width, height] : {std::pair{37, 23}, std::pair{5, 3}, std::pair{1, 1}}) {
      ExpectSameAsOpenCv(MakePng(width, height, kind.bit_depth, kind.color_type, kind.interlaced,
                                 kind.color_type == 3 ? with_palette : std::vector<Chunk>{},
                                 [&](int x, int y, int c) {
                                   const int v = pattern(x, y, c);
                                   return kind.bit_depth == 16 ? v * 257 : v & max_value;
                                 }));
    }
  }
}

// CMYK and YCCK (Adobe) JPEGs: libjpeg returns CMYK, converted to BGR as
// OpenCV converts it.
TEST(StrictDecodeTest, CmykAndYcckJpegsMatchOpenCvBitForBit) {
  const int width = 61, height = 37;
  std::vector<uint8_t> cmyk(size_t{4} * width * height);
  for (size_t i = 0; i < cmyk.size(); ++i) cmyk[i] = static_cast<uint8_t>((i * 37 + i / 97) & 0xFF);
  const std::vector<uint8_t> cmyk_jpeg = EncodeJpeg(cmyk, width, height, 4, JCS_CMYK);
  ExpectSameAsOpenCv(cmyk_jpeg);

  const std::vector<uint8_t> ycck_jpeg = EncodeJpeg(cmyk, width, height, 4, JCS_CMYK, {}, JCS_YCCK);
  EXPECT_NE(ycck_jpeg, cmyk_jpeg);
  ExpectSameAsOpenCv(ycck_jpeg);
}

// A progressive JPEG with 190 scans decodes (and matches OpenCV); one with
// 379, each a full pass over the coefficients, is refused as a likely bomb.
TEST(StrictDecodeTest, ProgressiveJpegsOverTheScanLimitAreRefused) {
  const int width = 48, height = 40;
  std::vector<uint8_t> rgb(size_t{3} * width * height);
  for (size_t i = 0; i < rgb.size(); ++i)
    rgb[i] = static_cast<uint8_t>((i * 11 + i / 144 * 7) & 0xFF);
  const std::vector<jpeg_scan_info> under = OneCoefficientPerScan(false);
  const std::vector<jpeg_scan_info> over = OneCoefficientPerScan(true);
  ASSERT_EQ(under.size(), 190u);
  ASSERT_EQ(over.size(), 379u);
  ExpectSameAsOpenCv(EncodeJpeg(rgb, width, height, 3, JCS_RGB, under));
  const std::vector<uint8_t> bomb = EncodeJpeg(rgb, width, height, 3, JCS_RGB, over);
  int opencv_width = 0, opencv_height = 0;
  EXPECT_FALSE(OpenCvPixels(bomb, &opencv_width, &opencv_height).empty())
      << "a lenient decoder takes it";
  ExpectRefused(bomb, "more scans than the limit of 256");
}

// ---- what a lenient decoder accepts: refused ----

// The case: half of dog.jpg and an end-of-image marker. libjpeg
// warns "premature end of data segment" and pads the rest with grey.
TEST(StrictDecodeTest, TruncatedJpegEndingInEndOfImageIsRefused) {
  const std::vector<uint8_t> dog = ReadTestImage("dog.jpg");
  for (size_t cut : {size_t{81879}, dog.size() / 3, dog.size() * 9 / 10, dog.size() - 100}) {
    SCOPED_TRACE(cut);
    std::vector<uint8_t> bytes(dog.begin(), dog.begin() + cut);
    bytes.insert(bytes.end(), {0xFF, 0xD9});
    ExpectRefused(bytes, "truncated or corrupt JPEG");
  }
}

// Random bytes (no 0xFF, so no marker the container walk could see) in the
// middle of the entropy-coded data: libjpeg resynchronises and warns.
TEST(StrictDecodeTest, GarbageInsideJpegScanDataIsRefused) {
  const std::vector<uint8_t> dog = ReadTestImage("dog.jpg");
  std::mt19937 generator(5);
  for (size_t at : {dog.size() * 3 / 10, dog.size() * 6 / 10, dog.size() * 9 / 10}) {
    SCOPED_TRACE(at);
    std::vector<uint8_t> bytes = dog;
    for (size_t i = at; i < at + 64; ++i) bytes[i] = static_cast<uint8_t>(generator() % 255);
    ExpectRefused(bytes, "Corrupt JPEG data");
  }
}

// A bad CRC on an ancillary chunk (libpng's default: warn and drop the
// chunk) and on a critical one.
TEST(StrictDecodeTest, PngWithABadCrcIsRefused) {
  const std::vector<Chunk> chunks = SplitPng(ReadTestImage("astronaut.png"));
  for (const char* type : {"pHYs", "tEXt", "iCCP", "IDAT"}) {
    SCOPED_TRACE(type);
    std::vector<Chunk> damaged = chunks;
    damaged[IndexOf(damaged, type)].crc ^= 1;
    ExpectRefused(JoinPng(damaged), "CRC error");
  }
}

// The image data's zlib stream damaged where only a lenient decoder lets it
// pass: the Adler-32 wrong in a final IDAT of its own (read after the last
// row), or bytes after the end of the stream.
TEST(StrictDecodeTest, PngWithADamagedZlibStreamIsRefused) {
  const std::vector<Chunk> chunks = SplitPng(ReadTestImage("astronaut.png"));
  const size_t last_idat = IndexOf(chunks, "IDAT", /*last=*/true);
  std::vector<Chunk> split = chunks;
  Chunk& idat = split[last_idat];
  Chunk checksum = Fresh("IDAT", std::vector<uint8_t>(idat.data.end() - 4, idat.data.end()));
  idat.data.resize(idat.data.size() - 4);
  idat.crc = 0;
  split.insert(split.begin() + last_idat + 1, checksum);
  ExpectSameAsOpenCv(JoinPng(split));  // the split itself is a valid PNG

  split[last_idat + 1].data[0] ^= 1;
  ExpectRefused(JoinPng(split), "incorrect data check");

  std::vector<Chunk> extra = chunks;
  extra[last_idat].data.resize(extra[last_idat].data.size() + 16, 0);
  extra[last_idat].crc = 0;
  ExpectRefused(JoinPng(extra), "corrupt PNG");
}

// A PNG cut at a chunk boundary with IEND appended passes the container
// walk; the pixel data runs out.
TEST(StrictDecodeTest, PngTruncatedAtAChunkBoundaryIsRefused) {
  const std::vector<Chunk> chunks = SplitPng(ReadTestImage("astronaut.png"));
  const size_t first_idat = IndexOf(chunks, "IDAT");
  const size_t last_idat = IndexOf(chunks, "IDAT", /*last=*/true);
  for (size_t keep : {first_idat + 1, (first_idat + last_idat) / 2, last_idat}) {
    SCOPED_TRACE(keep);
    std::vector<Chunk> cut(chunks.begin(), chunks.begin() + keep);
    cut.push_back(chunks.back());  // IEND
    ExpectRefused(JoinPng(cut), "truncated PNG");
  }
}

// After a refused frame the worker's next good frame decodes in place.
TEST(StrictDecodeTest, ARefusedFrameLeavesTheBufferForTheNext) {
  const std::vector<uint8_t> dog = ReadTestImage("dog.jpg");
  std::vector<uint8_t> truncated(dog.begin(), dog.begin() + 81879);
  truncated.insert(truncated.end(), {0xFF, 0xD9});
  Image frame;
  ASSERT_TRUE(DecodeImageInto(dog.data(), dog.size(), &frame).ok());
  const std::vector<uint8_t> first = frame.bgr;
  const uint8_t* buffer = frame.bgr.data();
  EXPECT_FALSE(DecodeImageInto(truncated.data(), truncated.size(), &frame).ok());
  EXPECT_TRUE(frame.bgr.empty());
  ASSERT_TRUE(DecodeImageInto(dog.data(), dog.size(), &frame).ok());
  EXPECT_EQ(frame.bgr.data(), buffer);
  EXPECT_EQ(frame.bgr, first);
}

}  // namespace
}  // namespace lowbit::engine
