"""The roadmap templates (knowledge_base/roadmaps) are reviewed and checked like the KB:
`python -m knowledge_base check` names every broken step with its file and id."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from knowledge_base.loader import check_knowledge_base, load_knowledge_base
from knowledge_base.roadmaps import ROADMAPS_DIR, check_roadmaps, load_roadmaps

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_templates_are_clean_and_point_at_real_entries() -> None:
    kb = load_knowledge_base()
    assert check_roadmaps(services={s.id for s in kb.services}, entries=set(kb.entries)) == []
    roadmaps = load_roadmaps()
    assert set(roadmaps) == {"ezup", "eplacanje", "esanduce", "edostava", "episarnica"}
    ezup = [s.id for s in roadmaps["ezup"].steps]
    assert ezup == ["admin", "kes", "pristup", "obuka", "prvi-zahtev"]
    for roadmap in roadmaps.values():
        for step in roadmap.steps:
            assert step.title and step.done and step.entries and step.blockers
            assert step.sources or step.silent


def _copy(tmp_path: Path) -> Path:
    """A copy of the bundled KB with its roadmaps, to break."""
    base = tmp_path / "kb"
    shutil.copytree(ROADMAPS_DIR.parent / "content", base / "content")
    shutil.copytree(ROADMAPS_DIR, base / "roadmaps")
    for name in ("topics.yaml", "synonyms.yaml", "not_covered.yaml", "details.yaml"):
        shutil.copy(ROADMAPS_DIR.parent / name, base / name)
    return base


def test_check_names_broken_steps(tmp_path: Path) -> None:
    base = _copy(tmp_path)
    path = base / "roadmaps" / "ezup.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("entries: [ezup-what-is, ezup-login]", "entries: [ezup-nema]")
    text = text.replace("- id: obuka", "- id: kes", 1)  # a duplicate step id
    text = text.replace("  silent: Izvori kažu", "  nepoznato: x\n  silent: Izvori kažu", 1)
    path.write_text(text, encoding="utf-8")
    (base / "roadmaps" / "lei.yaml").write_text(
        "service: nema\nsteps:\n- id: Los Id\n  title: x\n  done: y\n", encoding="utf-8"
    )
    problems = [str(p) for p in check_knowledge_base(base / "content")]
    assert "ERROR roadmaps/ezup.yaml: admin: 'entries' names unknown KB entry 'ezup-nema'" in (
        problems
    )
    assert "ERROR roadmaps/ezup.yaml: kes: duplicate step id" in problems
    assert "ERROR roadmaps/ezup.yaml: admin: unknown field(s): nepoznato" in problems
    assert "ERROR roadmaps/lei.yaml: unknown service 'nema'" in problems
    assert any("lei.yaml" in p and "short slug" in p for p in problems)


def test_a_step_without_sources_must_say_they_are_silent(tmp_path: Path) -> None:
    base = _copy(tmp_path)
    path = base / "roadmaps" / "eplacanje.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "  sources:\n  - https://ips.nbs.rs/sr_lat/qr-validacija-generisanje\n", ""
    )
    path.write_text(text, encoding="utf-8")
    problems = [str(p) for p in check_knowledge_base(base / "content")]
    assert any("prva-uplata: give 'sources'" in p for p in problems)


def test_check_command_fails_on_a_broken_template(tmp_path: Path) -> None:
    base = _copy(tmp_path)
    (base / "roadmaps" / "ezup.yaml").write_text("service: ezup\nsteps: []\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "knowledge_base", "--content-dir", str(base / "content"), "check"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 1
    assert "roadmaps/ezup.yaml: 'steps' must be a non-empty list" in result.stdout
