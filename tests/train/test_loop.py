"""The whole loop, tiny, on the real default model: config -> sl-data -> prefs -> sft -> dpo ->
export -> `charter serve --model tuned.gguf` answers through the official openai client.

A handful of examples and a few optimizer steps: this proves the stages connect and the
tuned file is a working model, not that training helps (docs/training.md measures that)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

TINY = """
version = 1
[run]
out_dir = "run"
seed = 3
[generator]
max_tokens = 24
critique_max_tokens = 16
options = { n_ctx = 1024 }
[sl_data]
red_team = 2
helpful = 2
multi_turn = 0.5
[prefs]
pairs = 4
min_margin = 0.0
[prefs.judge]
principles_per_pair = 1
options = { n_ctx = 1024 }
[sft]
max_steps = 2
batch_size = 2
save_steps = 1
max_length = 256
[sft.lora]
r = 4
alpha = 8
[dpo]
max_steps = 1
min_judge_consistency = 0.0
batch_size = 2
save_steps = 1
max_length = 256
[dpo.lora]
r = 4
alpha = 8
[export]
quant = "Q8_0"
file = "tuned.gguf"
"""


def charter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_tiny_loop_end_to_end_serves_the_tuned_model(tmp_path: Path) -> None:
    cfg = tmp_path / "train.toml"
    cfg.write_text(TINY)
    p = charter("train", "run", "--config", str(cfg), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    out = tmp_path / "run"
    sl = [json.loads(x) for x in (out / "sl_data.jsonl").read_text().splitlines()]
    assert len(sl) == 4
    assert all(r["provenance"]["generator"].startswith("llamacpp:") for r in sl if "messages" in r)
    prefs = [json.loads(x) for x in (out / "prefs.jsonl").read_text().splitlines()]
    assert prefs and any("chosen" in r for r in prefs)
    run = json.loads((out / "run.json").read_text())
    for stage in ("sl-data", "prefs", "sft", "dpo", "export"):
        res = run["resources"][stage]
        assert res["exit"] == 0 and res["wall_s"] > 0 and res["peak_rss_mib"] > 50
    assert run["stages"]["sft"]["steps"] == 2
    assert run["stages"]["dpo"]["steps"] == 1 and run["stages"]["dpo"]["start_from"] == "sft"
    gguf = out / "tuned.gguf"
    card = gguf.with_suffix(".md").read_text()
    from charter.constitution.loader import load_default

    assert load_default().hash in card  # the card names the constitution it was tuned on
    # Resume: rerunning a finished run redoes nothing and keeps the rows.
    p = charter("train", "run", "--config", str(cfg), "--stages", "sl-data,prefs", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len((out / "sl_data.jsonl").read_text().splitlines()) == 4
    # Export never overwrites silently.
    p = charter("train", "run", "--config", str(cfg), "--stages", "export", cwd=tmp_path)
    assert p.returncode != 0 and "tuned.gguf" in p.stderr
    # `charter inspect` reads it; `charter serve --model` serves it.
    p = charter("inspect", str(gguf), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    from openai import OpenAI

    srv = ServerProcess(
        tmp_path / "home", "--model", str(gguf), env={"CHARTER_CONSTITUTION": "off"}
    ).start(timeout=120)
    try:
        client = OpenAI(base_url=f"{srv.url}/v1", api_key="unused")
        r = client.chat.completions.create(
            model="charter",
            max_tokens=16,
            temperature=0,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert r.choices[0].message.content.strip()
        models = client.models.list().data
        assert models[0].id == "tuned" and models[0].model_extra["charter"]["path"] == str(gguf)
    finally:
        srv.stop()
