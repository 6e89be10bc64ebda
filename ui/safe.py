"""Text from users made safe to show: Markdown escaping and server paths told by name.

Streamlit renders Markdown in `st.markdown`, captions, alerts, toasts, progress
texts, image captions, metric and widget labels and radio options. A folder,
file or label name is user input (a zip upload names its folders), so it goes
through `md` before it reaches any of them: `![x](https://host/p.png)` as a
class folder would otherwise make every visitor's browser fetch that URL.
Plain-text places (`st.text`, `st.code`, dataframes, select box options,
download file names) take the raw string: escaping there would show the
backslashes.

`redact_paths` replaces the server's absolute paths in a message by names
("dataset flowers", "run 20250101-120000-lite0"), for an app exposed beyond
localhost. No Streamlit here, so the rules are unit-tested on their own.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path

# CommonMark: any ASCII punctuation character may be backslash-escaped, and
# then shows as itself. Escaping all of them also stops Streamlit's own syntax
# (`:material/icon:`, `:red[text]`, `$math$`) and HTML entities (`&copy;`).
_ESCAPES: dict[int, str] = {ord(c): "\\" + c for c in string.punctuation}
# Characters that would hide or reorder text (control characters, bidi
# overrides, odd line separators): shown as Python escapes (`\x1b`, `\u202e`),
# whose backslash is itself escaped. A line break stays a (hard) line break:
# with every punctuation character escaped, no line can open a Markdown block
# (heading, list, quote, fence, table, HTML), however it starts.
_INVISIBLE = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x200E, 0x200F]
_INVISIBLE += [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF]
_NAMED = {0x09: "t", 0x0D: "r"}
for _code in _INVISIBLE:
    _ESCAPES[_code] = "\\\\" + (
        _NAMED.get(_code) or (f"x{_code:02x}" if _code < 0x100 else f"u{_code:04x}")
    )
_ESCAPES[ord("\n")] = "  \n"

# An absolute POSIX path inside a message: starts after a quote, bracket,
# space or the start (not inside a word or a URL's "://"), runs up to a
# quote, space or closing bracket.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s'\"()\[\]<>,;]+)")


def md(value: object) -> str:
    """`value` as Markdown that shows exactly its text, never formatting, links or images.

    Every ASCII punctuation character is backslash-escaped; a line break
    stays a line break; other control characters and bidi overrides are shown
    as escapes (`\\x1b`).
    Use it on every user-controlled string (folder, file, label, upload name,
    run id, an error message that quotes them) that goes into Markdown.

    Args:
        value: anything; None gives "".

    Returns:
        The escaped text.
    """
    if value is None:
        return ""
    return str(value).replace("\r\n", "\n").translate(_ESCAPES)


def redact_paths(
    text: str, names: Mapping[Path, tuple[str, str | None]], *, visible: tuple[Path, ...] = ()
) -> str:
    """`text` with every absolute path replaced by a name, for a visitor who must not see them.

    A path inside one of `names`' folders is told by that folder's names
    ("dataset flowers", "run 20250101-120000-lite0", "the studio's cache"); a
    path inside `visible` (the data roots a visitor types paths in) is kept;
    any other absolute path becomes its last part only ("…/photo.jpg").

    Args:
        text: a message that may quote server paths.
        names: folder -> (what to call the folder itself, what to call an entry
            in it or None to call anything in it by the folder's name), e.g.
            `{Path("/srv/studio/runs"): ("the runs folder", "run")}`; the
            deepest matching folder wins.
        visible: folders whose paths may be shown as they are. Defaults to ().

    Returns:
        The message with the paths replaced.
    """
    ordered = sorted(names.items(), key=lambda item: len(item[0].parts), reverse=True)

    def _name(match: re.Match[str]) -> str:
        raw = match.group(0)
        trailing = raw[len(raw.rstrip(".:")) :]  # a sentence's full stop is not part of the path
        path = Path(raw[: len(raw) - len(trailing)])
        if any(path == root or root in path.parents for root in visible):
            return raw
        for folder, (itself, entry) in ordered:
            if path == folder or (folder in path.parents and entry is None):
                return itself + trailing
            if folder in path.parents:
                return f"{entry} {path.relative_to(folder).parts[0]}{trailing}"
        return f"…/{path.name}{trailing}" if path.name else f"…{trailing}"

    return _ABSOLUTE_PATH.sub(_name, text)
