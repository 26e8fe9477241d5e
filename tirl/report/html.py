"""The report as one self-contained HTML file: the template, the stylesheet and the viewer's
scripts (package data in ``assets/``) inlined, and the report's data as one JSON object in a
``<script type="application/json">`` element. No network, no server: it opens from ``file://``.

Model and tool text can hold anything, ``</script>`` included; the JSON is escaped so that no
such text closes the data element, and the scripts put every text into the page as text."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from importlib import resources

from tirl.report.model import ReportData

# concatenated in this order: each file adds to the TIRL object util.js creates; main.js starts the page
SCRIPTS = ("util.js", "overview.js", "trajectory.js", "browser.js", "trees.js", "evalcmp.js", "main.js")


def _asset(name: str) -> str:
    return resources.files("tirl.report").joinpath("assets", name).read_text(encoding="utf-8")


def data_json(data: ReportData) -> str:
    """The data as JSON safe inside a script element (``</`` and ``<!--`` escaped)."""
    text = json.dumps(asdict(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "\\u003c!--")


def render(data: ReportData) -> str:
    page = _asset("template.html")
    js = "\n".join(_asset(n) for n in SCRIPTS)
    for marker, value in (
        ("<!--tirl:title-->", html.escape(data.title)),
        ("/*tirl:css*/", _asset("report.css")),
        ("/*tirl:js*/", js),
        ("<!--tirl:data-->", data_json(data)),  # last: the data may contain the other markers
    ):
        page = page.replace(marker, value, 1)
    return page
