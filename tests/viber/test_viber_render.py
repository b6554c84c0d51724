"""Replies as Viber shows them: no HTML, Viber's *bold*, keyboards within Viber's limits."""

from __future__ import annotations

from bot.channels.viber_client import encode
from bot.channels.viber_render import (
    MAX_BUTTONS,
    MAX_TEXT,
    Sender,
    html_to_text,
    page_rows,
    render,
    split_text,
)
from bot.services.replies import Button, Reply

SENDER = Sender("eUprava za sve")


def test_telegram_html_becomes_viber_text() -> None:
    text = (
        "<b>Naslov</b>\n<i>napomena</i> i <b> razmak </b>\n"
        'Vidi <a href="https://euprava.gov.rs/a?b=1&amp;c=2">portal</a> i '
        '<a href="https://x.rs">https://x.rs</a>.\n'
        "A &amp; B &lt;tag&gt; <u>podvučeno</u>"
    )
    assert html_to_text(text) == (
        "*Naslov*\n_napomena_ i  *razmak* \n"
        "Vidi portal (https://euprava.gov.rs/a?b=1&c=2) i https://x.rs.\n"
        "A & B <tag> podvučeno"
    )


def test_escaped_user_text_is_not_mistaken_for_markup() -> None:
    assert html_to_text("Opština „&lt;b&gt;Grad&lt;/b&gt;“") == "Opština „<b>Grad</b>“"


def test_long_text_is_split_at_paragraphs_within_characters_and_bytes() -> None:
    paragraph = "Ово је дугачак одломак ћирилицом. " * 40
    text = "\n\n".join(paragraph.strip() for _ in range(30))
    pieces = split_text(text, MAX_TEXT, 12_000)
    assert len(pieces) > 1
    assert all(len(p) <= MAX_TEXT and len(p.encode()) <= 12_000 for p in pieces)
    assert all(p.endswith(".") for p in pieces)
    assert "".join(pieces).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(
        " ", ""
    )


def test_a_word_longer_than_a_message_is_cut_anyway() -> None:
    pieces = split_text("x" * 15_000)
    assert [len(p) for p in pieces] == [7000, 7000, 1000]


def test_every_request_stays_under_30_kb_and_the_keyboard_goes_last() -> None:
    text = "<b>Ћирилица</b>\n" + ("Дугачак одговор на питање службеника. " * 700)
    rows = tuple((Button(f"Дугме број {i} " + "ж" * 50, f"e:entry-{i}"),) for i in range(24))
    bodies = render(Reply(text, rows), SENDER, language="sr-Cyrl")
    assert len(bodies) >= 2
    assert all(len(encode({"receiver": "x" * 24, **b})) < 30_000 for b in bodies)
    assert all(len(b["text"]) <= MAX_TEXT for b in bodies)
    assert "keyboard" not in bodies[0] and len(bodies[-1]["keyboard"]["Buttons"]) == 24


def test_button_rows_share_the_six_columns() -> None:
    reply = Reply(
        "x",
        (
            (Button("👍", "fb:1:up"), Button("👎", "fb:1:down")),
            (Button("Jedan", "menu"),),
            (Button("a", "1"), Button("b", "2"), Button("c", "3")),
        ),
    )
    [body] = render(reply, SENDER)
    assert [b["Columns"] for b in body["keyboard"]["Buttons"]] == [3, 3, 6, 2, 2, 2]
    assert body["keyboard"]["Buttons"][0]["ActionBody"] == "act:fb:1:up"


def test_labels_are_escaped_and_shortened() -> None:
    [body] = render(Reply("x", ((Button("<b>" + "a" * 300, "menu"),),)), SENDER)
    label = body["keyboard"]["Buttons"][0]["Text"]
    assert label.startswith("&lt;b&gt;") and len(label) <= 130


def test_long_lists_are_paged_and_keep_the_back_row() -> None:
    rows = [(Button(f"Pitanje {i}", f"e:q{i}"),) for i in range(40)]
    rows.append((Button("« Sve usluge", "menu"),))
    first = page_rows(rows, "sr-Latn", source="svc:ezup")
    actions = [b.action for row in first for b in row]
    assert len(actions) <= MAX_BUTTONS
    assert actions[0] == "e:q0" and actions[-1] == "menu"
    assert "pg:1:svc:ezup" in actions and not any(a.startswith("pg:-") for a in actions)
    labels = [b.label for row in first for b in row]
    assert "Sledeća »" in labels

    second = page_rows(rows, "sr-Latn", source="svc:ezup", page=1)
    actions = [b.action for row in second for b in row]
    assert "pg:0:svc:ezup" in actions and actions[-1] == "menu"
    shown = {a for a in actions if a.startswith("e:")}
    first_shown = {b.action for row in first for b in row if b.action.startswith("e:")}
    assert shown and not shown & first_shown
    everything = set(first_shown)
    page = 1
    while True:
        rows_on_page = page_rows(rows, "sr-Latn", source="svc:ezup", page=page)
        everything |= {b.action for row in rows_on_page for b in row if b.action.startswith("e:")}
        if not any(b.action == f"pg:{page + 1}:svc:ezup" for row in rows_on_page for b in row):
            break
        page += 1
    assert everything == {f"e:q{i}" for i in range(40)}


def test_long_list_without_a_source_is_cut_to_24() -> None:
    rows = [(Button(f"Pitanje {i}", f"e:q{i}"),) for i in range(40)]
    [body] = render(Reply("x", tuple(rows)), SENDER)
    assert len(body["keyboard"]["Buttons"]) == MAX_BUTTONS


def test_reply_without_buttons_gets_the_default_keyboard() -> None:
    [body] = render(Reply("x"), SENDER, default_rows=((Button("Teme", "menu"),),))
    assert [b["ActionBody"] for b in body["keyboard"]["Buttons"]] == ["act:menu"]
    [bare] = render(Reply("x"), SENDER)
    assert "keyboard" not in bare


def test_tracking_data_rides_on_every_part() -> None:
    bodies = render(Reply("y" * 9000), SENDER, tracking_data="mun")
    assert len(bodies) == 2 and all(b["tracking_data"] == "mun" for b in bodies)
