"""Entry point: `python -m bot run | playground | seed-demo | drafts export DIR |
revisions export DIR | check-config | backup PATH`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

from bot.config import ConfigError, Settings, load_settings


def _configure_logging(settings: Settings) -> None:
    """One structured event per line (LOG_FORMAT=json by default, or text)."""
    from bot.logging_setup import configure_logging

    configure_logging(settings.log_level)


async def _playground(settings: Settings, role: str = "clerk") -> None:
    from bot.app import build_services
    from bot.channels.playground import run_playground

    services = await build_services(settings)
    try:
        await run_playground(services, role=role)
    finally:
        await services.close()


async def _seed_demo(settings: Settings) -> date:
    from bot.app import build_services

    services = await build_services(settings)
    try:
        return await services.programme.seed_demo()
    finally:
        await services.close()


async def _export(kind: str, directory: Path, database_url: str) -> list[Path]:
    """`drafts export` / `revisions export`: the service reads the database, the KB writes."""
    from bot.services.kb_exports import KbExportService
    from storage.uow import Database

    database = Database.from_url(database_url)
    try:
        exports = KbExportService(database)
        if kind == "drafts":
            return await exports.export_drafts(directory)
        return await exports.export_revisions(directory)
    finally:
        await database.dispose()


def _print_export(kind: str, written: list[Path]) -> None:
    for path in written:
        print(path)
    if kind == "drafts":
        if not written:
            print("no drafts yet")
    elif not written:
        print("no revisions beyond the content files")
    else:
        print(
            "copy these over knowledge_base/content/, run `python -m knowledge_base check`, "
            "and open a pull request"
        )


def _add_export(commands: Any, kind: str, help_text: str, export_help: str) -> None:
    group = commands.add_parser(kind, help=help_text)
    sub = group.add_subparsers(dest="export_command", required=True)
    export = sub.add_parser("export", help=export_help)
    export.add_argument("directory", type=Path, metavar="DIR")
    export.add_argument("--database-url", default=None, help="default: DATABASE_URL")


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    # Operator tools with their own options.
    if args_list[:1] == ["check-config"]:
        from bot import check_config

        return check_config.main(args_list[1:])
    if args_list[:1] == ["backup"]:
        from bot import backup

        return backup.main(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m bot", description="eUprava za sve support bot")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the Telegram bot (polling, or webhook with WEBHOOK_URL)")
    playground = commands.add_parser(
        "playground", help="chat locally in the terminal, no token needed"
    )
    playground.add_argument(
        "--role",
        choices=("clerk", "mentor"),
        default="clerk",
        help="start as the mentor (and admin) instead of the clerk; /mentor_mod switches",
    )
    commands.add_parser(
        "seed-demo", help="sample activity of last month for the console's report (idempotent)"
    )
    _add_export(
        commands,
        "drafts",
        "KB drafts written from mentors' answers",
        "write the drafts as KB YAML into DIR (marks them exported)",
    )
    _add_export(
        commands,
        "revisions",
        "KB revisions approved in the console",
        "write the content files the revisions change into DIR",
    )
    commands.add_parser("check-config", help="print effective settings (secrets masked), problems")
    commands.add_parser("backup", help="consistent copy of the SQLite database: backup PATH")
    args = parser.parse_args(args_list)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    _configure_logging(settings)
    try:
        if args.command == "playground":
            logging.getLogger().setLevel(logging.WARNING)
            asyncio.run(_playground(settings, args.role))
        elif args.command == "seed-demo":
            print(f"seeded {asyncio.run(_seed_demo(settings)):%Y-%m}")
        elif args.command in ("drafts", "revisions"):
            url = args.database_url or settings.database_url
            _print_export(args.command, asyncio.run(_export(args.command, args.directory, url)))
        elif args.command == "run":
            from bot.runtime import run

            return asyncio.run(run(settings))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
