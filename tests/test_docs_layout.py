"""The README's layout matches the tree, and every citation of the architecture notes
points at the file the repository has (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hotline"
LISTED_FILE_BY_FILE = ("domain", "ami", "pbx", "store", "web", "reports", "sim")


def layout() -> str:
    """The README's Layout section's code block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout\n") :]
    return section[section.index("```\n") + 4 : section.index("\n```", section.index("```\n") + 4)]


def test_the_layout_names_every_module_and_package_of_hotline() -> None:
    block = layout()
    missing = [
        path.name
        for path in sorted(PACKAGE.iterdir())
        if (path.suffix == ".py" and path.name != "__init__.py")
        or (path.is_dir() and (path / "__init__.py").exists())
        if not re.search(rf"(?m)^  {re.escape(path.name)}/?\s", block)
    ]
    assert missing == []


def test_the_layout_names_every_file_of_the_packages_it_lists_file_by_file() -> None:
    block = layout()
    missing = [
        f"{package}/{path.name}"
        for package in LISTED_FILE_BY_FILE
        for path in sorted((PACKAGE / package).glob("*.py"))
        if path.name != "__init__.py" and path.name not in block
    ]
    assert missing == []


def test_every_top_level_folder_the_layout_names_exists() -> None:
    named = re.findall(r"(?m)^([a-z][\w.-]*)/\s", layout())
    assert named
    assert [name for name in named if not (ROOT / name).is_dir()] == []


def test_architecture_citations_point_at_docs_architecture() -> None:
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()
    stale = []
    for path in [*PACKAGE.rglob("*.py"), *ROOT.glob("*.md"), *(ROOT / "asterisk").glob("*.md")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "ARCHITECTURE" in line and "docs/ARCHITECTURE.md" not in line:
                stale.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert stale == []
