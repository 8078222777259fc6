// XNNPACK initialisation shared by the kernels that use it.
#pragma once

#include <xnnpack.h>

#include "lowbit/engine/status.h"

namespace lowbit::engine::ops {

// Initialises XNNPACK once per process; later calls return the first result.
Status InitializeXnnpack();

}  // namespace lowbit::engine::ops
