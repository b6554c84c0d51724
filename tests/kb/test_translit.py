"""Latin <-> Cyrillic: KB answers must read correctly in the clerk's script."""

from knowledge_base.translit import to_cyrillic, to_latin


def test_cyrillic_question_reads_as_latin():
    assert to_latin("Како да добијем приступ еЗУП-у?") == "Kako da dobijem pristup eZUP-u?"


def test_digraphs_become_single_cyrillic_letters():
    assert to_cyrillic("Ljubljana, njiva, džep, Đorđe") == "Љубљана, њива, џеп, Ђорђе"


def test_round_trip_keeps_serbian_text():
    text = "Službenik šalje rešenje u eSanduče građanina."
    assert to_latin(to_cyrillic(text)) == text


def test_links_markup_and_addresses_stay_latin():
    text = (
        'Vidi <a href="https://euprava.gov.rs/x">portal</a> ili pišite na office@ite.gov.rs'
        " &amp; /teme"
    )
    converted = to_cyrillic(text)
    assert '<a href="https://euprava.gov.rs/x">портал</a>' in converted
    assert "office@ite.gov.rs" in converted
    assert "&amp;" in converted
    assert "/teme" in converted


def test_placeholders_survive_transliteration():
    assert to_cyrillic("Broj {number} je sačuvan") == "Број {number} је сачуван"


def test_bare_domain_names_stay_latin():
    assert to_cyrillic("Izvor: w4.rs/esanduce; rju.gov.rs") == "Извор: w4.rs/esanduce; rju.gov.rs"
