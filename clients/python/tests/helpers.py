"""Expected detections (ONNX Runtime's results on a faithful FP32 conversion of NanoDet-g)
and checks shared by the tests."""
from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from lowbit import DetectResult, Detection

# NanoDet-g on the darknet photos: ONNX Runtime on a faithful FP32 conversion.
BOX_TOLERANCE_PX = 6.0
SCORE_TOLERANCE = 0.04
#: The threshold the reference figures were taken at.
SCORE_THRESHOLD = 0.35


@dataclass(frozen=True)
class Expected:
    label: str
    score: float
    box: tuple[float, float, float, float] | None = None  # None: the label alone is checked


DOG = (
    Expected("bicycle", 0.69, (117, 130, 570, 424)),
    Expected("dog", 0.42, (131, 222, 359, 542)),
    Expected("truck", 0.37, (465, 86, 693, 166)),
)
GIRAFFE = (Expected("giraffe", 0.83), Expected("zebra", 0.67))
EAGLE = (Expected("bird", 0.78),)


def _matches(d: Detection, e: Expected) -> bool:
    if d.label != e.label or abs(d.score - e.score) > SCORE_TOLERANCE:
        return False
    if e.box is None:
        return True
    return all(abs(got - want) <= BOX_TOLERANCE_PX for got, want in zip(d.box, e.box))


def describe(detections: Iterable[Detection]) -> str:
    return "; ".join(
        f"{d.label} {d.score:.3f} [{', '.join(f'{v:.1f}' for v in d.box)}]" for d in detections
    ) or "(none)"


def assert_detections(result: DetectResult, expected: Iterable[Expected], threshold: float = SCORE_THRESHOLD) -> None:
    """Every expected object found once (label, score, box within tolerance),
    and nothing else detected with confidence.

    Objects scoring within SCORE_TOLERANCE of the threshold (dog.jpg's car at
    0.36, say) may or may not pass it as numerics differ slightly from the
    reference run, so other labels are tolerated only that close to it."""
    expected = tuple(expected)
    assert result.error is None, f"frame failed: {result.error}"
    for e in expected:
        found = [d for d in result.detections if _matches(d, e)]
        assert len(found) == 1, (
            f"expected one {e.label} ~{e.score} at {e.box} (±{BOX_TOLERANCE_PX} px), "
            f"got: {describe(result.detections)}"
        )
    labels = {e.label for e in expected}
    unexpected = [d for d in result.detections if d.label not in labels and d.score >= threshold + SCORE_TOLERANCE]
    assert not unexpected, f"unexpected confident detections: {describe(unexpected)}"


def assert_timings(result: DetectResult) -> None:
    t = result.timings
    assert t.total_ms > 0, f"total time missing: {t}"
    assert t.inference_ms > 0, f"inference time missing: {t}"
    for name in ("decode_ms", "queue_ms", "inference_ms", "postprocess_ms"):
        value = getattr(t, name)
        assert 0 <= value <= t.total_ms, f"{name} = {value} not within total {t.total_ms}: {t}"
    assert result.batch_size >= 1, f"batch_size {result.batch_size}"


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(metrics_address: str) -> str:
    """The Prometheus text of GET http://metrics_address/metrics."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as reply:
        assert reply.status == 200
        return reply.read().decode()


def sample_sum(text: str, name: str, require: bool = True, **labels: str) -> float:
    """Sum of the samples of the metric called exactly `name` whose labels
    include `labels` (every label set if none given); 0 if there is none and
    not `require`."""
    total, seen = 0.0, False
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        have = dict(_LABEL.findall(match.group(2) or ""))
        if all(have.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
            seen = True
    assert seen or not require, f"metric {name}{labels or ''} missing from /metrics"
    return total
