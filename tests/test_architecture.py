"""The house stays as drawn (docs/architecture.md): which part may import which, read from the
imports themselves (ast), so a new shortcut fails here instead of growing quietly.

KNOWN holds today's exceptions, each one a debt with its reason; remove a line when its import
goes (issue "channels only translate"), never add one without saying why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# part -> the top-level parts of ours it must not import
RULES: dict[str, tuple[str, ...]] = {
    "knowledge_base": ("bot", "handlers", "storage"),  # the KB imports nothing of ours
    "storage": ("bot", "handlers"),  # storage is below the services
    "bot/services": ("aiogram", "handlers", "bot.channels", "bot.telegram"),  # no channel
    "handlers": ("storage",),  # channels only translate: they go through services
    "bot/channels": ("storage",),
    "bot/telegram": ("storage",),
    "bot/console": ("storage",),  # the curators' web console is a channel too
}
ALLOWED_EVERYWHERE = ("storage.clock",)  # the one clock, injected everywhere

# (file, imported module) -> why it is still there
KNOWN: dict[tuple[str, str], str] = {
    ("bot/channels/viber_sender.py", "storage.uow"): "reads outbox file rows itself",
    ("bot/telegram/runner.py", "storage.db"): "start-up checks of the database URL",
    ("knowledge_base/drafts.py", "storage.mentor"): "`drafts export` reads mentors' drafts",
    ("knowledge_base/drafts.py", "storage.uow"): "`drafts export` reads mentors' drafts",
    ("knowledge_base/revisions.py", "storage.curation"): "`revisions export` reads KB revisions",
    ("knowledge_base/revisions.py", "storage.uow"): "`revisions export` reads KB revisions",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _forbidden(module: str, banned: tuple[str, ...]) -> bool:
    if module in ALLOWED_EVERYWHERE:
        return False
    return any(module == b or module.startswith(b + ".") for b in banned)


def violations(root: Path = ROOT) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for part, banned in RULES.items():
        for path in sorted((root / part).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if "/migrations/" in relative:
                continue
            for module in sorted(_imports(path)):
                if _forbidden(module, banned):
                    found.append((relative, module))
    return found


def test_parts_import_only_what_the_drawing_allows() -> None:
    new = [v for v in violations() if v not in KNOWN]
    assert not new, f"imports the architecture does not allow (docs/architecture.md): {new}"


def test_every_known_exception_is_still_real() -> None:
    gone = [k for k in KNOWN if k not in violations()]
    assert not gone, f"paid off: remove from KNOWN {gone}"


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ("handlers/x.py", "from storage.uow import Database\n"),
        ("bot/channels/x.py", "import storage.models\n"),
        ("knowledge_base/x.py", "from bot.i18n import tr\n"),
        ("bot/services/x.py", "from aiogram import Bot\n"),
        ("storage/x.py", "from bot.services.users import UserProfile\n"),
    ],
)
def test_the_rule_catches_a_forbidden_import(tmp_path: Path, where: str, code: str) -> None:
    target = tmp_path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(code, encoding="utf-8")
    assert violations(tmp_path) == [(where, _imports(target).pop())]


# Small modules with one job: a service that outgrows this is split by responsibility into a
# package (see bot/services/mentoring/), not left to grow.
MAX_SERVICE_LINES = 500


def oversized(root: Path = ROOT, limit: int = MAX_SERVICE_LINES) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for path in sorted((root / "bot" / "services").rglob("*.py")):
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > limit:
            found.append((path.relative_to(root).as_posix(), count))
    return found


def test_no_service_module_is_over_the_size_limit() -> None:
    found = oversized()
    assert not found, (
        f"files in bot/services/ over {MAX_SERVICE_LINES} lines (split them by responsibility "
        f"into a package, as bot/services/mentoring/ is): "
        + ", ".join(f"{path} ({count} lines)" for path, count in found)
    )


def test_the_size_limit_catches_a_long_module(tmp_path: Path) -> None:
    services = tmp_path / "bot" / "services" / "big"
    services.mkdir(parents=True)
    (services / "small.py").write_text("x = 1\n" * MAX_SERVICE_LINES, encoding="utf-8")
    (services / "long.py").write_text("x = 1\n" * (MAX_SERVICE_LINES + 1), encoding="utf-8")
    assert oversized(tmp_path) == [("bot/services/big/long.py", MAX_SERVICE_LINES + 1)]
