"""Print the README's settings tables, generated from rag.settings; `--write` puts them into README.md."""

from __future__ import annotations

import sys
from pathlib import Path

from rag.settings import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings:start -->\n", "<!-- settings:end -->\n"


def readme_table(text: str) -> str:
    """The generated block of a README text (between the markers)."""
    return text.split(START, 1)[1].split(END, 1)[0]


def main() -> None:
    """Print the tables, or write them into README.md with --write."""
    if "--write" not in sys.argv[1:]:
        sys.stdout.write(markdown_table())
        return
    text = README.read_text(encoding="utf-8")
    README.write_text(text.replace(readme_table(text), markdown_table()), encoding="utf-8")


if __name__ == "__main__":
    main()
