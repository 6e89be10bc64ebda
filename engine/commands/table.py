"""Aligned text tables for the CLI commands."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(
    rows: Sequence[Sequence[str]],
    *,
    right_align_from: int | None = None,
    rule: bool = False,
    indent: str = "",
) -> str:
    """Rows of cells as aligned columns, the first row being the header.

    Args:
        rows: the header row, then the data rows, all of one length.
        right_align_from: the first column to right-align (numbers); None
            left-aligns every column. Defaults to None.
        rule: draw a line of dashes under the header. Defaults to False.
        indent: put before every line. Defaults to "".

    Returns:
        The table, one line per row, without trailing spaces or a final newline.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(w) if right_align_from is not None and i >= right_align_from else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return (indent + "  ".join(cells)).rstrip()

    lines = [line(rows[0])]
    if rule:
        lines.append(indent + "  ".join("-" * w for w in widths))
    lines.extend(line(row) for row in rows[1:])
    return "\n".join(lines)
