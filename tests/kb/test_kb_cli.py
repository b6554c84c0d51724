"""The command-line contracts operators and scripts rely on: match --jsonl and eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.kb.test_kb_matcher import write_fixture_kb

ROOT = Path(__file__).resolve().parents[2]


def run_kb(
    *args: str, stdin: str = "", content: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "knowledge_base"]
    if content is not None:
        command += ["--content-dir", str(content)]
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        encoding="utf-8",
    )


def test_match_jsonl_answers_one_object_per_line(tmp_path: Path) -> None:
    content = write_fixture_kb(tmp_path)
    questions = [
        "Kako da dobijem pristup eZUP-u?",
        "како се пријављујем на езуп",
        "",
        "ezup problem",
        "recept za sarmu",
    ]
    run = run_kb("match", "--jsonl", stdin="\n".join(questions) + "\n", content=content)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == len(questions)
    results = [json.loads(line) for line in lines]
    for question, result in zip(questions, results, strict=True):
        assert set(result) == {"question", "decision", "entry_id", "score", "candidates"}
        assert result["question"] == question
        assert result["decision"] in ("answer", "clarify", "escalate")
        assert isinstance(result["score"], float | int)
        assert len(result["candidates"]) <= 3
        for candidate in result["candidates"]:
            assert set(candidate) == {"entry_id", "score"}
    assert (results[0]["decision"], results[0]["entry_id"]) == ("answer", "ezup-access-request")
    assert (results[1]["decision"], results[1]["entry_id"]) == ("answer", "ezup-login")
    assert results[2] == {
        "question": "",
        "decision": "escalate",
        "entry_id": None,
        "score": 0.0,
        "candidates": [],
    }
    assert results[3]["decision"] == "clarify"
    assert {c["entry_id"] for c in results[3]["candidates"]} >= {"ezup-problem-a", "ezup-problem-b"}
    assert results[4]["decision"] == "escalate"


def test_match_jsonl_on_the_bundled_kb() -> None:
    run = run_kb("match", "--jsonl", stdin="Kako da dobijem pristup eZUP-u?\nkoliko je sati\n")
    assert run.returncode == 0, run.stderr
    first, second = (json.loads(line) for line in run.stdout.splitlines())
    assert first["entry_id"] == "ezup-access-request"
    assert first["decision"] == "answer"
    assert second["decision"] != "answer"


def write_eval(path: Path, rows: list[tuple[str, str | None]]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"question": q, "expected": e, "tags": ["t"]}, ensure_ascii=False) + "\n"
            for q, e in rows
        ),
        encoding="utf-8",
    )
    return path


def test_eval_passes_and_reports_baselines_side_by_side(tmp_path: Path) -> None:
    content = write_fixture_kb(tmp_path / "kb")
    good = write_eval(
        tmp_path / "good.jsonl",
        [
            ("Kako da dobijem pristup eZUP-u?", "ezup-access-request"),
            ("prijava na ezup", "ezup-login"),
            ("šta je e-inbox", "esanduce-what-is"),
            ("besplatni pos terminali", "eplacanje-pos-terminals"),
            ("recept za sarmu", None),
        ],
    )
    run = run_kb("eval", str(good), content=content)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matcher" in run.stdout and "rapidfuzz" in run.stdout and "bm25-plain" in run.stdout
    assert "correct answers" in run.stdout and "out-of-scope answered" in run.stdout
    assert "Per service" in run.stdout and "ezup" in run.stdout


def test_eval_exits_non_zero_when_a_target_is_missed(tmp_path: Path) -> None:
    content = write_fixture_kb(tmp_path / "kb")
    bad = write_eval(
        tmp_path / "bad.jsonl",
        [("Kako da dobijem pristup eZUP-u?", "ezup-login"), ("prijava na ezup", "ezup-what-is")],
    )
    run = run_kb("eval", str(bad), "--json", content=content)
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert report["targets_met"] is False
    matcher = report["systems"][0]
    assert matcher["name"] == "matcher"
    assert matcher["total"]["wrong"] == 2
    assert [s["name"] for s in report["systems"]] == ["matcher", "rapidfuzz", "bm25-plain"]
