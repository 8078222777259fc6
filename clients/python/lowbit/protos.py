"""The generated protobuf and gRPC modules of lowbit.v1.

    from lowbit.protos import detector_pb2, detector_pb2_grpc, model_config_pb2

Most users need only :class:`lowbit.Client`; these are for building requests
the SDK does not offer (and for tests that send deliberately bad ones).
"""
from __future__ import annotations

try:
    from lowbit._proto.v1 import detector_pb2, detector_pb2_grpc, model_config_pb2
except ImportError as error:  # pragma: no cover - depends on how it was installed
    raise ImportError(
        "lowbit's gRPC stubs (lowbit._proto) are missing. They are generated from "
        "proto/lowbit/v1 when the package is installed: run "
        "`pip install --no-build-isolation -e clients/python` (or deploy/install-deps.sh) "
        f"from the lowbit checkout. Cause: {error}"
    ) from error

__all__ = ["detector_pb2", "detector_pb2_grpc", "model_config_pb2"]
