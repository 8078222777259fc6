"""bench/arm-sim: region extraction, llvm-mca parsing and the end-to-end run on one kernel
and core. Needs aarch64-linux-gnu-g++ and llvm-mca-19 (deploy/install-deps.sh installs both);
each llvm-mca call takes milliseconds, the compile a few seconds."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import arm_sim  # noqa: E402
import arm_sim_mca as mca_lib  # noqa: E402

TIMEOUT = 180


def mca():
    return mca_lib.find_llvm_mca(None)


def region(text, name="t"):
    return mca_lib.Region(name, "test.cc", 1, "marked", text,
                          sum(mca_lib.is_instruction(l) for l in text.splitlines()))


# gcc-style output: label, marker, body, marker, loop counter and back-branch.
GCC_LOOP = """\
\t.p2align 3,,7
.L4:
#APP
// 45 "kernels/src/x.cc" 1
\t# LLVM-MCA-BEGIN demo
// 0 "" 2
#NO_APP
\tldr\tq6, [x12, x0]
\tsmull\tv1.8h, v6.8b, v7.8b
#APP
// 50 "kernels/src/x.cc" 1
\t# LLVM-MCA-END
// 0 "" 2
#NO_APP
\tadd\tx0, x0, 32
\tcmp\tx5, x0
\tbcs\t.L4
\tret
"""


def test_region_widened_to_its_loop():
    (r,) = mca_lib.extract_regions(GCC_LOOP, "x.cc")
    assert r.name == "demo" and r.mode == "loop"
    body = [l.split()[0] for l in r.text.splitlines() if mca_lib.is_instruction(l)]
    assert body == ["ldr", "smull", "add", "cmp", "bcs"]
    (m,) = mca_lib.extract_regions(GCC_LOOP, "x.cc", widen=False)
    assert m.mode == "marked"
    assert [l.split()[0] for l in m.text.splitlines()] == ["ldr", "smull"]


def test_unclosed_and_unknown_regions_are_errors():
    with pytest.raises(mca_lib.SimError, match="not closed"):
        mca_lib.extract_regions("\t# LLVM-MCA-BEGIN a\n\tadd x0, x0, 1\n", "x.cc")
    (r,) = mca_lib.extract_regions(GCC_LOOP, "x.cc")
    with pytest.raises(mca_lib.SimError, match="without a KERNEL_TABLE entry.*demo"):
        arm_sim.check_table([r])


def test_implied_macs_counts_lanes():
    text = ("smull v0.8h, v1.8b, v2.8b\nsmlal2 v3.8h, v1.16b, v2.16b\n"
            "smlal v4.4s, v5.4h, v6.h[1]\nsdot v7.4s, v8.16b, v9.4b[2]\nsmmla v1.4s, v2.16b, "
            "v3.16b\nadd v1.4s, v1.4s, v2.4s\n")
    assert arm_sim.implied_macs(text) == 8 + 8 + 4 + 16 + 32


def test_eight_multiplies_saturate_the_a72_multiply_pipe(tmp_path):
    # 8 independent 16-bit widening multiply-accumulates: llvm's A57 model issues one per
    # cycle on one ASIMD pipe, so 8 cycles per iteration, bound by that pipe.
    text = "".join(f"smlal v{i}.8h, v{16 + i}.8b, v24.8b\n" for i in range(8))
    sim = mca_lib.simulate(mca(), region(text), arm_sim.CORES["cortex-a72"], tmp_path)
    assert sim["runs"]
    assert sim["cycles_per_iter"] == pytest.approx(8.0, abs=0.05)
    assert sim["instructions"] == 8
    assert sim["bound"]["kind"] == "resource"
    assert sim["bound"]["resource"].startswith("A57Unit")
    assert sim["bound"]["top_instructions"] == {"smlal": pytest.approx(8.0)}


def test_dotprod_region_runs_only_where_llvm_models_dotprod(tmp_path):
    text = "".join(f"sdot v{i}.4s, v{16 + i}.16b, v24.4b[0]\n" for i in range(8))
    r = region(text)
    for name in ("cortex-a53", "cortex-a72"):
        sim = mca_lib.simulate(mca(), r, arm_sim.CORES[name], tmp_path)
        assert not sim["runs"] and "dotprod" in sim["lacks"]
    for name in ("cortex-a55", "neoverse-n1"):
        sim = mca_lib.simulate(mca(), r, arm_sim.CORES[name], tmp_path)
        assert sim["runs"] and sim["cycles_per_iter"] >= 4.0  # at most 2 sdot per cycle


INSPECT = """\
   #  name                  op                      output shape       W/A  kernel     weight bytes         MACs     params
   0  input_a8_Clip         lowbit.Quantize         [1,3,416,416]        -  -                     0            0          0
   1  convolution           lowbit.QConv+LeakyRelu  [1,32,208,208]     8/8  int8dot           1,120   37,380,096        896
   3  convolution_2         lowbit.QConv+LeakyRelu  [1,16,104,104]     2/2  lut               1,280   49,840,128      4,624
   4  head                  Conv                    [1,24,64,64]     32/32  xnnpack_f32       7,296    7,372,800      1,824

model   x.onnx
"""


def test_model_estimate_uses_the_fastest_kernel_that_holds_the_layer():
    layers = arm_sim.parse_inspect(INSPECT)
    assert [(l.name, l.wbits, l.abits, l.macs) for l in layers] == [
        ("convolution", [8], 8, 37380096), ("convolution_2", [2], 2, 49840128),
        ("head", [32], 32, 7372800)]
    layers[0].geometry = dict(cout=32, cin=3, kh=3, kw=3, stride=2, groups=1)
    layers[1].geometry = dict(cout=16, cin=32, kh=3, kw=3, stride=1, groups=1)
    rows = [dict(kernel="conv_u8s8_neon", family="int8dot", core="c", runs=True, instance=1,
                 wbits=8, abits=8, macs_per_cycle=8.0),
            dict(kernel="conv_w2a2_lut_neon", family="lut", core="c", runs=True, instance=1,
                 wbits=2, abits=2, macs_per_cycle=16.0)]
    est = arm_sim.estimate_model(layers, rows, arm_sim.Core("c", "c", "c", 1.0))
    first, second = est["layers"]
    assert est["float_layers"] == ["head"]
    assert first["kernel"] == "conv_u8s8_neon"  # W8A8: the LUT cannot hold it
    # INT8 pads channels to 4 and cout to 16: 3 -> 4 input channels.
    assert first["cycles"] == pytest.approx(208 * 208 * 32 * 9 * 4 / 8.0)
    assert second["kernel"] == "conv_w2a2_lut_neon"
    assert est["total_ms"] == pytest.approx((first["cycles"] + second["cycles"]) / 1e6)


def test_one_kernel_on_one_core_end_to_end(tmp_path):
    """The real tool: compile dwconv_u8s8_1x16__neon.cc, simulate its marked loop on the A72
    model, print; the JSON and the printed table agree."""
    cmd = [sys.executable, str(REPO / "bench/arm-sim"), "--kernels", "dwconv_u8s8",
           "--cores", "cortex-a72", "--cache", str(tmp_path / "cache")]
    out = subprocess.run(cmd + ["--json", "-"], capture_output=True, text=True, timeout=TIMEOUT,
                         check=True).stdout
    report = json.loads(out)
    (row,) = [r for r in report["results"] if r["instance"] == 1]
    entry = arm_sim.KERNEL_TABLE["dwconv_u8s8_neon"]
    assert row["kernel"] == "dwconv_u8s8_neon" and row["core"] == "cortex-a72"
    assert row["source"] == "kernels/src/dwconv_u8s8_1x16__neon.cc"
    assert row["runs"] and row["region"] == "loop"
    assert row["macs_per_iter"] == entry["macs"]
    # 8 smlal per tap pair on one multiply pipe: at least 8 cycles.
    assert 8.0 <= row["cycles_per_iter"] < 100
    assert row["macs_per_cycle"] == pytest.approx(entry["macs"] / row["cycles_per_iter"])
    assert row["bound"]["text"]
    assert "no caches, no memory stalls" in report["label"]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          check=True).stdout
    assert "static estimate" in text
    # The per kernel and core row, and the summary matrix's cell.
    line = next(l for l in text.splitlines()
                if l.startswith("dwconv_u8s8_neon") and "cortex-a72" in l)
    assert f"{row['cycles_per_iter']:.2f}" in line and f"{row['macs_per_cycle']:.2f}" in line
    assert row["bound"]["text"] in line
    cell = next(l for l in text.splitlines()
                if l.startswith("dwconv_u8s8_neon") and "cortex-a72" not in l)
    assert f"{row['macs_per_cycle']:.1f}" in cell


# The same loop built with markers (a spill the markers caused: str/ldr of q23) and without,
# plus an unrelated loop with other arithmetic in the same function.
MARKED = """\
_Z1fv:
.L7:
\t# LLVM-MCA-BEGIN lutdemo
\tldr\tq1, [x0]
\ttbl\tv2.16b, {v1.16b}, v3.16b
\tstr\tq23, [sp, 176]
\tadd\tv4.16b, v4.16b, v2.16b
\tldr\tq23, [sp, 176]
\t# LLVM-MCA-END
\tsubs\tx1, x1, 1
\tbne\t.L7
\tret
"""
PLAIN = """\
_Z1fv:
.L3:
\tcnt\tv9.16b, v9.16b
\tsubs\tx2, x2, 1
\tbne\t.L3
.L5:
\tldr\tq1, [x0]
\ttbl\tv2.16b, {v1.16b}, v3.16b
\tadd\tv4.16b, v4.16b, v2.16b
\tsubs\tx1, x1, 1
\tbne\t.L5
\tret
"""


def test_marked_loop_is_matched_to_the_unmarked_build():
    (r,) = mca_lib.extract_regions(MARKED, "x.cc")
    assert r.function == "_Z1fv" and r.mode == "loop"
    m = mca_lib.match_unmarked(r, PLAIN)
    assert m is not None and m.build == "unmarked"
    assert [l.split()[0] for l in m.text.splitlines()] == ["ldr", "tbl", "add", "subs", "bne"]
    assert mca_lib.markers_moved_code(MARKED, PLAIN.replace(".L3", ".L9")) > 0
    # No loop of the unmarked build with the same vector arithmetic: no match.
    assert mca_lib.match_unmarked(r, PLAIN.replace("tbl", "tbx")) is None


def test_in_order_stalls_name_the_waiting_instruction(tmp_path):
    # A chain of 5 dependent multiply-accumulates on one register: on the in-order A53 model
    # each waits for the one before, and the stall report names them.
    text = "".join("mla v0.4s, v1.4s, v2.4s\n" for _ in range(5))
    sim = mca_lib.simulate(mca(), region(text), arm_sim.CORES["cortex-a53"], tmp_path)
    assert sim["runs"] and sim["bound"]["kind"] == "in-order stalls"
    (instr, wait), = sim["bound"]["stalls"]
    assert instr.split()[0] == "mla"
    # Every cycle but the 5 issue cycles is a wait for the previous mla's result.
    assert wait == pytest.approx(sim["cycles_per_iter"] - 5, abs=0.5)
    assert sim["cycles_per_iter"] > 10


def _rows(core, *specs):
    return [dict(kernel=k, family=f, core=core, runs=True, instance=1, wbits=w, abits=a,
                 macs_per_cycle=m) for k, f, w, a, m in specs]


def test_model_estimate_runs_only_the_kernels_of_the_cores_table_level():
    # A dotprod core's table holds the sdot kernel as its INT8-dot family, not the smull one,
    # even where (in this made-up case) the smull region simulates faster.
    layers = arm_sim.parse_inspect(INSPECT)[:1]
    layers[0].geometry = dict(cout=32, cin=3, kh=3, kw=3, stride=2, groups=1)
    rows = _rows("d", ("conv_u8s8_neon", "int8dot", 8, 8, 50.0),
                 ("conv_u8s8dot_neon", "int8dot", 8, 8, 30.0))
    dot = arm_sim.Core("d", "d", "d", 1.0, frozenset({"dotprod"}))
    assert arm_sim.estimate_model(layers, rows, dot)["layers"][0]["kernel"] == "conv_u8s8dot_neon"
    plain = arm_sim.Core("d", "d", "d", 1.0)
    assert arm_sim.estimate_model(layers, rows, plain)["layers"][0]["kernel"] == "conv_u8s8_neon"


def test_cost_model_choice_follows_dispatch_rates_but_is_timed_by_simulation():
    layers = arm_sim.parse_inspect(INSPECT)[1:2]  # W2A2, 32 -> 16 channels, 3x3
    layers[0].geometry = dict(cout=16, cin=32, kh=3, kw=3, stride=1, groups=1)
    rows = _rows("c", ("conv_u8s8_neon", "int8dot", 8, 8, 8.0),
                 ("conv_w2a2_lut_neon", "lut", 2, 2, 16.0))
    core = arm_sim.Core("c", "c", "c", 1.0)
    measured = arm_sim.estimate_model(layers, rows, core)
    assert measured["layers"][0]["kernel"] == "conv_w2a2_lut_neon"
    # dispatch.cc rates that make the INT8 kernel look faster: the cost model picks it, and
    # its time is the INT8 kernel's simulated one.
    dispatch = {"conv_u8s8dot_2x16__neon": dict(macs_per_cycle=100.0, pixel_tile=2),
                "conv_w2a2_lut_64x4__neon": dict(macs_per_cycle=1.0, pixel_tile=64)}
    modeled = arm_sim.estimate_model(layers, rows, core, "model", dispatch)
    (l,) = modeled["layers"]
    assert l["kernel"] == "conv_u8s8_neon"
    assert l["cycles"] == pytest.approx(104 * 104 * 16 * 9 * 32 / 8.0)


def test_dispatch_rates_are_read_from_the_kernel_table():
    from arm_sim_choice import LEVEL_VARIANTS, dispatch_rates  # noqa: PLC0415
    rates = dispatch_rates()
    for level in LEVEL_VARIANTS.values():
        for variant in level.values():
            assert rates[variant]["macs_per_cycle"] > 0, variant
    assert 0 < rates["conv_anybits_bitserial_64x4__neon"]["plane_pair_share"] <= 1


# A fast path and its fallback with the same arithmetic (the W2A2 plane-pair loop and the
# broadcast loop): the unmarked loop that loads like the region (ld1 lane, not ld1r) wins,
# even when the marked copy spilled and resembles neither.
MARKED_TWO = """\
_Z1gv:
.L7:
\t# LLVM-MCA-BEGIN pairdemo
\tldr\td1, [x0]
\tld1\t{v1.d}[1], [x3]
\tstr\tq23, [sp, 176]
\tand\tv2.16b, v1.16b, v3.16b
\tldr\tq23, [sp, 176]
\tcnt\tv2.16b, v2.16b
\t# LLVM-MCA-END
\tsubs\tx1, x1, 1
\tbne\t.L7
\tret
"""
PLAIN_TWO = """\
_Z1gv:
.L3:
\tld1r\t{v1.2d}, [x0]
\tand\tv2.16b, v1.16b, v3.16b
\tcnt\tv2.16b, v2.16b
\tsubs\tx2, x2, 1
\tbne\t.L3
.L5:
\tldr\td1, [x0]
\tld1\t{v1.d}[1], [x3]
\tand\tv2.16b, v1.16b, v3.16b
\tcnt\tv2.16b, v2.16b
\tsubs\tx1, x1, 1
\tbne\t.L5
\tret
"""


def test_marked_loop_matches_the_unmarked_loop_that_loads_alike():
    (r,) = mca_lib.extract_regions(MARKED_TWO, "x.cc")
    m = mca_lib.match_unmarked(r, PLAIN_TWO)
    assert m is not None and "ld1\t{v1.d}[1]" in m.text and "ld1r" not in m.text


def test_overhead_region_is_added_once_per_parent_copy():
    # Two copies of a loop and of its overhead region (gcc duplicated both): each copy of the
    # loop gets the first overhead copy's cycles / every (14 / 14 = 1), once.
    rows = [dict(kernel=n, instance=i, core="c", family=arm_sim.KERNEL_TABLE[n]["family"],
                 macs_per_iter=arm_sim.KERNEL_TABLE[n]["macs"], runs=True,
                 cycles_per_iter=14.0 if "widen" in n else 10.0)
            for n in ("conv_w2a2_lut_neon", "conv_w2a2_lut_neon_widen") for i in (1, 2)]
    out = arm_sim.add_overheads(rows)
    assert [(r["kernel"], r["instance"]) for r in out] == [("conv_w2a2_lut_neon", 1),
                                                           ("conv_w2a2_lut_neon", 2)]
    assert [r["cycles_per_iter"] for r in out] == [pytest.approx(11.0)] * 2
    assert out[0]["macs_per_cycle"] == pytest.approx(256 / 11.0)
