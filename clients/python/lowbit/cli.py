"""lowbit-client: command-line client of the lowbit detection server.

    lowbit-client detect dog.jpg --out dog-annotated.jpg
    lowbit-client models
    lowbit-client stream frame1.jpg frame2.jpg --camera-id door
    lowbit-client watch rtsp://10.0.0.5/stream1 vtest.avi --fps 5
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional

from lowbit.client import DEFAULT_ADDRESS, Client
from lowbit.errors import LowbitError
from lowbit.types import DetectResult, Frame, _as_dict

_VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm"}


def _format_detections(result: DetectResult) -> list[str]:
    lines = []
    for d in result.detections:
        b = d.box
        lines.append(
            f"{d.label or d.class_id:<14} {d.score:.2f}  "
            f"[{b.x_min:.0f}, {b.y_min:.0f}, {b.x_max:.0f}, {b.y_max:.0f}]"
        )
    for c in result.classifications:
        lines.append(f"{c.label or c.class_id:<14} {c.score:.2f}  (whole image)")
    return lines


def _format_timings(result: DetectResult) -> str:
    t = result.timings
    return (
        f"timings ms: decode {t.decode_ms:.1f}  queue {t.queue_ms:.1f}  inference {t.inference_ms:.1f}  "
        f"postprocess {t.postprocess_ms:.1f}  total {t.total_ms:.1f}  (batch {result.batch_size})"
    )


def _client(args: argparse.Namespace) -> Client:
    return Client(
        args.address,
        timeout=args.timeout,
        tls=args.tls,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
    )


def _cmd_detect(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.detect(args.image, model=args.model, camera_id=args.camera_id, score_threshold=args.score)
    if args.out:
        from lowbit.draw import save_annotated

        save_annotated(args.image, result.detections, args.out)
    if args.json:
        print(json.dumps(_as_dict(result), indent=2))
        return 0
    found = (
        f"{len(result.classifications)} classes"
        if result.classifications
        else f"{len(result.detections)} objects"
    )
    print(f"{args.image}: {found}, model {result.model}, image {result.image_width}x{result.image_height}")
    for line in _format_detections(result):
        print(f"  {line}")
    print(_format_timings(result))
    if args.out:
        print(f"annotated image written to {args.out}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.name:
            details = client.get_model(args.name)
            if args.json:
                from google.protobuf import json_format

                data = _as_dict(details)
                data["config"] = json_format.MessageToDict(details.config)
                print(json.dumps(data, indent=2))
                return 0
            config = details.config
            print(f"{config.name} v{config.version}: input {config.input.width}x{config.input.height}, "
                  f"{len(config.labels)} labels, score threshold {config.score_threshold:g}")
            print(f"{len(details.layers)} layers, {details.total_macs / 1e9:.3f} G MACs, "
                  f"{details.total_params / 1e6:.3f} M params")
            for layer in details.layers:
                shape = "x".join(str(s) for s in layer.output_shape)
                bits = f"W{layer.weight_bits}A{layer.activation_bits}" if layer.kernel else ""
                print(f"  {layer.name:<40} {layer.op:<24} {shape:<16} {bits:<8} {layer.kernel:<12} "
                      f"{layer.macs:>14,} MACs")
            return 0
        models = client.list_models()
    if args.json:
        print(json.dumps(_as_dict(models), indent=2))
        return 0
    for m in models:
        default = "  (default)" if m.is_default else ""
        print(f"{m.name:<24} v{m.version:<4} input {m.input_width}x{m.input_height}  {m.num_classes} classes{default}")
    return 0


def _video_frames(path: Path, camera_id: str) -> Iterator[Frame]:
    try:
        import cv2  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit(f"lowbit-client: reading video ({path}) needs OpenCV: pip install opencv-python-headless")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"lowbit-client: cannot open video {path}")
    try:
        frame_id = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield Frame(image=bgr, camera_id=camera_id, frame_id=frame_id)
            frame_id += 1
    finally:
        capture.release()


def _stream_frames(inputs: Sequence[str], camera_id: str, repeat: int) -> Iterator[Frame]:
    frame_id = 0
    for _ in range(repeat):
        for name in inputs:
            path = Path(name)
            if path.suffix.lower() in _VIDEO_SUFFIXES:
                for frame in _video_frames(path, camera_id):
                    frame.frame_id = frame_id
                    frame_id += 1
                    yield frame
            else:
                yield Frame(image=path, camera_id=camera_id, frame_id=frame_id)
                frame_id += 1


def _paced(frames: Iterator[Frame], fps: float) -> Iterator[Frame]:
    """Yields one frame every 1/fps seconds, as a live camera sends them (fps <= 0: unpaced)."""
    if fps <= 0:
        yield from frames
        return
    period = 1.0 / fps
    next_send = time.monotonic()
    for frame in frames:
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_send = max(next_send + period, time.monotonic() - period)
        yield frame


def _cmd_stream(args: argparse.Namespace) -> int:
    missing = [p for p in args.inputs if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"not found: {', '.join(missing)}")
    failures = 0
    with _client(args) as client:
        frames = _paced(_stream_frames(args.inputs, args.camera_id, args.repeat), args.fps)
        results = client.detect_stream(frames, model=args.model, score_threshold=args.score,
                                       max_frame_age_ms=args.max_frame_age_ms, stamp_capture_time=True)
        for result in results:
            if args.json:
                print(json.dumps(_as_dict(result)))
            elif result.dropped is not None:
                print(f"[{result.camera_id}#{result.frame_id}] dropped {result.dropped}")
            elif result.error is not None:
                print(f"[{result.camera_id}#{result.frame_id}] error {result.error}")
            else:
                labels = ", ".join(
                    f"{d.label} {d.score:.2f}" for d in [*result.detections, *result.classifications]
                ) or "-"
                print(f"[{result.camera_id}#{result.frame_id}] {result.timings.total_ms:.1f} ms "
                      f"(batch {result.batch_size}, age {result.timings.frame_age_ms:.1f} ms): {labels}")
            # A dropped frame is the server keeping the stream fresh, not a failure.
            failures += result.error is not None and result.dropped is None
    return 1 if failures else 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from lowbit import watch

    return watch.run(args, dict(tls=args.tls, tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
                                tls_server_name=args.tls_server_name))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--address",
        default=os.environ.get("LOWBIT_ADDRESS", DEFAULT_ADDRESS),
        help="server HOST:PORT (default: $LOWBIT_ADDRESS or %(default)s)",
    )
    common.add_argument("--timeout", type=float, default=30.0, help="deadline per call in seconds (default %(default)s)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    tls = common.add_argument_group("TLS (a server started with --tls-cert; default: plaintext)")
    tls.add_argument("--tls", action="store_true",
                     help="connect over TLS, trusting the system's CA certificates (implied by --tls-ca)")
    tls.add_argument("--tls-ca", metavar="FILE", help="PEM CA certificate that signed the server's certificate")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="PEM client certificate, for a server that requires one (--tls-client-ca)")
    tls.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    tls.add_argument("--tls-server-name", metavar="NAME",
                     help="name to check the server's certificate against (default: the host of --address)")

    parser = argparse.ArgumentParser(
        prog="lowbit-client",
        description="Client of the lowbit detection server (lowbitd): detect objects in images, "
        "list the served models, stream frames.",
        epilog="Exit status: 0 on success, 1 when the server reports an error, 2 on bad input.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = commands.add_parser(
        "detect", parents=[common], help="detect objects in one image",
        description="Sends one JPEG/PNG image and prints one line per detection "
        "(label, score, box [x_min, y_min, x_max, y_max] in pixels) and the server's timings.",
    )
    detect.add_argument("image", help="JPEG or PNG file")
    detect.add_argument("--model", help="model name (default: the server's default model)")
    detect.add_argument("--score", type=float, help="score threshold, overriding the model's (0-1]")
    detect.add_argument("--camera-id", default="", help="camera id sent with the frame")
    detect.add_argument("--out", metavar="FILE", help="write the image with boxes and labels drawn (format from suffix)")
    detect.set_defaults(run=_cmd_detect)

    models = commands.add_parser(
        "models", parents=[common], help="list models, or show one model's layers",
        description="Without NAME: lists the served models. With NAME: its configuration and per-layer MACs.",
    )
    models.add_argument("name", nargs="?", help="model to describe")
    models.set_defaults(run=_cmd_models)

    stream = commands.add_parser(
        "stream", parents=[common], help="stream images or a video over one bidirectional call",
        description="Sends the inputs as frames of one camera over DetectStream and prints a line per result. "
        "The server keeps only a camera's newest waiting frame: a frame still waiting when the next one "
        "arrives is answered 'dropped SUPERSEDED'. Pace the frames with --fps as a live camera would, or "
        "give --camera-id '' to have every frame computed. "
        "Videos (.avi, .mp4, ...) need OpenCV (opencv-python-headless).",
    )
    stream.add_argument("inputs", nargs="+", metavar="VIDEO_OR_IMAGE", help="image files and/or video files")
    stream.add_argument("--model", help="model name (default: the server's default model)")
    stream.add_argument("--score", type=float, help="score threshold, overriding the model's (0-1]")
    stream.add_argument("--camera-id", default="cli",
                        help="camera id of the frames (default %(default)s; '' = no camera, every frame computed)")
    stream.add_argument("--fps", type=float, default=0.0,
                        help="send at most this many frames per second; 0 = as fast as the stream takes them "
                        "(default)")
    stream.add_argument("--repeat", type=int, default=1, help="send the inputs this many times (default 1)")
    stream.add_argument("--max-frame-age-ms", type=int, default=0,
                        help="the server drops a frame older than this (from its send time) unanswered; "
                        "0 = no limit (default)")
    stream.set_defaults(run=_cmd_stream)

    from lowbit import watch

    watcher = commands.add_parser(
        "watch", parents=[common], help="camera bridge: stream video files, RTSP/HTTP streams and cameras",
        description=watch.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_arguments(watcher)
    watcher.set_defaults(run=_cmd_watch)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except LowbitError as error:
        print(f"lowbit-client: server error: {error.code.name}: {error.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError) as error:
        print(f"lowbit-client: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
