// Fuzz target: a raw pixel frame's validation at admission
// (server/src/admission.cc, RawPayload: format, sizes, stride and buffer
// length against the limits, then the copy into BGR8 by engine::
// ImageFromRaw). Input layout, little-endian:
//   [0, 4)  i32 width    [4, 8)  i32 height    [8, 12)  i32 stride
//   [12, 16) i32 format (lowbit.v1.PixelFormat)  [16, end) the pixel bytes
// so the fuzzer works on the size arithmetic directly rather than on the
// RawImage's protobuf encoding (which gRPC parses before lowbit sees it).
//
// Checked on every accepted frame: a packed BGR8 image of the stated size
// whose first and last pixels are the input's, channels swapped for RGB8.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "admission.h"
#include "fuzz_check.h"

namespace {

int32_t Read32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void CheckPixel(const uint8_t* in, const uint8_t* out, bool rgb) {
  FUZZ_CHECK(out[1] == in[1]);
  FUZZ_CHECK(out[0] == (rgb ? in[2] : in[0]));
  FUZZ_CHECK(out[2] == (rgb ? in[0] : in[2]));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 16) return 0;
  lowbit::v1::RawImage raw;
  raw.set_width(Read32(data));
  raw.set_height(Read32(data + 4));
  raw.set_stride(Read32(data + 8));
  raw.set_format(static_cast<lowbit::v1::PixelFormat>(Read32(data + 12)));
  raw.set_pixels(reinterpret_cast<const char*>(data + 16), size - 16);

  // The server's defaults, with the pixel limit lowered so an accepted
  // frame's copy stays small (the arithmetic paths are the same).
  lowbit::server::FrontendLimits limits;
  limits.max_pixels = 1 << 20;
  lowbit::StatusOr<lowbit::server::FramePayload> payload = lowbit::server::RawPayload(raw, limits);
  if (!payload.ok()) {
    FUZZ_CHECK(payload.status().message().size() < 1024);
    return 0;
  }
  const lowbit::engine::Image& image = payload->image;
  FUZZ_CHECK(payload->kind == lowbit::server::FramePayload::Kind::kImage);
  FUZZ_CHECK(image.width == raw.width() && image.height == raw.height());
  FUZZ_CHECK(payload->width == image.width && payload->height == image.height);
  FUZZ_CHECK(image.bgr.size() == static_cast<size_t>(image.width) * image.height * 3);
  const int64_t stride = raw.stride() == 0 ? 3LL * raw.width() : raw.stride();
  const bool rgb = raw.format() == lowbit::v1::RGB8;
  const uint8_t* pixels = data + 16;
  CheckPixel(pixels, image.bgr.data(), rgb);
  const uint8_t* last_in = pixels + stride * (image.height - 1) + 3 * (image.width - 1);
  CheckPixel(last_in, image.bgr.data() + image.bgr.size() - 3, rgb);
  return 0;
}
