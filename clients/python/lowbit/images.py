"""Turning the SDK's image inputs into lowbit.v1.Frame messages."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lowbit.protos import detector_pb2

_PIXEL_FORMATS = {"bgr": detector_pb2.BGR8, "rgb": detector_pb2.RGB8}


def pixel_format_enum(pixel_format: str) -> int:
    """'bgr' / 'rgb' (any case) -> lowbit.v1.PixelFormat value."""
    try:
        return _PIXEL_FORMATS[pixel_format.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"pixel_format must be 'bgr' or 'rgb', not {pixel_format!r}") from None


def to_frame(image: Any, pixel_format: str = "bgr") -> detector_pb2.Frame:
    """Builds a Frame from a path, encoded JPEG/PNG bytes or a uint8 HxWx3 array.

    Paths and bytes are sent encoded (the server decodes them). Arrays are sent
    as RawImage: rows packed, ``stride = 3 * width``, channels in
    ``pixel_format`` order ('bgr', OpenCV's order, by default).
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            return detector_pb2.Frame(encoded=path.read_bytes())
        except FileNotFoundError:
            raise FileNotFoundError(f"image file not found: {path}") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ValueError("image bytes are empty")
        return detector_pb2.Frame(encoded=data)
    if isinstance(image, np.ndarray):
        return _array_frame(image, pixel_format)
    raise TypeError(
        "image must be a path (str or os.PathLike), JPEG/PNG bytes, or a numpy uint8 "
        f"array of shape (height, width, 3); got {type(image).__name__}"
    )


def _array_frame(array: np.ndarray, pixel_format: str) -> detector_pb2.Frame:
    if array.dtype != np.uint8:
        raise TypeError(f"image array must have dtype uint8, not {array.dtype}")
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"image array must have shape (height, width, 3), not {array.shape}; "
            "convert grayscale or 4-channel images first"
        )
    height, width = int(array.shape[0]), int(array.shape[1])
    if height == 0 or width == 0:
        raise ValueError(f"image array is empty: shape {array.shape}")
    # Views such as img[:, :, ::-1] or crops are not contiguous: pack the rows.
    pixels = np.ascontiguousarray(array).tobytes()
    raw = detector_pb2.RawImage(
        pixels=pixels,
        width=width,
        height=height,
        stride=3 * width,
        format=pixel_format_enum(pixel_format),
    )
    return detector_pb2.Frame(raw=raw)
