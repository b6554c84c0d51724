"""Keep the gettext catalogues in step with the code.

`python -m bot.i18n_build` extracts message ids from bot/ and handlers/, updates the English
catalogue (new ids stay untranslated until someone translates them), regenerates the Serbian
Cyrillic catalogue by transliteration and compiles both. `--check` changes nothing and fails
when a catalogue is stale or an English translation is missing, so CI catches a forgotten one.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from bot.i18n import DOMAIN, LOCALES_DIR
from knowledge_base.translit import to_cyrillic

ROOT = Path(__file__).resolve().parent.parent
# `Invalid` and `AudienceError` carry a msgid that `message(language)` translates later.
KEYWORDS = {"_": None, "__": None, "N_": None, "tr": (2,), "gettext": None, "lazy_gettext": None,
            "Invalid": (1,), "AudienceError": (1,)}


def extract_template() -> Catalog:
    template = Catalog(domain=DOMAIN)
    for folder in ("bot", "handlers"):
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            if isinstance(message, str) and message:
                template.add(message, locations=[(f"{folder}/{filename}", lineno)],
                             auto_comments=comments, context=context)
    return template


def _po_path(locale: str) -> Path:
    return LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def _render_po(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, omit_header=False, sort_output=True, no_location=True, width=100)
    return buffer.getvalue()


def _render_mo(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def read_translations(tsv: Path) -> dict[str, str]:
    """`msgid<TAB>English` lines (\\n for a line break): a translator's hand-off format."""
    pairs: dict[str, str] = {}
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            source, english = line.split("\t", 1)
            pairs[source.replace("\\n", "\n")] = english.replace("\\n", "\n")
    return pairs


def build_catalogues(
    template: Catalog, translations: dict[str, str] | None = None
) -> dict[Path, bytes]:
    """The wanted content of every catalogue file, keyed by path."""
    wanted: dict[Path, bytes] = {}

    english = Catalog(locale="en", domain=DOMAIN)
    old_path = _po_path("en")
    if old_path.exists():
        with old_path.open("rb") as handle:
            english = read_po(handle, locale="en", domain=DOMAIN)
    english.update(template, no_fuzzy_matching=True)
    english.obsolete.clear()
    for message in english:
        if message.id and str(message.id) in (translations or {}):
            message.string = (translations or {})[str(message.id)]
    wanted[_po_path("en")] = _render_po(english)
    wanted[_po_path("en").with_suffix(".mo")] = _render_mo(english)

    cyrillic = Catalog(locale="sr_Cyrl", domain=DOMAIN)
    for message in template:
        if message.id:
            cyrillic.add(message.id, to_cyrillic(str(message.id)))
    wanted[_po_path("sr_Cyrl")] = _render_po(cyrillic)
    wanted[_po_path("sr_Cyrl").with_suffix(".mo")] = _render_mo(cyrillic)
    return wanted


def _untranslated(po_bytes: bytes) -> list[str]:
    catalog = read_po(io.BytesIO(po_bytes), locale="en")
    return [str(m.id) for m in catalog if m.id and not m.string]


def _same_messages(old: bytes, new: bytes) -> bool:
    """Compare .po files by their messages, ignoring header timestamps."""
    def pairs(data: bytes) -> set[tuple[str, str]]:
        return {(str(m.id), str(m.string)) for m in read_po(io.BytesIO(data)) if m.id}
    return pairs(old) == pairs(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if catalogues are stale")
    parser.add_argument("--import", dest="imports", type=Path, action="append", default=[],
                        help="TSV of msgid<TAB>English translations to merge")
    args = parser.parse_args(argv)
    translations: dict[str, str] = {}
    for tsv in args.imports:
        translations.update(read_translations(tsv))
    wanted = build_catalogues(extract_template(), translations)
    missing = _untranslated(wanted[_po_path("en")])
    if args.check:
        stale = [
            path for path, content in wanted.items()
            if path.suffix == ".po"
            and (not path.exists() or not _same_messages(path.read_bytes(), content))
        ]
        for path in stale:
            print(f"{path.relative_to(ROOT)}: out of date, run `python -m bot.i18n_build`")
        for message in missing:
            print(f"en: no translation for {message!r}")
        return 1 if stale or missing else 0
    for path, content in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for message in missing:
        print(f"en: no translation for {message!r}", file=sys.stderr)
    print(f"{len(wanted) // 2} catalogues written; {len(missing)} English translations missing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
