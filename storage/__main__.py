"""``python -m storage``: migrations without alembic.ini.

python -m storage upgrade [REV]         # default head; uses DATABASE_URL or ./data/bot.sqlite3
python -m storage downgrade REV         # e.g. -1 or base
python -m storage current               # prints the database's revision
python -m storage heads | history
python -m storage revision -m "add outbox" [--autogenerate]   # new file 000N_add_outbox.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from storage.db import (
    _run_alembic,
    alembic_config,
    current_revision,
    downgrade_schema,
    upgrade_schema,
)
from storage.errors import InvalidDatabaseURL, StorageUnavailable


def next_revision_id() -> str:
    """``0002`` after ``0001``: numeric, zero-padded ids keep the files sorted."""
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(r.revision) for r in script.walk_revisions() if re.fullmatch(r"\d+", r.revision)]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL or ./data/bot.sqlite3)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade")
    down.add_argument("revision")
    sub.add_parser("current")
    sub.add_parser("heads")
    sub.add_parser("history")
    rev = sub.add_parser("revision")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument(
        "--autogenerate",
        action="store_true",
        help="diff models against the database (which must be at head)",
    )
    rev.add_argument("--rev-id", default=None)
    args = parser.parse_args(argv)
    url = args.url or os.environ.get("DATABASE_URL") or None

    try:
        if args.cmd == "upgrade":
            asyncio.run(upgrade_schema(url, args.revision))
        elif args.cmd == "downgrade":
            asyncio.run(downgrade_schema(url, args.revision))
        elif args.cmd == "current":
            print(asyncio.run(current_revision(url)) or "(empty database)")
        elif args.cmd == "heads":
            command.heads(alembic_config())
        elif args.cmd == "history":
            command.history(alembic_config())
        elif args.cmd == "revision":
            rev_id = args.rev_id or next_revision_id()

            def make(cfg: Config) -> None:
                command.revision(
                    cfg, message=args.message, autogenerate=args.autogenerate, rev_id=rev_id
                )

            if args.autogenerate:
                asyncio.run(_run_alembic(url, make, lock=False))
            else:
                make(alembic_config())
    except (InvalidDatabaseURL, StorageUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
