"""The lowbit client: a thin, typed layer over the lowbit.v1.Detector service."""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional, Union

import grpc

from lowbit.errors import LowbitError
from lowbit.images import to_frame
from lowbit.protos import detector_pb2, detector_pb2_grpc
from lowbit.types import (
    Box,
    DetectResult,
    Classification,
    Detection,
    Frame,
    ImageInput,
    LayerInfo,
    ModelDetails,
    ModelSummary,
    Timings,
)

DEFAULT_ADDRESS = "127.0.0.1:50051"

#: A stream item: an image, a ``(camera_id, frame_id, image)`` tuple, or a Frame.
StreamItem = Union[ImageInput, tuple, Frame]

#: PEM data, or the path of a PEM file.
PemInput = Union[bytes, str, "os.PathLike[str]"]

_CHANNEL_OPTIONS: Sequence[tuple[str, Any]] = (
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


def _read_pem(value: Optional[PemInput], what: str) -> Optional[bytes]:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    try:
        with open(value, "rb") as file:
            return file.read()
    except OSError as error:
        raise OSError(f"cannot read the TLS {what} {os.fspath(value)}: {error.strerror}") from None


def make_channel(
    address: str,
    options: Sequence[tuple[str, Any]] = (),
    *,
    tls: bool = False,
    tls_ca: Optional[PemInput] = None,
    tls_cert: Optional[PemInput] = None,
    tls_key: Optional[PemInput] = None,
    tls_server_name: Optional[str] = None,
) -> grpc.Channel:
    """A gRPC channel to lowbitd: plaintext, or TLS when ``tls`` or any ``tls_*`` is given.

    ``tls_ca`` is the CA that signed the server's certificate (default: the
    system's roots); ``tls_cert`` and ``tls_key`` (both or neither) are this
    client's certificate and key for a server started with --tls-client-ca.
    Each is PEM bytes or a file path. ``tls_server_name`` overrides the name
    checked against the server's certificate (default: the address's host).
    """
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together: a client certificate needs its key")
    if not (tls or tls_ca is not None or tls_cert is not None):
        if tls_server_name is not None:
            raise ValueError("tls_server_name is only used with TLS")
        return grpc.insecure_channel(address, options=list(options))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read_pem(tls_ca, "CA certificate"),
        private_key=_read_pem(tls_key, "client key"),
        certificate_chain=_read_pem(tls_cert, "client certificate"),
    )
    options = list(options)
    if tls_server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    return grpc.secure_channel(address, credentials, options=options)


def now_us() -> int:
    """The current time as a capture timestamp: microseconds since the Unix epoch."""
    return time.time_ns() // 1000


class Client:
    """A connection to a lowbitd server.

    >>> with Client("127.0.0.1:50051") as client:
    ...     result = client.detect("dog.jpg")
    ...     for d in result.detections:
    ...         print(d.label, d.score, d.box)

    The channel connects lazily and is safe to share between threads.
    ``timeout`` (seconds, None = no deadline) is the default deadline of the
    unary calls; streams have none unless given one.

    TLS (a server started with --tls-cert/--tls-key): pass ``tls_ca``, the
    CA certificate that signed the server's (PEM bytes or a file path), or
    ``tls=True`` for the system's roots. Mutual TLS (--tls-client-ca): add
    ``tls_cert`` and ``tls_key``, this client's certificate and key.

    >>> Client("gateway.local:50051", tls_ca="ca.crt", tls_cert="camera.crt", tls_key="camera.key")
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        timeout: Optional[float] = 30.0,
        *,
        channel_options: Sequence[tuple[str, Any]] = (),
        tls: bool = False,
        tls_ca: Optional[PemInput] = None,
        tls_cert: Optional[PemInput] = None,
        tls_key: Optional[PemInput] = None,
        tls_server_name: Optional[str] = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = make_channel(
            address,
            [*_CHANNEL_OPTIONS, *channel_options],
            tls=tls,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_server_name=tls_server_name,
        )
        self._stub = detector_pb2_grpc.DetectorStub(self._channel)

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel; calls in progress are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel (e.g. for the health or reflection stubs)."""
        return self._channel

    @property
    def stub(self) -> detector_pb2_grpc.DetectorStub:
        """The generated Detector stub, for requests the SDK does not build."""
        return self._stub

    def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel is connected; raises LowbitError(UNAVAILABLE) after timeout s."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise LowbitError(
                grpc.StatusCode.UNAVAILABLE, f"no lowbit server reachable at {self.address} after {timeout} s"
            ) from None

    # -- detection ------------------------------------------------------------

    def detect(
        self,
        image: ImageInput,
        model: Optional[str] = None,
        camera_id: str = "",
        frame_id: int = 0,
        score_threshold: Optional[float] = None,
        *,
        pixel_format: str = "bgr",
        timeout: Optional[float] = None,
        capture_time_us: Optional[int] = None,
        max_frame_age_ms: int = 0,
    ) -> DetectResult:
        """Detects objects in one image.

        Args:
            image: a file path, JPEG/PNG bytes, or a numpy uint8 (height, width, 3) array.
            model: model name; None = the server's default model.
            camera_id, frame_id: echoed back in the result.
            score_threshold: overrides the model's threshold when given (> 0).
            pixel_format: channel order of an array image, 'bgr' (default) or 'rgb'.
            timeout: deadline in seconds; None = the client's default.
            capture_time_us: when the frame was captured, microseconds since
                the Unix epoch (:func:`now_us`); the result's
                ``timings.frame_age_ms`` is measured from it. None: not given.
            max_frame_age_ms: the server drops the frame unanswered once it is
                older than this (from capture_time_us, or from its arrival
                when no capture time is given); 0 = no age limit.

        Raises:
            LowbitError: the server refused or failed the request (``.code``
                INVALID_ARGUMENT for a bad image, NOT_FOUND for an unknown model, ...).
        """
        request = _request(image, model, camera_id, frame_id, score_threshold, pixel_format,
                           capture_time_us, max_frame_age_ms)
        try:
            response = self._stub.Detect(request, timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise LowbitError.from_rpc_error(error) from None
        return _result(response)

    def detect_stream(
        self,
        frames: Iterable[StreamItem],
        model: Optional[str] = None,
        *,
        score_threshold: Optional[float] = None,
        pixel_format: str = "bgr",
        timeout: Optional[float] = None,
        max_frame_age_ms: int = 0,
        stamp_capture_time: bool = False,
    ) -> Iterator[DetectResult]:
        """Sends frames over one bidirectional stream; yields results as they arrive.

        ``frames`` is consumed lazily (a camera generator is fine). Each item is
        an image (its frame_id is its position in the stream, camera_id ""), a
        ``(camera_id, frame_id, image)`` tuple, or a :class:`Frame`. Results may
        come in a different order than the frames; match them by
        ``(camera_id, frame_id)``. A frame the server cannot process yields a
        result whose ``error`` is set, and the stream goes on.

        Camera gateways: give each frame its camera's ``camera_id`` and
        ``capture_time_us`` (or ``stamp_capture_time=True`` to stamp frames
        without one as they are sent) and a ``max_frame_age_ms`` (per frame,
        or this default; 0 = no limit). Per camera the server keeps only the
        newest waiting frame: an older one comes back with ``dropped`` =
        "SUPERSEDED", a frame too old when its batch forms with "STALE" (see
        :data:`lowbit.types.DROP_REASONS`). ``timings.frame_age_ms`` is the
        frame's age when its result was produced.

        Raises:
            LowbitError: the stream as a whole failed (server gone, deadline).
            TypeError, ValueError, OSError: an item could not be turned into a
                request; raised after the results of the frames before it.
        """
        item_failure: list[BaseException] = []

        def requests() -> Iterator[detector_pb2.DetectRequest]:
            # Runs on a gRPC thread: exceptions are kept for the caller's thread.
            try:
                for index, item in enumerate(frames):
                    frame = _as_frame(item, index)
                    capture_time_us = frame.capture_time_us
                    if capture_time_us is None and stamp_capture_time:
                        capture_time_us = now_us()
                    yield _request(
                        frame.image,
                        frame.model if frame.model is not None else model,
                        frame.camera_id,
                        frame.frame_id if frame.frame_id is not None else index,
                        frame.score_threshold if frame.score_threshold is not None else score_threshold,
                        pixel_format,
                        capture_time_us,
                        frame.max_frame_age_ms if frame.max_frame_age_ms is not None else max_frame_age_ms,
                    )
            except Exception as error:  # noqa: BLE001 - re-raised in the caller's thread
                item_failure.append(error)

        call = self._stub.DetectStream(requests(), timeout=timeout)
        try:
            for response in call:
                yield _result(response)
        except grpc.RpcError as error:
            if item_failure:
                raise item_failure[0] from None
            raise LowbitError.from_rpc_error(error) from None
        finally:
            call.cancel()  # no-op once finished; ends the RPC if the caller stopped early
        if item_failure:
            raise item_failure[0]

    # -- models ---------------------------------------------------------------

    def list_models(self, *, timeout: Optional[float] = None) -> list[ModelSummary]:
        """The models the server serves; ``is_default`` marks the default one."""
        try:
            response = self._stub.ListModels(detector_pb2.ListModelsRequest(), timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise LowbitError.from_rpc_error(error) from None
        return [
            ModelSummary(
                name=m.name,
                version=m.version,
                input_width=m.input_width,
                input_height=m.input_height,
                num_classes=m.num_classes,
                is_default=m.name == response.default_model,
            )
            for m in response.models
        ]

    def get_model(self, name: str, *, timeout: Optional[float] = None) -> ModelDetails:
        """One model's configuration and per-layer costs (NOT_FOUND if unknown)."""
        try:
            response = self._stub.GetModel(detector_pb2.GetModelRequest(model=name), timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise LowbitError.from_rpc_error(error) from None
        return ModelDetails(
            config=response.config,
            layers=[
                LayerInfo(name=l.name, op=l.op, output_shape=tuple(l.output_shape), macs=l.macs,
                          params=l.params, weight_bits=l.weight_bits or 32,
                          activation_bits=l.activation_bits or 32, kernel=l.kernel,
                          weight_bytes=l.weight_bytes)
                for l in response.layers
            ],
            total_macs=response.total_macs,
            total_params=response.total_params,
        )

    def _deadline(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout


def _as_frame(item: StreamItem, index: int) -> Frame:
    if isinstance(item, Frame):
        return item
    if isinstance(item, tuple):
        if len(item) != 3:
            raise ValueError(f"stream item {index}: a tuple must be (camera_id, frame_id, image), got {len(item)} items")
        camera_id, frame_id, image = item
        return Frame(image=image, camera_id=str(camera_id), frame_id=int(frame_id))
    return Frame(image=item)


def _request(
    image: ImageInput,
    model: Optional[str],
    camera_id: str,
    frame_id: int,
    score_threshold: Optional[float],
    pixel_format: str,
    capture_time_us: Optional[int] = None,
    max_frame_age_ms: int = 0,
) -> detector_pb2.DetectRequest:
    if frame_id < 0:
        raise ValueError(f"frame_id must be >= 0, not {frame_id}")
    if score_threshold is not None and not 0.0 < score_threshold <= 1.0:
        raise ValueError(f"score_threshold must be in (0, 1], not {score_threshold}")
    if capture_time_us is not None and capture_time_us <= 0:
        raise ValueError(f"capture_time_us must be > 0 (microseconds since the Unix epoch), not {capture_time_us}")
    if not 0 <= max_frame_age_ms <= 0xFFFFFFFF:
        raise ValueError(f"max_frame_age_ms must be in [0, 2^32), not {max_frame_age_ms}")
    return detector_pb2.DetectRequest(
        model=model or "",
        frame=to_frame(image, pixel_format),
        camera_id=camera_id,
        frame_id=frame_id,
        score_threshold=score_threshold or 0.0,
        capture_time_us=capture_time_us or 0,
        max_frame_age_ms=max_frame_age_ms,
    )


def drop_reason_name(value: int) -> Optional[str]:
    """lowbit.v1.DropReason number -> its name ("SUPERSEDED", ...); None for 0 (not dropped)."""
    if value == 0:
        return None
    try:
        return detector_pb2.DropReason.Name(value)
    except ValueError:
        return f"DROP_REASON_{value}"  # a reason newer than these stubs


def _result(response: detector_pb2.DetectResponse) -> DetectResult:
    t = response.timings
    error = None
    if response.HasField("error") and response.error.code != 0:
        error = LowbitError.from_proto(response.error.code, response.error.message)
    return DetectResult(
        model=response.model,
        camera_id=response.camera_id,
        frame_id=response.frame_id,
        detections=[
            Detection(
                box=Box(d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max),
                class_id=d.class_id,
                label=d.label,
                score=d.score,
            )
            for d in response.detections
        ],
        classifications=[
            Classification(class_id=c.class_id, label=c.label, score=c.score)
            for c in response.classifications
        ],
        timings=Timings(
            decode_ms=t.decode_us / 1000.0,
            queue_ms=t.queue_us / 1000.0,
            inference_ms=t.inference_us / 1000.0,
            postprocess_ms=t.postprocess_us / 1000.0,
            total_ms=t.total_us / 1000.0,
            frame_age_ms=t.frame_age_us / 1000.0,
        ),
        image_width=response.image_width,
        image_height=response.image_height,
        batch_size=response.batch_size,
        error=error,
        dropped=drop_reason_name(response.dropped),
    )
