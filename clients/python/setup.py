"""Build step of the lowbit SDK: generate the gRPC stubs from ../../proto.

The stubs are not committed. The ``build_proto`` step of ``build`` runs grpc_tools.protoc over
``proto/lowbit/v1/*.proto`` and writes the modules to ``lowbit/_proto/v1/``:
into the build directory for a normal install (``pip install clients/python``),
into the source tree for an editable one (``pip install -e clients/python``).

protoc names modules after the .proto paths, so generated code imports its
siblings as ``lowbit.v1.<name>_pb2``. Here that package lives at
``lowbit._proto.v1``, so those import lines are rewritten; the descriptors keep
their original file names ("lowbit/v1/detector.proto"), which is what gRPC
reflection and the server see.

The grpcio and protobuf lower bounds of the package are read from the
generated code itself (the versions it checks at import time), so a wheel
built with a newer grpcio-tools never installs next to a runtime too old for it.
A protobuf runtime accepts any gencode not newer than itself, so old gencode
(pyproject.toml pins grpcio-tools 1.71.2: gencode 5.29.0) imports under
protobuf 5.29 up to 7.x; PROTOBUF_TESTED_BELOW caps the range at what was tried.

Environment: LOWBIT_PROTO_DIR overrides the proto root (default ../../proto).
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

from typing import Optional

from setuptools import Command, setup
from setuptools.command.build import build

HERE = Path(__file__).resolve().parent
PROTO_ROOT = Path(os.environ.get("LOWBIT_PROTO_DIR", HERE.parent.parent / "proto")).resolve()
PROTO_PACKAGE = "lowbit/v1"  # directory of the .proto files under PROTO_ROOT
GENERATED_PACKAGE = "lowbit._proto.v1"  # where the generated modules live
# The first protobuf major the generated stubs have not been imported under.
PROTOBUF_TESTED_BELOW = "8"

# "from lowbit.v1 import x_pb2 as ..." (pb2, grpc and pyi files alike).
_IMPORT_LINE = re.compile(r"^(\s*)from lowbit\.v1 import ", re.MULTILINE)
# The module name given to the message classes (their __module__, for pickling).
_MODULE_NAME = re.compile(r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, )'lowbit\.v1\.")
# Anything still importing lowbit.v1 after the rewrite is a protoc change to look at.
_LEFTOVER_IMPORT = re.compile(r"^\s*(from|import) lowbit\.v1\b", re.MULTILINE)


def _proto_files() -> list[Path]:
    directory = PROTO_ROOT / PROTO_PACKAGE
    files = sorted(directory.glob("*.proto"))
    if not files:
        raise RuntimeError(
            f"lowbit: no .proto files in {directory}. The SDK is built from a lowbit "
            "checkout (clients/python next to proto/); set LOWBIT_PROTO_DIR otherwise."
        )
    return files


def _run_protoc(out_dir: Path) -> Path:
    """Runs protoc into out_dir; returns the directory holding the generated modules."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in _proto_files()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"lowbit: protoc failed: {' '.join(args)}")
    return out_dir / PROTO_PACKAGE


def generate_stubs(package_parent: Path) -> list[Path]:
    """Writes lowbit/_proto/v1/ under package_parent; returns the files written."""
    target = package_parent / Path(*GENERATED_PACKAGE.split("."))
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="lowbit-protoc-") as tmp:
        generated = _run_protoc(Path(tmp))
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for source in sorted(generated.iterdir()):
            text = _IMPORT_LINE.sub(rf"\1from {GENERATED_PACKAGE} import ", source.read_text())
            text = _MODULE_NAME.sub(rf"\1'{GENERATED_PACKAGE}.", text)
            if _LEFTOVER_IMPORT.search(text):
                raise RuntimeError(f"lowbit: unexpected import of lowbit.v1 left in generated {source.name}")
            destination = target / source.name
            destination.write_text(text)
            written.append(destination)
    for init in (target.parent / "__init__.py", target / "__init__.py"):
        init.write_text('"""Generated from proto/lowbit/v1 at build time; do not edit."""\n')
        written.append(init)
    return written


@functools.lru_cache(maxsize=None)
def _generated_requirements() -> tuple[str, ...]:
    """grpcio/protobuf lower bounds demanded by the code this grpcio-tools generates."""
    with tempfile.TemporaryDirectory(prefix="lowbit-protoc-") as tmp:
        generated = _run_protoc(Path(tmp))
        text = "\n".join(p.read_text() for p in generated.glob("*.py"))
    requirements = []
    protobuf = re.search(r"^# Protobuf Python Version: (\d+\.\d+\.\d+)", text, re.MULTILINE)
    lower = protobuf.group(1) if protobuf else "4.21"
    requirements.append(f"protobuf>={lower},<{PROTOBUF_TESTED_BELOW}")
    grpc = re.search(r"^GRPC_GENERATED_VERSION = '(\d+\.\d+\.\d+)'", text, re.MULTILINE)
    requirements.append(f"grpcio>={grpc.group(1)},<2" if grpc else "grpcio>=1.60,<2")
    return tuple(requirements)


class BuildProto(Command):
    """Generates lowbit/_proto from the .proto files (a sub-command of ``build``).

    A separate command rather than a build_py override: setuptools turns
    errors of a customized build_py into warnings in editable installs, and a
    failed generation must fail the install.
    """

    description = "generate the lowbit gRPC stubs from proto/"
    user_options: list = []

    def initialize_options(self) -> None:
        self.build_lib: Optional[str] = None
        self.editable_mode = False  # set by setuptools' editable_wheel
        self._outputs: list[Path] = []

    def finalize_options(self) -> None:
        self.set_undefined_options("build", ("build_lib", "build_lib"))

    def run(self) -> None:
        if self.editable_mode:
            generate_stubs(HERE)  # the source tree is what gets imported
        else:
            self._outputs = generate_stubs(Path(self.build_lib))

    def get_outputs(self) -> list[str]:
        return [str(p) for p in self._outputs]


class BuildWithProto(build):
    sub_commands = [("build_proto", None), *build.sub_commands]


setup(
    cmdclass={"build": BuildWithProto, "build_proto": BuildProto},
    install_requires=[*_generated_requirements(), "numpy>=1.24", "pillow>=10"],
)
