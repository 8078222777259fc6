"""bench/arm-sim's machinery: the cross compile to assembly, the llvm-mca regions (widened to
their loops, matched to the build without markers), llvm-mca runs and their parsing, and the
bound of a loop. What the figures mean and the kernel table: bench/arm_sim.py."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Core:
    name: str  # what --cores takes
    mcpu: str  # llvm-mca -mcpu
    label: str
    clock_ghz: float
    features: frozenset = frozenset()  # the real core's extensions (llvm's model is checked)


class SimError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
def find_llvm_mca(explicit: str | None) -> str:
    """llvm-mca-19 (Debian bookworm's llvm-19): it has the Neoverse-N1 model the issue needs
    and the same in-order A53/A55 and A57 models as llvm-14; one version for every core."""
    for cand in [explicit, os.environ.get("LLVM_MCA"), "llvm-mca-19"]:
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise SimError("llvm-mca-19 not found: apt-get install llvm-19 (or pass --llvm-mca)")


def find_cxx(explicit: str | None) -> str:
    for cand in [explicit, os.environ.get("LOWBIT_AARCH64_CXX"), "aarch64-linux-gnu-g++"]:
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise SimError("aarch64-linux-gnu-g++ not found: apt-get install g++-aarch64-linux-gnu")


def tool_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    if m:
        return m.group(1)
    first = out.splitlines()[0] if out else ""
    return first.split()[-1] if first.split() else "?"


# ---------------------------------------------------------------------------------------------
# 1. Compile
# ---------------------------------------------------------------------------------------------
def arm64_compile_commands(cache: Path) -> dict[str, list[str]]:
    """source path -> argv of the arm64 build's compile command (cmake configure only)."""
    build = cache / "cmake-arm64"
    cmd = ["cmake", "-S", str(REPO), "-B", str(build), "-G", "Ninja",
           "-DCMAKE_BUILD_TYPE=Release",
           f"-DCMAKE_TOOLCHAIN_FILE={REPO / 'cmake/aarch64-linux-gnu.cmake'}",
           "-DLOWBIT_KERNELS_ONLY=ON", "-DLOWBIT_BUILD_BENCHMARKS=OFF",
           "-DLOWBIT_BUILD_TESTS=OFF", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
    if shutil.which("cmake") is None or shutil.which("ninja") is None:
        return {}
    r = subprocess.run(cmd, capture_output=True, text=True)
    db = build / "compile_commands.json"
    if r.returncode != 0 or not db.exists():
        return {}
    out = {}
    for e in json.loads(db.read_text()):
        argv = e["arguments"] if "arguments" in e else shlex.split(e["command"])
        out[str(Path(e["file"]).resolve())] = argv
    return out


def inferred_march(src: Path) -> list[str]:
    """For a source the build does not list yet: its ISA from the file-name suffix."""
    stem = src.stem
    if stem.endswith("__neoni8mm"):
        return ["-march=armv8.6-a+dotprod+i8mm"]
    if stem.endswith("__neondot"):
        return ["-march=armv8.2-a+dotprod"]
    return []


def asm_command(src: Path, out: Path, cxx: str, commands: dict[str, list[str]]) -> list[str]:
    argv = commands.get(str(src.resolve()))
    if argv:
        args, skip = [], False
        for a in argv[1:]:
            if skip:
                skip = False
                continue
            if a in ("-o", "-c", "-MF", "-MT", "-MQ"):
                skip = a != "-c"
                continue
            if a == str(src) or a.endswith(src.name) or re.fullmatch(r"-O\d|-Os|-MD|-MMD", a):
                continue
            args.append(a)
    else:
        args = [f"-I{REPO / 'kernels/include'}", "-DNDEBUG", "-ffp-contract=off", "-std=c++20"]
        args += inferred_march(src)
    return [cxx, *args, "-O3", "-DLOWBIT_MCA_MARKERS", "-S", "-o", str(out), str(src)]


def compile_sources(sources: list[Path], cxx: str, work: Path, cache: Path,
                    jobs: int = 2) -> dict[Path, Path]:
    commands = arm64_compile_commands(cache)

    def one(src: Path) -> tuple[Path, Path | str]:
        out = work / (src.stem + ".s")
        cmd = asm_command(src, out, cxx, commands)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if r.returncode != 0:
            return src, f"{' '.join(cmd)}\n{r.stderr[-2000:]}"
        # The same source without markers, to tell whether the markers moved gcc's code.
        plain = work / (src.stem + ".plain.s")
        cmd = [a for a in asm_command(src, plain, cxx, commands) if a != "-DLOWBIT_MCA_MARKERS"]
        subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        return src, out

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(pool.map(one, sources))


# ---------------------------------------------------------------------------------------------
# 2. Regions
# ---------------------------------------------------------------------------------------------
BEGIN_RE = re.compile(r"#\s*LLVM-MCA-BEGIN\s+(\S+)")
END_RE = re.compile(r"#\s*LLVM-MCA-END")
LABEL_RE = re.compile(r"^\s*([.\w$]+):\s*(?:$|//|#)")
BRANCH_RE = re.compile(r"^\s*(b\.\w+|b\w\w|cbn?z|tbn?z|b)\s+(?:.*,\s*)?([.\w$]+)\s*$")


def is_instruction(line: str) -> bool:
    s = line.strip()
    if not s or s.startswith(("//", "#", ".", "@")) or LABEL_RE.match(line):
        return False
    return True


def clean(line: str) -> str:
    """An assembly line as llvm-mca reads it: comments dropped."""
    s = line.split("//")[0].rstrip()
    return s


@dataclasses.dataclass
class Region:
    name: str
    source: str  # kernels/src/...cc
    instance: int  # 1.. when the same name appears more than once (gcc duplicated the loop)
    mode: str  # "loop" (widened to label..back-branch) or "marked"
    text: str  # the instructions given to llvm-mca
    instructions: int
    function: str = ""  # the assembly symbol the region lies in
    build: str = "marked"  # "unmarked": the matching loop of the build without markers


FUNC_RE = re.compile(r"^([A-Za-z_$][\w$.]*):")
NON_COMPUTE = re.compile(r"^(ld|st|mov|dup|ins|umov|smov|fmov|prfm)")


def function_at(lines: list[str], i: int) -> str:
    for k in range(i, -1, -1):
        m = FUNC_RE.match(lines[k])
        if m:
            return m.group(1)
    return ""


def loops_of(asm: str) -> list[tuple[str, list[str]]]:
    """Every (function, body) of a loop in the assembly: a label and a later branch back to it
    in the same function (the body: the lines after the label through the branch)."""
    lines = asm.splitlines()
    out, func, labels = [], "", {}
    for k, line in enumerate(lines):
        fm = FUNC_RE.match(line)
        if fm:
            func, labels = fm.group(1), {}
            continue
        lm = LABEL_RE.match(line)
        if lm:
            labels[lm.group(1)] = k
            continue
        if is_instruction(line):
            bm = BRANCH_RE.match(clean(line))
            if bm and bm.group(2) in labels:
                start = labels[bm.group(2)]
                body = [clean(l) for l in lines[start + 1:k + 1]]
                body = [l for l in body if l.strip() and (is_instruction(l) or LABEL_RE.match(l))]
                inner = {LABEL_RE.match(l).group(1) for l in body if LABEL_RE.match(l)}
                nested = any((m := BRANCH_RE.match(l)) and m.group(2) in inner and
                             body.index(l) > body.index(next(x for x in body if LABEL_RE.match(x)
                                                             and LABEL_RE.match(x).group(1)
                                                             == m.group(2)))
                             for l in body[:-1] if is_instruction(l))
                if not nested:  # innermost loops only
                    out.append((func, body))
    return out


def compute_signature(body: list[str]) -> list[str]:
    """The vector arithmetic of a loop body, in order (no loads, stores, moves, scalar
    bookkeeping): what the markers must not have changed."""
    ops = [l.split()[0] for l in body if is_instruction(l) and re.search(r"\bv\d+\.", l)]
    return sorted(o for o in ops if not NON_COMPUTE.match(o))


def load_signature(body: list[str]) -> list[str]:
    """The vector loads of a loop body that are not stack reloads, by kind (ld1r, ld1 lane,
    ld1/ld4 structure loads; plain ldr/ldp of q/d registers counted as one kind, as gcc pairs
    them differently from build to build)."""
    kinds = []
    for l in body:
        if not is_instruction(l) or "[sp" in l:
            continue
        op = l.split()[0]
        if re.match(r"^ld[1-4]r?$", op):
            kinds.append(op + ("[lane]" if re.search(r"\}\[\d+\]", l) else ""))
        elif re.match(r"^ld(r|p|ur)$", op) and re.search(r"\b[qd]\d+", l):
            kinds.append("ldr/ldp")
    return sorted(set(kinds))


def match_unmarked(region: Region, plain_asm: str) -> Region | None:
    """The loop of the build without markers that computes what the marked region computes:
    same function, the same vector arithmetic (as a multiset of mnemonics), innermost, the
    most similar instruction sequence. None when no loop matches exactly."""
    want = compute_signature(region.text.splitlines())
    want_loads = load_signature(region.text.splitlines())
    mnems = [l.split()[0] for l in region.text.splitlines() if is_instruction(l)]
    best = None
    for func, body in loops_of(plain_asm):
        if func != region.function or compute_signature(body) != want or not want:
            continue
        theirs = [l.split()[0] for l in body if is_instruction(l)]
        # Two loops with the same arithmetic (a kernel's fast path and its fallback): the one
        # that loads its operands as the region does comes first (spills and pairing aside).
        score = (load_signature(body) == want_loads,
                 difflib.SequenceMatcher(a=mnems, b=theirs, autojunk=False).ratio())
        if best is None or score > best[0]:
            best = (score, body)
    if best is None:
        return None
    body = best[1]
    return dataclasses.replace(region, text="\n".join(body) + "\n", build="unmarked",
                               mode="loop", instructions=sum(is_instruction(l) for l in body))


def code_of(asm: str) -> list[str]:
    """The instructions of an assembly file, local labels renumbered away."""
    return [re.sub(r"\.L\w+", ".L", clean(l).strip()) for l in asm.splitlines()
            if is_instruction(l) and not BEGIN_RE.search(l) and not END_RE.search(l)]


def markers_moved_code(marked: str, plain: str) -> int:
    """How many instructions differ between the marked and the unmarked build (0: the
    markers changed nothing but themselves)."""
    a, b = code_of(marked), code_of(plain)
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal")


def extract_regions(asm: str, source: str, widen: bool = True, window: int = 16) -> list[Region]:
    lines = asm.splitlines()
    regions, open_at, name = [], None, None
    spans = []
    for i, line in enumerate(lines):
        m = BEGIN_RE.search(line)
        if m:
            if open_at is not None:
                raise SimError(f"{source}: region {m.group(1)} begins inside {name}")
            open_at, name = i, m.group(1)
        elif END_RE.search(line):
            if open_at is None:
                raise SimError(f"{source}: LLVM-MCA-END without BEGIN (line {i + 1})")
            spans.append((name, open_at, i))
            open_at = None
    if open_at is not None:
        raise SimError(f"{source}: region {name} is not closed")
    counts: dict[str, int] = {}
    for name, b, e in spans:
        counts[name] = counts.get(name, 0) + 1
        lo, hi, mode = b + 1, e, "marked"
        if widen:
            lab = None
            k, seen = b - 1, 0
            while k >= 0 and seen <= window:
                if LABEL_RE.match(lines[k]):
                    lab = (k, LABEL_RE.match(lines[k]).group(1))
                    break
                seen += is_instruction(lines[k])
                k -= 1
            if lab:
                k, seen = e + 1, 0
                while k < len(lines) and seen <= window:
                    if BEGIN_RE.search(lines[k]) or re.match(r"\s*ret\b", lines[k]):
                        break
                    if is_instruction(lines[k]):
                        seen += 1
                        bm = BRANCH_RE.match(clean(lines[k]))
                        if bm and bm.group(2) == lab[1]:
                            lo, hi, mode = lab[0] + 1, k + 1, "loop"
                            break
                    k += 1
        body = [clean(l) for l in lines[lo:hi]
                if not BEGIN_RE.search(l) and not END_RE.search(l)]
        body = [l for l in body if l.strip() and (is_instruction(l) or LABEL_RE.match(l))]
        n = sum(is_instruction(l) for l in body)
        if n == 0:
            raise SimError(f"{source}: region {name} holds no instructions")
        regions.append(Region(name, source, counts[name], mode, "\n".join(body) + "\n", n,
                              function=function_at(lines, b)))
    return regions


# ---------------------------------------------------------------------------------------------
# 3. llvm-mca
# ---------------------------------------------------------------------------------------------
def parse_mca(text: str, in_order: bool = False) -> dict:
    def num(key, cast=float):
        m = re.search(rf"^{key}:\s+([\d.]+)", text, re.M)
        if not m:
            raise SimError(f"llvm-mca output without '{key}'")
        return cast(m.group(1))

    out = dict(iterations=num("Iterations", int), instructions=num("Instructions", int),
               cycles=num("Total Cycles", int), dispatch_width=num("Dispatch Width", int),
               block_rthroughput=num("Block RThroughput"))
    res = re.findall(r"^\[([\d.]+)\]\s+-\s+(\S+)", text, re.M)
    out["resources"] = [f"{n}" + (f"[{i.split('.')[1]}]" if "." in i else "") for i, n in res]
    m = re.search(r"Resource pressure per iteration:\n.*\n(.*)\n", text)
    if not m:
        raise SimError("llvm-mca output without 'Resource pressure per iteration'")
    vals = m.group(1).split()
    out["pressure"] = [0.0 if v == "-" else float(v) for v in vals]
    rows = []
    m = re.search(r"Resource pressure by instruction:\n.*\n((?:.*\n?)*)", text)
    if m:
        nres = len(out["resources"])
        for row in m.group(1).splitlines():
            toks = row.split()
            if len(toks) <= nres:
                break
            try:
                vals = [0.0 if v == "-" else float(v) for v in toks[:nres]]
            except ValueError:
                break
            rows.append((" ".join(toks[nres:]), vals))
    out["by_instruction"] = rows
    bn = {}
    for key, pat in [("backend_pressure", r"Cycles with backend pressure increase \[ ([\d.]+)% \]"),
                     ("resource_pressure", r"Resource Pressure\s+\[ ([\d.]+)% \]"),
                     ("data_dependencies", r"Data Dependencies:\s+\[ ([\d.]+)% \]")]:
        mm = re.search(pat, text)
        if mm:
            bn[key] = float(mm.group(1))
    bn["resources"] = {n: float(p) for n, p in
                       re.findall(r"^\s+-\s+(\S+)\s+\[ ([\d.]+)% \]", text, re.M)
                       if not n.startswith(("Register", "Memory"))}
    out["bottleneck"] = bn
    out["in_order"] = in_order
    return out


def run_mca(llvm_mca: str, asm_text: str, mcpu: str, mattr: str | None, iterations: int,
            work: Path, tag: str) -> dict:
    path = work / f"{tag}.{mcpu}.s"
    path.write_text(asm_text)
    cmd = [llvm_mca, "-mtriple=aarch64-linux-gnu", f"-mcpu={mcpu}", f"-iterations={iterations}",
           "-bottleneck-analysis", str(path)]
    if mattr:
        cmd.insert(3, f"-mattr={mattr}")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        m = re.search(r"instruction requires: ([\w\- ]+)", r.stderr)
        if m:
            return {"unsupported": m.group(1).strip()}
        raise SimError(f"llvm-mca failed for {tag} on {mcpu}:\n{r.stderr[-2000:]}")
    return parse_mca(r.stdout, in_order="not supported for in-order" in r.stderr)


def simulate(llvm_mca: str, region: Region, core: Core, work: Path, n: int = 100) -> dict:
    tag = f"{region.name}.{region.instance}"
    a = run_mca(llvm_mca, region.text, core.mcpu, None, n, work, tag)
    if "unsupported" in a:
        return {"runs": False, "lacks": a["unsupported"]}
    b = run_mca(llvm_mca, region.text, core.mcpu, None, 3 * n, work, tag)
    cpi = (b["cycles"] - a["cycles"]) / (2 * n)
    out = dict(runs=True, cycles_per_iter=cpi, instructions=a["instructions"] // n,
               dispatch_width=a["dispatch_width"], block_rthroughput=a["block_rthroughput"])
    stalls = issue_stalls(llvm_mca, region.text, core.mcpu, work, tag) if b["in_order"] else []
    out["bound"] = bound_of(b, cpi, in_order=b["in_order"], stalls=stalls)
    return out


def parse_timeline(text: str) -> dict[tuple[int, int], tuple[int, str]]:
    """llvm-mca -timeline rows: (iteration, index) -> (dispatch cycle, instruction)."""
    lines = text.splitlines()
    head = next((i for i, l in enumerate(lines) if l.startswith("Index ")), None)
    if head is None:
        return {}
    start = lines[head].index("0")
    rows = {}
    for l in lines[head + 1:]:
        m = re.match(r"\[(\d+),(\d+)\]", l)
        if not m:
            if rows and not l.strip():
                break
            continue
        body = l[start:]
        d = body.find("D")
        instr = re.split(r"\s{2,}", body.rstrip())[-1].strip()
        rows[(int(m.group(1)), int(m.group(2)))] = (d, instr)
    return rows


def issue_stalls(llvm_mca: str, text: str, mcpu: str, work: Path, tag: str,
                 iterations: int = 4) -> list[tuple[str, float]]:
    """In-order cores: the instructions that wait longest to issue after the one before them
    (cycles beyond the one a dual-issue pair may take), averaged over the iterations after
    the first, largest first, from llvm-mca's timeline."""
    path = work / f"{tag}.{mcpu}.timeline.s"
    path.write_text(text)
    r = subprocess.run([llvm_mca, "-mtriple=aarch64-linux-gnu", f"-mcpu={mcpu}",
                        f"-iterations={iterations}", "-timeline",
                        f"-timeline-max-iterations={iterations}", "-timeline-max-cycles=0",
                        str(path)],
                       capture_output=True, text=True)
    rows = parse_timeline(r.stdout) if r.returncode == 0 else {}
    if not rows:
        return []
    n = 1 + max(k for _, k in rows)
    waits: dict[str, float] = {}
    for it in range(1, iterations):
        for k in range(n):
            prev = rows.get((it, k - 1) if k else (it - 1, n - 1))
            cur = rows.get((it, k))
            if prev and cur and cur[0] - prev[0] > 1:
                waits[cur[1]] = waits.get(cur[1], 0.0) + (cur[0] - prev[0] - 1) / (iterations - 1)
    return sorted(waits.items(), key=lambda kv: -kv[1])


def describe_resource(name: str) -> str:
    for pat, desc in [(r"A57UnitX", "ASIMD pipe F1"),
                      (r"A57UnitW", "ASIMD pipe F0, the multiply pipe"),
                      (r"A57UnitL", "load pipe"), (r"A57UnitS", "store pipe"),
                      (r"A57UnitI", "integer pipe"), (r"A57UnitM", "integer multi-cycle pipe"),
                      (r"A57UnitB", "branch pipe"),
                      (r"UnitV0$", "ASIMD pipe V0"), (r"UnitV1$", "ASIMD pipe V1"),
                      (r"N1UnitL", "load pipe"), (r"N1UnitD", "store-data pipe"),
                      (r"N1UnitS", "integer pipe"), (r"N1UnitM", "integer multi-cycle pipe"),
                      (r"N1UnitB", "branch pipe"),
                      (r"A53UnitFPMDS", "ASIMD/FP multiply pipe"),
                      (r"A53UnitFPALU", "ASIMD/FP ALU pipe"), (r"A53UnitLdSt", "load/store pipe"),
                      (r"A53UnitALU", "integer ALU"), (r"A53UnitB", "branch unit"),
                      (r"A53UnitMAC", "integer multiply"),
                      (r"A55UnitFPMAC", "ASIMD multiply-accumulate pipe"),
                      (r"A55UnitFPALU", "ASIMD ALU pipe"), (r"A55UnitLd", "load pipe"),
                      (r"A55UnitSt", "store pipe"), (r"A55UnitALU", "integer ALU"),
                      (r"A55UnitB", "branch unit"), (r"A55UnitMAC", "integer multiply")]:
        if re.search(pat, name):
            return desc
    return "resource"


def mnemonic(instr: str) -> str:
    return instr.split()[0] if instr.split() else instr


def bound_of(mca: dict, cpi: float, in_order: bool = False,
             stalls: list[tuple[str, float]] | None = None) -> dict:
    """What limits the loop: the resource units busy >= 90% of the cycles (with the
    instructions that load them), else the issue width if instructions / width fills >= 90%,
    else the dependency chain (or, on the in-order models, issue stalls on latency)."""
    pressure, names = mca["pressure"], mca["resources"]
    instrs_per_iter = mca["instructions"] / mca["iterations"]
    issue = instrs_per_iter / mca["dispatch_width"]
    order = sorted(range(len(pressure)), key=lambda i: -pressure[i])
    i_max = order[0] if order else None
    busy = [i for i in order if pressure[i] >= 0.9 * cpi] if cpi > 0 else []
    top: dict[str, float] = {}
    for instr, vals in mca["by_instruction"]:
        for i in busy or ([i_max] if i_max is not None else []):
            if i < len(vals) and vals[i] > 0:
                top[mnemonic(instr)] = top.get(mnemonic(instr), 0.0) + vals[i]
    top = dict(sorted(top.items(), key=lambda kv: -kv[1])[:4])
    out = dict(resource=names[i_max] if i_max is not None else None,
               resource_cycles=pressure[i_max] if i_max is not None else 0.0,
               busy_resources={names[i]: pressure[i] for i in busy}, issue_cycles=issue,
               top_instructions=top, llvm_bottleneck=mca["bottleneck"])
    busiest = (f"busiest {names[i_max]} {pressure[i_max]:.1f}/{cpi:.1f} cyc"
               if i_max is not None else "no resource pressure")
    if busy:
        units = " + ".join(f"{names[i]} ({describe_resource(names[i])}) {pressure[i]:.1f}"
                           for i in busy)
        tops = ", ".join(f"{k} {v:.1f}" for k, v in top.items())
        out["kind"] = "resource"
        out["text"] = f"{units} of {cpi:.1f} cyc busy: {tops}"
    elif issue >= 0.9 * cpi:
        out["kind"] = "issue"
        out["text"] = (f"issue width: {instrs_per_iter:.0f} instr at {mca['dispatch_width']}/cyc "
                       f"= {issue:.1f}/{cpi:.1f} cyc")
    elif in_order:
        out["kind"] = "in-order stalls"
        stalled = sum(w for _, w in stalls or [])
        top_stalls = ", ".join(f"{' '.join(i.split())} {w:.1f}" for i, w in (stalls or [])[:3])
        out["stalls"] = stalls or []
        out["text"] = (f"in-order issue: {stalled:.0f} of {cpi:.0f} cyc stalled on operands"
                       + (f" (longest waits: {top_stalls})" if top_stalls else "")
                       + f", the rest mostly single issue; {busiest}, dual issue "
                       f"{issue:.1f} cyc")
    else:
        out["kind"] = "latency"
        dd = mca["bottleneck"].get("data_dependencies")
        extra = f"; llvm: data dependencies in {dd:.0f}% of cycles" if dd is not None else ""
        out["text"] = f"dependency/latency chain ({busiest}{extra})"
    return out
