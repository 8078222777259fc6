// DecodeImage and ImageFromRaw on real photos and on broken input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "lowbit/engine/detector.h"
#include "test_vision_util.h"

namespace lowbit::engine {
namespace {

using ::testing::HasSubstr;
using testing::ReadTestImage;

// Width and height straight from the JPEG frame header (SOF0..SOF2) or PNG
// IHDR, found independently of the code under test.
std::pair<int, int> HeaderSize(const std::vector<uint8_t>& bytes) {
  if (bytes.size() > 24 && bytes[0] == 0x89) {
    const auto be32 = [&](size_t i) {
      return (bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3];
    };
    return {be32(16), be32(20)};
  }
  for (size_t i = 2; i + 9 < bytes.size(); ++i) {
    if (bytes[i] == 0xFF &&
        (bytes[i + 1] == 0xC0 || bytes[i + 1] == 0xC1 || bytes[i + 1] == 0xC2)) {
      return {(bytes[i + 7] << 8) | bytes[i + 8], (bytes[i + 5] << 8) | bytes[i + 6]};
    }
  }
  return {0, 0};
}

TEST(DecodeImageTest, DecodesRealJpegAndPng) {
  for (const char* name : {"dog.jpg", "giraffe.jpg", "astronaut.png", "motorcycle_left.png"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> bytes = ReadTestImage(name);
    ASSERT_FALSE(bytes.empty());
    const auto [width, height] = HeaderSize(bytes);
    auto image = DecodeImage(bytes.data(), bytes.size());
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(image->width, width);
    EXPECT_EQ(image->height, height);
    ASSERT_EQ(image->bgr.size(), size_t{3} * width * height);
    // A real photo is not one flat colour.
    EXPECT_NE(*std::min_element(image->bgr.begin(), image->bgr.end()),
              *std::max_element(image->bgr.begin(), image->bgr.end()));
  }
}

// A worker decodes frame after frame into one Image: same pixels as a
// fresh decode, the buffer reused for a frame of the same size, and an
// error leaves the image empty.
TEST(DecodeImageTest, DecodeIntoReusesTheBufferAndMatchesAFreshDecode) {
  const std::vector<uint8_t> dog = ReadTestImage("dog.jpg");
  const std::vector<uint8_t> png = ReadTestImage("astronaut.png");
  Image frame;
  ASSERT_TRUE(DecodeImageInto(dog.data(), dog.size(), &frame).ok());
  const uint8_t* buffer = frame.bgr.data();
  for (const std::vector<uint8_t>* bytes : {&dog, &png, &dog}) {
    StatusOr<Image> fresh = DecodeImage(bytes->data(), bytes->size());
    ASSERT_TRUE(fresh.ok());
    ASSERT_TRUE(DecodeImageInto(bytes->data(), bytes->size(), &frame).ok());
    EXPECT_EQ(frame.width, fresh->width);
    EXPECT_EQ(frame.height, fresh->height);
    EXPECT_EQ(frame.bgr, fresh->bgr);
  }
  // The dog again after a larger image: decoded in place, no new buffer.
  const size_t capacity = frame.bgr.capacity();
  buffer = frame.bgr.data();
  ASSERT_TRUE(DecodeImageInto(dog.data(), dog.size(), &frame).ok());
  EXPECT_EQ(frame.bgr.data(), buffer);
  EXPECT_EQ(frame.bgr.capacity(), capacity);

  std::vector<uint8_t> corrupt = dog;
  corrupt.resize(corrupt.size() / 2);
  EXPECT_EQ(DecodeImageInto(corrupt.data(), corrupt.size(), &frame).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(frame.width, 0);
  EXPECT_TRUE(frame.bgr.empty());
}

TEST(DecodeImageTest, EmptyBufferIsInvalidArgument) {
  const uint8_t byte = 0;
  for (auto result : {DecodeImage(nullptr, 0), DecodeImage(&byte, 0)}) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr("empty"));
  }
}

TEST(DecodeImageTest, RandomBytesAreInvalidArgument) {
  std::mt19937 generator(7);
  std::vector<uint8_t> bytes(4096);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(generator());
  bytes[0] = 0x12;  // not a JPEG/PNG signature
  auto result = DecodeImage(bytes.data(), bytes.size());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("not a JPEG or PNG"));

  // Random bytes behind a JPEG signature: corrupt, not a crash or an image.
  bytes[0] = 0xFF, bytes[1] = 0xD8, bytes[2] = 0xFF;
  result = DecodeImage(bytes.data(), bytes.size());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
}

TEST(DecodeImageTest, TruncatedJpegIsInvalidArgument) {
  const std::vector<uint8_t> bytes = ReadTestImage("dog.jpg");
  ASSERT_GT(bytes.size(), 1000u);
  // Cuts inside the headers, inside the entropy-coded data, and just before
  // the end-of-image marker (OpenCV alone returns a grey-padded image there).
  for (size_t size : {size_t{200}, bytes.size() / 2, bytes.size() * 9 / 10, bytes.size() - 2}) {
    SCOPED_TRACE(size);
    auto result = DecodeImage(bytes.data(), size);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr("truncated JPEG"));
  }
}

TEST(DecodeImageTest, TruncatedPngIsInvalidArgument) {
  const std::vector<uint8_t> bytes = ReadTestImage("astronaut.png");
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t size : {size_t{20}, bytes.size() / 2, bytes.size() - 4}) {
    SCOPED_TRACE(size);
    auto result = DecodeImage(bytes.data(), size);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr("truncated PNG"));
  }
}

TEST(DecodeImageTest, CorruptJpegSegmentIsInvalidArgument) {
  std::vector<uint8_t> bytes = ReadTestImage("dog.jpg");
  ASSERT_GT(bytes.size(), 100u);
  // The marker after the first segment (APPn) is overwritten.
  const size_t next_marker = 4 + ((bytes[4] << 8) | bytes[5]);
  ASSERT_EQ(bytes[next_marker], 0xFF);
  bytes[next_marker] = 0x12;
  auto result = DecodeImage(bytes.data(), bytes.size());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("corrupt"));
}

TEST(DecodeImageTest, OversizedImageIsRefusedBeforeDecoding) {
  const std::vector<uint8_t> bytes = ReadTestImage("dog.jpg");
  const auto [width, height] = HeaderSize(bytes);
  ASSERT_GT(width * height, 0);
  DecodeLimits limits;
  limits.max_pixels = int64_t{width} * height - 1;
  auto result = DecodeImage(bytes.data(), bytes.size(), limits);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("over the limit"));
  limits.max_pixels = int64_t{width} * height;
  EXPECT_TRUE(DecodeImage(bytes.data(), bytes.size(), limits).ok());

  // A PNG header claiming 100000 x 100000 pixels, with no pixel data: the
  // size alone refuses it (a full decode would need 30 GB).
  std::vector<uint8_t> png = ReadTestImage("astronaut.png");
  ASSERT_GT(png.size(), 24u);
  for (int i : {16, 20}) {
    png[i] = 0, png[i + 1] = 0x01, png[i + 2] = 0x86, png[i + 3] = 0xA0;  // 100000
  }
  result = DecodeImage(png.data(), 40);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("100000x100000"));
}

TEST(ReadImageHeaderTest, ReportsTheHeaderSizeOfRealFiles) {
  for (const char* name : {"dog.jpg", "giraffe.jpg", "astronaut.png", "motorcycle_left.png"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> bytes = ReadTestImage(name);
    const auto [width, height] = HeaderSize(bytes);
    auto size = ReadImageHeader(bytes.data(), bytes.size());
    ASSERT_TRUE(size.ok()) << size.status().ToString();
    EXPECT_EQ(size->width, width);
    EXPECT_EQ(size->height, height);
  }
}

TEST(ReadImageHeaderTest, RefusesWhatDecodeImageRefusesBeforeDecoding) {
  const std::vector<uint8_t> jpeg = ReadTestImage("dog.jpg");
  auto truncated = ReadImageHeader(jpeg.data(), jpeg.size() - 2);
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(truncated.status().message(), HasSubstr("truncated JPEG"));
  const uint8_t junk[] = {0x12, 0x34, 0x56};
  auto unknown = ReadImageHeader(junk, sizeof(junk));
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("not a JPEG or PNG"));
  EXPECT_FALSE(ReadImageHeader(nullptr, 0).ok());

  // A 623-byte JPEG whose frame header claims 5792x5792: SOI, SOF0 with
  // that size, SOS, a little scan data, EOI. The header walk accepts its
  // structure, so only the pixel limit refuses it.
  std::vector<uint8_t> bomb = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x16, 0xA0,
                               0x16, 0xA0, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01,
                               0x03, 0x11, 0x01, 0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01,
                               0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00};
  bomb.resize(621, 0x55);
  bomb.push_back(0xFF);
  bomb.push_back(0xD9);
  auto claimed = ReadImageHeader(bomb.data(), bomb.size());
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  EXPECT_EQ(claimed->width, 5792);
  EXPECT_EQ(claimed->height, 5792);
  DecodeLimits limits;
  limits.max_pixels = 4096LL * 4096;
  auto refused = ReadImageHeader(bomb.data(), bomb.size(), limits);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("5792x5792"));
}

TEST(ImageFromRawTest, ConvertsRgbToBgrWithStride) {
  // 2x2 RGB pixels, rows padded to 8 bytes.
  const std::vector<uint8_t> rgb = {1, 2, 3, 4,  5,  6,  99, 99,  //
                                    7, 8, 9, 10, 11, 12, 99, 99};
  ImageView view{rgb.data(), 2, 2, 8, PixelFormat::kRgb8};
  auto image = ImageFromRaw(view, rgb.size());
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->bgr, (std::vector<uint8_t>{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}));

  view.format = PixelFormat::kBgr8;
  image = ImageFromRaw(view, rgb.size() - 2);  // the last row's padding is optional
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->bgr, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
}

TEST(ImageFromRawTest, RejectsBadSizesStrideAndBuffer) {
  const std::vector<uint8_t> pixels(64, 0);
  struct Case {
    ImageView view;
    size_t buffer_size;
    const char* message;
  };
  const Case cases[] = {
      {{pixels.data(), 0, 2, 6, PixelFormat::kRgb8}, pixels.size(), "not positive"},
      {{pixels.data(), 2, -1, 6, PixelFormat::kRgb8}, pixels.size(), "not positive"},
      {{pixels.data(), 4, 2, 11, PixelFormat::kRgb8}, pixels.size(), "stride"},
      {{pixels.data(), 4, 2, 12, PixelFormat::kRgb8}, 23, "needs 24"},
      {{pixels.data(), 4, 2, 16, PixelFormat::kBgr8}, 27, "needs 28"},
      {{nullptr, 4, 2, 12, PixelFormat::kBgr8}, 24, "buffer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    auto result = ImageFromRaw(c.view, c.buffer_size);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr(c.message));
  }
  DecodeLimits limits;
  limits.max_pixels = 7;
  auto result = ImageFromRaw({pixels.data(), 4, 2, 12, PixelFormat::kRgb8}, 24, limits);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("over the limit"));
}

}  // namespace
}  // namespace lowbit::engine
