// XNNPACK initialisation and operator ownership shared by the kernels that use it.
#pragma once

#include <pthreadpool.h>
#include <xnnpack.h>

#include <cstdint>
#include <optional>

#include "lowbit/engine/status.h"
#include "ops/kernel.h"

namespace lowbit::engine::ops {

// Initialises XNNPACK once per process; later calls return the first result.
Status InitializeXnnpack();

// Owns one XNNPACK operator (deleted with it; move-only) and remembers the
// arguments it was last set up with.
//
// Setup is cached because xnn_setup_* is not free: it recomputes the
// operator's indirection buffers (convolution, pooling) and its split of the
// work over the thread pool. A session hands a kernel the same buffers, batch
// and pool frame after frame, so the operator is set up again only when one
// of them changes, and otherwise just run.
class XnnpackOperator {
 public:
  // Everything an operator's setup depends on besides its creation
  // parameters: a run in `context` reading `input` (and `second_input`, for
  // binary ops) into `output`.
  struct SetupKey {
    SetupKey(const KernelContext& context, const float* input, const float* output,
             const float* second_input = nullptr)
        : batch(context.batch),
          threadpool(context.threadpool),
          input(input),
          second_input(second_input),
          output(output) {}
    bool operator==(const SetupKey&) const = default;

    int64_t batch;
    pthreadpool_t threadpool;  // nullptr: the caller's thread
    const float* input;
    const float* second_input;
    const float* output;
  };

  XnnpackOperator() = default;
  ~XnnpackOperator() { Reset(); }
  XnnpackOperator(const XnnpackOperator&) = delete;
  XnnpackOperator& operator=(const XnnpackOperator&) = delete;
  XnnpackOperator(XnnpackOperator&& other) noexcept;
  XnnpackOperator& operator=(XnnpackOperator&& other) noexcept;

  // Where an xnn_create_* call writes the new operator; drops the one held before.
  xnn_operator_t* Receive();

  bool created() const { return operator_ != nullptr; }

  // Calls `setup(xnn_operator_t) -> xnn_status` (the operator's xnn_setup_*
  // with the arguments `key` describes) unless the last successful setup had
  // the same key, then runs the operator on key.threadpool. Errors read
  // "XNNPACK <what> setup failed" / "XNNPACK <what> failed" with the status.
  template <typename Setup>
  Status Run(const SetupKey& key, const Setup& setup, const char* what) {
    if (setup_key_ != key) {
      const xnn_status status = setup(operator_);
      if (status != xnn_status_success) return Failed(what, " setup", status);
      setup_key_ = key;
    }
    const xnn_status status = xnn_run_operator(operator_, key.threadpool);
    if (status != xnn_status_success) return Failed(what, "", status);
    return Status::Ok();
  }

 private:
  static Status Failed(const char* what, const char* stage, xnn_status status);
  void Reset();

  xnn_operator_t operator_ = nullptr;
  std::optional<SetupKey> setup_key_;  // empty until the first successful setup
};

}  // namespace lowbit::engine::ops
