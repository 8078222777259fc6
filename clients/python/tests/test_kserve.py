"""The KServe v2 / Triton gRPC protocol of lowbitd, through Triton's own client (PyPI
`tritonclient[grpc]`, a test-only dependency in requirements-dev.txt).

Reference answers come from lowbit itself: Detect (the SDK) for the IMAGE form, and
`lowbit tensors` (the engine on the same input tensor, in-process) for the tensor form.

The module also shows the SDK and tritonclient working in one environment: under
tests/run-all.sh the venv comes from requirements-dev.txt (protobuf 6.x, which
tritonclient holds below 7). From scratch, without the repository's venv:

    python3 -m venv /tmp/venv-triton
    /tmp/venv-triton/bin/pip install ./clients/python "tritonclient[grpc]"

(the SDK's wheel carries stubs of protobuf gencode 5.29.0, see pyproject.toml).

Environment (beside conftest.py's): LOWBIT_BIN, the lowbit CLI (default
<repo>/build/engine/lowbit).
"""
from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SERVER_STOP_TIMEOUT_S, ServerProcess, model_repo
from lowbit import Client

try:
    import tritonclient.grpc as triton
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import InferenceServerException
except ImportError as error:  # nothing is skipped: say how to get it
    raise ImportError(f"{error}: `pip install -r requirements-dev.txt` installs tritonclient[grpc]") from error

MODEL = "nanodet-g"
INPUT = "input"  # models/nanodet-g/config.pbtxt: input.tensor_name
SIDE = 416
OUTPUT_SHAPES = {  # per frame, as the model declares them (`lowbit inspect models/nanodet-g`)
    "cls_stride8": [2704, 80], "cls_stride16": [676, 80], "cls_stride32": [169, 80],
    "box_stride8": [2704, 44], "box_stride16": [676, 44], "box_stride32": [169, 44],
}
IMAGE_OUTPUTS = ["COUNT", "BOXES", "SCORES", "CLASSES", "LABELS", "IMAGE_SIZE"]
THRESHOLD = 0.35
BOX_TOLERANCE_PX = 1e-3
LOWBIT_BIN = Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))


@pytest.fixture(scope="module")
def triton_client(server: ServerProcess):
    with triton.InferenceServerClient(server.address) as client:
        yield client


def image_input(*files: Path, shape: list[int] | None = None) -> "triton.InferInput":
    data = np.array([f.read_bytes() for f in files], dtype=np.object_)
    tensor = triton.InferInput("IMAGE", shape or [len(files)], "BYTES")
    tensor.set_data_from_numpy(data.reshape(shape or [len(files)]))
    return tensor


def preprocessed(path: Path) -> np.ndarray:
    """[3,416,416] float32 as nanodet-g's config pre-processes: BGR, (pixel - mean) / std."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.float32)
    bgr = rgb[:, :, ::-1]
    mean = np.array([103.53, 116.28, 123.675], np.float32)
    std = np.array([57.375, 57.12, 58.395], np.float32)
    return np.ascontiguousarray(((bgr - mean) / std).transpose(2, 0, 1))


def detections_of(result, frame: int) -> list[tuple[str, int, float, np.ndarray]]:
    count = int(result.as_numpy("COUNT")[frame])
    boxes, scores = result.as_numpy("BOXES")[frame], result.as_numpy("SCORES")[frame]
    classes, labels = result.as_numpy("CLASSES")[frame], result.as_numpy("LABELS")[frame]
    return [(labels[k].decode(), int(classes[k]), float(scores[k]), boxes[k]) for k in range(count)]


def assert_same_as_detect(got: list, client: Client, image: Path) -> None:
    want = client.detect(image, model=MODEL, score_threshold=THRESHOLD).detections
    assert len(want) > 0, f"Detect found nothing on {image.name}: a vacuous comparison"
    assert [(label, class_id) for label, class_id, _, _ in got] == [(d.label, d.class_id) for d in want], (
        f"{image.name}: KServe {[g[0] for g in got]} vs Detect {[d.label for d in want]}")
    for (label, _, score, box), d in zip(got, want):
        assert abs(score - d.score) <= 1e-5, f"{image.name} {label}: score {score} vs {d.score}"
        np.testing.assert_allclose(box, d.box, atol=BOX_TOLERANCE_PX, rtol=0,
                                   err_msg=f"{image.name} {label}: box differs from Detect's")


def test_protocol_matches_tritonclient(tmp_path: Path) -> None:
    """Every message, field number, type and RPC of proto/inference is what tritonclient sends."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc
    from tritonclient.grpc import model_config_pb2

    out = tmp_path / "inference.pb"
    assert protoc.main(["protoc", f"-I{REPO / 'proto'}", f"--descriptor_set_out={out}",
                        str(REPO / "proto" / "inference" / "grpc_service.proto")]) == 0

    def collect(prefix, messages, enums, into):
        for m in messages:
            into[f"{prefix}.{m.name}"] = m
            collect(f"{prefix}.{m.name}", m.nested_type, m.enum_type, into)
        for e in enums:
            into[f"{prefix}.{e.name}"] = e

    theirs, their_rpcs = {}, {}
    for module in (service_pb2, model_config_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        collect(".inference", file.message_type, file.enum_type, theirs)
        their_rpcs.update({m.name: m for s in file.service for m in s.method})
    ours_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (ours_file,) = ours_set.file
    ours = {}
    collect(".inference", ours_file.message_type, ours_file.enum_type, ours)

    def field_key(f):
        return f.name, f.type, f.label, f.type_name, f.HasField("oneof_index")

    assert len(ours) > 30
    for name, ours_item in ours.items():
        assert name in theirs, f"{name} is not a message/enum of Triton's protocol"
        their_item = theirs[name]
        if isinstance(ours_item, descriptor_pb2.EnumDescriptorProto):
            assert {v.number: v.name for v in ours_item.value}.items() <= \
                {v.number: v.name for v in their_item.value}.items(), name
            continue
        their_fields = {f.number: f for f in their_item.field}
        for f in ours_item.field:
            assert f.number in their_fields, f"{name}.{f.name} = {f.number}: no such field number in Triton's"
            assert field_key(f) == field_key(their_fields[f.number]), f"{name}.{f.name} differs from Triton's"
        assert ours_item.options.map_entry == their_item.options.map_entry, name
    (service,) = ours_file.service
    assert ours_file.package == "inference" and service.name == "GRPCInferenceService"
    for rpc in service.method:
        theirs_rpc = their_rpcs[rpc.name]
        assert (rpc.input_type, rpc.output_type, rpc.client_streaming, rpc.server_streaming) == (
            theirs_rpc.input_type, theirs_rpc.output_type, theirs_rpc.client_streaming,
            theirs_rpc.server_streaming), rpc.name
    assert {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
            "ModelStreamInfer"} <= {rpc.name for rpc in service.method}


def test_health(triton_client) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert triton_client.is_model_ready(MODEL, model_version="1")
    assert not triton_client.is_model_ready(MODEL, model_version="7")
    assert not triton_client.is_model_ready("no-such-model")


def test_server_metadata(triton_client) -> None:
    metadata = triton_client.get_server_metadata(as_json=True)
    assert metadata["name"] == "lowbit"
    assert metadata["version"].count(".") == 2, metadata
    assert set(metadata["extensions"]) == {"model_configuration", "parameters", "classification"}
    # What lowbitd does not serve is refused as such, not answered wrongly.
    with pytest.raises(InferenceServerException) as raised:
        triton_client.get_inference_statistics(MODEL)
    assert raised.value.status() == "StatusCode.UNIMPLEMENTED"


def test_model_metadata(triton_client) -> None:
    metadata = triton_client.get_model_metadata(MODEL)
    assert metadata.name == MODEL and list(metadata.versions) == ["1"] and metadata.platform == "lowbit"
    inputs = {t.name: (t.datatype, list(t.shape)) for t in metadata.inputs}
    assert inputs == {INPUT: ("FP32", [-1, 3, SIDE, SIDE]), "IMAGE": ("BYTES", [-1])}
    outputs = {t.name: (t.datatype, list(t.shape)) for t in metadata.outputs}
    assert outputs == {
        **{name: ("FP32", [-1, *shape]) for name, shape in OUTPUT_SHAPES.items()},
        "COUNT": ("INT32", [-1]), "BOXES": ("FP32", [-1, -1, 4]), "SCORES": ("FP32", [-1, -1]),
        "CLASSES": ("INT32", [-1, -1]), "LABELS": ("BYTES", [-1, -1]), "IMAGE_SIZE": ("INT32", [-1, 2]),
    }
    with pytest.raises(InferenceServerException, match="unknown model 'no-such-model'"):
        triton_client.get_model_metadata("no-such-model")
    with pytest.raises(InferenceServerException, match="has no version '3'"):
        triton_client.get_model_metadata(MODEL, model_version="3")


def test_model_config_and_repository_index(triton_client) -> None:
    config = triton_client.get_model_config(MODEL).config
    assert config.name == MODEL and config.platform == "lowbit" and config.max_batch_size >= 1
    assert [(i.name, list(i.dims)) for i in config.input] == [(INPUT, [3, SIDE, SIDE]), ("IMAGE", [])]
    index = triton_client.get_model_repository_index().models
    expected = sorted(p.parent.name for p in model_repo().glob("*/config.pbtxt"))
    assert sorted(m.name for m in index) == expected
    assert all(m.state == "READY" and m.version == "1" for m in index if m.name == MODEL)


def test_infer_image_same_as_detect(triton_client, client: Client, dog_jpg: Path) -> None:
    result = triton_client.infer(MODEL, [image_input(dog_jpg)], request_id="dog-1",
                                 parameters={"score_threshold": THRESHOLD})
    response = result.get_response()
    assert response.id == "dog-1" and response.model_name == MODEL and response.model_version == "1"
    assert [o.name for o in response.outputs] == IMAGE_OUTPUTS
    assert result.as_numpy("IMAGE_SIZE").tolist() == [[768, 576]]
    assert_same_as_detect(detections_of(result, 0), client, dog_jpg)


def test_infer_image_batch_pads_and_selects_outputs(triton_client, client: Client, images: Path) -> None:
    files = [images / "dog.jpg", images / "eagle.jpg", images / "giraffe.jpg"]
    result = triton_client.infer(MODEL, [image_input(*files, shape=[3, 1])],
                                 parameters={"score_threshold": THRESHOLD})
    counts = result.as_numpy("COUNT")
    assert counts.shape == (3,) and len(set(counts.tolist())) > 1, f"want frames of differing counts: {counts}"
    most = int(counts.max())
    assert result.as_numpy("BOXES").shape == (3, most, 4)
    for frame, path in enumerate(files):
        assert_same_as_detect(detections_of(result, frame), client, path)
        pad = slice(int(counts[frame]), most)
        assert (result.as_numpy("CLASSES")[frame, pad] == -1).all()
        assert (result.as_numpy("LABELS")[frame, pad] == b"").all()
    # `outputs` selects and orders what comes back.
    chosen = [triton.InferRequestedOutput("LABELS"), triton.InferRequestedOutput("COUNT")]
    result = triton_client.infer(MODEL, [image_input(*files)], outputs=chosen)
    assert [o.name for o in result.get_response().outputs] == ["LABELS", "COUNT"]
    # A higher threshold really reaches the post-processing.
    strict = triton_client.infer(MODEL, [image_input(files[0])], parameters={"score_threshold": 0.6})
    assert [label for label, *_ in detections_of(strict, 0)] == ["bicycle"]


def test_infer_tensor_same_as_engine(triton_client, images: Path, tmp_path: Path) -> None:
    """Raw outputs of a batch of two pre-processed frames, against the engine on the same tensor."""
    if not LOWBIT_BIN.is_file():
        pytest.fail(f"{LOWBIT_BIN} not found: build it with `cmake --build build --target lowbit` "
                    "or set LOWBIT_BIN", pytrace=False)
    batch = np.stack([preprocessed(images / "dog.jpg"), preprocessed(images / "eagle.jpg")])
    np.save(tmp_path / "input.npy", batch)
    done = subprocess.run([str(LOWBIT_BIN), "tensors", str(model_repo() / MODEL / "model.onnx"),
                           "--input", f"{INPUT}={tmp_path / 'input.npy'}", "--out", str(tmp_path / "engine")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    tensor = triton.InferInput(INPUT, list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    result = triton_client.infer(MODEL, [tensor], request_id="t")
    assert [o.name for o in result.get_response().outputs] == list(OUTPUT_SHAPES)
    for name, shape in OUTPUT_SHAPES.items():
        got = result.as_numpy(name)
        want = np.load(tmp_path / "engine" / f"{name}.npy")
        assert got.dtype == np.float32 and got.shape == (2, *shape) == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    assert not np.allclose(result.as_numpy("cls_stride8")[0], result.as_numpy("cls_stride8")[1]), \
        "the two frames came back alike"

    # The typed form (contents.fp32_contents, no raw_input_contents) gives the same.
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    typed = request.inputs.add(name=INPUT, datatype="FP32", shape=[1, 3, SIDE, SIDE])
    typed.contents.fp32_contents.extend(batch[1].ravel().tolist())
    request.outputs.add(name="box_stride32")
    response = triton_client._client_stub.ModelInfer(request, timeout=60)
    assert [o.name for o in response.outputs] == ["box_stride32"]
    box = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(1, 169, 44)
    np.testing.assert_array_equal(box, result.as_numpy("box_stride32")[1:2])


def test_stream_same_as_detect_ids_echoed(triton_client, client: Client, images: Path) -> None:
    answers: queue.Queue = queue.Queue()
    files = [images / n for n in ("dog.jpg", "giraffe.jpg", "eagle.jpg", "dog.jpg", "giraffe.jpg")]
    triton_client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i, path in enumerate(files):
            triton_client.async_stream_infer(MODEL, [image_input(path)], request_id=f"frame-{i}",
                                             parameters={"score_threshold": THRESHOLD})
        # A failing request is answered in the stream, which stays open.
        triton_client.async_stream_infer("no-such-model", [image_input(files[0])], request_id="bad")
        triton_client.async_stream_infer(MODEL, [image_input(files[2])], request_id="after-error",
                                         parameters={"score_threshold": THRESHOLD})
        got = {}
        errors = []
        for _ in range(len(files) + 2):
            result, error = answers.get(timeout=60)
            if error is not None:
                errors.append(str(error))
            else:
                got[result.get_response().id] = result
    finally:
        triton_client.stop_stream()
    assert len(errors) == 1 and "unknown model 'no-such-model'" in errors[0], errors
    assert sorted(got) == sorted([f"frame-{i}" for i in range(len(files))] + ["after-error"])
    for i, path in enumerate(files):
        assert_same_as_detect(detections_of(got[f"frame-{i}"], 0), client, path)
    assert_same_as_detect(detections_of(got["after-error"], 0), client, files[2])


@pytest.mark.parametrize("case, code, message", [
    ("unknown model", "NOT_FOUND", "unknown model 'no-such-model'; this server serves: "),
    ("wrong version", "NOT_FOUND", "model 'nanodet-g' has no version '9'"),
    ("wrong shape", "INVALID_ARGUMENT", "input 'input' has shape [1,3,320,320]; model 'nanodet-g' takes "
                                        "[N,3,416,416] FP32"),
    ("wrong datatype", "INVALID_ARGUMENT", "input 'input' has datatype 'INT32'"),
    ("wrong input name", "INVALID_ARGUMENT", "names its tensor input 'input'"),
    ("short data", "INVALID_ARGUMENT", "raw_input_contents of input 'input' has 8 bytes"),
    ("not an image", "INVALID_ARGUMENT", "input IMAGE[0]"),
    ("unknown output", "INVALID_ARGUMENT", "output 'cls_stride8' is not an output of an IMAGE (BYTES) request"),
    ("bad threshold", "INVALID_ARGUMENT", "parameter 'score_threshold' is 3"),
])
def test_errors(triton_client, dog_jpg: Path, case: str, code: str, message: str) -> None:
    model, version, outputs, parameters = MODEL, "", None, None
    if case in ("unknown model", "wrong version", "unknown output", "bad threshold", "not an image"):
        inputs = [image_input(dog_jpg)]
        model = "no-such-model" if case == "unknown model" else MODEL
        version = "9" if case == "wrong version" else ""
        outputs = [triton.InferRequestedOutput("cls_stride8")] if case == "unknown output" else None
        parameters = {"score_threshold": 3.0} if case == "bad threshold" else None
        if case == "not an image":
            inputs = [triton.InferInput("IMAGE", [1], "BYTES")]
            inputs[0].set_data_from_numpy(np.array([b"not a jpeg"], dtype=np.object_))
    else:
        shape = {"wrong shape": [1, 3, 320, 320], "short data": [1, 3, SIDE, SIDE]}.get(case, [1, 3, SIDE, SIDE])
        dtype = "INT32" if case == "wrong datatype" else "FP32"
        name = "images" if case == "wrong input name" else INPUT
        array = np.zeros(shape, np.int32 if dtype == "INT32" else np.float32)
        tensor = triton.InferInput(name, shape, dtype)
        tensor.set_data_from_numpy(array)
        if case == "short data":
            tensor._raw_content = b"\0" * 8  # what a client with a bad serialiser would send
        inputs = [tensor]
    with pytest.raises(InferenceServerException) as raised:
        triton_client.infer(model, inputs, model_version=version, outputs=outputs, parameters=parameters)
    assert raised.value.status() == f"StatusCode.{code}", raised.value
    assert message in raised.value.message(), raised.value.message()


def own_server(tmp_path: Path, *flags: str) -> ServerProcess:
    """A lowbitd of its own serving nanodet-g alone, with `flags`."""
    repo = tmp_path / "models"
    repo.mkdir()
    (repo / MODEL).symlink_to(model_repo() / MODEL, target_is_directory=True)
    return ServerProcess(log_path=tmp_path / "lowbitd.log", extra_args=["--model-repo", str(repo), *flags]).start()


def counters(server: ServerProcess, name: str) -> dict[str, float]:
    """Every series of `name` on /metrics, keyed by its label text ('code="OK",model="nanodet-g"')."""
    with urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    series = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1:].rsplit("} ", 1)
            series[",".join(sorted(labels.split(",")))] = float(value)
    return series


def test_frames_batch_with_detect_and_deadlines_drop_them(tmp_path: Path, dog_jpg: Path) -> None:
    """One scheduler for both protocols: a KServe frame and a Detect frame share an engine call;
    a KServe frame whose deadline passes (or would, before its batch ends) is never computed."""
    server = own_server(tmp_path, "--workers", "1", "--max-batch", "2", "--batch-timeout-us", "3000000")
    try:
        with triton.InferenceServerClient(server.address) as kserve, Client(server.address, timeout=60) as lowbit:
            ok, computed = 'code="OK",model="nanodet-g"', 'model="nanodet-g",version="1"'
            before = counters(server, "lowbit_requests_total"), counters(server, "lowbit_inferences_total")
            answer: queue.Queue = queue.Queue()
            kserve.async_infer(MODEL, [image_input(dog_jpg)], callback=lambda result, error: answer.put((result, error)),
                               parameters={"score_threshold": THRESHOLD})
            # The batcher holds the first frame (up to 3 s) for a second one: Detect's.
            started = time.monotonic()
            detected = lowbit.detect(dog_jpg, model=MODEL, score_threshold=THRESHOLD)
            assert time.monotonic() - started < 2.5, "the two frames did not form one batch"
            assert detected.batch_size == 2, f"Detect ran in a batch of {detected.batch_size}"
            result, error = answer.get(timeout=30)
            assert error is None, error
            assert [label for label, *_ in detections_of(result, 0)] == [d.label for d in detected.detections]
            after = counters(server, "lowbit_requests_total"), counters(server, "lowbit_inferences_total")
            assert after[0][ok] - before[0].get(ok, 0) == 2, (before[0], after[0])
            assert after[1][computed] - before[1].get(computed, 0) == 2, (before[1], after[1])

            # A 5 ms deadline, shorter than one engine call: dropped unrun, whether the
            # batcher waits for a batch-mate or foresees the deadline.
            dropped_before = counters(server, "lowbit_dropped_requests_total")
            started = time.monotonic()
            with pytest.raises(InferenceServerException) as raised:
                kserve.infer(MODEL, [image_input(dog_jpg)], client_timeout=0.005)
            assert raised.value.status() == "StatusCode.DEADLINE_EXCEEDED"
            assert time.monotonic() - started < 1.0
            deadline = time.monotonic() + 10
            reasons = ('model="nanodet-g",reason="deadline"', 'model="nanodet-g",reason="cancelled"')
            while time.monotonic() < deadline:
                dropped = counters(server, "lowbit_dropped_requests_total")
                if sum(dropped.get(r, 0) - dropped_before.get(r, 0) for r in reasons) == 1:
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"no frame dropped for its deadline: {dropped_before} -> {dropped}")
            assert counters(server, "lowbit_inferences_total")[computed] == after[1][computed], \
                "the expired frame was computed"
    finally:
        server.kill()


def test_sigterm_answers_accepted_stream_frames_then_unavailable(tmp_path: Path, dog_jpg: Path) -> None:
    server = own_server(tmp_path)
    try:
        answers: queue.Queue = queue.Queue()
        first = threading.Event()

        def on_answer(result, error) -> None:
            answers.put((result, error))
            first.set()

        frames = 8
        with triton.InferenceServerClient(server.address) as kserve:
            kserve.start_stream(callback=on_answer)
            for i in range(frames):
                kserve.async_stream_infer(MODEL, [image_input(dog_jpg)], request_id=str(i))
            assert first.wait(60), f"no answer; log:\n{server.log_tail()}"
            in_flight = frames - answers.qsize()
            assert in_flight > 0, "every frame was answered before SIGTERM: nothing was in flight"
            code = server.terminate(SERVER_STOP_TIMEOUT_S)
            got, errors = set(), []
            while True:
                result, error = answers.get(timeout=30)
                if error is not None:
                    errors.append(error)
                    if error.status() is not None:  # the call ended (a gRPC status, not a frame's error)
                        break
                else:
                    got.add(result.get_response().id)
            kserve.stop_stream()
        assert got == {str(i) for i in range(frames)}, f"answered {sorted(got)}; errors {errors}"
        assert len(errors) == 1 and errors[0].status() == "StatusCode.UNAVAILABLE", errors
        assert "shutting down" in errors[0].message()
        assert code == 0, f"exit code {code}; log:\n{server.log_tail()}"
    finally:
        server.kill()


def run_stream(address: str, requests: list[dict]) -> tuple[dict, dict]:
    """Sends `requests` (async_stream_infer keyword arguments, each with a request_id) on one
    stream; returns the results and the frame errors by id, once every request is answered."""
    answers: queue.Queue = queue.Queue()
    results, errors = {}, {}
    with triton.InferenceServerClient(address) as kserve:
        kserve.start_stream(callback=lambda result, error: answers.put((result, error)))
        try:
            for request in requests:
                kserve.async_stream_infer(MODEL, **request)
            for _ in requests:
                result, error = answers.get(timeout=120)
                if error is not None:
                    # A frame's error carries no gRPC status; the id is not in the message either,
                    # so errors are keyed by arrival.
                    assert error.status() is None, f"the stream ended: {error}"
                    errors[len(errors)] = error.message()
                else:
                    results[result.get_response().id] = result
        finally:
            kserve.stop_stream()
    return results, errors


def test_stream_flow_control_answers_every_frame(tmp_path: Path, images: Path) -> None:
    """With one frame pending per stream the stream pauses reading after each request (a
    2-frame request waits until nothing is pending) and still answers everything."""
    server = own_server(tmp_path, "--max-pending-per-stream", "1")
    try:
        files = [images / "dog.jpg", images / "eagle.jpg"]
        requests = [{"inputs": [image_input(*(files if i % 3 == 0 else files[i % 2:i % 2 + 1]))],
                     "request_id": f"r{i}"} for i in range(12)]
        results, errors = run_stream(server.address, requests)
        assert not errors, errors
        assert sorted(results) == sorted(f"r{i}" for i in range(12))
        assert all(results[f"r{i}"].as_numpy("COUNT").shape == ((2,) if i % 3 == 0 else (1,)) for i in range(12))
    finally:
        server.kill()


def test_stream_camera_latest_frame_wins(server: ServerProcess, dog_jpg: Path) -> None:
    """Frames of one camera_id share a slot: a burst keeps the newest, the others are answered
    ABORTED (superseded) in the stream."""
    burst = 8
    requests = [{"inputs": [image_input(dog_jpg)], "request_id": f"c{i}",
                 "parameters": {"camera_id": "gate-1"}} for i in range(burst)]
    results, errors = run_stream(server.address, requests)
    assert f"c{burst - 1}" in results, "the newest frame of the camera is always answered"
    assert len(results) + len(errors) == burst
    assert errors, f"no frame of a burst of {burst} was superseded"
    assert all("a newer frame of camera 'gate-1' replaced this one" in m for m in errors.values()), errors


def test_failed_model_is_not_ready_and_reported(tmp_path: Path, dog_jpg: Path) -> None:
    repo = tmp_path / "models"
    repo.mkdir()
    (repo / MODEL).symlink_to(model_repo() / MODEL, target_is_directory=True)
    broken = repo / "broken"
    broken.mkdir()
    (broken / "config.pbtxt").write_text((model_repo() / MODEL / "config.pbtxt").read_text())
    (broken / "model.onnx").write_bytes(b"not an onnx file")
    server = ServerProcess(log_path=tmp_path / "lowbitd.log", extra_args=["--model-repo", str(repo)]).start()
    try:
        with triton.InferenceServerClient(server.address) as kserve:
            assert kserve.is_server_ready() and kserve.is_model_ready(MODEL)
            assert not kserve.is_model_ready("broken")
            index = {m.name: m for m in kserve.get_model_repository_index().models}
            assert index[MODEL].state == "READY"
            assert index["broken"].state == "UNAVAILABLE" and index["broken"].reason, index["broken"]
            assert list(index) == ["broken", MODEL], "sorted by name"
            with pytest.raises(InferenceServerException, match="model 'broken' failed to load") as raised:
                kserve.infer("broken", [image_input(dog_jpg)])
            assert raised.value.status() == "StatusCode.NOT_FOUND"
            assert detections_of(kserve.infer(MODEL, [image_input(dog_jpg)]), 0), "the good model serves"
    finally:
        server.kill()
