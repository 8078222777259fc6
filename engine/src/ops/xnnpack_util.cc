#include "ops/xnnpack_util.h"

#include <mutex>
#include <string>
#include <utility>

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

XnnpackOperator::XnnpackOperator(XnnpackOperator&& other) noexcept
    : operator_(std::exchange(other.operator_, nullptr)),
      setup_key_(std::exchange(other.setup_key_, std::nullopt)) {}

XnnpackOperator& XnnpackOperator::operator=(XnnpackOperator&& other) noexcept {
  if (this != &other) {
    Reset();
    operator_ = std::exchange(other.operator_, nullptr);
    setup_key_ = std::exchange(other.setup_key_, std::nullopt);
  }
  return *this;
}

xnn_operator_t* XnnpackOperator::Receive() {
  Reset();
  return &operator_;
}

void XnnpackOperator::Reset() {
  if (operator_ != nullptr) xnn_delete_operator(operator_);
  operator_ = nullptr;
  setup_key_.reset();
}

Status XnnpackOperator::Failed(const char* what, const char* stage, xnn_status status) {
  return Internal(std::string("XNNPACK ") + what + stage + " failed (status " +
                  std::to_string(status) + ")");
}

}  // namespace lowbit::engine::ops
