"""The report in a real browser: headless Chromium (the Debian package; ``make setup`` installs it)
driven over the DevTools protocol (tirl.report.browser). The report of a real ELPO run loads from
file:// with no console error and no request beyond its own file; the trajectory browser, its
filters, search and heat map, the tree view (hover, click through to a leaf's trajectory) and the
evaluations side by side respond to clicks; screenshots of each view are saved."""

from __future__ import annotations

import json

import pytest

from tirl.report import write_report
from tirl.report.browser import BrowserError, Chromium, find_chromium

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (make setup installs it: scripts/ensure_chromium.sh)"),
]
READY = "document.body.dataset.ready === '1'"


@pytest.fixture(scope="module")
def page(tmp_path_factory, elpo_run):
    root = tmp_path_factory.mktemp("browser")
    html = write_report([elpo_run], root / "report.html").path
    with Chromium(width=1300, height=900) as b:
        b.open(html.as_uri(), ready=READY)
        b.shots = root / "shots"
        yield b


def js(b, expr):
    return b.evaluate(expr)


def test_loads_without_errors_or_network(page):
    assert page.errors == []
    assert page.requests and all(u.startswith("file://") for u in page.requests), page.requests
    assert js(page, "document.querySelectorAll('#eval-tbl-0 tbody tr').length") > 5
    assert js(page, "document.querySelectorAll('#curves .curve svg polyline').length") >= 6
    page.screenshot(page.shots / "overview.png", full_page=True)


def test_trajectory_browser_responds(page):
    page.click("#tabs button[data-tab=trajectories]")
    assert js(page, "document.getElementById('tab-trajectories').classList.contains('active')")
    total = js(page, "document.querySelectorAll('#tb-list .item').length")
    data = json.loads(js(page, "document.getElementById('tirl-data').textContent"))
    assert total == sum(len(s["trajectories"]) for s in data["runs"][0]["steps"]) == 2 * 2 * 6  # steps x tasks x ELPO budget
    page.click("#tb-toolerr")
    items = js(page, "[...document.querySelectorAll('#tb-list .item')].map(e => e.textContent)")
    assert 0 < len(items) < total and all("tool error" in t for t in items)
    second = js(page, "document.querySelectorAll('#tb-list .item')[1].dataset.key")
    page.click(f"#tb-list .item[data-key='{second}']")
    assert js(page, "document.getElementById('tb-detail').dataset.key") == second
    assert js(page, "document.querySelectorAll('#tb-detail .call.err').length") >= 1  # the failed call's card
    assert js(page, "document.querySelectorAll('#tb-detail .seg.o-tool .tok.masked').length") > 0
    assert js(page, "document.querySelectorAll('#tb-detail .seg.o-policy .tok.trained').length") > 0
    page.screenshot(page.shots / "trajectory_tool_error.png")
    page.click("input[name=heat][value=logprob]")
    colored = js(page, "[...document.querySelectorAll('#tb-detail .seg.o-policy .tok')].filter(e => e.style.background).length")
    assert colored > 0
    page.click("input[name=heat][value=none]")
    page.click("#tb-toolerr")
    js(page, "(() => { const s = document.getElementById('tb-search'); s.value = 'boxed{41}'; s.dispatchEvent(new Event('input')); })()")
    found = js(page, "document.querySelectorAll('#tb-list .item').length")
    assert 0 < found < total
    js(page, "(() => { const s = document.getElementById('tb-search'); s.value = 'no such text anywhere'; s.dispatchEvent(new Event('input')); })()")
    assert js(page, "document.querySelectorAll('#tb-list .item').length") == 0
    js(page, "(() => { const s = document.getElementById('tb-search'); s.value = ''; s.dispatchEvent(new Event('input')); })()")
    assert page.errors == []


def test_tree_view_responds(page):
    page.click("#tabs button[data-tab=trees]")
    data = json.loads(js(page, "document.getElementById('tirl-data').textContent"))
    tree = data["runs"][0]["steps"][int(js(page, "document.getElementById('tr-step').selectedIndex"))]["trees"][0]
    assert js(page, "document.querySelectorAll('#tree-svg .node').length") == len(tree["nodes"])
    assert js(page, "document.querySelectorAll('#tree-svg .node.critical').length") == sum(n["critical"] for n in tree["nodes"]) > 0
    assert js(page, "document.querySelectorAll('#tree-svg .edge.elc').length") == sum(n["widened"] for n in tree["nodes"]) > 0
    fork = next(n for n in tree["nodes"] if n["fork"] and n["parent"] is not None)
    js(page, f"document.querySelector('#tree-svg .node[data-id=\"{fork['id']}\"]').dispatchEvent(new MouseEvent('mouseenter'))")
    assert js(page, "document.getElementById('tr-tip').dataset.node") == fork["id"]
    tip = js(page, "document.getElementById('tr-tip').textContent")
    assert "branch advantage A_b" in tip and "trajectory advantage A_t" in tip and "continuations" in tip
    page.screenshot(page.shots / "elpo_tree.png")
    leaf = next(n for n in tree["nodes"] if n["trajectory"])
    page.click(f"#tree-svg .node[data-id='{leaf['id']}']")
    assert js(page, "document.getElementById('tab-trajectories').classList.contains('active')")
    assert js(page, "document.getElementById('tb-detail').dataset.key") == leaf["trajectory"]
    assert page.errors == []


def test_evaluations_side_by_side(page):
    page.click("#tabs button[data-tab=evals]")
    assert js(page, "document.getElementById('ev-a').value") == "before" and js(page, "document.getElementById('ev-b').value") == "after"
    tasks = js(page, "[...document.getElementById('ev-task').options].map(o => o.value)")
    assert len(tasks) == 3
    js(page, f"(() => {{ const s = document.getElementById('ev-task'); s.value = {json.dumps(tasks[1])}; s.dispatchEvent(new Event('change')); }})()")
    for side in ("ev-left", "ev-right"):
        assert js(page, f"document.querySelector('#{side} .detail, #{side} [data-key]').dataset.key").split("/")[3] == tasks[1]
    js(page, "(() => { const s = document.querySelector('#ev-right .ev-sample'); s.value = '1'; s.dispatchEvent(new Event('change')); })()")
    assert js(page, "document.querySelector('#ev-right [data-key]').dataset.key").endswith("/1")
    page.screenshot(page.shots / "evaluations.png")
    assert page.errors == []


def test_the_checker_sees_errors(tmp_path):
    """A page with a script error and a failed load is reported: the checks above can fail."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><img src='missing.png'><script>console.error('boom'); undefinedFunction();</script></body></html>")
    with Chromium() as b:
        b.open(bad.as_uri())
        joined = " | ".join(b.errors)
        assert "boom" in joined and "undefinedFunction" in joined
        with pytest.raises(BrowserError, match="no element"):
            b.click("#nothing-here")
