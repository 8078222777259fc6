"""Plain result and input types of the lowbit SDK (no gRPC types leak here,
except the ModelConfig message that GetModel returns as is)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from lowbit.errors import LowbitError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from lowbit._proto.v1 import model_config_pb2

#: What ``detect`` accepts as an image: a file path, a JPEG/PNG file's bytes,
#: or a numpy uint8 array of shape (height, width, 3).
ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, "np.ndarray"]


class Box(NamedTuple):
    """Pixel coordinates in the original image, x to the right, y down."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        return self.y_max - self.y_min


@dataclass(frozen=True)
class Detection:
    """One detected object."""

    box: Box
    class_id: int
    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """One class of the whole image (a classification model's result)."""

    class_id: int
    label: str
    score: float


#: Why the server dropped a frame without computing it (lowbit.v1.DropReason
#: names): a newer frame of the same camera arrived while it waited (latest
#: frame wins); it was older than its max_frame_age_ms when its batch formed;
#: the model's queue was full; its deadline passed; the call was cancelled;
#: the server is shutting down.
DROP_REASONS = ("SUPERSEDED", "STALE", "QUEUE_FULL", "DEADLINE", "CANCELLED", "SHUTTING_DOWN")


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each stage of one frame on the server."""

    decode_ms: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    total_ms: float = 0.0
    #: From the frame's capture_time_us to the server's response; 0 when the
    #: request gave no capture time.
    frame_age_ms: float = 0.0


@dataclass(frozen=True)
class DetectResult:
    """The result of one frame.

    ``error`` is set only on a streamed frame that failed (unary calls raise
    :class:`LowbitError` instead); such a result has no detections.
    A detection model fills ``detections``; a classification model fills
    ``classifications`` (highest score first) instead.
    """

    model: str
    camera_id: str
    frame_id: int
    detections: list[Detection] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    image_width: int = 0
    image_height: int = 0
    #: Frames that shared one engine call (1 = not batched).
    batch_size: int = 0
    error: Optional[LowbitError] = None
    #: Set (with ``error``) on a streamed frame the server dropped without
    #: computing it: one of :data:`DROP_REASONS`, e.g. "SUPERSEDED".
    dropped: Optional[str] = None
    classifications: list[Classification] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the image as the server decoded it."""
        return (self.image_width, self.image_height)

    def raise_for_error(self) -> "DetectResult":
        """Raises this result's error, if any; returns self otherwise."""
        if self.error is not None:
            raise self.error
        return self


@dataclass
class Frame:
    """One frame of a stream (see :meth:`lowbit.Client.detect_stream`).

    ``frame_id`` None means "the frame's position in the stream";
    ``model``, ``score_threshold`` and ``max_frame_age_ms`` None mean the
    stream's defaults. ``capture_time_us`` is when the camera took the frame,
    microseconds since the Unix epoch (see :func:`lowbit.now_us`); None means
    "not given", or "when it is sent" on a stream opened with
    ``stamp_capture_time=True``.
    """

    image: ImageInput
    camera_id: str = ""
    frame_id: Optional[int] = None
    model: Optional[str] = None
    score_threshold: Optional[float] = None
    capture_time_us: Optional[int] = None
    max_frame_age_ms: Optional[int] = None


@dataclass(frozen=True)
class ModelSummary:
    """One entry of ListModels."""

    name: str
    version: int
    input_width: int
    input_height: int
    num_classes: int
    #: True for the model used when a request names none.
    is_default: bool = False


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a compiled model, as GetModel reports it."""

    name: str
    op: str
    output_shape: tuple[int, ...]
    macs: int
    params: int
    #: Bits per weight and per input activation (32 for float layers).
    weight_bits: int = 32
    activation_bits: int = 32
    #: The kernel family that runs the layer ("int8dot", "bitserial", "xnnpack_f32"...).
    kernel: str = ""
    #: Bytes of the layer's weights as stored (packed at their bit width).
    weight_bytes: int = 0


@dataclass(frozen=True)
class ModelDetails:
    """GetModel: the model's configuration and its per-layer costs."""

    #: The model's lowbit.v1.ModelConfig message (config.pbtxt as loaded).
    config: "model_config_pb2.ModelConfig"
    layers: list[LayerInfo]
    total_macs: int
    total_params: int

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)


def _as_dict(value: Any) -> Any:
    """JSON-friendly view of the result types (used by the CLI's --json)."""
    if isinstance(value, LowbitError):
        return {"code": value.code.name, "message": value.message}
    if isinstance(value, Box):
        return [value.x_min, value.y_min, value.x_max, value.y_max]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _as_dict(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, (list, tuple)):
        return [_as_dict(v) for v in value]
    return value
