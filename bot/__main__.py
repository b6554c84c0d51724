"""Entry point: `python -m bot run | playground`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.config import ConfigError, Settings, load_settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


async def _playground(settings: Settings) -> None:
    from bot.app import build_services
    from bot.channels.playground import run_playground

    services = await build_services(settings)
    try:
        await run_playground(services)
    finally:
        await services.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="eUprava za sve support bot")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the Telegram bot (polling, or webhook with WEBHOOK_URL)")
    commands.add_parser("playground", help="chat locally in the terminal, no token needed")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    _configure_logging(settings)
    try:
        if args.command == "playground":
            logging.getLogger().setLevel(logging.WARNING)
            asyncio.run(_playground(settings))
        elif args.command == "run":
            from bot.telegram.runner import run

            return asyncio.run(run(settings))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
