"""Damaged images that a lenient decoder answers as whole ones are refused by
the real server with INVALID_ARGUMENT (issue 10), and the server keeps serving."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import grpc
import pytest

from helpers import DOG, assert_detections
from lowbit import Client, LowbitError


def _truncated_with_eoi(dog_jpg: Path) -> bytes:
    # The reproduction: head -c 81879 dog.jpg; printf '\xff\xd9'
    return dog_jpg.read_bytes()[:81879] + b"\xff\xd9"


def _png_with_bad_ancillary_crc(png: Path) -> bytes:
    data = bytearray(png.read_bytes())
    position = 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if kind[0] & 0x20:  # ancillary (lower-case first letter): libpng alone only warns
            crc_at = position + 8 + length
            assert struct.unpack(">I", data[crc_at:crc_at + 4])[0] == zlib.crc32(data[position + 4:crc_at])
            data[crc_at] ^= 1
            return bytes(data)
        position += 12 + length
    pytest.fail(f"{png} has no ancillary chunk")


def test_truncated_jpeg_ending_in_eoi_is_refused(client: Client, dog_jpg: Path) -> None:
    with pytest.raises(LowbitError) as refused:
        client.detect(_truncated_with_eoi(dog_jpg))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "truncated or corrupt JPEG" in refused.value.message and "premature end" in refused.value.message
    # The whole photo still detects.
    assert_detections(client.detect(dog_jpg, score_threshold=0.35), DOG)


def test_png_with_a_bad_crc_is_refused(client: Client, images: Path) -> None:
    with pytest.raises(LowbitError) as refused:
        client.detect(_png_with_bad_ancillary_crc(images / "astronaut.png"))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "CRC error" in refused.value.message


def test_refused_frames_in_a_stream_get_errors_and_the_stream_goes_on(client: Client, dog_jpg: Path) -> None:
    frames = [("", 1, dog_jpg), ("", 2, _truncated_with_eoi(dog_jpg)), ("", 3, dog_jpg)]
    results = {r.frame_id: r for r in client.detect_stream(frames, score_threshold=0.35)}
    assert sorted(results) == [1, 2, 3]
    assert results[2].error is not None and "truncated or corrupt JPEG" in str(results[2].error)
    assert_detections(results[1], DOG)
    assert_detections(results[3], DOG)
