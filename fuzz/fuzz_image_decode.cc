// Fuzz target: JPEG/PNG decode through the engine's public functions
// (lowbit/engine/detector.h): ReadImageHeader, the container walk admission
// runs on every encoded frame, then DecodeImageInto into a reused image, as
// a server worker decodes frame after frame. Input: the bytes of a file.
//
// Checked on every accepted input: the decoded image has the size the
// header walk reported and a pixel buffer of exactly width * height * 3.
#include <cstddef>
#include <cstdint>

#include "fuzz_check.h"
#include "lowbit/engine/detector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 4 Mpixel (12 MB of BGR) keeps a decode well inside -rss_limit_mb and
  // -timeout while covering every size path (the server's default is 32M).
  lowbit::engine::DecodeLimits limits;
  limits.max_pixels = 4LL * 1024 * 1024;
  lowbit::StatusOr<lowbit::engine::ImageSize> header =
      lowbit::engine::ReadImageHeader(data, size, limits);
  static lowbit::engine::Image reused;
  const lowbit::Status decoded = lowbit::engine::DecodeImageInto(data, size, &reused, limits);
  if (!decoded.ok()) {
    FUZZ_CHECK(reused.width == 0 && reused.height == 0);
    return 0;
  }
  // DecodeImage walks the same header first, so it cannot accept what the
  // walk refuses.
  FUZZ_CHECK(header.ok());
  FUZZ_CHECK(reused.width == header->width && reused.height == header->height);
  FUZZ_CHECK(reused.width > 0 && reused.height > 0);
  FUZZ_CHECK(static_cast<int64_t>(reused.width) * reused.height <= limits.max_pixels);
  FUZZ_CHECK(reused.bgr.size() == static_cast<size_t>(reused.width) * reused.height * 3);
  return 0;
}
