"""lowbit-client watch: a camera bridge from video sources to lowbitd's DetectStream.

    lowbit-client watch rtsp://10.0.0.5/stream1 /dev/video0 --fps 5 --mqtt broker.local
    lowbit-client watch data/images/vtest.avi --output vtest.jsonl --annotate-video vtest-boxes.avi

Each SOURCE is read by its own thread with OpenCV's VideoCapture and is one
camera (camera_id). All cameras share one DetectStream; each frame carries its
camera id, its index in the source (frame_id) and the time it was read
(capture_time_us, microseconds since the Unix epoch).

Two kinds of source, and what happens to their frames:

* A video file (a path to a regular file) is not live: nothing is lost by
  waiting. Its frames are read one after the other, each sent once the
  previous frame of that camera is answered (one frame in flight per camera,
  so the server's latest-frame-wins never drops one), at most ``--fps`` a
  second. Every frame index gets exactly one output line. A frame whose answer
  is lost to a server restart (the stream broke, or it came back
  SHUTTING_DOWN) is sent again after reconnecting; its line says so in
  ``attempts``. At its end the source stops, or starts over with ``--loop``
  (frame indices keep counting up).
* A live source (RTSP/HTTP URL, a camera device such as /dev/video0 or ``0``,
  or a file given with ``--realtime``, read at its own frame rate) is read
  continuously, so the bridge always holds the camera's newest frame. That
  frame is sent when the camera has nothing in flight and ``--fps`` allows;
  the frames read in between are not sent, and the next line counts them in
  ``skipped``. While the server is unreachable nothing is sent: the frames of
  the outage are counted in ``skipped`` of the first line after it, and a
  frame in flight when the connection broke gets a line with
  ``"dropped": "NOT_ANSWERED"``. A camera that stops delivering frames is
  reopened with exponential back-off.

Output: one JSON object per line (stdout, or ``--output FILE``), keys:
``camera``, ``source``, ``frame`` (index in the source), ``capture_time_us``,
``model``, ``detections`` (``label``, ``class_id``, ``score``, ``box`` =
[x_min, y_min, x_max, y_max] in source pixels), ``timings_ms`` (decode,
queue, inference, postprocess, total, frame_age), ``batch_size``,
``dropped`` (null, a server DropReason such as "SUPERSEDED", or
"NOT_ANSWERED"), ``error`` (null or {code, message}), ``attempts`` (times the
frame was sent) and ``skipped`` (live sources: frames read but not sent since
the previous line). Connection and camera events go to stderr.

Metrics: with ``--metrics-address`` the bridge serves its own Prometheus
series per camera (lowbitd has no per-camera series): lines written by result,
skipped frames, camera up, stream failures (deploy/grafana's dashboard plots them).

Reconnecting: when the stream fails (server gone, restarting, overloaded) the
bridge opens a new channel after 0.5 s, 1 s, 2 s ... up to ``--max-backoff``
seconds, and resets the delay once a frame is answered again.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TextIO
from urllib.parse import urlparse

import grpc

from lowbit.client import Client, now_us
from lowbit.errors import LowbitError
from lowbit.types import DetectResult, Frame

#: Stream failures worth reconnecting after (the server restarting, a network
#: drop, overload); any other code (UNIMPLEMENTED, UNAUTHENTICATED, ...) will
#: not get better by retrying and ends the bridge.
RETRY_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
})
#: Dropped reasons after which a file source's frame is sent again.
RESEND_DROPS = frozenset({"SHUTTING_DOWN"})
INITIAL_BACKOFF_S = 0.5
#: Seconds the send generator waits for a frame before checking whether its stream is over.
POLL_S = 0.05
#: Seconds the bridge waits for the MQTT broker before it starts (it keeps trying after).
MQTT_CONNECT_WAIT_S = 5.0


def _import_cv2() -> Any:
    try:
        import cv2  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit("lowbit-client watch needs OpenCV: pip install 'lowbit[watch]' "
                         "(or opencv-python-headless)") from None
    return cv2


def _is_live(source: str) -> bool:
    return not Path(source).is_file()


def default_camera_id(source: str) -> str:
    """vtest.avi -> "vtest"; rtsp://10.0.0.5:554/live/ch1 -> "10.0.0.5-554-live-ch1"; 0 -> "video0"."""
    if source.isdigit():
        return f"video{source}"
    url = urlparse(source)
    if url.scheme and url.netloc:
        host = url.hostname or "camera"
        parts = [host] + ([str(url.port)] if url.port else []) + [p for p in url.path.split("/") if p]
        name = "-".join(parts)
    else:
        name = Path(source).stem or "camera"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:128]


def camera_ids(sources: Sequence[str], given: Sequence[str]) -> list[str]:
    """One distinct id per source: the --camera-id values in order, then defaults."""
    if len(given) > len(sources):
        raise ValueError(f"{len(given)} --camera-id values for {len(sources)} sources")
    ids: list[str] = []
    for index, source in enumerate(sources):
        base = given[index] if index < len(given) else default_camera_id(source)
        name, n = base, 2
        while name in ids:
            name, n = f"{base}-{n}", n + 1
        ids.append(name)
    if any(not i for i in ids):
        raise ValueError("a camera id must not be empty")
    return ids


@dataclass
class Pending:
    """A frame read from a source, waiting to be sent or answered."""

    source: "SourceReader"
    frame_id: int
    image: Any  # numpy uint8 (height, width, 3), BGR
    capture_time_us: int
    skipped: int = 0
    attempts: int = 0


class SourceReader(threading.Thread):
    """Reads one source; hands frames to the bridge under the rules of its kind (see module doc)."""

    def __init__(self, bridge: "Bridge", source: str, camera_id: str) -> None:
        super().__init__(name=f"watch-{camera_id}", daemon=True)
        self.bridge = bridge
        self.source = source
        self.camera_id = camera_id
        self.live = bridge.options.realtime or _is_live(source)
        self.is_file = not _is_live(source)
        # Clear while this camera has a frame queued or in flight; set by its answer.
        self.idle = threading.Event()
        self.idle.set()
        self.finished = threading.Event()
        self.failed: Optional[str] = None
        self.next_frame_id = 0
        self.skipped = 0
        self.native_fps = 0.0

    # -- opening ----------------------------------------------------------------

    def _open(self) -> Any:
        cv2 = self.bridge.cv2
        target: Any = int(self.source) if self.source.isdigit() else self.source
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            return None
        self.native_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        return capture

    def _open_with_backoff(self) -> Any:
        delay = INITIAL_BACKOFF_S
        while not self.bridge.stopping.is_set():
            capture = self._open()
            if capture is not None:
                self.bridge.metrics.camera_up(self.camera_id, True)
                return capture
            if self.is_file:
                return None  # a file that OpenCV cannot read will not become readable
            self.bridge.log(f"camera {self.camera_id}: cannot open {self.source}; retrying in {delay:.1f} s")
            self.bridge.stopping.wait(delay)
            delay = min(delay * 2, self.bridge.options.max_backoff)
        return None

    # -- reading ----------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # noqa: BLE001 - reported, the other cameras go on
            self.failed = f"{type(error).__name__}: {error}"
            self.bridge.log(f"camera {self.camera_id}: {self.failed}")
        finally:
            self.finished.set()
            self.bridge.wake()

    def _limit_reached(self) -> bool:
        limit = self.bridge.options.max_frames
        return limit > 0 and self.next_frame_id >= limit

    def _wait_until_answered(self) -> None:
        while not self.idle.wait(0.1):
            if self.bridge.stopping.is_set():
                return

    def _run(self) -> None:
        options = self.bridge.options
        stopping = self.bridge.stopping
        period = 1.0 / options.fps if options.fps > 0 else 0.0
        last_send = -period
        read_failure_delay = INITIAL_BACKOFF_S
        while not stopping.is_set() and not self._limit_reached():
            capture = self._open_with_backoff()
            if capture is None:
                if not stopping.is_set():
                    self.failed = f"cannot open {self.source}"
                    self.bridge.log(f"camera {self.camera_id}: {self.failed}")
                return
            # --realtime: a file read at its own rate, as its camera delivered it.
            frame_period = 1.0 / self.native_fps if options.realtime and self.is_file and self.native_fps > 0 else 0.0
            next_read = time.monotonic()
            ended = False
            try:
                while not stopping.is_set() and not self._limit_reached():
                    if frame_period:
                        stopping.wait(max(0.0, next_read - time.monotonic()))
                        next_read = max(next_read + frame_period, time.monotonic() - frame_period)
                    if not self.live:
                        # A file: the previous frame answered, then the rate limit.
                        self._wait_until_answered()
                        stopping.wait(max(0.0, last_send + period - time.monotonic()))
                        if stopping.is_set():
                            break
                    ok, image = capture.read()
                    if not ok:
                        ended = True
                        break
                    read_failure_delay = INITIAL_BACKOFF_S
                    frame_id = self.next_frame_id
                    self.next_frame_id += 1
                    captured = now_us()
                    if self.live and (not self.idle.is_set() or not self.bridge.connected.is_set()
                                      or time.monotonic() < last_send + period):
                        self.skipped += 1  # the camera's newest frame is all that is worth sending
                        continue
                    last_send = time.monotonic()
                    self.idle.clear()
                    self.bridge.submit(Pending(self, frame_id, image, captured, skipped=self.skipped))
                    self.skipped = 0
            finally:
                capture.release()
                self.bridge.metrics.camera_up(self.camera_id, False)
            if not ended:
                continue  # stopping, or --max-frames reached
            if self.is_file:
                if not options.loop:
                    return
                continue
            self.bridge.log(f"camera {self.camera_id}: {self.source} stopped delivering frames; "
                            f"reopening in {read_failure_delay:.1f} s")
            stopping.wait(read_failure_delay)
            read_failure_delay = min(read_failure_delay * 2, options.max_backoff)

    def answered(self) -> None:
        self.idle.set()


@dataclass
class WatchOptions:
    address: str
    model: Optional[str] = None
    score_threshold: Optional[float] = None
    fps: float = 0.0
    loop: bool = False
    realtime: bool = False
    max_frames: int = 0
    max_frame_age_ms: int = 0
    max_backoff: float = 30.0
    jpeg_quality: int = 0
    client_options: dict = field(default_factory=dict)


class Bridge:
    """Owns the readers, the send queue, the frames in flight and the reconnect loop."""

    def __init__(self, options: WatchOptions, sinks: Sequence[Callable[[Pending, dict, Optional[DetectResult]], None]],
                 log: Callable[[str], None]) -> None:
        self.options = options
        self.cv2 = _import_cv2()
        self.sinks = list(sinks)
        self.log = log
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._queue: "queue.Queue[Pending]" = queue.Queue()
        self._in_flight: dict[tuple[str, int], Pending] = {}
        self._generation = 0
        self._wakeup = threading.Event()
        self.readers: list[SourceReader] = []
        self.lines = 0
        self.metrics: Any = NoMetrics()

    # -- called by the readers --------------------------------------------------

    def submit(self, pending: Pending) -> None:
        self._queue.put(pending)
        self.wake()

    def wake(self) -> None:
        self._wakeup.set()

    # -- the send side (runs on a gRPC thread) ----------------------------------

    def _all_read(self) -> bool:
        return all(r.finished.is_set() for r in self.readers) and self._queue.empty()

    def _frames(self, generation: int) -> Iterator[Frame]:
        while True:
            try:
                pending = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                with self._lock:
                    if generation != self._generation:
                        return
                if self._all_read():
                    return
                continue
            with self._lock:
                if generation != self._generation:
                    self._queue.put(pending)  # the stream is over: the next one sends it
                    return
                pending.attempts += 1
                self._in_flight[(pending.source.camera_id, pending.frame_id)] = pending
            yield Frame(image=self._payload(pending.image), camera_id=pending.source.camera_id,
                        frame_id=pending.frame_id, capture_time_us=pending.capture_time_us)

    def _payload(self, image: Any) -> Any:
        if self.options.jpeg_quality <= 0:
            return image  # raw BGR pixels: no encode here, no decode on the server
        ok, encoded = self.cv2.imencode(".jpg", image, [self.cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return encoded.tobytes()

    # -- the answer side (the caller's thread) ----------------------------------

    def _emit(self, pending: Pending, result: Optional[DetectResult], dropped: Optional[str] = None) -> None:
        line = result_line(pending, result, dropped)
        for sink in self.sinks:
            sink(pending, line, result)
        self.lines += 1

    def _answer(self, result: DetectResult) -> bool:
        """Handles one result; True if it was a computed (or finally dropped) frame's answer."""
        with self._lock:
            pending = self._in_flight.pop((result.camera_id, result.frame_id), None)
        if pending is None:
            self.log(f"answer for a frame not in flight: {result.camera_id}#{result.frame_id}")
            return False
        if result.dropped in RESEND_DROPS and not pending.source.live:
            self._queue.put(pending)  # sent again by the next stream
            return False
        self._emit(pending, result)
        pending.source.answered()
        return True

    def _disconnected(self) -> None:
        """The stream is over: frames in flight go back to the queue (files) or get a line (live)."""
        with self._lock:
            self._generation += 1
            lost = list(self._in_flight.values())
            self._in_flight.clear()
        self.connected.clear()
        for pending in sorted(lost, key=lambda p: p.frame_id):
            if pending.source.live:
                self._emit(pending, None, dropped="NOT_ANSWERED")
                pending.source.answered()
            else:
                self._queue.put(pending)

    def _work_left(self) -> bool:
        with self._lock:
            in_flight = bool(self._in_flight)
        return in_flight or not self._all_read()

    def run(self, sources: Sequence[str], ids: Sequence[str]) -> int:
        self.readers = [SourceReader(self, s, c) for s, c in zip(sources, ids)]
        for reader in self.readers:
            reader.start()
        delay = INITIAL_BACKOFF_S
        fatal: Optional[LowbitError] = None
        while self._work_left() and not self.stopping.is_set():
            with self._lock:
                generation = self._generation
            client = Client(self.options.address, timeout=None, **self.options.client_options)
            self.connected.set()
            answered = 0
            try:
                results = client.detect_stream(
                    self._frames(generation), model=self.options.model, score_threshold=self.options.score_threshold,
                    max_frame_age_ms=self.options.max_frame_age_ms)
                for result in results:
                    if self._answer(result):
                        answered += 1
                        delay = INITIAL_BACKOFF_S
            except LowbitError as error:
                if error.code not in RETRY_CODES:
                    fatal = error
                else:
                    self.metrics.stream_failed()
                    self.log(f"stream to {self.options.address} failed ({error.code.name}: {error.message}); "
                             f"reconnecting in {delay:.1f} s")
            finally:
                client.close()
            self._disconnected()
            if fatal is not None:
                break
            if self._work_left() and not self.stopping.is_set():
                if answered == 0:
                    self.stopping.wait(delay)
                    delay = min(delay * 2, self.options.max_backoff)
        self.stopping.set()
        for reader in self.readers:
            reader.join(timeout=5)
        if fatal is not None:
            raise fatal
        return 1 if any(r.failed for r in self.readers) else 0


def result_line(pending: Pending, result: Optional[DetectResult], dropped: Optional[str] = None) -> dict:
    """The JSON object of one frame (keys in the module doc)."""
    line: dict[str, Any] = {
        "camera": pending.source.camera_id,
        "source": pending.source.source,
        "frame": pending.frame_id,
        "capture_time_us": pending.capture_time_us,
        "model": None,
        "detections": [],
        "timings_ms": None,
        "batch_size": 0,
        "dropped": dropped,
        "error": None,
        "attempts": pending.attempts,
        "skipped": pending.skipped,
    }
    if result is not None:
        t = result.timings
        line.update(
            model=result.model or None,
            detections=[
                {"label": d.label, "class_id": d.class_id, "score": round(d.score, 4),
                 "box": [round(v, 1) for v in d.box]}
                for d in result.detections
            ],
            timings_ms={"decode": t.decode_ms, "queue": t.queue_ms, "inference": t.inference_ms,
                        "postprocess": t.postprocess_ms, "total": t.total_ms, "frame_age": t.frame_age_ms},
            batch_size=result.batch_size,
            dropped=result.dropped,
            error=None if result.error is None else {"code": result.error.code.name,
                                                     "message": result.error.message},
        )
    return line


# -- sinks ----------------------------------------------------------------------


class NoMetrics:
    def camera_up(self, camera: str, up: bool) -> None:
        pass

    def stream_failed(self) -> None:
        pass


class BridgeMetrics:
    """The bridge's own Prometheus metrics (--metrics-address), per camera:

      lowbit_watch_frames_total{camera,result}   counter, lines written; result = ok | dropped
                                                 (a server DropReason or NOT_ANSWERED) | error
      lowbit_watch_skipped_frames_total{camera}  counter, live frames read but not sent
      lowbit_watch_camera_up{camera}             gauge, 1 while the source is open
      lowbit_watch_stream_failures_total         counter, DetectStreams that failed (each one
                                                 is followed by a reconnect)

    lowbitd exports no per-camera series (camera ids are the clients' to
    choose, unbounded); the bridge knows its cameras, so it counts them.
    """

    def __init__(self, address: str, cameras: Sequence[str]) -> None:
        try:
            import prometheus_client as prom  # type: ignore[import-not-found]
        except ImportError:
            raise SystemExit("lowbit-client watch --metrics-address needs prometheus-client: "
                             "pip install 'lowbit[watch]' (or prometheus-client)") from None
        host, _, port = address.rpartition(":")
        prom.disable_created_metrics()  # no *_created series: nothing plots them
        self.registry = prom.CollectorRegistry()
        self.frames = prom.Counter("lowbit_watch_frames", "Frames the bridge wrote a line for, by result",
                                   ["camera", "result"], registry=self.registry)
        self.skipped = prom.Counter("lowbit_watch_skipped_frames", "Live frames read but not sent",
                                    ["camera"], registry=self.registry)
        self.up = prom.Gauge("lowbit_watch_camera_up", "1 while the camera's source is open", ["camera"],
                             registry=self.registry)
        self.failures = prom.Counter("lowbit_watch_stream_failures", "DetectStreams that failed (then reconnected)",
                                     registry=self.registry)
        for camera in cameras:  # exported from the start, so rates work before the first frame
            for result in ("ok", "dropped", "error"):
                self.frames.labels(camera, result)
            self.skipped.labels(camera)
            self.up.labels(camera).set(0)
        self.server, self.thread = prom.start_http_server(int(port), addr=host or "0.0.0.0", registry=self.registry)

    def camera_up(self, camera: str, up: bool) -> None:
        self.up.labels(camera).set(1 if up else 0)

    def stream_failed(self) -> None:
        self.failures.inc()

    def __call__(self, pending: Pending, line: dict, result: Optional[DetectResult]) -> None:
        camera = pending.source.camera_id
        outcome = "dropped" if line["dropped"] else "error" if line["error"] else "ok"
        self.frames.labels(camera, outcome).inc()
        if line["skipped"]:
            self.skipped.labels(camera).inc(line["skipped"])

    def close(self) -> None:
        self.server.shutdown()


class JsonLines:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, pending: Pending, line: dict, result: Optional[DetectResult]) -> None:
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


def _annotated_rgb(pending: Pending, result: Optional[DetectResult]) -> Any:
    from PIL import Image

    from lowbit.draw import draw_detections

    image = Image.fromarray(pending.image[:, :, ::-1])
    return draw_detections(image, result.detections if result is not None else [])


class AnnotateDir:
    """DIR/<camera>/<frame index, 6 digits>.jpg for every answered frame."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, pending: Pending, line: dict, result: Optional[DetectResult]) -> None:
        if result is None or not result.ok:
            return
        folder = self.directory / pending.source.camera_id
        folder.mkdir(parents=True, exist_ok=True)
        _annotated_rgb(pending, result).save(folder / f"{pending.frame_id:06d}.jpg", quality=90)


class AnnotateVideo:
    """One video per camera: FILE itself for one camera, FILE's stem + "-<camera>" for several.

    Codec from the suffix (.avi: MJPG, .mp4/.mov/.mkv: mp4v); frame rate
    --fps, else the source's own, else 10. Frames that were not computed are
    written without boxes so that the video keeps its timing.
    """

    def __init__(self, path: Path, cameras: Sequence[str], cv2: Any, fps: float) -> None:
        self.path, self.cameras, self.cv2, self.fps = path, list(cameras), cv2, fps
        self.writers: dict[str, Any] = {}

    def _path(self, camera: str) -> Path:
        if len(self.cameras) == 1:
            return self.path
        return self.path.with_name(f"{self.path.stem}-{camera}{self.path.suffix}")

    def __call__(self, pending: Pending, line: dict, result: Optional[DetectResult]) -> None:
        import numpy as np

        camera = pending.source.camera_id
        writer = self.writers.get(camera)
        height, width = pending.image.shape[:2]
        if writer is None:
            codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            fps = self.fps or pending.source.native_fps or 10.0
            writer = self.cv2.VideoWriter(str(self._path(camera)), self.cv2.VideoWriter_fourcc(*codec), fps,
                                          (width, height))
            if not writer.isOpened():
                raise OSError(f"cannot write video {self._path(camera)} (codec {codec})")
            self.writers[camera] = writer
        rgb = _annotated_rgb(pending, result if result is not None and result.ok else None)
        writer.write(np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1]))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.release()


class MqttPublisher:
    """Publishes each computed frame's line to <prefix>/<camera>/detections (QoS 0, not retained)."""

    def __init__(self, target: str, prefix: str, log: Callable[[str], None]) -> None:
        try:
            import paho.mqtt.client as mqtt  # type: ignore[import-not-found]
        except ImportError:
            raise SystemExit("lowbit-client watch --mqtt needs paho-mqtt: pip install 'lowbit[mqtt]' "
                             "(or paho-mqtt)") from None
        host, _, port = target.rpartition(":") if ":" in target else (target, "", "1883")
        self.prefix = prefix.rstrip("/")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lowbit-watch-{os.getpid()}")
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        # connect_async + loop_start: a broker that is down is retried in the
        # background; messages published while it is unreachable are dropped (QoS 0).
        self.client.connect_async(host, int(port))
        self.client.loop_start()
        state = "connected" if connected.wait(MQTT_CONNECT_WAIT_S) else "not reachable yet, retrying"
        log(f"MQTT: publishing detections to {host}:{port} under {self.prefix}/<camera>/detections ({state})")

    def __call__(self, pending: Pending, line: dict, result: Optional[DetectResult]) -> None:
        if result is None or not result.ok:
            return
        self.client.publish(f"{self.prefix}/{pending.source.camera_id}/detections", json.dumps(line), qos=0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- the command ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="video file, rtsp:// or http(s):// stream URL, camera device (/dev/video0) "
                        "or index (0)")
    parser.add_argument("--camera-id", action="append", default=[], metavar="ID",
                        help="camera id of the next source (repeat, in the order of the sources); default: "
                        "the file name without suffix, the URL's host and path, video<N> for a device")
    parser.add_argument("--model", help="model name (default: the server's default model)")
    parser.add_argument("--score", type=float, help="score threshold, overriding the model's (0-1]")
    parser.add_argument("--fps", type=float, default=0.0,
                        help="send at most this many frames per second per camera; 0 = as fast as the server "
                        "answers (default)")
    parser.add_argument("--loop", action="store_true", help="start a video file over at its end (default: stop it)")
    parser.add_argument("--realtime", action="store_true",
                        help="read video files at their own frame rate and treat them as live cameras (frames "
                        "the server cannot keep up with are skipped): to try a camera set-up with a recording")
    parser.add_argument("--max-frames", type=int, default=0, metavar="N",
                        help="stop each source after N frames read; 0 = no limit (default)")
    parser.add_argument("--max-frame-age-ms", type=int, default=0,
                        help="the server drops a frame older than this (from its capture time) unanswered; "
                        "0 = no limit (default)")
    parser.add_argument("--max-backoff", type=float, default=30.0, metavar="SECONDS",
                        help="longest wait between reconnects to the server or a camera (default %(default)s)")
    parser.add_argument("--jpeg-quality", type=int, default=0, metavar="Q",
                        help="send frames JPEG-encoded at quality Q (1-100), less bandwidth for a remote server; "
                        "0 = raw pixels (default)")
    parser.add_argument("--output", metavar="FILE", help="write the JSON lines to FILE instead of stdout")
    parser.add_argument("--annotate-dir", metavar="DIR",
                        help="write every computed frame with its boxes as DIR/<camera>/<frame>.jpg")
    parser.add_argument("--annotate-video", metavar="FILE",
                        help="write each camera's frames with boxes to a video (.avi MJPG, .mp4 mp4v); with "
                        "several cameras FILE-<camera>.<suffix>")
    parser.add_argument("--mqtt", metavar="HOST[:PORT]",
                        help="publish each computed frame's JSON line to the MQTT broker (port 1883 by default) "
                        "on <prefix>/<camera>/detections; needs paho-mqtt")
    parser.add_argument("--mqtt-prefix", default="lowbit", help="MQTT topic prefix (default %(default)s)")
    parser.add_argument("--metrics-address", metavar="HOST:PORT",
                        help="serve the bridge's Prometheus metrics (frames per camera and result, skipped "
                        "frames, camera up, stream failures) at http://HOST:PORT/metrics; needs prometheus-client")


#: The --help text: this module's documentation without its title line.
DESCRIPTION = (__doc__ or "").split("\n", 1)[1].strip("\n")


def run(args: argparse.Namespace, client_options: dict) -> int:
    if args.fps < 0:
        raise ValueError("--fps must be >= 0")
    if args.jpeg_quality and not 1 <= args.jpeg_quality <= 100:
        raise ValueError("--jpeg-quality must be in 1..100 (0: raw pixels)")
    for source in args.sources:
        looks_like_path = not (source.isdigit() or "://" in source or source.startswith("/dev/"))
        if looks_like_path and not Path(source).is_file():
            raise FileNotFoundError(f"not found: {source}")
    ids = camera_ids(args.sources, args.camera_id)
    log_lock = threading.Lock()

    def log(message: str) -> None:
        with log_lock:
            print(f"lowbit-client watch: {message}", file=sys.stderr, flush=True)

    options = WatchOptions(
        address=args.address, model=args.model, score_threshold=args.score, fps=args.fps, loop=args.loop,
        realtime=args.realtime, max_frames=args.max_frames, max_frame_age_ms=args.max_frame_age_ms,
        max_backoff=max(args.max_backoff, INITIAL_BACKOFF_S), jpeg_quality=args.jpeg_quality,
        client_options=client_options)
    out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    closers: list[Callable[[], None]] = []
    try:
        sinks: list[Callable[[Pending, dict, Optional[DetectResult]], None]] = [JsonLines(out)]
        bridge = Bridge(options, sinks, log)
        if args.annotate_dir:
            sinks.append(AnnotateDir(Path(args.annotate_dir)))
        if args.annotate_video:
            video = AnnotateVideo(Path(args.annotate_video), ids, bridge.cv2, args.fps)
            sinks.append(video)
            closers.append(video.close)
        if args.mqtt:
            mqtt = MqttPublisher(args.mqtt, args.mqtt_prefix, log)
            sinks.append(mqtt)
            closers.append(mqtt.close)
        if args.metrics_address:
            metrics = BridgeMetrics(args.metrics_address, ids)
            bridge.metrics = metrics
            sinks.append(metrics)
            closers.append(metrics.close)
        bridge.sinks = sinks

        def stop(signal_number: int, _frame: Any) -> None:
            if bridge.stopping.is_set():
                os._exit(128 + signal_number)
            log(f"received {signal.Signals(signal_number).name}: stopping after the frames in flight")
            bridge.stopping.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        return bridge.run(args.sources, ids)
    finally:
        for close in closers:
            close()
        if out is not sys.stdout:
            out.close()
