"""The data stages on a scripted backend: prompts, eval hygiene, SL rows, AI feedback, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from charter.constitution.loader import load_default
from charter.errors import ConfigError
from charter.eval.suites import list_suites, load_suite
from charter.train.config import BackendSection, parse_config
from charter.train.engine import Engine
from charter.train.prefs import Labeller, run_prefs, soft_label
from charter.train.prompts import build_prompts, general_requests, overlaps_eval
from charter.train.sl_data import run_sl_data

C = load_default()


class NoScreen:
    """A screen that never fires (the stage's own screen is exercised in the slow test)."""

    def score(self, texts: list[str]) -> Any:
        return texts

    def fired(self, scores: Any) -> list[str]:
        return []


def config(tmp_path: Path, extra: str = "") -> Any:
    text = (
        "[run]\nout_dir = 'out'\n[sl_data]\nred_team = 4\nhelpful = 4\nmulti_turn = 0.5\n"
        "[prefs]\npairs = 8\nmin_margin = 0.0\n" + extra
    )
    path = tmp_path / "train.toml"
    path.write_text(text)
    return parse_config(text, path)


def fake_engine(**options: Any) -> Engine:
    return Engine(BackendSection(backend="fake", options=options), None).load()


# --------------------------------------------------------------------------- prompts


def test_prompts_are_the_constitutions_own_and_never_an_eval_case() -> None:
    prompts, counts = build_prompts(
        C, red_team=300, helpful=250, multi_turn=0.25, augment_per_text=2, seed=0
    )
    assert counts["red_team"] == 300 and counts["helpful"] == 250
    assert counts["dropped_eval_overlap"] > 0  # the filter is live, not decorative
    eval_texts = {
        m["content"].strip().lower()
        for info in list_suites()
        for case in load_suite(info.name).cases
        for m in case.messages
        if m["role"] == "user"
    }
    for p in prompts:
        assert p.text.strip().lower() not in eval_texts
        assert not overlaps_eval(p.text)
        for h in p.history:
            assert not overlaps_eval(h)
    harm_ids = {p.id for p in C.harm_principles}
    assert all(p.principle in harm_ids for p in prompts if p.kind == "red_team")
    assert all(p.principle is None for p in prompts if p.kind == "helpful")
    assert 0 < counts["multi_turn"] < len(prompts)
    assert len({p.id for p in prompts}) == len(prompts)
    again, _ = build_prompts(
        C, red_team=300, helpful=250, multi_turn=0.25, augment_per_text=2, seed=0
    )
    assert again == prompts


def test_overlap_check_catches_equal_and_near_copies_of_eval_cases() -> None:
    case = next(c for c in load_suite("harmful").cases if len(c.prompt.split()) >= 10)
    assert overlaps_eval(case.prompt)
    assert overlaps_eval(case.prompt.upper() + "!!")
    assert overlaps_eval("Please tell me: " + case.prompt)
    assert not overlaps_eval("How do I keep basil alive on a windowsill in winter?")


def test_general_requests_are_many_and_distinct() -> None:
    texts = [t for _, t in general_requests()]
    assert len(texts) >= 100 and len(set(texts)) == len(texts)


# --------------------------------------------------------------------------- SL data


def test_sl_rows_are_trl_conversations_with_provenance(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    engine = fake_engine(script="Here is a plain answer with three useful facts.")
    result = run_sl_data(cfg, C, engine=engine, screen=NoScreen(), progress=False)
    rows = [json.loads(x) for x in (cfg.out_dir / "sl_data.jsonl").read_text().splitlines()]
    assert result["made"] == len(rows) == 8
    for r in rows:
        m = r["messages"]
        assert m[-1]["role"] == "assistant" and m[-2]["role"] == "user"
        assert [x["role"] for x in m[:-1]] == ["user", "assistant"] * ((len(m) - 2) // 2) + ["user"]
        assert r["provenance"]["constitution_hash"] == C.hash
        assert r["provenance"]["generator"].startswith("fake:")
        assert r["rounds"] and r["rounds"][0]["principle"] in {p.id for p in C.principles}
        if r["kind"] == "red_team":
            # The scripted revision complies, so the constitution's refusal is the target.
            assert r["final_source"] == "constitution_refusal"
            assert m[-1]["content"] == C.refusal_text(r["target_principle"])
        else:
            assert r["final_source"] in ("revision", "draft")
            assert m[-1]["content"] == "Here is a plain answer with three useful facts."
    assert any(len(r["messages"]) > 2 for r in rows)  # multi-turn rows exist


def test_a_declining_revision_is_kept_for_red_team(tmp_path: Path) -> None:
    cfg = config(tmp_path, "").model_copy()
    cfg.sl_data.red_team, cfg.sl_data.helpful = 1, 0
    cfg.sl_data.multi_turn = 0.0
    refusal = "I can't help with that, because it could hurt people. I can share safety facts."
    engine = fake_engine(scripts=["Sure, step one is...", "The answer helps harm.", refusal])
    run_sl_data(cfg, C, engine=engine, screen=NoScreen(), progress=False)
    (row,) = [json.loads(x) for x in (cfg.out_dir / "sl_data.jsonl").read_text().splitlines()]
    assert row["final_source"] == "revision"
    assert row["messages"][-1]["content"] == refusal
    assert row["draft"] == "Sure, step one is..."


def test_helpful_rows_never_train_on_a_refusal(tmp_path: Path) -> None:
    cfg = config(tmp_path).model_copy()
    cfg.sl_data.red_team, cfg.sl_data.helpful, cfg.sl_data.multi_turn = 0, 3, 0.0
    engine = fake_engine(script="I can't help with that request.")
    result = run_sl_data(cfg, C, engine=engine, screen=NoScreen(), progress=False)
    rows = [json.loads(x) for x in (cfg.out_dir / "sl_data.jsonl").read_text().splitlines()]
    assert result["skipped"] == 3 and all("skipped" in r for r in rows)


def test_sl_data_resumes_after_a_kill_and_refuses_a_changed_config(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    engine = fake_engine(script="A fine answer.")
    run_sl_data(cfg, C, engine=engine, screen=NoScreen(), progress=False)
    path = cfg.out_dir / "sl_data.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:20])  # killed mid-line
    result = run_sl_data(cfg, C, engine=engine, screen=NoScreen(), progress=False)
    assert result["resumed_from"] == 3 and result["made"] == 5
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 8 and len({r["id"] for r in rows}) == 8
    changed = config(tmp_path, "[generator]\nmax_tokens = 64\n")
    with pytest.raises(ConfigError, match="different config"):
        run_sl_data(changed, C, engine=engine, screen=NoScreen(), progress=False)
    result = run_sl_data(changed, C, engine=engine, screen=NoScreen(), progress=False, restart=True)
    assert result["resumed_from"] == 0 and result["made"] == 8


# --------------------------------------------------------------------------- AI feedback


def test_soft_label_is_normalised_over_the_two_letters() -> None:
    assert soft_label({"A": math.log(0.3), "B": math.log(0.1)}) == pytest.approx(0.25)
    assert soft_label({"A": None, "B": -0.1}) > 0.99
    assert soft_label({"A": None, "B": None}) is None


class BiasedJudge:
    """Prefers whatever is shown first by 0.8, plus a real preference for answers that
    mention 'safety' (so averaging both orders must recover the preference alone)."""

    describe = "biased-judge"

    def complete(self, *a: Any, **k: Any) -> str:
        return "Reasoning."

    def choice_logprobs(self, messages: list[dict[str, str]], choices: Any) -> dict:
        text = messages[-1]["content"]
        a = text.split("(A) ", 1)[1].split("\n(B) ", 1)[0]
        b = text.split("(B) ", 1)[1].split("\n\n", 1)[0]
        pa = 0.8 + (0.15 if "safety" in a else 0) - (0.15 if "safety" in b else 0)
        pa = min(max(pa, 0.01), 0.99)
        return {"A": math.log(pa), "B": math.log(1 - pa)}


def test_both_orders_cancel_position_bias(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    row = {
        "id": "x",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
    }
    lab = Labeller(cfg, C, BiasedJudge())  # type: ignore[arg-type]
    out = lab.label((row, "plain answer", "answer about safety"))
    assert out["chosen"][0]["content"] == "answer about safety"
    assert out["score"] == pytest.approx(0.65, abs=1e-6)
    assert len(out["votes"]) == 2 * cfg.prefs.judge.principles_per_pair
    cfg.prefs.judge.both_orders = False  # one order: the bias decides
    out = Labeller(cfg, C, BiasedJudge()).label((row, "answer about safety", "plain answer"))  # type: ignore[arg-type]
    assert out["chosen"][0]["content"] == "answer about safety"
    out = Labeller(cfg, C, BiasedJudge()).label((row, "plain answer", "answer about safety"))  # type: ignore[arg-type]
    assert out["chosen"][0]["content"] == "plain answer"  # position bias wins


def test_cot_labels_are_clamped(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg.prefs.judge.cot = True
    row = {
        "id": "x",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
    }
    out = Labeller(cfg, C, BiasedJudge()).label((row, "plain answer", "answer about safety"))  # type: ignore[arg-type]
    assert all(0.4 <= v["p_y"] <= 0.6 for v in out["votes"])
    assert all(v["reasoning"] == "Reasoning." for v in out["votes"])


def test_prefs_from_sl_rows_with_a_real_logprob_backend(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    gen = fake_engine(script="A fine answer.")
    run_sl_data(cfg, C, engine=gen, screen=NoScreen(), progress=False)
    judge = fake_engine(script="B")  # first token "B": the fake's logprobs put it on top
    result = run_prefs(cfg, C, judge=judge, generator=gen, progress=False)
    rows = [json.loads(x) for x in (cfg.out_dir / "prefs.jsonl").read_text().splitlines()]
    assert result["asked"] == 8 and len(rows) == 8
    for r in rows:
        if "skipped" in r:
            continue
        assert set(r) >= {"prompt", "chosen", "rejected", "score", "votes", "provenance"}
        assert r["prompt"][-1]["role"] == "user"
        assert r["chosen"] != r["rejected"]
        assert r["provenance"]["judge"].startswith("fake:")


def test_human_pairs_are_added_and_checked(tmp_path: Path) -> None:
    human = tmp_path / "human.jsonl"
    pair = {
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "What."}],
        "message_id": "m1",
        "pair_id": "m1-abc",
    }
    human.write_text(json.dumps(pair) + "\n")
    cfg = config(tmp_path, "human = 'human.jsonl'\n")
    gen = fake_engine(script="A fine answer.")
    run_sl_data(cfg, C, engine=gen, screen=NoScreen(), progress=False)
    result = run_prefs(cfg, C, judge=fake_engine(script="B"), generator=gen, progress=False)
    assert result["human"] == 1
    rows = [json.loads(x) for x in (cfg.out_dir / "prefs.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows if r["id"] == "human-m1-abc"] == ["human"]
    human.write_text(json.dumps({"prompt": []}) + "\n")
    cfg2 = config(tmp_path, "human = 'human.jsonl'\n")
    with pytest.raises(ConfigError, match=r"human.jsonl:1: missing chosen, rejected"):
        run_prefs(
            cfg2, C, judge=fake_engine(script="B"), generator=gen, progress=False, restart=True
        )
