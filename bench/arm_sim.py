"""bench/arm-sim: ARM64 kernel speed by static simulation (llvm-mca), no ARM hardware.

Pipeline (see bench/README.md, "ARM speed by static simulation"):
  1. every kernels/src/*__neon*.cc is cross-compiled to assembly with the flags the arm64
     build uses (from a CMake configure of cmake/aarch64-linux-gnu.cmake with
     compile_commands.json) plus -O3 -S -DLOWBIT_MCA_MARKERS, so the kernels'
     LOWBIT_MCA_BEGIN("name") / LOWBIT_MCA_END() markers (kernels/src/mca_markers.h) appear;
  2. each marked region is taken from the assembly, widened to its whole loop when the
     BEGIN marker sits just after the loop's label and a branch back to that label follows
     END (so the loop's own counter/branch instructions are counted), and given to
     llvm-mca for each core; a core whose llvm model lacks an instruction the region uses
     ("instruction requires: dotprod") does not run that kernel;
  3. cycles per iteration are the steady-state difference of two llvm-mca runs
     ((C(3N) - C(N)) / 2N), the bound comes from llvm-mca's resource pressure;
  4. per model, each layer's time = the multiply-adds the chosen kernel computes (with its
     family's padding, as kernels/src/choose.cc counts them) / its simulated MAC/cycle /
     the assumed clock.

Every figure is a static estimate: no caches, no memory stalls, inner loop only (no
epilogue, packing or loop set-up), one core.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from arm_sim_choice import (LEVEL_VARIANTS, dispatch_rates, level_runs, model_cycles,
                            table_level)
from arm_sim_mca import (REPO, Core, Region, SimError, compile_sources, extract_regions,
                         find_cxx, find_llvm_mca, markers_moved_code, match_unmarked, simulate,
                         tool_version)

ESTIMATE_LABEL = "static estimate (llvm-mca; no caches, no memory stalls, inner loop only)"

# ---------------------------------------------------------------------------------------------
# The kernel table: one entry per LOWBIT_MCA_BEGIN region name. A region found in the
# assembly without an entry here is an error (its MAC/cycle cannot be computed).
#
#   macs    multiply-adds one iteration of the marked loop computes, at the entry's bit widths
#           (for bytemap: bytes mapped per iteration); derived from the loop body as written
#           (tile size x channels x taps per iteration), see each entry's `derivation`.
#   family  the chooser's family (kernels/src/choose.cc): int8 (conv_u8s8, 16-bit formats),
#           int8dot (conv_u8s8dot, byte formats, by smull or sdot), dw (dwconv_u8s8),
#           lut (conv_w2a2_lut), bitserial (conv_anybits_bitserial), bytemap (not a conv).
#   wbits/abits  the bit widths the iteration computes at (8/8 for the INT8 families: they
#           run any width up to 8 at the same rate; lut: W<=2 in [-2,1], A<=2).
#   pixel_tile  output pixels per register tile (the chooser rounds pixels up to it).
# ---------------------------------------------------------------------------------------------
KERNEL_TABLE: dict[str, dict] = {
    "conv_u8s8_16bit_neon": dict(
        macs=96, family="int8", wbits=8, abits=8, pixel_tile=6,
        source="conv_u8s8_6x16__neon.cc",
        derivation="conv_u8s8_6x16__neon (16-bit formats), one k-pair step of one of its two "
        "3-pixel register tiles: 3 pixels x 16 cout x 2 input channels = 96 (24 smlal by "
        "element of 4 lanes)"),
    "conv_u8s8_neon": dict(
        macs=256, family="int8dot", wbits=8, abits=8, pixel_tile=2,
        source="conv_u8s8dot_2x16__neon.cc",
        derivation="conv_u8s8dot_2x16__neon (smull/smlal + sadalp, no dotprod), one iteration "
        "of its k-quad-pair loop: 2 k-quads (8 input bytes) x 2 pixels x 16 cout = 256 "
        "(32 smull/smlal(2) of 8 lanes)"),
    "conv_u8s8_16bit_neon": dict(
        macs=96, family="int8", wbits=8, abits=8, pixel_tile=6,
        source="conv_u8s8_6x16__neon.cc",
        derivation="conv_u8s8_6x16__neon (16-bit formats, smlal by element), one k-pair step of "
        "one of its two 3-pixel register tiles: 2 input channels x 3 pixels x 16 cout = 96 "
        "(24 smlal(2) of 4 lanes)"),
    "conv_u8s8dot_neon": dict(
        macs=1024, family="int8dot", wbits=8, abits=8, pixel_tile=4,
        source="conv_u8s8dot_4x16__neondot.cc",
        derivation="conv_u8s8dot_4x16__neondot, one iteration of its 16-byte k loop: 4 k-quads "
        "x 4 pixels x 16 cout = 1024 (64 sdot by element of 16)"),
    "conv_u8s8mmla_neon": dict(
        macs=1024, family="int8dot", wbits=8, abits=8, pixel_tile=4,
        source="conv_u8s8dot_4x16__neoni8mm.cc",
        derivation="conv_u8s8dot_4x16__neoni8mm, one iteration of its 16-byte k loop: 2 "
        "k-octets x 4 pixels x 16 cout = 1024 (32 usmmla of 2x2x8)"),
    "conv_w2a2_lut_neon": dict(
        macs=256, family="lut", wbits=2, abits=2, pixel_tile=64,
        source="conv_w2a2_lut_64x4__neon.cc",
        derivation="one step (tap, input-channel pair) of one 32-pixel half of a "
        "conv_w2a2_lut_64x4__neon tile: 32 pixels x 4 cout x 2 input channels (8 tbl + 8 add); "
        "the byte widening every 14 steps is outside the region"),
    # An overhead region: its cycles are added to overhead_of's iteration once per `every`
    # iterations (the figures printed for the parent include it).
    "conv_w2a2_lut_neon_widen": dict(
        macs=0, family="overhead", wbits=2, abits=2, overhead_of="conv_w2a2_lut_neon",
        every=14, source="conv_w2a2_lut_64x4__neon.cc",
        derivation="the byte accumulators widened to 16 bits (32 uaddw/uaddw2) once per "
        "kLutWidenSteps = 14 steps of conv_w2a2_lut_neon"),
    "dwconv_u8s8_neon": dict(
        macs=32, family="dw", wbits=8, abits=8, pixel_tile=1,
        source="dwconv_u8s8_1x16__neon.cc",
        derivation="one tap pair of dwconv_u8s8_1x16__neon: 2 taps x 16 channels (8 smlal "
        "of 4 lanes)"),
    "map_bytes_neon": dict(
        macs=32, family="bytemap", wbits=8, abits=8, pixel_tile=1,
        source="map_bytes__neon.cc",
        derivation="map_bytes__neon main loop: 32 bytes (2 x tbl + 3 tbx of 64-byte "
        "quarters) per iteration; bytes, not multiply-adds"),
}


def _bitserial_pixels(wb: int, ab: int) -> int:
    """conv_anybits_bitserial_64x4__neon's tile_pixels(WB, AB): byte accumulators of
    WB + AB - 1 weight classes x 2 halves plus 2 int32 sums per pixel within ~18 registers."""
    return max(1, min(4, 18 // (2 * (wb + ab - 1) + 2)))


for _w in range(1, 5):
    for _a in range(1, 5):
        KERNEL_TABLE[f"bitserial_w{_w}a{_a}_neon"] = dict(
            macs=_bitserial_pixels(_w, _a) * 4 * 64, family="bitserial", wbits=_w, abits=_a,
            pixel_tile=1, source="conv_anybits_bitserial_64x4__neon.cc",
            derivation=f"conv_anybits_bitserial_64x4__neon<{_w},{_a}>, one iteration of its word "
            f"loop: {_bitserial_pixels(_w, _a)} pixels (tile_pixels) x 4 cout x 64 input "
            f"channels ({_w}x{_a} plane pairs x 2 halves of AND + cnt + add per pixel)")
# W2A2 has its own loop (tile_dots_a2): 2 pixels x 4 cout x 64 input channels per step as well,
# 16 AND + cnt + add on [plane 0, plane 1] registers against lane-duplicated weights.
KERNEL_TABLE["bitserial_w2a2_neon"].update(
    derivation="conv_anybits_bitserial_64x4__neon tile_dots_a2, one step (one word of one tap): "
    "2 pixels x 4 cout x 64 input channels (per pixel both activation planes in one register, "
    "8 AND + cnt + add against the duplicated weight words of 2 planes x 4 channels)")
# W1A1 has its own loop (tile_dots_w1a1): two input words (two steps of the weight stream) per
# iteration, 4 pixels x 4 cout x 128 input channels = 2048 (16 AND + cnt + add on 16 bytes).
KERNEL_TABLE["bitserial_w1a1_neon"].update(
    macs=2048, derivation="conv_anybits_bitserial_64x4__neon tile_dots_w1a1, one iteration of its "
    "two-word loop (both words in one tap): 4 pixels x 4 cout x 2 x 64 input channels (ld4 of the "
    "weights, 16 AND + cnt + add)")

# Multiply-adds per instruction for the cross-check of the table against the region's own
# multiplies (INT8 and depthwise families): lanes of the destination arrangement, 4x for the
# dot products (4 products per 32-bit lane), 8x for the i8mm matrix multiplies (2x8 per lane).
MUL_MNEMONICS = re.compile(r"^(s|u)(mull2?|mlal2?|mlsl2?)$|^(mul|mla|mls)$")
DOT_MNEMONICS = re.compile(r"^(s|u|us|su)dot$")
MMLA_MNEMONICS = re.compile(r"^(s|u|us)mmla$")


def implied_macs(text: str) -> int:
    total = 0
    for line in text.splitlines():
        toks = line.split()
        if not toks:
            continue
        op = toks[0]
        m = re.search(r"v\d+\.(\d+)([bhsd])", line)
        lanes = int(m.group(1)) if m else 0
        if MUL_MNEMONICS.match(op):
            total += lanes
        elif DOT_MNEMONICS.match(op):
            total += 4 * lanes
        elif MMLA_MNEMONICS.match(op):
            total += 8 * lanes
    return total


CONV_FAMILIES = ("int8", "int8dot", "dw", "lut", "bitserial")
INT8_FAMILIES = ("int8", "int8dot")


CORES = {
    "cortex-a53": Core("cortex-a53", "cortex-a53", "Cortex-A53 (in-order; Pi 3 class)", 1.4),
    "cortex-a55": Core("cortex-a55", "cortex-a55", "Cortex-A55 (in-order, dotprod)", 1.8,
                       frozenset({"dotprod"})),
    "cortex-a72": Core("cortex-a72", "cortex-a72", "Cortex-A72 (llvm's Cortex-A57 model; Pi 4)",
                       1.5),
    "neoverse-n1": Core("neoverse-n1", "neoverse-n1", "Neoverse-N1 (Cortex-A76 proxy; Pi 5)",
                        2.4, frozenset({"dotprod"})),
    # Not one of the four: the first class with i8mm (Armv8.6 usmmla; also A710, V1),
    # so the i8mm kernel has a core to run on.
    "neoverse-n2": Core("neoverse-n2", "neoverse-n2", "Neoverse-N2 (i8mm; A710 class)", 2.5,
                        frozenset({"dotprod", "i8mm"})),
}
DEFAULT_CORES = list(CORES)


# ---------------------------------------------------------------------------------------------
# Kernel results
# ---------------------------------------------------------------------------------------------
def kernel_sources(only: list[str] | None) -> list[Path]:
    srcs = sorted((REPO / "kernels/src").glob("*__neon*.cc"))
    if only:
        srcs = [s for s in srcs if any(k in s.stem for k in only)] or srcs
    return srcs


def check_table(regions: list[Region]) -> list[str]:
    """Every region needs a KERNEL_TABLE entry (an error otherwise); warnings where an entry
    looks stale: another source file, or instructions that compute a different number of
    multiply-adds than the entry says (multiplies of the INT8 and depthwise families, cnt of
    the bit-serial one)."""
    missing = sorted({r.name for r in regions if r.name not in KERNEL_TABLE})
    if missing:
        raise SimError("region(s) without a KERNEL_TABLE entry in bench/arm_sim.py (add their "
                       "multiply-adds per iteration): " + ", ".join(
                           f"{n} ({next(r.source for r in regions if r.name == n)})"
                           for n in missing))
    sources: dict[str, set] = {}
    for r in regions:
        sources.setdefault(r.name, set()).add(r.source)
    clash = {n: sorted(v) for n, v in sources.items() if len(v) > 1}
    if clash:
        raise SimError("region names must be unique across kernels: " + "; ".join(
            f"{n} in {', '.join(v)}" for n, v in clash.items()))
    warnings = []
    for r in regions:
        entry = KERNEL_TABLE[r.name]
        if entry.get("source") and Path(r.source).name != entry["source"]:
            warnings.append(f"region {r.name} is in {r.source}, the table expects "
                            f"{entry['source']}: check its multiply-adds per iteration")
        implied = None
        if entry["family"] in INT8_FAMILIES + ("dw",):
            implied = implied_macs(r.text)
        elif entry["family"] == "bitserial":  # one 16-byte cnt: 2 cout x 64 bits of a plane pair
            cnts = sum(1 for l in r.text.splitlines() if l.split()[:1] == ["cnt"])
            implied = cnts * 128 // (entry["wbits"] * entry["abits"])
        if implied is not None and r.instance == 1:
            if implied != entry["macs"]:
                warnings.append(f"region {r.name}: its multiply instructions compute {implied} "
                                f"multiply-adds per iteration, the table says {entry['macs']}")
    return warnings


def run_kernels(args, cores: list[Core], work: Path) -> dict:
    cxx, llvm_mca = find_cxx(args.cxx), find_llvm_mca(args.llvm_mca)
    srcs = kernel_sources(args.kernels)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    asm = compile_sources(srcs, cxx, work, cache)
    regions: list[Region] = []
    failed, marker_warnings = {}, []
    for src, s in asm.items():
        if isinstance(s, str):  # a kernel that does not compile (e.g. mid-edit): reported
            failed[str(src.relative_to(REPO))] = s
            continue
        rel = str(src.relative_to(REPO))
        found = extract_regions(s.read_text(), rel, widen=not args.marked)
        plain = s.with_name(src.stem + ".plain.s")
        moved = 0
        if found and plain.exists():
            moved = markers_moved_code(s.read_text(), plain.read_text())
        if moved and not args.marked and not args.marked_build:
            # The markers moved gcc's code: simulate the unmarked build's copy of each loop.
            plain_asm = plain.read_text()
            for i, r in enumerate(found):
                m = match_unmarked(r, plain_asm) if r.mode == "loop" else None
                if m is not None:
                    found[i] = m
                elif r.mode != "loop":
                    marker_warnings.append(
                        f"{rel}: region {r.name} is not a whole loop, so it is simulated as "
                        "compiled with the markers (which moved gcc's code in this file)")
                else:
                    marker_warnings.append(
                        f"{rel}: the markers changed gcc's code and no loop of the unmarked "
                        f"build computes what region {r.name} does: the marked build's is used")
        elif moved:
            marker_warnings.append(f"{rel}: the markers changed {moved} instruction(s) of gcc's "
                                   "code (simulated: the marked build)")
        regions += found
    if args.kernels:
        sel = [r for r in regions if any(k in r.name or k in r.source for k in args.kernels)]
        regions = sel
    warnings = check_table(regions) + marker_warnings
    results = []
    jobs = [(r, c) for r in regions for c in cores]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        sims = list(pool.map(lambda rc: simulate(llvm_mca, rc[0], rc[1], work), jobs))
    for (r, c), sim in zip(jobs, sims):
        entry = KERNEL_TABLE[r.name]
        row = dict(kernel=r.name, instance=r.instance, source=r.source, region=r.mode,
                   build=r.build,
                   region_instructions=r.instructions, core=c.name, family=entry["family"],
                   wbits=entry["wbits"], abits=entry["abits"], macs_per_iter=entry["macs"])
        row.update(sim)
        if sim["runs"]:
            row["macs_per_cycle"] = entry["macs"] / sim["cycles_per_iter"]
        results.append(row)
    # llvm's CPU model against the real core's extensions (Arm's specifications): a kernel
    # compiled for an extension must run exactly where the core has it.
    for row in results:
        core = CORES.get(row["core"])
        if core is None:
            continue
        stem = Path(row["source"]).stem
        needs = {"i8mm", "dotprod"} if stem.endswith("__neoni8mm") else (
            {"dotprod"} if stem.endswith("__neondot") else set())
        if row.get("runs") and not needs <= core.features:
            warnings.append(f"{row['kernel']} ({', '.join(sorted(needs))}) ran on llvm's "
                            f"{core.mcpu} model, but the core has no {', '.join(sorted(needs))}")
        if not row.get("runs") and any(f in row["lacks"] for f in core.features):
            warnings.append(f"llvm's {core.mcpu} model lacks {row['lacks']}, the core has it")
    # Duplicated regions: keep the first instance for ratios, say so.
    for name in {r.name for r in regions if r.instance > 1}:
        copies = max(r.instance for r in regions if r.name == name)
        warnings.append(f"region {name} appears {copies} times in the assembly (gcc duplicated "
                        "the loop); instance 1 is used")
    results = add_overheads(results)
    family_order = {f: i for i, f in enumerate(("int8", "int8dot", "dw", "lut", "bitserial",
                                                 "bytemap"))}
    core_order = {c.name: i for i, c in enumerate(cores)}
    results.sort(key=lambda r: (family_order.get(r["family"], 9), r["wbits"] * r["abits"],
                                r["wbits"], r["kernel"], r["instance"], core_order[r["core"]]))
    primary = [row for row in results if row["instance"] == 1]
    for row in primary:
        base = int8_baseline(primary, row["core"])
        if row.get("runs") and base and row["family"] != "bytemap":
            row["ratio_to_int8"] = row["macs_per_cycle"] / base["macs_per_cycle"]
            row["int8_baseline"] = base["kernel"]
    versions = dict(cxx=f"{Path(cxx).name} {tool_version(cxx)}",
                    llvm_mca=f"{Path(llvm_mca).name} {tool_version(llvm_mca)}")
    warnings += [f"{f} did not compile, its regions are missing:\n{e}" for f, e in failed.items()]
    return dict(results=results, warnings=sorted(set(warnings)), tools=versions,
                failed_sources=sorted(failed))


def add_overheads(results: list[dict]) -> list[dict]:
    """Overhead regions: their cycles / every go onto their parent's iteration, per core (the
    first copy of an overhead region only: a duplicated loop's copies are alternatives, so
    each copy of the parent gets it once). Returns the rows without the overhead regions."""
    for o in [r for r in results if r["family"] == "overhead" and r["instance"] == 1]:
        entry = KERNEL_TABLE[o["kernel"]]
        for p in results:
            if (p["kernel"] == entry["overhead_of"] and p["core"] == o["core"] and p.get("runs")
                    and o.get("runs")):
                extra = o["cycles_per_iter"] / entry["every"]
                p["inner_cycles_per_iter"] = p["cycles_per_iter"]
                p["cycles_per_iter"] += extra
                p["macs_per_cycle"] = p["macs_per_iter"] / p["cycles_per_iter"]
                p["overhead"] = (f"incl. {o['kernel']} {o['cycles_per_iter']:.1f} cyc / "
                                 f"{entry['every']}")
    return [r for r in results if r["family"] != "overhead"]


def int8_baseline(rows: list[dict], core: str) -> dict | None:
    c = [r for r in rows if r["core"] == core and r.get("runs") and r["family"] in INT8_FAMILIES]
    return max(c, key=lambda r: r["macs_per_cycle"]) if c else None


# ---------------------------------------------------------------------------------------------
# 4. Models
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Layer:
    name: str
    op: str
    out_shape: list[int]  # N, C, H, W
    wbits: list[int]  # one per weight tensor (two for a residual pair)
    abits: int
    macs: int
    params: int
    x86_kernel: str
    geometry: dict | None = None  # cin, cout, kh, kw, stride, groups (from the ONNX)
    geometry_source: str = "onnx"


def find_lowbit(explicit: str | None) -> str:
    cands = [explicit, os.environ.get("LOWBIT_BIN"), str(REPO / "build/engine/lowbit")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    raise SimError("no lowbit binary: pass --lowbit build-x/engine/lowbit or set LOWBIT_BIN")


def parse_inspect(text: str) -> list[Layer]:
    lines = text.splitlines()
    head = next((i for i, l in enumerate(lines) if re.match(r"\s*#\s+name\s+op", l)), None)
    if head is None:
        raise SimError("lowbit inspect printed no layer table")
    layers = []
    for line in lines[head + 1:]:
        if not line.strip() or not re.match(r"\s*\d+\s", line):
            if layers:
                break
            continue
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) < 8:
            continue
        idx_name = cols[0].split(None, 1)
        if len(idx_name) == 2:
            name = idx_name[1]
            rest = cols[1:]
        else:
            name, rest = cols[1], cols[2:]
        op, shape, wa, kernel, _wbytes, macs, params = rest[:7]
        if "/" not in wa or "QConv" not in op and "Conv" not in op:
            continue
        w, a = wa.split("/")
        if a == "32":
            wb, ab = [32], 32
        else:
            wb, ab = [int(x) for x in w.split("+")], int(a)
        layers.append(Layer(name, op, [int(x) for x in shape.strip("[]").split(",")], wb, ab,
                            int(macs.replace(",", "")), int(params.replace(",", "")), kernel))
    return layers


def onnx_geometry(onnx_path: Path) -> dict[str, dict]:
    try:
        import onnx  # noqa: PLC0415
    except ImportError:
        return {}
    m = onnx.load(str(onnx_path), load_external_data=False)
    init = {i.name: list(i.dims) for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    consts = {n.output[0]: n for n in m.graph.node if n.op_type == "Constant"}

    def dims(t, depth=0):
        if t in init:
            return init[t]
        if t in consts:
            for a in consts[t].attribute:
                if a.name == "value":
                    return list(a.t.dims)
        p = producer.get(t)
        if p is not None and depth < 4 and p.input:
            return dims(p.input[0], depth + 1)
        return None

    out = {}
    for n in m.graph.node:
        if n.op_type != "Conv":
            continue
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        w = dims(n.input[1])
        if not w or len(w) != 4:
            continue
        g = int(a.get("group", 1))
        out[n.name] = dict(cout=w[0], cin=w[1] * g, kh=w[2], kw=w[3],
                           stride=int(a.get("strides", [1, 1])[0]), groups=g)
    return out


def model_layers(model: str, lowbit: str) -> tuple[str, list[Layer]]:
    p = Path(model)
    if not p.exists() and (REPO / "models" / model).exists():
        p = REPO / "models" / model
    r = subprocess.run([lowbit, "inspect", str(p)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SimError(f"lowbit inspect {p} failed ({lowbit}): {r.stderr.strip()[-500:]}")
    layers = parse_inspect(r.stdout)
    onnx_file = p / "model.onnx" if p.is_dir() else (p if p.suffix == ".onnx" else
                                                     p.with_name("model.onnx"))
    geo = onnx_geometry(onnx_file) if onnx_file.exists() else {}
    for l in layers:
        key = l.name
        if key.startswith("...") and geo:
            key = next((k for k in geo if k.endswith(key[3:])), key)
        if key in geo:
            l.geometry = geo[key]
        else:
            l.geometry, l.geometry_source = inferred_geometry(l), "inferred"
    return str(p), layers


def inferred_geometry(l: Layer) -> dict:
    """Without an ONNX beside the .lbm: depth per output from MACs; depthwise when the x86
    choice was a depthwise kernel; 3x3 taps when the depth is a multiple of 9 (else 1x1)."""
    n, cout, oh, ow = l.out_shape
    depth = l.macs // max(1, n * cout * oh * ow)
    dw = l.x86_kernel.startswith("dw")
    taps = depth if dw else (9 if depth % 9 == 0 and depth >= 27 else 1)
    k = int(round(math.sqrt(taps))) or 1
    cin = cout if dw else max(1, depth // (k * k))
    return dict(cout=cout, cin=cin, kh=k, kw=k, stride=1, groups=cin if dw else 1)


def round_up(v: float, to: int) -> float:
    return math.ceil(v / to) * to


def family_supports(family: str, g: dict, wbits: int, abits: int) -> bool:
    """kernels/src/choose.cc conv_family_supports, for signed (or binary) weights."""
    depthwise = g["groups"] > 1 and g["groups"] == g["cin"] == g["cout"]
    if g["groups"] != 1 and not depthwise:
        return False
    if depthwise != (family == "dw"):
        return False
    taps = g["kh"] * g["kw"]
    if family == "dw":
        return wbits <= 8 and taps <= 64
    if family in INT8_FAMILIES:
        return wbits <= 8 and abits <= 8 and g["kh"] <= 64 and taps * g["cin"] <= 65793
    if family == "lut":
        return abits <= 2 and wbits <= 2 and g["stride"] in (1, 2) and taps <= 64
    if family == "bitserial":
        return wbits <= 4 and abits <= 4
    return False


def padded_macs(family: str, g: dict, out_shape: list[int], pixel_tile: int) -> float:
    """Multiply-adds the family computes, with its padding (kernels/src/choose.cc)."""
    n, cout, oh, ow = out_shape
    taps, cin = g["kh"] * g["kw"], g["cin"]
    if family == "dw":
        return n * oh * ow * cout * taps
    if family in INT8_FAMILIES:
        depth = taps * round_up(cin, 4 if family == "int8dot" else 2)
        return n * round_up(oh * ow, pixel_tile) * round_up(cout, 16) * depth
    if family == "lut":
        width = (ow - 1) * g["stride"] + g["kw"]
        pitch = round_up(width, g["stride"]) / g["stride"]
        return n * round_up(oh * pitch, 64) * round_up(cout, 4) * taps * round_up(cin, 2)
    if family == "bitserial":
        return n * oh * ow * round_up(cout, 4) * taps * round_up(cin, 64)
    raise ValueError(family)


def kernel_rates(rows: list[dict], core: Core) -> list[dict]:
    """Rate models per kernel the core's table level holds (arm_sim_choice: one variant per
    family, e.g. the sdot kernel and not the smull one on a dotprod core): int8/dw/lut at
    their simulated MAC/cycle for any width they hold; bit-serial per (w, a) from its own
    region where one exists, else scaled from the W1A1 and W2A2 regions: cycles ~ 1 - s +
    s * w * a plane pairs (s fitted from the two; 1 when only one exists)."""
    rates = []
    level = table_level(core.features)
    mine = [r for r in rows if r["core"] == core.name and r.get("runs") and r["instance"] == 1
            and level_runs(r, level)]
    bs = {(r["wbits"], r["abits"]): r for r in mine if r["family"] == "bitserial"}
    share = 1.0
    if (1, 1) in bs and (2, 2) in bs:
        ratio = bs[(1, 1)]["macs_per_cycle"] / bs[(2, 2)]["macs_per_cycle"]
        share = min(1.0, max(0.0, (ratio - 1) / 3))
    for r in mine:
        if r["family"] == "bytemap":
            continue
        if r["family"] == "bitserial":
            if (r["wbits"], r["abits"]) != min(bs):
                continue  # one bit-serial entry; its rate per width comes from the fit
            ref = bs[(1, 1)] if (1, 1) in bs else r
            w0a0 = ref["wbits"] * ref["abits"]
            base = ref["macs_per_cycle"] * (1 - share + share * w0a0)
            exact = {k: v["macs_per_cycle"] for k, v in bs.items()}

            def rate(w, a, base=base, exact=exact, share=share):
                return exact.get((w, a), base / (1 - share + share * w * a))

            def name(w, a, bs=bs):
                return bs[(w, a)]["kernel"] if (w, a) in bs else f"bitserial_w{w}a{a} (scaled)"

            rates.append(dict(family="bitserial", rate=rate, name=name, pixel_tile=1,
                              share=share))
        else:
            mpc = r["macs_per_cycle"]
            rates.append(dict(family=r["family"], pixel_tile=KERNEL_TABLE[
                r["kernel"]].get("pixel_tile", 1), rate=lambda w, a, mpc=mpc: mpc,
                name=lambda w, a, n=r["kernel"]: n))
    return rates


def estimate_model(layers: list[Layer], rows: list[dict], core: Core,
                   choice: str = "measured", dispatch: dict | None = None) -> dict:
    """Per layer the kernel the engine would run on the core (arm_sim_choice): "measured",
    the family with the fewest simulated cycles; "model", choose.cc's cost model with
    dispatch.cc's rates (`dispatch`: dispatch_rates()). Its time: padded MACs at the
    picked kernel's simulated rate."""
    rates = kernel_rates(rows, core)
    variants = LEVEL_VARIANTS[table_level(core.features)]
    out_layers, total_cycles, skipped = [], 0.0, []
    for l in layers:
        if l.abits == 32:
            skipped.append(l.name)
            continue
        cycles, kernels = 0.0, []
        outputs = math.prod(l.out_shape)
        for wb in l.wbits:  # a residual pair runs two convolutions
            best = None
            for k in rates:
                if not family_supports(k["family"], l.geometry, wb, l.abits):
                    continue
                macs = padded_macs(k["family"], l.geometry, l.out_shape, k["pixel_tile"])
                c = macs / k["rate"](wb, l.abits)
                key = c
                if choice == "model":
                    entry = (dispatch or {}).get(variants.get(k["family"], ""))
                    if entry is None:
                        continue
                    key = model_cycles(k["family"], macs, outputs, wb, l.abits, entry)
                if best is None or key < best[0]:
                    best = (key, c, k["name"](wb, l.abits))
            if best is None:
                raise SimError(f"no simulated kernel runs layer {l.name} (W{wb}A{l.abits}) on "
                               f"{core.name}")
            cycles += best[1]
            kernels.append(best[2])
        total_cycles += cycles
        out_layers.append(dict(name=l.name, bits=f"{'+'.join(map(str, l.wbits))}/{l.abits}",
                               macs=l.macs, kernel="+".join(kernels), cycles=cycles,
                               ms=cycles / (core.clock_ghz * 1e6),
                               geometry_source=l.geometry_source))
    return dict(core=core.name, clock_ghz=core.clock_ghz, layers=out_layers, choice=choice,
                total_cycles=total_cycles, total_ms=total_cycles / (core.clock_ghz * 1e6),
                total_macs=sum(l["macs"] for l in out_layers), float_layers=skipped)


NANODET = {"W8A8": "nanodet-g-w8a8", "W4A4": "nanodet-g-w4a4", "W2A2": "nanodet-g-w2a2",
           "W1A1": "nanodet-g-w1a1"}


# ---------------------------------------------------------------------------------------------
# 5. Acceptance
# ---------------------------------------------------------------------------------------------
def best_rate(rows, core, pred):
    c = [r for r in rows if r["core"] == core and r.get("runs") and r["instance"] == 1 and pred(r)]
    return max(c, key=lambda r: r["macs_per_cycle"]) if c else None


def runs_bits(w, a):
    def pred(r):
        f = r["family"]
        if f in INT8_FAMILIES:
            return True
        if f == "lut":
            return w <= 2 and a <= 2
        if f == "bitserial":
            return (r["wbits"], r["abits"]) == (w, a)
        return False
    return pred


def time_shares(est: dict) -> str:
    by: dict[str, float] = {}
    for l in est["layers"]:
        by[l["kernel"]] = by.get(l["kernel"], 0.0) + l["cycles"]
    total = sum(by.values()) or 1.0
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in
                     sorted(by.items(), key=lambda kv: -kv[1]))


def eight_bit_share(est: dict) -> float:
    eight = sum(l["cycles"] for l in est["layers"] if "8" in l["bits"].split("/")[0].split("+")
                or l["bits"].endswith("/8"))
    return 100 * eight / (est["total_cycles"] or 1.0)


def model_choice_ratio(per_variant: dict) -> str:
    """The W8A8 / W2A2 ratio again with the cost model's kernel choice, if estimated."""
    mc = [per_variant[v].get("model_choice") for v in ("W8A8", "W2A2")]
    if not all(mc):
        return ""
    return (f" (cost-model choice: {mc[0]['total_ms']:.1f} / {mc[1]['total_ms']:.1f} ms = "
            f"{mc[0]['total_ms'] / mc[1]['total_ms']:.2f}x)")


def acceptance(rows: list[dict], models: dict) -> list[dict]:
    checks = []

    def ratio_check(label, core, w, a, target):
        base = int8_baseline([r for r in rows if r["instance"] == 1], core)
        best = best_rate(rows, core, runs_bits(w, a))
        if not base or not best:
            checks.append(dict(check=label, result="N/A",
                               detail=f"no INT8 kernel or none for W{w}A{a} simulated on {core}"))
            return
        v = best["macs_per_cycle"] / base["macs_per_cycle"]
        checks.append(dict(check=label, value=v, target=target,
                           result="PASS" if v >= target else "MISS",
                           detail=f"{best['kernel']} {best['macs_per_cycle']:.1f} vs "
                                  f"{base['kernel']} {base['macs_per_cycle']:.1f} MAC/cyc",
                           bound=None if v >= target else best["bound"]["text"]))

    base72 = int8_baseline([r for r in rows if r["instance"] == 1], "cortex-a72")
    if any(r["core"] == "cortex-a72" for r in rows):
        ratio_check("A72 W2A2 >= 2x INT8 MAC/cycle", "cortex-a72", 2, 2, 2.0)
        ratio_check("A72 W1A1 >= 6x INT8 MAC/cycle", "cortex-a72", 1, 1, 6.0)
        if base72:
            v = base72["macs_per_cycle"]
            checks.append(dict(check="A72 INT8 within 15% of 8 MAC/cycle", value=v, target=6.8,
                               result="PASS" if v >= 6.8 else "MISS", detail=base72["kernel"],
                               bound=None if v >= 6.8 else base72["bound"]["text"]))
    if any(r["core"] == "neoverse-n1" for r in rows):
        dot = best_rate(rows, "neoverse-n1",
                        lambda r: r["family"] in INT8_FAMILIES and "dot" in r["kernel"]
                        and "neondot" in r["source"] or "i8mm" in r["source"])
        if dot:
            v = dot["macs_per_cycle"]
            checks.append(dict(check="N1 dotprod INT8 >= 24 MAC/cycle", value=v, target=24.0,
                               result="PASS" if v >= 24 else "MISS", detail=dot["kernel"],
                               bound=None if v >= 24 else dot["bound"]["text"]))
            w1 = best_rate(rows, "neoverse-n1", runs_bits(1, 1))
            r = w1["macs_per_cycle"] / v
            checks.append(dict(check="N1 W1A1 >= 2.5x dotprod INT8", value=r, target=2.5,
                               result="PASS" if r >= 2.5 else "MISS",
                               detail=f"{w1['kernel']} {w1['macs_per_cycle']:.1f} MAC/cyc",
                               bound=None if r >= 2.5 else w1["bound"]["text"]))
        else:
            checks.append(dict(check="N1 dotprod INT8 >= 24 MAC/cycle", result="N/A",
                               detail="no dotprod kernel region found"))
    if any(r["core"] == "cortex-a53" for r in rows):
        ratio_check("A53 W2A2 >= 2x INT8 MAC/cycle", "cortex-a53", 2, 2, 2.0)
    a72 = models.get("cortex-a72", {})
    if not ("W8A8" in a72 and "W2A2" in a72) and any(r["core"] == "cortex-a72" for r in rows):
        checks.append(dict(check="NanoDet W2A2 on A72 >= 2x faster than W8A8", result="N/A",
                           detail="NanoDet not estimated (--kernels given, or see the warnings)"))
    if "W8A8" in a72 and "W2A2" in a72:
        v = a72["W8A8"]["total_ms"] / a72["W2A2"]["total_ms"]
        checks.append(dict(check="NanoDet W2A2 on A72 >= 2x faster than W8A8", value=v,
                           target=2.0, result="PASS" if v >= 2 else "MISS",
                           detail=f"W8A8 {a72['W8A8']['total_ms']:.1f} ms, W2A2 "
                                  f"{a72['W2A2']['total_ms']:.1f} ms" + model_choice_ratio(a72),
                           bound=None if v >= 2 else "W2A2 time by kernel: " + time_shares(
                               a72["W2A2"]) + "; in layers at 8-bit weights or activations "
                               f"(first/last, fed by them): {eight_bit_share(a72['W2A2']):.0f}%"))
    return checks


# ---------------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------------
def print_report(report: dict, cores: list[Core], verbose: bool) -> None:
    print(f"ARM kernel speed, {ESTIMATE_LABEL}")
    print(f"tools: {report['tools']['cxx']}, {report['tools']['llvm_mca']}; host "
          f"{report['host']} (simulated, not measured)")
    print(f"cores: " + "; ".join(f"{c.name} = {c.label}" for c in cores))
    rows = report["results"]
    print()
    print("MAC/cycle (x the core's best INT8 kernel) [static estimate]")
    names = []
    for r in rows:
        if r["instance"] == 1 and r["kernel"] not in names:
            names.append(r["kernel"])
    print(f"{'kernel':<22} {'W/A':<4} " + " ".join(f"{c.name:>17}" for c in cores))
    for n in names:
        cells, wa = [], "-"
        for c in cores:
            r = next((x for x in rows if x["kernel"] == n and x["core"] == c.name
                      and x["instance"] == 1), None)
            if r and r["family"] != "bytemap":
                wa = f"{r['wbits']}/{r['abits']}"
            if r is None or not r.get("runs"):
                cells.append(f"{'-':>17}")
            elif "ratio_to_int8" in r:
                cells.append(f"{r['macs_per_cycle']:>9.1f} ({r['ratio_to_int8']:>4.2f}x)")
            elif r["family"] == "bytemap":
                cells.append(f"{r['macs_per_cycle']:>9.1f} B/cyc  ")
            else:
                cells.append(f"{r['macs_per_cycle']:>9.1f}        ")
        print(f"{n:<22} {wa:<4} " + " ".join(cells))
    print()
    hdr = (f"{'kernel':<22} {'family':<9} {'W/A':<4} {'core':<12} {'cyc/iter':>8} "
           f"{'MAC/iter':>8} {'MAC/cyc':>8} {'xINT8':>6}  bound")
    print("Per kernel and core [static estimate]")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        name = r["kernel"] + (f"#{r['instance']}" if r["instance"] > 1 else "")
        wa = f"{r['wbits']}/{r['abits']}" if r["family"] not in ("bytemap",) else "-"
        if not r.get("runs"):
            print(f"{name:<22} {r['family']:<9} {wa:<4} {r['core']:<12} "
                  f"{'-':>8} {r['macs_per_iter']:>8} {'-':>8} {'-':>6}  not run: core lacks "
                  f"{r['lacks']}")
            continue
        unit = " B/cyc" if r["family"] == "bytemap" else ""
        ratio = f"{r['ratio_to_int8']:.2f}" if "ratio_to_int8" in r else "-"
        extra = f" [{r['overhead']}]" if r.get("overhead") else ""
        print(f"{name:<22} {r['family']:<9} {wa:<4} {r['core']:<12} {r['cycles_per_iter']:>8.2f} "
              f"{r['macs_per_iter']:>8} {r['macs_per_cycle']:>8.2f} {ratio:>6}  "
              f"{r['bound']['text']}{unit}{extra}")
    print("xINT8: MAC/cycle over the best INT8 kernel the same core runs (" + ", ".join(
        f"{c.name}: {b}" for c, b in ((c, (int8_baseline([r for r in rows if r['instance'] == 1],
                                                           c.name) or {}).get('kernel', '-'))
                                      for c in cores)) + "); map_bytes_neon in bytes/cycle")
    print("regions (loop: label to back-branch; unmarked: that loop as built without the "
          "markers):")
    for line in sorted({f"  {r['kernel']}: {r['region']}, {r['build']} build, "
                        f"{r['region_instructions']} instr, {r['source']}"
                        for r in rows if r['core'] == cores[0].name}):
        print(line)
    for w in report["warnings"]:
        print(f"warning: {w}")
    for mname, per_core in report.get("model_runs", {}).items():
        print()
        print(f"Model {mname} [static estimate: compute time of the conv layers' inner loops at "
              f"the assumed clock, one core]")
        variants = list(next(iter(per_core.values())).keys())
        line = f"{'core':<12} {'clock':>7} " + " ".join(f"{v:>14}" for v in variants)
        print(line)
        for core, per_variant in per_core.items():
            clock = next(iter(per_variant.values()))["clock_ghz"]
            print(f"{core:<12} {clock:>5.1f}GHz " + " ".join(
                f"{per_variant[v]['total_ms']:>11.1f} ms" for v in variants))
        if all("model_choice" in e for pv in per_core.values() for e in pv.values()):
            print("with the cost model's choice (LOWBIT_KERNEL_CHOICE=model: kernels/src/"
                  "choose.cc with dispatch.cc's rates; above: the measured choice, the default)")
            for core, per_variant in per_core.items():
                print(f"{core:<12} {'':>7} " + " ".join(
                    f"{per_variant[v]['model_choice']['total_ms']:>11.1f} ms" for v in variants)
                    + "  (" + ", ".join(f"{v}: {len(per_variant[v]['model_choice']['differ'])}"
                                        for v in variants) + " layers differ)")
        first = next(iter(per_core.values()))
        macs = {v: first[v]["total_macs"] for v in variants}
        print("MACs: " + ", ".join(f"{v} {m / 1e9:.2f} G" for v, m in macs.items()))
        for core, per_variant in per_core.items():
            print(f"  {core}: " + "; ".join(f"{v} {time_shares(e)}"
                                            for v, e in per_variant.items()))
        inferred = sorted({l["name"] for pv in per_core.values() for e in pv.values()
                           for l in e["layers"] if l["geometry_source"] != "onnx"})
        if inferred:
            print(f"note: no ONNX beside the model: kernel size / channels of {len(inferred)} "
                  "layers inferred from MACs (3x3 when the depth is a multiple of 9)")
        if verbose:
            for core, per_variant in per_core.items():
                for v, est in per_variant.items():
                    print(f"\n  {mname} {v} on {core} ({est['clock_ghz']} GHz) per layer "
                          "[static estimate]:")
                    print(f"  {'layer':<28} {'W/A':<6} {'MACs':>12} {'kernel':<24} {'ms':>8}")
                    for l in est["layers"]:
                        print(f"  {l['name'][:28]:<28} {l['bits']:<6} {l['macs']:>12,} "
                              f"{l['kernel'][:24]:<24} {l['ms']:>8.2f}")
                    print(f"  {'total':<28} {'':<6} {est['total_macs']:>12,} {'':<24} "
                          f"{est['total_ms']:>8.2f}")
        else:
            print("(per-layer times: --layers)")
    if report.get("acceptance"):
        print()
        print("Acceptance (issue 9) [static estimates]")
        for c in report["acceptance"]:
            val = f"{c['value']:.2f}" if "value" in c else "-"
            tgt = f">= {c['target']:.2f}" if "target" in c else ""
            print(f"  {c['result']:<4}  {c['check']:<46} {val:>6} {tgt:<8} {c.get('detail', '')}")
            if c.get("bound"):
                print(f"        bound: {c['bound']}")


def parse_clock(items: list[str] | None, cores: list[Core]) -> None:
    for it in items or []:
        name, _, ghz = it.partition("=")
        for c in cores:
            if c.name == name or c.mcpu == name:
                c.clock_ghz = float(ghz)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/arm-sim",
        description="ARM64 kernel speed by static simulation: cross-compiles the NEON kernels "
        "with llvm-mca markers, runs llvm-mca-19 per core, prints cycles/iteration, "
        "MAC/cycle, the ratio to the core's INT8 kernel and the bound; then NanoDet "
        "(W8A8/W4A4/W2A2/W1A1) and any --model as estimated compute time per core; then the "
        "issue's acceptance figures. Every figure is a static estimate (no caches, no memory "
        "stalls).")
    ap.add_argument("--cores", default=",".join(DEFAULT_CORES),
                    help="comma list of cores (default %(default)s); any other llvm -mcpu "
                    "name (e.g. cortex-a76, which llvm gives the A57 model) is simulated with a "
                    "2.0 GHz clock")
    ap.add_argument("--kernels", default=None,
                    help="comma list: only regions/sources whose name contains one of these")
    ap.add_argument("--model", action="append", default=[],
                    help="a model directory, .onnx or compiled .lbm to estimate (repeatable)")
    ap.add_argument("--no-nanodet", action="store_true",
                    help="skip the NanoDet W8A8/W4A4/W2A2/W1A1 estimates")
    ap.add_argument("--model-repo", default=str(REPO / "models"))
    ap.add_argument("--lowbit", default=None,
                    help="the lowbit binary for `lowbit inspect` (default $LOWBIT_BIN or "
                    "build/engine/lowbit)")
    ap.add_argument("--clock", action="append", metavar="CORE=GHZ",
                    help="override a core's assumed clock")
    ap.add_argument("--layers", action="store_true", help="print per-layer estimates")
    ap.add_argument("--marked", action="store_true",
                    help="simulate only the marked instructions (default: widen each region "
                    "to its whole loop, counter and back-branch included)")
    ap.add_argument("--marked-build", action="store_true",
                    help="simulate the loop as compiled with the markers even where they moved "
                    "gcc's code (default: the same loop of the build without markers)")
    ap.add_argument("--json", metavar="FILE", help="also write everything as JSON ('-': stdout "
                    "only JSON)")
    ap.add_argument("--llvm-mca", default=None)
    ap.add_argument("--cxx", default=None)
    ap.add_argument("--cache", default=str(REPO / ".cache/arm-sim"))
    ap.add_argument("--keep", metavar="DIR", help="keep the assembly and region files in DIR")
    args = ap.parse_args(argv)
    args.kernels = [k for k in args.kernels.split(",") if k] if args.kernels else None
    cores = []
    for name in [c for c in args.cores.split(",") if c]:
        cores.append(dataclasses.replace(CORES[name]) if name in CORES else
                     Core(name, name, f"{name} (llvm model)", 2.0))
    parse_clock(args.clock, cores)
    try:
        work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="arm-sim-"))
        work.mkdir(parents=True, exist_ok=True)
        report = run_kernels(args, cores, work)
        report["host"] = host_cpu()
        report["label"] = ESTIMATE_LABEL
        report["cores"] = [dataclasses.asdict(c) for c in cores]
        models_by_core: dict[str, dict] = {}
        model_runs: dict[str, dict] = {}
        targets = []
        if not args.no_nanodet and not args.kernels:
            targets.append(("NanoDet-g", {v: str(Path(args.model_repo) / d)
                                          for v, d in NANODET.items()}))
        for m in args.model:
            targets.append((m, {"as compiled": m}))
        if targets:
            lowbit = find_lowbit(args.lowbit)
            dispatch = dispatch_rates()
            for label, variants in targets:
                per_core: dict[str, dict] = {}
                try:
                    for v, path in variants.items():
                        _, layers = model_layers(path, lowbit)
                        for c in cores:
                            est = estimate_model(layers, report["results"], c)
                            alt = estimate_model(layers, report["results"], c, "model",
                                                 dispatch)
                            est["model_choice"] = dict(
                                total_ms=alt["total_ms"],
                                differ=[(a["name"], a["kernel"], b["kernel"]) for a, b in
                                        zip(est["layers"], alt["layers"])
                                        if a["kernel"] != b["kernel"]])
                            per_core.setdefault(c.name, {})[v] = est
                except SimError as e:  # the kernel figures stand without the model
                    report["warnings"].append(f"model {label} not estimated: {e}")
                    continue
                model_runs[label] = per_core
            models_by_core = model_runs.get("NanoDet-g", {})
        report["model_runs"] = model_runs
        report["acceptance"] = acceptance(report["results"], models_by_core)
    except SimError as e:
        print(f"arm-sim: {e}", file=sys.stderr)
        return 2
    if args.json == "-":
        json.dump(report, sys.stdout, indent=1, default=str)
        print()
    else:
        print_report(report, cores, args.layers)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if report.get("failed_sources") else 0


def host_cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s+(.*)", out)
        return m.group(1).strip() if m else "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
