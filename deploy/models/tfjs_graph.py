"""Reads a TensorFlow.js graph model (model.json + binary weight shards).

A tfjs graph model is a TensorFlow GraphDef written as JSON
(`modelTopology.node`: name, op, inputs, attrs) plus a weights manifest: the
values of the graph's Const nodes, stored back to back in the shard files in
manifest order. Each entry has a name (the Const node), a shape and a dtype;
float weights may be stored quantized (`quantization.dtype` float16, or
uint8/uint16 with an affine scale and min).

This module only decodes; it knows nothing about ONNX. Used by
tfjs_to_onnx.py (the converter) and tfjs_reference.py (the numpy interpreter
that checks it).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import pathlib

import numpy as np

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_TF_DTYPES = {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_BOOL": np.bool_}


@dataclasses.dataclass
class Node:
    name: str
    op: str
    # Data inputs as tensor names "node:output_index" (control inputs dropped).
    inputs: list[str]
    # Attributes decoded to Python values: str, int, float, bool, list, dict.
    attrs: dict


@dataclasses.dataclass
class TensorSpec:
    name: str  # "node:output_index"
    shape: list[int]
    dtype: type


@dataclasses.dataclass
class Graph:
    nodes: list[Node]  # in file order (not necessarily topological)
    constants: dict[str, np.ndarray]  # Const node name -> value
    inputs: list[TensorSpec]  # from the signature
    outputs: list[TensorSpec]  # from the signature, in file order

    def topological_order(self) -> list[Node]:
        by_name = {node.name: node for node in self.nodes}
        order, state = [], {}  # state: 1 = visiting, 2 = done

        def visit(node: Node) -> None:
            if state.get(node.name) == 2:
                return
            if state.get(node.name) == 1:
                raise ValueError(f"cycle in graph at {node.name}")
            state[node.name] = 1
            for tensor in node.inputs:
                visit(by_name[node_name(tensor)])
            state[node.name] = 2
            order.append(node)

        for node in self.nodes:
            visit(node)
        return order


def node_name(tensor: str) -> str:
    return tensor.split(":")[0]


def tensor_name(reference: str) -> str:
    """Canonical tensor name: "node" and "node:0" both become "node:0"."""
    return reference if ":" in reference else reference + ":0"


def _decode_attr(value: dict):
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "list" in value:
        items = value["list"]
        if "i" in items:
            return [int(v) for v in items["i"]]
        if "f" in items:
            return [float(v) for v in items["f"]]
        if "s" in items:
            return [base64.b64decode(v).decode() for v in items["s"]]
        return []
    return value  # shape / tensor protos: kept as parsed JSON


def _decode_weights(manifest: list[dict], directory: pathlib.Path) -> dict[str, np.ndarray]:
    constants = {}
    for group in manifest:
        data = b"".join((directory / path).read_bytes() for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            shape = [int(d) for d in entry["shape"]]
            count = int(np.prod(shape, dtype=np.int64))
            quantization = entry.get("quantization")
            if quantization is None:
                dtype = np.dtype(_DTYPES[entry["dtype"]])
                values = np.frombuffer(data, dtype, count, offset)
            elif quantization["dtype"] == "float16":
                dtype = np.dtype(np.float16)
                values = np.frombuffer(data, dtype, count, offset).astype(np.float32)
            elif quantization["dtype"] in ("uint8", "uint16"):
                dtype = np.dtype(quantization["dtype"])
                codes = np.frombuffer(data, dtype, count, offset).astype(np.float32)
                values = codes * np.float32(quantization["scale"]) + np.float32(quantization["min"])
            else:
                raise ValueError(f"{entry['name']}: unsupported quantization {quantization}")
            offset += count * dtype.itemsize
            constants[entry["name"]] = values.reshape(shape)
        if offset != len(data):
            raise ValueError(f"weights use {offset} bytes but the shards hold {len(data)}")
    return constants


def _spec(name: str, signature_entry: dict) -> TensorSpec:
    dims = signature_entry["tensorShape"]["dim"]
    return TensorSpec(name, [int(d["size"]) for d in dims], _TF_DTYPES[signature_entry["dtype"]])


def load(model_json: str | pathlib.Path) -> Graph:
    path = pathlib.Path(model_json)
    document = json.loads(path.read_text())
    if document.get("format") != "graph-model":
        raise ValueError(f"{path}: not a tfjs graph model (format {document.get('format')!r})")
    nodes = []
    for entry in document["modelTopology"]["node"]:
        inputs = [tensor_name(i) for i in entry.get("input", []) if not i.startswith("^")]
        attrs = {key: _decode_attr(value) for key, value in entry.get("attr", {}).items()}
        nodes.append(Node(entry["name"], entry["op"], inputs, attrs))
    constants = _decode_weights(document["weightsManifest"], path.parent)
    missing = [n.name for n in nodes if n.op == "Const" and n.name not in constants]
    if missing:
        raise ValueError(f"Const nodes without weights: {missing[:5]}")
    signature = document["signature"]
    inputs = [_spec(tensor_name(k), v) for k, v in signature["inputs"].items()]
    outputs = [_spec(tensor_name(k), v) for k, v in signature["outputs"].items()]
    return Graph(nodes, constants, inputs, outputs)
