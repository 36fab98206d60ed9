"""How the command line writes: results on stdout, messages and errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def dump(value: Any) -> None:
    """A JSON value, indented, as the result of a command."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def error_line(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())
