"""Decode speed through `charter serve` as a fraction of llama-cpp-python in one process.

The machine's speed drifts by tens of percent over minutes (shared host), so one run of each
proves nothing: this alternates the two at concurrency 1, pair by pair, and reports the ratio
of TPOT p50 for each pair and the median over quiet pairs. The target is >= 0.90.
Usage: python benchmarks/decode_ratio.py [--pairs 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MAX_FOREIGN_SHARE = 0.05


def run(script: str, out: Path, *extra: str) -> dict:
    subprocess.run(
        [sys.executable, str(HERE / script), *extra, "--json", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULTS / "decode_ratio.json")
    args = parser.parse_args()

    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            direct = run(
                "direct_llamacpp.py", Path(tmp) / f"d{i}.json", "--n-threads", str(args.threads)
            )
            served = run(
                "serve_bench.py",
                Path(tmp) / f"s{i}.json",
                "charter",
                "--concurrency",
                "1",
                "--threads",
                str(args.threads),
            )
            level = served["levels"][0]
            pair = {
                "direct_tpot_p50_ms": direct["tpot_ms"]["p50"],
                "charter_tpot_p50_ms": level["tpot_ms"]["p50"],
                "ratio": round(direct["tpot_ms"]["p50"] / level["tpot_ms"]["p50"], 3),
                "direct_ttft_p50_ms": direct["ttft_ms"]["p50"],
                "charter_ttft_p50_ms": level["ttft_ms"]["p50"],
                "charter_failed": level["failed"],
                "foreign_share": max(
                    direct["machine_load"]["foreign_share"],
                    served["machine_load"]["foreign_share"],
                ),
            }
            pairs.append(pair)
            print(
                f"pair {i + 1}: TPOT p50 direct {pair['direct_tpot_p50_ms']:.1f} ms, charter "
                f"{pair['charter_tpot_p50_ms']:.1f} ms, ratio {pair['ratio']:.2f} "
                f"(others used {pair['foreign_share']:.0%} of the CPU)"
            )
    # A pair during which other programs took a twentieth of the CPU measures them, not us.
    clean = [p["ratio"] for p in pairs if p["foreign_share"] < MAX_FOREIGN_SHARE]
    median = statistics.median(clean) if clean else None
    result = {
        "threads": args.threads,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "pairs": pairs,
        "max_foreign_share": MAX_FOREIGN_SHARE,
        "clean_pairs": len(clean),
        "median_ratio": median,
    }
    if median is None:
        print("no pair ran on a quiet machine; run again")
    else:
        verdict = "pass" if median >= 0.9 else "FAIL"
        print(f"median ratio over {len(clean)} quiet pairs {median:.2f} (>= 0.90: {verdict})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
