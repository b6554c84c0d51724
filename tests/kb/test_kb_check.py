"""`check` finds every kind of broken KB file and names the file and the entry."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from knowledge_base.loader import check_knowledge_base, load_knowledge_base
from knowledge_base.markup import markup_problems
from knowledge_base.model import KnowledgeBaseError, Problem
from tests.kb.test_kb_matcher import write_fixture_kb

ROOT = Path(__file__).resolve().parents[2]


SOURCE_LINE = '\nIzvor: <a href="https://www.ite.gov.rs/">ITE</a>'


def entry(entry_id: str, **fields: object) -> str:
    """One YAML entry; fields given as None are left out."""
    data: dict[str, object] = {
        "id": entry_id,
        "service": "ezup",
        "question": "Pitanje?",
        "alternatives": ["a b", "c d", "e f", "g h", "i j", "k l"],
        "keywords": ["x"],
        "answer": 'Odgovor.\nIzvor: <a href="https://www.ite.gov.rs/">ITE</a>',
        "sources": ["https://www.ite.gov.rs/"],
        "related": [],
        "reviewed": dt.date.today().isoformat(),
        "reviewed_by": "Kurator",
    }
    data.update(fields)
    lines = [f"- id: {json.dumps(data.pop('id'))}"]
    for key, value in data.items():
        if value is not None:
            lines.append(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def kb_with(tmp_path: Path, extra: str, file_name: str = "extra.yaml") -> Path:
    content = write_fixture_kb(tmp_path)
    (content / file_name).write_text(extra, encoding="utf-8")
    return content


def errors(content: Path) -> list[Problem]:
    return [p for p in check_knowledge_base(content) if p.level == "error"]


def only_error(content: Path) -> Problem:
    found = errors(content)
    assert len(found) == 1, found
    return found[0]


def test_fixture_kb_is_clean(tmp_path: Path) -> None:
    assert errors(write_fixture_kb(tmp_path)) == []


def test_bundled_kb_has_no_errors() -> None:
    assert [str(p) for p in check_knowledge_base() if p.level == "error"] == []


def test_duplicate_id_names_both_files(tmp_path: Path) -> None:
    problem = only_error(kb_with(tmp_path, entry("ezup-login")))
    assert problem.entry_id == "ezup-login"
    assert "duplicate id" in problem.message
    named = {Path(problem.file).name, Path(problem.message.split("first defined in ")[1][:-1]).name}
    assert named == {"extra.yaml", "ezup.yaml"}


def test_malformed_id(tmp_path: Path) -> None:
    problem = only_error(kb_with(tmp_path, entry("Ezup Login!")))
    assert problem.entry_id == "Ezup Login!"
    assert "id must be" in problem.message


def test_required_topic_without_entry(tmp_path: Path) -> None:
    content = write_fixture_kb(tmp_path)
    topics = tmp_path / "topics.yaml"
    topics.write_text(
        topics.read_text(encoding="utf-8")
        + '- {id: ezup-deadline, service: ezup, question: "Koliki je rok?"}\n',
        encoding="utf-8",
    )
    problem = only_error(content)
    assert problem.entry_id == "ezup-deadline"
    assert problem.file.endswith("topics.yaml")
    assert "required topic" in problem.message


def test_topic_entry_in_the_wrong_service(tmp_path: Path) -> None:
    content = write_fixture_kb(tmp_path)
    ezup = content / "ezup.yaml"
    text = ezup.read_text(encoding="utf-8")
    ezup.write_text(text.replace("service: ezup", "service: esanduce", 1), encoding="utf-8")
    problem = only_error(content)
    assert problem.entry_id == "ezup-access-request"
    assert "topics.yaml says 'ezup'" in problem.message


@pytest.mark.parametrize("field", ["question", "answer", "service", "alternatives", "reviewed"])
def test_missing_field(tmp_path: Path, field: str) -> None:
    problem = only_error(kb_with(tmp_path, entry("ezup-new", **{field: None})))
    assert problem.entry_id == "ezup-new"
    assert f"missing field '{field}'" in problem.message


def test_misspelt_field(tmp_path: Path) -> None:
    problem = only_error(kb_with(tmp_path, entry("ezup-new", alternative=["x"])))
    assert "unknown field 'alternative'" in problem.message


def test_bad_date(tmp_path: Path) -> None:
    problem = only_error(kb_with(tmp_path, entry("ezup-new", reviewed="juče")))
    assert "'reviewed' must be a date" in problem.message


def test_broken_related(tmp_path: Path) -> None:
    problem = only_error(kb_with(tmp_path, entry("ezup-new", related=["ezup-nowhere"])))
    assert (problem.entry_id, problem.file.endswith("extra.yaml")) == ("ezup-new", True)
    assert "unknown id 'ezup-nowhere'" in problem.message


def test_unknown_service(tmp_path: Path) -> None:
    problem = only_error(kb_with(tmp_path, entry("ezup-new", service="ezupp")))
    assert "unknown service 'ezupp'" in problem.message


def test_answer_over_telegram_limit_is_an_error(tmp_path: Path) -> None:
    problem = only_error(kb_with(tmp_path, entry("ezup-new", answer="a" * 4100 + SOURCE_LINE)))
    assert "4096" in problem.message.replace(",", "")


def test_long_answer_is_only_a_warning(tmp_path: Path) -> None:
    content = kb_with(tmp_path, entry("ezup-new", answer="a" * 1600 + SOURCE_LINE))
    problems = check_knowledge_base(content)
    assert [p.level for p in problems if p.entry_id == "ezup-new"] == ["warning"]
    assert errors(content) == []


def test_few_alternatives_is_a_warning(tmp_path: Path) -> None:
    content = kb_with(tmp_path, entry("ezup-new", alternatives=["samo jedna"]))
    assert errors(content) == []
    warnings = [p for p in check_knowledge_base(content) if p.entry_id == "ezup-new"]
    assert "only 1 alternatives" in warnings[0].message


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Pogledajte <script>alert(1)</script>", "not allowed"),
        ('Vidi <a href="http://ite.gov.rs">ovde</a>', "bad link tag"),
        ("<a href='https://ite.gov.rs'>ovde</a>", "bad link tag"),
        ("Tom & Jerry", "unescaped &"),
        ("manje 3 < 5", "unescaped <"),
        ("vise 5 > 3", "unescaped >"),
        ("<b>podebljano", "never closed"),
        ("<b><i>x</b></i>", "does not close"),
        ('<a href="https://x.rs/?a=1&b=2">x</a>', "unescaped & in link"),
    ],
)
def test_unsafe_markup(tmp_path: Path, answer: str, expected: str) -> None:
    found = errors(kb_with(tmp_path, entry("ezup-new", answer=answer)))
    assert found and all(p.entry_id == "ezup-new" for p in found)
    assert any(expected in p.message for p in found), found


def test_safe_markup_passes() -> None:
    text = (
        'Rok je <b>8 dana</b> &amp; <i>važi</i>, vidi <a href="https://ite.gov.rs/a?b=1&amp;c=2">'
        "ITE</a> &lt;3"
    )
    assert markup_problems(text) == []


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    content = kb_with(tmp_path, "- id: x\n  question: [unclosed\n", "broken.yaml")
    problem = only_error(content)
    assert problem.file.endswith("broken.yaml")
    assert "invalid YAML" in problem.message and "line" in problem.message


def test_eval_file_with_unknown_expected_id(tmp_path: Path) -> None:
    content = write_fixture_kb(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "dev.jsonl").write_text(
        '{"question": "a", "expected": "ezup-login", "tags": []}\n'
        '{"question": "b", "expected": "ezup-nowhere", "tags": []}\n'
        "not json\n",
        encoding="utf-8",
    )
    found = errors(content)
    assert {p.entry_id for p in found} == {"line 2", "line 3"}
    assert all(p.file.endswith("dev.jsonl") for p in found)


def test_load_refuses_a_broken_kb(tmp_path: Path) -> None:
    content = kb_with(tmp_path, entry("ezup-new", related=["nope"]))
    with pytest.raises(KnowledgeBaseError) as caught:
        load_knowledge_base(content)
    assert "nope" in str(caught.value)


def test_check_cli_exits_non_zero_and_names_file_and_entry(tmp_path: Path) -> None:
    content = kb_with(tmp_path, entry("ezup-new", answer="A & B"))
    run = subprocess.run(
        [sys.executable, "-m", "knowledge_base", "--content-dir", str(content), "check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 1
    assert "extra.yaml: ezup-new: answer markup" in run.stdout


def test_check_cli_passes_on_a_good_kb(tmp_path: Path) -> None:
    # the review age is counted from the day given, not from the machine's clock (which a
    # subprocess under libfaketime may not share with this process)
    content = write_fixture_kb(tmp_path, reviewed_on=dt.date(2026, 11, 27))
    run = subprocess.run(
        [sys.executable, "-m", "knowledge_base", "--content-dir", str(content), "check",
         "--today", "2026-12-07"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert textwrap.dedent(run.stdout).startswith("OK")
