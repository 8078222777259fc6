"""What the engine runs on an Arm core, for bench/arm-sim's model estimates.

The kernel table of a core is the level kernels/src/dispatch.cc selects from HWCAP /
HWCAP2: neon (Armv8.0: Cortex-A53, A72), neondot (sdot: A55, Neoverse-N1 / A76) or
neoni8mm (usmmla: Neoverse-N2); a level holds one variant per family (the INT8-dot family
is conv_u8s8dot_2x16__neon, __neondot or __neoni8mm). Per layer the engine then picks
(engine/src/ops/qconv.cc):
  measured (the default, LOWBIT_KERNEL_CHOICE=measure): every family the table holds natively
      is timed on the layer and the fastest runs; bench/arm-sim models it as the family
      whose simulated rate gives the fewest cycles;
  model (LOWBIT_KERNEL_CHOICE=model, or nothing measured): kernels/src/choose.cc's cost
      model with the rates of the table entries in kernels/src/dispatch.cc (one set of NEON
      rates for every core of a level), read from that file here.
Either way the layer's time is then the picked kernel's padded multiply-adds at its
simulated rate on the core.
"""
from __future__ import annotations

import re
from pathlib import Path

from arm_sim_mca import REPO

# Region (KERNEL_TABLE name) of each family per level; bit-serial: every bitserial_* region.
LEVEL_KERNELS = {
    "neon": {"int8": "conv_u8s8_16bit_neon", "int8dot": "conv_u8s8_neon",
             "dw": "dwconv_u8s8_neon", "lut": "conv_w2a2_lut_neon"},
    "neondot": {"int8": "conv_u8s8_16bit_neon", "int8dot": "conv_u8s8dot_neon",
                "dw": "dwconv_u8s8_neon", "lut": "conv_w2a2_lut_neon"},
    "neoni8mm": {"int8": "conv_u8s8_16bit_neon", "int8dot": "conv_u8s8mmla_neon",
                 "dw": "dwconv_u8s8_neon", "lut": "conv_w2a2_lut_neon"},
}
# The dispatch.cc variant of each family per level (whose rates the cost model uses).
_COMMON = {"int8": "conv_u8s8_6x16__neon", "dw": "dwconv_u8s8_1x16__neon",
           "lut": "conv_w2a2_lut_64x4__neon", "bitserial": "conv_anybits_bitserial_64x4__neon"}
LEVEL_VARIANTS = {
    "neon": dict(_COMMON, int8dot="conv_u8s8dot_2x16__neon"),
    "neondot": dict(_COMMON, int8dot="conv_u8s8dot_4x16__neondot"),
    "neoni8mm": dict(_COMMON, int8dot="conv_u8s8dot_4x16__neoni8mm"),
}


def table_level(features) -> str:
    """The level dispatch.cc selects on a core with these extensions."""
    if "i8mm" in features and "dotprod" in features:
        return "neoni8mm"
    return "neondot" if "dotprod" in features else "neon"


def level_runs(row: dict, level: str) -> bool:
    """Whether the kernel of a simulated row is the one its family runs at this level."""
    family = row["family"]
    if family == "bitserial":
        return True
    return LEVEL_KERNELS[level].get(family) == row["kernel"]


_ENTRY = re.compile(r"constexpr\s+\w+Entry\s+(\w+)\s*=\s*\{(.*?)\};", re.S)
_FIELD = re.compile(r"\.(\w+)\s*=\s*(-?[\d.]+)\b")


def dispatch_rates(path: Path = REPO / "kernels/src/dispatch.cc") -> dict[str, dict]:
    """The numeric fields (macs_per_cycle, plane_pair_share, pixel_tile, epilogue_cycles, ...)
    of every kernel table entry in dispatch.cc, by variant name."""
    text = re.sub(r"//[^\n]*", "", path.read_text())
    return {m.group(1): {f: float(v) for f, v in _FIELD.findall(m.group(2))}
            for m in _ENTRY.finditer(text)}


def model_cycles(family: str, macs: float, outputs: float, wbits: int, abits: int,
                 entry: dict) -> float:
    """kernels/src/choose.cc estimate_conv_cycles for an inner layer (Destination::kCodes):
    padded multiply-adds / the entry's rate (bit-serial: times 1 - s + s * w * a plane
    pairs) + epilogue_cycles per output value."""
    if family == "bitserial":
        share = entry.get("plane_pair_share", 1.0)
        macs *= 1 - share + share * wbits * abits
    return macs / entry["macs_per_cycle"] + entry.get("epilogue_cycles", 0.0) * outputs
