"""Implementation roadmaps: per service, the ordered steps a municipality walks (plain data).

One YAML file per service in `knowledge_base/roadmaps/` (reviewed like the KB, checked by
`python -m knowledge_base check`):

    service: ezup                # a service of content/services.yaml
    steps:
    - id: admin                  # stable: progress is stored by it, never rename one
      title: Određen lokalni administrator za eZUP
      done: what "done" means, in one or two sentences
      entries: [ezup-login]      # KB entries that help (shown to clerks as buttons)
      blockers: [typical blocker, ...]
      sources: [https://... or a regulation citation]
      silent: what the public sources do not say (optional)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.model import Problem

ROADMAPS_DIR = Path(__file__).resolve().parent / "roadmaps"
STEP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")
TITLE_MAX = 80

__all__ = [
    "ROADMAPS_DIR",
    "Roadmap",
    "RoadmapError",
    "Step",
    "check_roadmaps",
    "load_roadmaps",
]


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    done: str
    entries: tuple[str, ...]
    blockers: tuple[str, ...]
    sources: tuple[str, ...]
    silent: str = ""


@dataclass(frozen=True)
class Roadmap:
    service: str
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def index(self, step_id: str) -> int:
        return next((i for i, s in enumerate(self.steps) if s.id == step_id), -1)


class RoadmapError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(v.strip() for v in value)
    return None


def _read(
    directory: Path,
    services: set[str] | None,
    entries: set[str] | None,
    source_problem: Any = None,
) -> tuple[dict[str, Roadmap], list[Problem]]:
    problems: list[Problem] = []

    def error(path: Path, step: str | None, message: str) -> None:
        problems.append(Problem(f"roadmaps/{path.name}", step, message, "error"))

    roadmaps: dict[str, Roadmap] = {}
    if not directory.is_dir():
        return roadmaps, problems
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            error(path, None, f"cannot read: {exc}")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("service"), str):
            error(path, None, "must be a mapping with 'service' and 'steps'")
            continue
        service = data["service"]
        if services is not None and service not in services:
            error(path, None, f"unknown service '{service}'")
        if service in roadmaps:
            error(path, None, f"second roadmap for service '{service}'")
            continue
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            error(path, None, "'steps' must be a non-empty list")
            continue
        steps: list[Step] = []
        seen: set[str] = set()
        for index, item in enumerate(raw_steps):
            if not isinstance(item, dict):
                error(path, None, f"step {index + 1} is not a mapping")
                continue
            step_id = item.get("id")
            if not isinstance(step_id, str) or not STEP_ID.match(step_id):
                error(path, None, f"step {index + 1}: 'id' must be a short slug (a-z, 0-9, -)")
                continue
            if step_id in seen:
                error(path, step_id, "duplicate step id")
                continue
            seen.add(step_id)
            unknown = set(item) - {
                "id",
                "title",
                "done",
                "entries",
                "blockers",
                "sources",
                "silent",
            }
            if unknown:
                error(path, step_id, f"unknown field(s): {', '.join(sorted(unknown))}")
            title, done = item.get("title"), item.get("done")
            if not isinstance(title, str) or not title.strip():
                error(path, step_id, "'title' is required")
                continue
            if len(title) > TITLE_MAX:
                error(path, step_id, f"'title' longer than {TITLE_MAX} characters")
            if not isinstance(done, str) or not done.strip():
                error(path, step_id, "'done' (what done means) is required")
                continue
            lists = {name: _strings(item.get(name)) for name in ("entries", "blockers", "sources")}
            bad = [name for name, value in lists.items() if value is None]
            if bad:
                error(path, step_id, f"{', '.join(bad)}: must be a list of strings")
                continue
            step_entries, blockers, sources = (
                lists["entries"] or (),
                lists["blockers"] or (),
                lists["sources"] or (),
            )
            if entries is not None:
                for entry in step_entries:
                    if entry not in entries:
                        error(path, step_id, f"'entries' names unknown KB entry '{entry}'")
            silent = item.get("silent") or ""
            if not isinstance(silent, str):
                error(path, step_id, "'silent' must be text")
                silent = ""
            if not sources and not silent.strip():
                error(path, step_id, "give 'sources', or say in 'silent' that they are silent")
            if source_problem is not None:
                for source in sources:
                    problem = source_problem(source)
                    if problem:
                        error(path, step_id, problem)
            steps.append(
                Step(
                    step_id,
                    title.strip(),
                    done.strip(),
                    step_entries,
                    blockers,
                    sources,
                    silent.strip(),
                )
            )
        roadmaps[service] = Roadmap(service, tuple(steps))
    return roadmaps, problems


def check_roadmaps(
    directory: Path | None = None,
    *,
    services: set[str] | None = None,
    entries: set[str] | None = None,
    source_problem: Any = None,
) -> list[Problem]:
    """Every problem in the roadmap templates (unknown services or KB entries included)."""
    return _read(directory or ROADMAPS_DIR, services, entries, source_problem)[1]


def load_roadmaps(directory: Path | None = None) -> dict[str, Roadmap]:
    """The roadmaps by service; raises RoadmapError on any error."""
    roadmaps, problems = _read(directory or ROADMAPS_DIR, None, None)
    if problems:
        raise RoadmapError(problems)
    return roadmaps
