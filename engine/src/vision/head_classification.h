// Classification head: one output of class scores per frame -> the top-k
// classes of the whole image.
#pragma once

#include <memory>

#include "vision/head.h"

namespace lowbit::engine::vision {

// The registry's factory: validates the message.
StatusOr<std::unique_ptr<Head>> MakeClassificationHead(const HeadContext& context);

}  // namespace lowbit::engine::vision
