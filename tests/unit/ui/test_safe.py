"""ui.safe: hostile names become plain text in Markdown; server paths become names."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from tests.support.app import shown
from ui.safe import md, redact_paths

# Each would do something in Streamlit's Markdown if shown raw.
HOSTILE = [
    "![x](https://example.invalid/p.png)",  # an image: the browser fetches it
    "[click](javascript:alert(1))",
    "<img src=https://example.invalid/q.png onerror=alert(1)>",
    "<https://example.invalid/autolink>",
    ":material/home: :red[red] :rainbow-background[x] :smile:",
    "$\\frac{1}{0}$ and $$x$$",
    "&copy; &#x41; &lt;b&gt;",
    "**bold** _it_ `code` ~~gone~~",
    "# heading",
    "- item\n1. item\n> quote\n```\nfence\n```",
    "| a | b |\n| - | - |",
    "a\\b\\\\c \\*",
    "line\rmore\x1b[31mred\x00nul",
    "\u202egpj.exe",
    "spaces    and\ttabs",
    "x" * 300,
]


def unescaped_punctuation(markdown: str) -> list[str]:
    """Punctuation that CommonMark would not read as escaped (a backslash pair is one escape)."""
    found, index = [], 0
    while index < len(markdown):
        char = markdown[index]
        if char == "\\" and index + 1 < len(markdown) and markdown[index + 1] in string.punctuation:
            index += 2
            continue
        if char in string.punctuation:
            found.append(char)
        index += 1
    return found


@pytest.mark.parametrize("text", HOSTILE)
def test_every_ascii_punctuation_character_is_escaped(text: str) -> None:
    assert unescaped_punctuation(md(text)) == []


def test_the_punctuation_check_finds_raw_markdown() -> None:
    assert unescaped_punctuation("![x](y) \\\\*") == ["!", "[", "]", "(", ")", "*"]


@pytest.mark.parametrize("text", HOSTILE)
def test_what_is_shown_is_the_text_itself(text: str) -> None:
    visible = text.replace("\r", "\\r").replace("\x1b", "\\x1b").replace("\x00", "\\x00")
    visible = visible.replace("\t", "\\t").replace("\u202e", "\\u202e")
    assert shown(md(text)) == visible


def test_no_markdown_construct_survives() -> None:
    escaped = md("\n".join(HOSTILE))
    assert "![" not in escaped and "](" not in escaped
    assert ":material/" not in escaped  # Streamlit rewrites this before parsing
    assert "<" not in escaped.replace("\\<", "")
    assert "&" not in escaped.replace("\\&", "")


def test_line_breaks_stay_line_breaks_and_cannot_open_a_block() -> None:
    escaped = md("first\n# not a heading\n- not a list")
    lines = escaped.split("\n")
    assert lines == ["first  ", "\\# not a heading  ", "\\- not a list"]
    assert md("a\r\nb") == "a  \nb"


def test_bidi_overrides_and_control_characters_are_shown_not_obeyed() -> None:
    escaped = md("\u202eabc\u2066\x07")
    assert "\u202e" not in escaped and "\u2066" not in escaped and "\x07" not in escaped
    assert shown(escaped) == "\\u202eabc\\u2066\\x07"


def test_plain_text_is_unchanged_and_none_is_empty() -> None:
    assert md("Daisy 12 photos") == "Daisy 12 photos"
    assert md("fleur été 花") == "fleur été 花"
    assert md(None) == ""
    assert md(42) == "42"
    assert all(md(c) == "\\" + c for c in string.punctuation)


NAMES = {
    Path("/srv/studio"): ("the studio's home folder", None),
    Path("/srv/studio/runs"): ("the runs folder", "run"),
    Path("/srv/studio/datasets"): ("the datasets folder", "dataset"),
}


def test_paths_in_studio_folders_are_told_by_name() -> None:
    text = (
        "folder '/srv/studio/datasets/birds/crow/x.jpg' is damaged; "
        "see /srv/studio/runs/20250101-lite0/train.log. Cache: /srv/studio/cache/b.db "
        "(in /srv/studio/runs)"
    )
    assert redact_paths(text, NAMES) == (
        "folder 'dataset birds' is damaged; see run 20250101-lite0. "
        "Cache: the studio's home folder (in the runs folder)"
    )


def test_other_paths_keep_only_their_last_part_unless_visible() -> None:
    text = "cannot read /etc/shadow or /data/shared/pets/cat.jpg (or /tmp/x/)"
    assert redact_paths(text, NAMES, visible=(Path("/data/shared"),)) == (
        "cannot read …/shadow or /data/shared/pets/cat.jpg (or …/x)"
    )


def test_text_without_absolute_paths_is_unchanged() -> None:
    text = "class 'red' has only 2 image(s); 1/2 of them in train, a/b relative"
    assert redact_paths(text, NAMES) == text


def test_urls_are_not_taken_for_paths() -> None:
    text = "download https://storage.example/keras/weights_tf.h5 (or http://10.0.0.1:8000/a)"
    assert redact_paths(text, NAMES) == text
