"""Saves ONNX Runtime reference outputs as .npy for the arm64 engine tests.

    .venv/bin/python tests/arm64/make_references.py OUT_DIR

Runs on the build machine (x86, ONNX Runtime from the venv) and writes one
directory per case, which tests/arm64/reference_check.cc (cross-compiled, run
under qemu-aarch64) reads:

    OUT_DIR/<case>/case.txt          what to run and how close it must come
    OUT_DIR/<case>/input.npy         the model's input tensor
    OUT_DIR/<case>/<output>.npy      ONNX Runtime's output ('/' and ':' -> '_')

case.txt, one directive per line, fields separated by single spaces:
    model PATH                        the ONNX file (absolute)
    min_ops OP_PREFIX COUNT           at least COUNT compiled layers whose op starts so
    input NAME FILE
    output NAME FILE ABS REL FRACTION NEAR
        every element: |lowbit - reference| <= ABS + REL * |reference|, and at most
        FRACTION of the elements differ by more than NEAR

The oracles and tolerances are the x86 tests' own, imported from them:
- nanodet-g-fp32: NanoDet-g FP32 on dog.jpg against ONNX Runtime, within
  1e-4 + 2e-6 |v| (tests/engine/test_onnxruntime_parity.py).
- nanodet-g-w2a2, nanodet-g-w1a1: the model repository's QCDQ NanoDet (2- and
  1-bit inner layers, 8-bit first and last) on dog.jpg against ONNX Runtime on
  its integer-exact twin: within the head tolerance, 99.9% of the elements
  bit-identical (tests/models/test_quantized_models.py).
- nanodet-g-ort-int8: NanoDet-g quantized by ONNX Runtime (QDQ, on the INT8
  kernels) against ONNX Runtime on that model: within one output quantization
  step, 99.9% of the elements the same code (same test file).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np
import onnx

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "models"))
sys.path.insert(0, str(REPO / "tests" / "engine"))

import quant_util  # noqa: E402
import test_onnxruntime_parity as parity  # noqa: E402
from test_quantized_models import head_tolerance  # noqa: E402

MODEL_REPO = pathlib.Path(os.environ.get("LOWBIT_MODEL_REPO", REPO / "models"))
IMAGE = "dog.jpg"


def file_name(name: str) -> str:
    return name.replace("/", "_").replace(":", "_") + ".npy"


def write_case(out: pathlib.Path, case: str, model: pathlib.Path, input_name: str,
               x: np.ndarray, expected: dict[str, np.ndarray], tolerances: dict[str, tuple],
               min_ops: tuple[str, int] | None = None) -> None:
    """tolerances: output name -> (abs, rel, fraction, near)."""
    directory = out / case
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"model {model.resolve()}"]
    if min_ops:
        lines.append(f"min_ops {min_ops[0]} {min_ops[1]}")
    np.save(directory / "input.npy", x.astype(np.float32))
    lines.append(f"input {input_name} input.npy")
    for name, value in expected.items():
        assert not any(c.isspace() for c in name), name
        # The comparison must be about real signal, not two all-zero tensors.
        assert np.abs(value).max() > 1e-3, f"{case} {name}: reference is all near zero"
        np.save(directory / file_name(name), value.astype(np.float32))
        abs_tol, rel_tol, fraction, near = tolerances[name]
        lines.append(f"output {name} {file_name(name)} {abs_tol!r} {rel_tol!r} {fraction!r} {near!r}")
    (directory / "case.txt").write_text("\n".join(lines) + "\n")
    print(f"{directory}: {len(expected)} outputs")


def model_path(entry: str) -> pathlib.Path:
    path = MODEL_REPO / entry / "model.onnx"
    if not path.exists():
        sys.exit(f"{path} is missing: run deploy/models/fetch-models.sh (or set LOWBIT_MODEL_REPO)")
    return path


def fp32_case(out: pathlib.Path) -> None:
    import onnxruntime as ort

    model = model_path("nanodet-g")
    x = parity.nanodet_tensor(parity.load_image(IMAGE))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, {input_name: x})))
    tolerance = (parity.ABSOLUTE_TOLERANCE, parity.RELATIVE_TOLERANCE, 1.0, 0.0)  # no count limit
    write_case(out, "nanodet-g-fp32", model, input_name, x, expected,
               {name: tolerance for name in expected})


def qcdq_case(out: pathlib.Path, bits: int) -> None:
    case = f"nanodet-g-w{bits}a{bits}"
    model = model_path(case)
    proto = onnx.load(str(model))
    twin = out / case / "twin.onnx"
    twin.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(quant_util.integer_exact_qcdq(proto), str(twin))
    x = quant_util.nanodet_frame(IMAGE)
    expected = quant_util.ort_outputs(twin, x)
    twin.unlink()
    tolerances = {name: (head_tolerance(proto, name), 0.0, 1e-3, 1e-5) for name in expected}
    write_case(out, case, model, proto.graph.input[0].name, x, expected, tolerances,
               min_ops=("lowbit.QConv", 34))


def ort_int8_case(out: pathlib.Path) -> None:
    model = model_path("nanodet-g-ort-int8")
    proto = onnx.load(str(model))
    x = quant_util.nanodet_frame(IMAGE)
    expected = quant_util.ort_outputs(model, x)
    tolerances = {}
    for name in expected:
        step = quant_util.output_step(proto, name)
        assert step is not None, f"{name} has no output quantizer"
        tolerances[name] = (step * 1.001, 0.0, 1e-3, step * 1e-3)
    write_case(out, "nanodet-g-ort-int8", model, proto.graph.input[0].name, x, expected, tolerances,
               min_ops=("lowbit.QConv", 34))


CASES = {
    "nanodet-g-fp32": fp32_case,
    "nanodet-g-w2a2": lambda out: qcdq_case(out, 2),
    "nanodet-g-w1a1": lambda out: qcdq_case(out, 1),
    "nanodet-g-ort-int8": ort_int8_case,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--case", action="append", choices=sorted(CASES),
                        help="only these cases (default: all)")
    args = parser.parse_args()
    for case in args.case or CASES:
        CASES[case](args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
