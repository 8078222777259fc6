#include "ops/xnnpack_util.h"

#include <mutex>
#include <string>

namespace lowbit::engine::ops {

Status InitializeXnnpack() {
  static std::once_flag once;
  static xnn_status status = xnn_status_success;
  std::call_once(once, [] { status = xnn_initialize(nullptr); });
  if (status != xnn_status_success)
    return Internal("XNNPACK failed to initialize (status " + std::to_string(status) +
                    "); the CPU may lack the SSE/AVX features it needs");
  return Status::Ok();
}

}  // namespace lowbit::engine::ops
