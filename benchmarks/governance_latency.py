"""Latency the constitution adds to benign answers: governance off vs screen vs critique.

One in-process runtime on the default model (the embedded SmolLM2-135M-Instruct), the
default constitution and its trained screen; each prompt is answered in all three modes, in
a rotating order, greedy with a fixed seed and max_tokens, so the answers are the same text
and the difference is the governance stage. Prompts: the benign-edgy evaluation suite
(stratified sample), i.e. requests that must be answered. Reports p50/p95 of the total
latency per mode and of the per-prompt ratio to `off`, the share of prompts on which the
constitution changed the answer (an over-refusal or revision), and the screen's own time.

    python benchmarks/governance_latency.py --limit 40 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

MODES = ("off", "screen", "critique")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=40, help="benign-edgy cases (stratified)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/governance_latency.json"))
    args = ap.parse_args()

    os.environ.setdefault("CHARTER_HOME", "/tmp/charter-gov-latency")
    from charter.config import load_settings
    from charter.eval.suites import load_suite, sample
    from charter.runtime import Runtime
    from charter.types import Message, Params

    settings = load_settings(n_threads=args.threads, constitution="default", governance="critique")
    rt = Runtime(settings)
    t = time.perf_counter()
    rt.load()
    load_s = time.perf_counter() - t
    cases = sample(load_suite("benign-edgy").cases, args.limit, args.seed)
    params = Params(max_tokens=args.max_tokens, temperature=0.0, seed=args.seed)
    # Warm the model and the embedder once.
    for mode in MODES:
        turn = rt.new_turn([Message(role="user", content="Hello!")], params, governance=mode)
        rt.pipeline.run(turn)

    totals: dict[str, list[float]] = {m: [] for m in MODES}
    ratios: dict[str, list[float]] = {m: [] for m in MODES if m != "off"}
    govern_ms: dict[str, list[float]] = {m: [] for m in MODES}
    changed: dict[str, int] = {m: 0 for m in MODES if m != "off"}
    added: dict[str, list[float]] = {m: [] for m in MODES if m != "off"}
    # Prompts the mode let through unchanged: the pure cost of screening.
    passed_ratio: dict[str, list[float]] = {m: [] for m in MODES if m != "off"}
    for i, case in enumerate(cases):
        order = MODES[i % 3 :] + MODES[: i % 3]
        got: dict[str, tuple[float, str]] = {}
        passed: dict[str, bool] = {}
        for mode in order:
            msgs = [Message(role=m["role"], content=m["content"]) for m in case.messages]
            turn = rt.new_turn(msgs, params, source="bench", governance=mode)
            t = time.perf_counter()
            rt.pipeline.run(turn)
            ms = (time.perf_counter() - t) * 1000
            got[mode] = (ms, turn.answer)
            stage = next((s for s in turn.stages if s.stage == "govern"), None)
            govern_ms[mode].append(stage.ms if stage else 0.0)
            passed[mode] = bool(turn.trace) and turn.trace["decision"] == "pass"
            if mode != "off" and not passed[mode]:
                changed[mode] += 1
        for mode in MODES:
            totals[mode].append(got[mode][0])
        for mode in ratios:
            ratios[mode].append(got[mode][0] / got["off"][0])
            added[mode].append(got[mode][0] - got["off"][0])
            if passed[mode]:
                passed_ratio[mode].append(got[mode][0] / got["off"][0])
        print(
            f"{i + 1}/{len(cases)} " + " ".join(f"{m} {got[m][0]:.0f} ms" for m in MODES),
            file=sys.stderr,
        )
    rt.close()

    result = {
        "command": "python " + " ".join(sys.argv),
        "environment": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "cases": len(cases),
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        "load_seconds": round(load_s, 2),
        "constitution_hash": rt.constitution.hash if rt.constitution else None,
        "screen": rt.screen.info() if rt.screen else None,
        "total_ms": {
            m: {"p50": round(pct(v, 0.5), 1), "p95": round(pct(v, 0.95), 1)}
            for m, v in totals.items()
        },
        "ratio_to_off": {
            m: {"p50": round(pct(v, 0.5), 3), "p95": round(pct(v, 0.95), 3)}
            for m, v in ratios.items()
        },
        "added_ms": {
            m: {"p50": round(pct(v, 0.5), 1), "p95": round(pct(v, 0.95), 1)}
            for m, v in added.items()
        },
        "ratio_to_off_when_passed": {
            m: {"n": len(v), "p50": round(pct(v, 0.5), 3), "p95": round(pct(v, 0.95), 3)}
            for m, v in passed_ratio.items()
            if v
        },
        "govern_stage_ms": {
            m: {"p50": round(pct(v, 0.5), 1), "p95": round(pct(v, 0.95), 1)}
            for m, v in govern_ms.items()
        },
        "answers_changed": changed,
        "mean_total_ms": {m: round(statistics.mean(v), 1) for m, v in totals.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
