"""The house stays as drawn (docs/architecture.md): which part may import which, read from the
imports themselves (ast), so a new shortcut fails here instead of growing quietly.

KNOWN holds exceptions, each one a debt with its reason; it is empty since the delivery service
and the KB export commands paid the last ones (issue #12). Never add one without saying why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# part -> the top-level parts of ours it must not import
CHANNELS = ("handlers", "bot.channels", "bot.telegram", "bot.console")
RULES: dict[str, tuple[str, ...]] = {
    "knowledge_base": ("bot", "handlers", "storage"),  # the KB imports nothing of ours
    "storage": ("bot", "handlers"),  # storage is below the services
    # services know no channel, nor how the process is put together
    "bot/services": ("aiogram", *CHANNELS, "bot.app", "bot.runtime"),
    # channels only translate: they go through services, and are handed them by the runtime
    "handlers": ("storage", "bot.runtime"),
    "bot/channels": ("storage", "bot.runtime"),
    "bot/telegram": ("storage", "bot.runtime"),
    "bot/console": ("storage", "bot.runtime"),  # the curators' web console is a channel too
    # the services' wiring sits below the channels: it imports none (bot/runtime.py does)
    "bot/app.py": ("aiogram", *CHANNELS, "bot.runtime"),
}
ALLOWED_EVERYWHERE = ("storage.clock",)  # the one clock, injected everywhere

# (file, imported module) -> why it is still there
KNOWN: dict[tuple[str, str], str] = {}


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
        where = root / part
        paths = [where] if where.suffix == ".py" else sorted(where.rglob("*.py"))
        for path in paths:
            if not path.exists():
                continue
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
        ("bot/app.py", "from bot.channels.viber_client import ViberSettings\n"),
        ("bot/telegram/x.py", "from bot.runtime import Runtime\n"),
    ],
)
def test_the_rule_catches_a_forbidden_import(tmp_path: Path, where: str, code: str) -> None:
    target = tmp_path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(code, encoding="utf-8")
    assert violations(tmp_path) == [(where, _imports(target).pop())]


# -- the runtime hands each channel what it uses, by name, explicitly -------------------------


def _stand_ins() -> object:
    """An object with one distinct value per AppServices field (the wiring only routes them)."""
    import dataclasses
    from types import SimpleNamespace

    from bot.app import AppServices

    return SimpleNamespace(**{f.name: object() for f in dataclasses.fields(AppServices)})


def test_the_handlers_receive_every_service_but_the_database_and_the_matcher() -> None:
    """`bot.runtime.handler_services` lists the services by name (no scan); a service added to
    AppServices must be listed there too, or a handler asking for it would fail at run time.
    The caches' Redis relay (`cache_sync`) is plumbing like the database, not a service."""
    import dataclasses

    from bot.app import AppServices
    from bot.runtime import handler_services

    services = _stand_ins()
    handed = handler_services(services)  # type: ignore[arg-type]
    expected = {f.name for f in dataclasses.fields(AppServices)} - {
        "database", "matcher", "cache_sync"
    }
    assert set(handed) == expected
    assert all(handed[name] is getattr(services, name) for name in handed)


def test_every_service_that_follows_its_deliveries_is_hooked_to_the_outbox() -> None:
    import typing

    from bot.app import AppServices
    from bot.runtime import delivery_hooks

    hints = typing.get_type_hints(AppServices)
    following = {name for name, kind in hints.items() if hasattr(kind, "on_delivered")}
    assert following == {"mentoring"}

    class Follower:
        def on_delivered(self, message: object, outcome: object) -> None: ...

    services = _stand_ins()
    for name in following:
        setattr(services, name, Follower())
    hooks = delivery_hooks(services)  # type: ignore[arg-type]
    assert {hook.__self__ for hook in hooks} == {  # type: ignore[attr-defined]
        getattr(services, name) for name in following
    }
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
