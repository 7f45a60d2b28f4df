"""This machine's measured ceilings: fp32, bf16 and int8 matmul throughput, memory bandwidth.

A roofline needs the machine's real limits, not the datasheet's: on a shared 2-core VM the peak
depends on the hypervisor, the clock and the libraries. Each ceiling is a short torch kernel run
for about ``seconds`` and repeated; the best repeat counts (a ceiling is what the machine *can*
do; noise only ever slows a run down).

* ``fp32`` / ``bf16``: ``torch.mm`` of square matrices (oneDNN / MKL GEMM), GFLOP/s = 2 n^3 / t.
  bf16 is measured only where the CPU has it (AVX512_BF16, AMX-BF16; Arm BF16): elsewhere it is
  emulated through fp32, an emulation is no ceiling, and ``bf16_gflops`` is None; the roofline
  then holds bf16 stages to the fp32 ceiling, so the cost of emulation shows as a gap.
* ``int8``: a dynamically quantized ``nn.Linear`` (int8 weights and activations), GOP/s =
  2 m n^2 / t. Its kernels take the CPU's best int8 path: VNNI or AMX where present, the AVX2
  widening multiplies (VPMADDUBSW/VPMADDWD) where not. Absent (``None``) where torch has no
  quantized engine.
* ``bandwidth``: a sum over a tensor far larger than the caches, GB/s of bytes read.

``paths`` names the instructions each ceiling ran on (from
:func:`pytest_cxrperf.backends.cpu_support.matmul_paths`), so an AVX2 host's table says what its
numbers are ceilings *of*. Results are cached per machine class
(:attr:`pytest_cxrperf.machine.MachineClass.cpu_key`) as JSON, written atomically, and re-measured
when the library environment, the sizes or the schema change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from .atomic import write_json_atomic
from .machine import environment_id, machine_class

SCHEMA = 2  # 2: bf16 only where native, instruction paths
ENV_VAR = "CXRPERF_CACHE_DIR"
MEASURE_SECONDS = 15  # about what `cxrperf ceilings` takes at the default sizes (4 x 3 x 1 s + ...)


@dataclass(frozen=True)
class Sizes:
    """Problem sizes: big enough to reach the peak on a CPU, small enough for a few seconds."""

    matmul_n: int = 2048
    int8_m: int = 1024  # rows of activations fed to the quantized linear (n x n weights)
    bandwidth_mib: int = 512
    seconds: float = 1.0  # per repeat, roughly
    repeats: int = 3

    @classmethod
    def tiny(cls) -> Sizes:
        """For tests: milliseconds, meaningless numbers."""
        return cls(matmul_n=128, int8_m=64, bandwidth_mib=4, seconds=0.01, repeats=2)


@dataclass(frozen=True)
class Ceilings:
    """Best measured rates on this machine at ``threads`` threads."""

    fp32_gflops: float
    bf16_gflops: float | None  # None: bf16 is emulated on this CPU (no ceiling of its own)
    int8_gops: float | None
    bandwidth_gbs: float
    threads: int
    fingerprint: str
    environment: str
    sizes: dict[str, Any]
    paths: dict[str, str | None] = field(default_factory=dict)  # ceiling -> instructions used

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ceilings:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"ceilings schema {data.get('schema')!r} != {SCHEMA}")
        fields = {k: v for k, v in data.items() if k != "schema"}
        return cls(**fields)

    def rows(self) -> list[tuple[str, str, str]]:
        """(what, rate, unit) for a table."""
        int8 = "n/a" if self.int8_gops is None else f"{self.int8_gops:.0f}"
        bf16 = "emulated" if self.bf16_gflops is None else f"{self.bf16_gflops:.0f}"
        paths = self.paths

        def on(key: str) -> str:
            return f" ({paths[key]})" if paths.get(key) else ""

        # what the bf16 row says follows from the figure itself: None is "not measured, emulated"
        return [
            (f"fp32 matmul{on('fp32')}", f"{self.fp32_gflops:.0f}", "GFLOP/s"),
            (
                f"bf16 matmul{on('bf16') if self.bf16_gflops is not None else EMULATED}",
                bf16,
                "GFLOP/s",
            ),
            (f"int8 matmul (dynamic quantized linear){on('int8')}", int8, "GOP/s"),
            ("memory read bandwidth", f"{self.bandwidth_gbs:.1f}", "GB/s"),
        ]


EMULATED = " (no AVX512_BF16/AMX: emulated in fp32, not measured)"


def _best_rate(work: float, run: Callable[[], object], sizes: Sizes) -> float:
    """``work`` units per call; best rate over ``repeats`` timed bursts of ~``seconds`` each."""
    run()  # warm-up: first-call kernel creation and page faults
    start = perf_counter()
    run()
    once = max(perf_counter() - start, 1e-9)
    calls = max(1, int(sizes.seconds / once))
    best = 0.0
    for _ in range(sizes.repeats):
        start = perf_counter()
        for _ in range(calls):
            run()
        best = max(best, work * calls / max(perf_counter() - start, 1e-9))
    return best


def _matmul_gflops(dtype: Any, sizes: Sizes) -> float:
    import torch

    n = sizes.matmul_n
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    return _best_rate(2.0 * n**3, lambda: torch.mm(a, b, out=out), sizes) / 1e9


def _int8_gops(sizes: Sizes) -> float | None:
    import warnings

    import torch

    n, m = sizes.matmul_n, sizes.int8_m
    engines = torch.backends.quantized.supported_engines
    if not any(e in engines for e in ("x86", "fbgemm", "onednn")):
        return None
    try:
        with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            linear = quantize_dynamic(
                torch.nn.Sequential(torch.nn.Linear(n, n, bias=False)), {torch.nn.Linear}
            )
    except Exception:  # no quantized kernels in this build
        return None
    x = torch.randn(m, n)
    with torch.inference_mode():
        return _best_rate(2.0 * m * n * n, lambda: linear(x), sizes) / 1e9


def _bandwidth_gbs(sizes: Sizes) -> float:
    import torch

    data = torch.ones(sizes.bandwidth_mib * 2**20 // 4, dtype=torch.float32)
    return _best_rate(float(data.numel() * 4), lambda: data.sum(), sizes) / 1e9


def measure(threads: int, sizes: Sizes | None = None) -> Ceilings:
    """Measure every ceiling now at ``threads`` torch threads (restored afterwards)."""
    import torch

    from .backends.cpu_support import matmul_paths

    sizes = sizes or Sizes()
    paths = matmul_paths()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return Ceilings(
            fp32_gflops=_matmul_gflops(torch.float32, sizes),
            bf16_gflops=_matmul_gflops(torch.bfloat16, sizes) if paths["bf16"] else None,
            int8_gops=_int8_gops(sizes),
            bandwidth_gbs=_bandwidth_gbs(sizes),
            threads=threads,
            fingerprint=machine_class(threads).cpu_key,
            environment=environment_id(),
            sizes=asdict(sizes),
            paths=paths,
        )
    finally:
        torch.set_num_threads(previous)


def cache_path(threads: int, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/ceilings/<machine class cpu key>.json``; the root as for the OpenVINO IR cache."""
    if cache_dir is not None:
        root = Path(cache_dir)
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR])
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("pytest-cxrperf"))
    return root / "ceilings" / f"{machine_class(threads).cpu_key}.json"


def load_cached(path: Path, sizes: Sizes | None) -> Ceilings | None:
    """The cached ceilings, or None when absent, unreadable, or measured differently (under other
    libraries; with other ``sizes`` unless ``sizes`` is None: any sizes will do)."""
    try:
        cached = Ceilings.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if cached.environment != environment_id():
        return None
    if sizes is not None and cached.sizes != asdict(sizes):
        return None
    return cached


def ceilings(
    threads: int,
    *,
    sizes: Sizes | None = None,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Ceilings, bool]:
    """This machine's ceilings from the cache, else measured and cached; (ceilings, from_cache)."""
    sizes = sizes or Sizes()
    path = cache_path(threads, cache_dir)
    if not refresh:
        cached = load_cached(path, sizes)
        if cached is not None:
            return cached, True
    measured = measure(threads, sizes)
    write_json_atomic(path, measured.to_dict())
    return measured, False


def for_run(
    mode: str, threads: int, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[Ceilings | None, str]:
    """The ceilings behind a pytest run's roofline column: (ceilings, where they came from), or
    (None, why there are none and what to do).

    A run never spends ~15 s measuring by surprise: ``cached`` (the default) only reads what
    ``cxrperf ceilings`` stored for this machine at these threads (whatever sizes it used);
    ``measure`` measures and caches them when absent, after the timed rounds.
    """
    path = cache_path(threads, cache_dir)
    cached = load_cached(path, None)
    if cached is not None:
        return cached, "cached"
    if mode == "measure":
        start = perf_counter()
        measured = measure(threads)
        took = f"measured in this run ({perf_counter() - start:.0f} s)"
        try:
            write_json_atomic(path, measured.to_dict())
        except OSError as exc:  # the figures still serve this run
            return measured, f"{took}, not cached: {exc}"
        return measured, f"{took}, now cached"
    stale = " (the cached ones predate this library environment)" if path.is_file() else ""
    return None, (
        f"no ceilings cached for this machine at {threads} thread(s){stale}: run "
        f"`cxrperf ceilings --threads {threads}` once (about {MEASURE_SECONDS} s), or pass "
        "--cxr-ceilings=measure"
    )
