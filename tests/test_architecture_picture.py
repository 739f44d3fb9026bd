"""The architecture picture: a self-contained SVG that README and docs/ARCHITECTURE.md show,
naming the layers the notes describe."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "architecture.svg"
SVG = "{http://www.w3.org/2000/svg}"


def _text() -> str:
    root = ET.parse(PICTURE).getroot()  # noqa: S314 - our own file
    return " ".join(" ".join(node.itertext()) for node in root.iter(f"{SVG}text"))


def test_the_picture_is_a_self_contained_svg() -> None:
    root = ET.parse(PICTURE).getroot()  # noqa: S314 - our own file
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == "0 0 1100 720"
    assert root.find(f"{SVG}title") is not None
    source = PICTURE.read_text(encoding="utf-8")
    # Nothing fetched: no image, font or stylesheet from elsewhere, no script.
    assert re.findall(r"https?://[^\"' ]+", source) == ["http://www.w3.org/2000/svg"]
    assert "<script" not in source
    assert "<image" not in source
    assert "@import" not in source


def test_the_picture_names_the_layers_of_the_notes() -> None:
    text = _text()
    for name in (
        "Asterisk 22",
        "ami.codec",
        "ami.client",
        "pbx.translate",
        "pbx.actions",
        "engine",
        "domain.routing.Router.handle(event, now)",
        "prometheus.Metrics",
        "Recorder -> outbox",
        "store.scheduler",
        "FastAGI",
        "/api/docs",
        "/metrics, /health, /ready",
        "PostgreSQL",
        "Redis",
        "Prometheus -> Grafana",
        "simulated PBX",
    ):
        assert name in text, name
    notes = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for module in ("ami.codec", "ami.client", "pbx.translate", "pbx.actions"):
        assert module in notes  # the picture and the notes use the same names


def test_readme_and_the_architecture_notes_show_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    notes = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert "](docs/architecture.svg)" in readme
    assert "](architecture.svg)" in notes
    # Shown near the top of the README, before the table of contents ends.
    assert readme.index("docs/architecture.svg") < readme.index("## Status")
