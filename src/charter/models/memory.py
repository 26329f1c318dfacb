"""Memory and speed from a `ModelReport`: weight bytes per precision, the KV cache, which GPUs
fit which context, and an upper bound on decode speed from memory bandwidth.

Every assumption is a named constant here, and `assumptions()` returns them for printing.
"""

from __future__ import annotations

import functools
import math
import time
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from charter.errors import CharterError, ConfigError
from charter.models.inspect import Architecture, ModelReport

#: Bits per weight at each precision. int8 and int4 include one fp16 scale per block of 32
#: weights, as llama.cpp's Q8_0 (34 bytes / 32) and Q4_0 (18 bytes / 32) store them;
#: applied to every parameter (real files keep norms in F32: under 0.1% of a model).
PRECISION_BITS: dict[str, float] = {"fp32": 32.0, "bf16": 16.0, "int8": 8.5, "int4": 4.5}
PRECISIONS = ("stored", *PRECISION_BITS)

#: Bytes per cached K or V element for each KV-cache type llama.cpp offers.
KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
}
DEFAULT_KV_TYPE = "f16"

#: Fixed memory a GPU runtime takes before any model data: CUDA context, cuBLAS workspace.
RUNTIME_OVERHEAD_GB = 0.5
#: Share of a GPU's memory left free for fragmentation, the display and other processes.
HEADROOM_FRACTION = 0.05
#: Tokens llama.cpp processes per compute step (its default n_ubatch); activations scale
#: with it.
COMPUTE_UBATCH = 512
#: The fit table assumes flash attention (llama.cpp turns it on by default on GPUs), so the
#: attention scores of a step are never held whole.
FIT_FLASH_ATTENTION = True
#: Reported contexts are rounded down to this many tokens (llama.cpp pads n_ctx to 256).
CONTEXT_STEP = 256

GPU_DATA = "gpus.toml"


def assumptions() -> dict[str, Any]:
    """The constants every estimate here rests on, with what each means."""
    return {
        "precision_bits_per_weight": dict(PRECISION_BITS),
        "int8": "8.5 bits/weight: 8-bit weights plus one fp16 scale per 32 (llama.cpp Q8_0)",
        "int4": "4.5 bits/weight: 4-bit weights plus one fp16 scale per 32 (llama.cpp Q4_0)",
        "kv_type_bytes": dict(KV_TYPE_BYTES),
        "runtime_overhead_gb": RUNTIME_OVERHEAD_GB,
        "headroom_fraction": HEADROOM_FRACTION,
        "compute_ubatch_tokens": COMPUTE_UBATCH,
        "compute_buffer": "ubatch x 4 bytes x vocab (logits), or x max(vocab, heads x context) "
        "without flash attention, plus 4 bytes x vocab for the output row",
        "fit_flash_attention": FIT_FLASH_ATTENTION,
        "gpu_memory": "N GB = N x 10^9 bytes (cards usually have N GiB, 7% more: errs safe)",
        "context_step": CONTEXT_STEP,
        "sliding_window": "a sliding-window layer caches at most `window` tokens",
    }


# --- weights, KV cache, compute buffer ---------------------------------------------------


def weight_bytes(report: ModelReport, precision: str) -> int | None:
    """Bytes of all weights at `precision` ("stored" or one of `PRECISION_BITS`).

    Returns None for "stored" when nothing is stored (a bare config). Raises `ConfigError`
    for an unknown precision.
    """
    if precision == "stored":
        return report.stored_bytes
    return math.ceil(report.parameters * _bits(precision) / 8)


def read_bytes_per_token(report: ModelReport, precision: str) -> int | None:
    """Weight bytes one decode step must read: every weight once, except the input
    embedding table (one row is looked up) and, in a mixture of experts, the experts not
    chosen (`experts_used / experts` of the expert weights are read).

    Returns None when the count is unknown (stored bytes of a bare config, or an MoE whose
    experts per token are unknown).
    """
    arch = report.arch
    share = 1.0
    if report.is_moe:
        if not (arch.experts and arch.experts_used):
            return None
        share = arch.experts_used / arch.experts
    comps = report.components
    if precision == "stored":
        if report.component_bytes is None or report.head_bytes is None:
            return None
        b = report.component_bytes
        other = sum(v for k, v in b.items() if k not in ("embeddings", "output", "experts"))
        return round(other + b["experts"] * share + report.head_bytes)
    params = sum(v for k, v in comps.items() if k not in ("embeddings", "output", "experts"))
    params += comps["experts"] * share + report.head_parameters
    return math.ceil(params * _bits(precision) / 8)


def kv_bytes_per_token(arch: Architecture, kv_type: str = DEFAULT_KV_TYPE) -> float:
    """KV-cache bytes one token adds while the context is shorter than any sliding window:
    the sum over layers of (K + V width) × bytes, which for a uniform model is
    2 × layers × kv_heads × head_dim × bytes."""
    return sum(arch.kv_widths) * _kv_bytes(kv_type)


def kv_cache_bytes(
    arch: Architecture, context: int, batch: int = 1, kv_type: str = DEFAULT_KV_TYPE
) -> int:
    """KV-cache bytes for `batch` sequences of `context` tokens each. A sliding-window layer
    holds at most `arch.sliding_window` tokens. Raises `ConfigError` for an unknown kv_type."""
    per_elem = _kv_bytes(kv_type)
    full, sliding = arch.kv_split
    window = arch.sliding_window or context
    elements = full * context + sliding * min(context, window)
    return math.ceil(elements * per_elem * batch)


def compute_buffer_bytes(
    arch: Architecture, context: int, *, flash_attention: bool = FIT_FLASH_ATTENTION
) -> int:
    """llama.cpp's compute buffer, estimated as its largest intermediate (buffers are reused
    between graph nodes): a ubatch of f32 logits, or without flash attention the attention
    scores of a ubatch if larger; plus the f32 output row of one sequence."""
    vocab = arch.vocab or 0
    widest = vocab
    if not flash_attention and arch.heads:
        widest = max(vocab, arch.heads * context)
    return COMPUTE_UBATCH * 4 * widest + 4 * vocab


def runtime_bytes(
    report: ModelReport,
    precision: str,
    context: int,
    *,
    batch: int = 1,
    kv_type: str = DEFAULT_KV_TYPE,
    flash_attention: bool = FIT_FLASH_ATTENTION,
    overhead: bool = True,
) -> int | None:
    """Memory to serve the model: weights + KV cache + compute buffer (+ the fixed runtime
    overhead when `overhead`). None when the weight size is unknown."""
    weights = weight_bytes(report, precision)
    if weights is None:
        return None
    total = weights + kv_cache_bytes(report.arch, context, batch, kv_type)
    total += compute_buffer_bytes(report.arch, context, flash_attention=flash_attention)
    return total + (round(RUNTIME_OVERHEAD_GB * 1e9) if overhead else 0)


def largest_context(
    report: ModelReport,
    precision: str,
    memory_gb: float,
    *,
    kv_type: str = DEFAULT_KV_TYPE,
    limit: int | None = None,
) -> int | None:
    """The longest context (one sequence, rounded down to `CONTEXT_STEP`) that fits in a GPU
    of `memory_gb`, up to `limit` (default: the model's context length, else 2^20).

    Returns None when even the weights and a minimal context do not fit, or when the weight
    size is unknown.
    """
    usable = memory_gb * 1e9 * (1 - HEADROOM_FRACTION)
    cap = limit or report.arch.context_length or 1 << 20

    def fits(ctx: int) -> bool:
        need = runtime_bytes(report, precision, ctx, kv_type=kv_type)
        return need is not None and need <= usable

    if not fits(min(CONTEXT_STEP, cap)):
        return None
    if fits(cap):
        return cap
    lo, hi = CONTEXT_STEP, cap  # fits(lo), not fits(hi): memory only grows with context
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo // CONTEXT_STEP * CONTEXT_STEP


def decode_tokens_per_second(
    report: ModelReport,
    precision: str,
    context: int,
    bandwidth_bytes_per_s: float,
    *,
    kv_type: str = DEFAULT_KV_TYPE,
) -> float | None:
    """Upper bound on single-stream decode speed: bandwidth ÷ bytes read per token (the
    weights of `read_bytes_per_token` plus the whole KV cache at `context`). Real speed is
    lower: compute, kernel launches and imperfect bandwidth use all cost time.

    Returns None when the bytes read per token are unknown.
    """
    weights = read_bytes_per_token(report, precision)
    if weights is None or bandwidth_bytes_per_s <= 0:
        return None
    per_token = weights + kv_cache_bytes(report.arch, context, 1, kv_type)
    return bandwidth_bytes_per_s / per_token if per_token > 0 else None


# --- bandwidth -----------------------------------------------------------------------------


@functools.cache
def measure_bandwidth(nbytes: int = 32 << 20, repeats: int = 5) -> float:
    """This machine's memory bandwidth in bytes/s: the best of `repeats` numpy copies of
    `nbytes` (well past CPU caches), counting bytes read plus bytes written (STREAM's "copy"
    convention). One thread, so a multi-threaded reader may get more. Cached per process.
    """
    import numpy as np

    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch every page first, so timing excludes page faults
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


@dataclass(frozen=True)
class GPU:
    """A named accelerator with its published memory size and bandwidth."""

    name: str
    memory_gb: float
    bandwidth_gbps: float
    source: str


@functools.cache
def _gpu_data() -> dict[str, Any]:
    try:
        text = resources.files("charter.models").joinpath("data", GPU_DATA).read_text("utf-8")
        return tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CharterError(f"the shipped GPU table {GPU_DATA} cannot be read: {exc}") from None


def known_gpus() -> list[GPU]:
    """The named GPUs of the shipped data file (published bandwidths, each with its source)."""
    return [GPU(**g) for g in _gpu_data()["gpu"]]


def fit_sizes_gb() -> list[float]:
    """GPU memory sizes (GB) the fit table covers: 8 to 141 GB."""
    return list(_gpu_data()["fit_sizes_gb"])


def _bits(precision: str) -> float:
    if precision not in PRECISION_BITS:
        raise ConfigError(f"unknown precision {precision!r} (choose from: {', '.join(PRECISIONS)})")
    return PRECISION_BITS[precision]


def _kv_bytes(kv_type: str) -> float:
    if kv_type not in KV_TYPE_BYTES:
        raise ConfigError(
            f"unknown KV-cache type {kv_type!r} (choose from: {', '.join(KV_TYPE_BYTES)})"
        )
    return KV_TYPE_BYTES[kv_type]
