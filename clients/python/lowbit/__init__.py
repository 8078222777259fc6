"""lowbit: Python SDK for the lowbit edge detection server.

    from lowbit import Client

    with Client("127.0.0.1:50051") as client:
        for detection in client.detect("dog.jpg").detections:
            print(detection.label, detection.score, detection.box)
"""
from lowbit.client import DEFAULT_ADDRESS, Client, now_us
from lowbit.errors import LowbitError
from lowbit.types import (
    DROP_REASONS,
    Box,
    Classification,
    Detection,
    DetectResult,
    Frame,
    ImageInput,
    LayerInfo,
    ModelDetails,
    ModelSummary,
    Timings,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ADDRESS",
    "DROP_REASONS",
    "Box",
    "Classification",
    "Client",
    "DetectResult",
    "Detection",
    "Frame",
    "ImageInput",
    "LayerInfo",
    "LowbitError",
    "ModelDetails",
    "ModelSummary",
    "Timings",
    "now_us",
]
