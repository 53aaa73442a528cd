"""The web console in a real browser (Debian's Chromium) against the real stack: it lists what the
test wrote, draws a time series, a graph and a workflow timeline, updates live, shows a rejected
operation with its reason, replays an older value with the history slider, and keeps a hostile
object id inert. Screenshots go to .jarvis/screenshots/."""

from __future__ import annotations

import math
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from connectors import api_client
from connectors.sdk import Client
from jarvis.stack.stack import console_url
from tests.integration.browser import chromium, login
from tests.integration.cli_helpers import curl
from tests.integration.pipeline_helpers import get_json, object_url, read_value, wait_until

pytestmark = pytest.mark.integration

UID = uuid.uuid4().hex[:6]
HOSTILE = f"reg:<img src=x onerror=alert(1)>{UID}"
IDS = {
    "ts": f"ts:console-{UID}",
    "graph": f"g:console-{UID}",
    "wf": f"wf:console-{UID}",
    "live": f"ctr:console-{UID}-live",
    "rejected": f"ctr:console-{UID}-rejected",
    "history": f"reg:console-{UID}-history",
    "members": f"gs:console-{UID}",
}
LISTED = [f"ctr:console-{UID}-list-{i}" for i in range(3)]
TS_POINTS = [(1_700_000_000.0 + 10 * i, float(v)) for i, v in enumerate([3, 7, 4, 9, 12, 6])]


@pytest.fixture(scope="module")
def written(stack) -> dict[str, Any]:
    s = stack.settings
    q = s.region_config("eu").query_url
    a = Client(region="eu", node_id="console-a", dev_trust=True)
    b = Client(region="eu", node_id="console-b", dev_trust=True)
    for oid in LISTED:
        a.counter(oid).increment(1)
    for t, v in TS_POINTS:
        a.timeseries(IDS["ts"]).append_data_point(t, v)
    g = a.graph(IDS["graph"])
    for v in ("a", "b", "c", "d"):
        g.add_vertex(v)
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("a", "d")
    wf = a.workflow(IDS["wf"])
    wf.transition("submitted")
    a.flush()
    wf.transition("approved")  # two concurrent decisions from "submitted": the earlier one wins
    b.workflow(IDS["wf"]).transition("rejected")
    a.counter(IDS["live"]).increment(5)
    a.register(HOSTILE).write("<script>alert(2)</script>")
    a.gset(IDS["members"]).add("<img src=y onerror=alert(3)>")
    a.register(IDS["history"]).write("first value")
    a.flush()
    b.flush()
    time.sleep(1.5)  # the history slider moves between the two writes' milliseconds
    a.register(IDS["history"]).write("second value")
    a.counter(IDS["rejected"]).increment(5_000_000_000_000)  # above max_abs_number: rejected
    a.flush()
    assert wait_until(lambda: read_value(q, IDS["history"]) == "second value", 60)
    assert wait_until(lambda: all(read_value(q, i) is not None for i in (*LISTED, IDS["live"], HOSTILE)), 60)
    assert wait_until(lambda: (read_value(q, IDS["wf"]) or {}).get("state") == "approved", 60)

    def archived() -> bool:
        st, body = get_json(object_url(q, IDS["history"]) + "/history")
        return st == 200 and len(body["history"]) == 2

    assert wait_until(archived, 60), "the archive never held both register writes"
    return {"client": a, "query_url": q, "console": console_url(s, "eu")}


@pytest.fixture(scope="module")
def browser(stack) -> Iterator[Any]:
    """A browser logged in to the eu console with the stack's admin key (the login page keeps the key
    in the tab's sessionStorage, so every page opened after in this tab sends it)."""
    with chromium() as driver:
        login(driver, console_url(stack.settings, "eu"), api_client.api_key(stack.settings) or "")
        yield driver


@pytest.fixture(scope="module")
def shots(stack):
    d = stack.settings.home / "screenshots"
    d.mkdir(parents=True, exist_ok=True)

    def shot(driver: Any, name: str) -> None:
        driver.save_screenshot(str(d / f"{name}.png"))

    return shot


def wait_for(driver: Any, css: str, timeout: float = 20.0, text: str | None = None) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    w = WebDriverWait(driver, timeout)
    if text is not None:
        w.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return w.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def open_page(driver: Any, base: str, route: str) -> None:
    driver.get(base + "#" + route)


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        _ = driver.switch_to.alert.text
    except NoAlertPresentException:
        return True
    return False


def test_console_policy_forbids_inline_script(written) -> None:
    with api_client.urlopen(written["console"], 5) as r:
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_lists_the_objects_written_and_pages_through_them(written, browser, shots) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, written["console"], f"/objects?prefix=ctr:console-{UID}-list-&limit=2")
    wait_for(browser, "#listing a.oid")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def ids(d: Any) -> list[str] | bool:  # the listing may redraw between the find and the read
        try:
            return [e.text for e in d.find_elements(By.CSS_SELECTOR, "#listing a.oid")] == LISTED[:2]
        except StaleElementReferenceException:
            return False

    WebDriverWait(browser, 20).until(ids)
    shots(browser, "objects")
    browser.find_element(By.ID, "next").click()
    wait_for(browser, "#listing", text="page 2")
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#listing a.oid")] == LISTED[2:]


def test_draws_a_time_series_chart_with_windows(written, browser, shots) -> None:
    open_page(browser, written["console"], "/object/" + urllib.parse.quote(IDS["ts"], safe=""))
    chart = wait_for(browser, "#ts-chart path.series")
    assert browser.find_element("id", "ts-chart").get_attribute("data-points") == str(len(TS_POINTS))
    assert chart.get_attribute("d").count("L") == len(TS_POINTS) - 1
    buckets = browser.find_elements("css selector", "#ts-buckets rect.bar")
    assert len(buckets) == len({math.floor(t / 60) for t, _ in TS_POINTS})  # the default 60 s windows
    shots(browser, "timeseries")


def test_draws_a_graph_and_its_shortest_path(written, browser, shots) -> None:
    from selenium.webdriver.support.ui import Select

    open_page(browser, written["console"], "/object/" + urllib.parse.quote(IDS["graph"], safe=""))
    svg = wait_for(browser, "svg.graph")
    assert svg.get_attribute("data-vertices") == "4"
    assert len(browser.find_elements("css selector", "svg.graph line.edge")) == 3
    Select(browser.find_element("id", "path-from")).select_by_visible_text("c")
    Select(browser.find_element("id", "path-to")).select_by_visible_text("d")
    browser.find_element("id", "path-go").click()
    wait_for(browser, "#path-result", text="path: c → b → a → d")
    assert len(browser.find_elements("css selector", "svg.graph line.on-path")) == 3
    shots(browser, "graph")


def test_draws_a_workflow_timeline_with_the_concurrent_transition_that_lost(written, browser, shots) -> None:
    open_page(browser, written["console"], "/object/" + urllib.parse.quote(IDS["wf"], safe=""))
    svg = wait_for(browser, "svg.timeline")
    assert svg.get_attribute("data-steps") == "3"
    assert len(browser.find_elements("css selector", "svg.timeline g.step.won")) == 2
    assert len(browser.find_elements("css selector", "svg.timeline g.step.lost")) == 1
    assert len(browser.find_elements("css selector", "svg.timeline rect.contest")) == 1
    assert "won over 1 concurrent" in browser.find_element("id", "main").text
    shots(browser, "workflow")


def test_updates_live_after_an_operation_is_written(written, browser, shots) -> None:
    open_page(browser, written["console"], "/object/" + urllib.parse.quote(IDS["live"], safe=""))
    wait_for(browser, "#value", text="5")
    wait_for(browser, "#live.live")
    time.sleep(0.5)  # the relay has subscribed once the first state event arrived
    t0 = time.monotonic()
    written["client"].counter(IDS["live"]).increment(2)
    written["client"].flush()
    wait_for(browser, "#value", timeout=20, text="7")
    print(f"live update on screen {time.monotonic() - t0:.2f} s after the write was flushed")
    assert "1 update" in browser.find_element("id", "live").text or "update(s)" in browser.find_element("id", "live").text
    shots(browser, "live")


def test_shows_a_rejected_operation_with_its_reason(written, browser, shots) -> None:
    route = "/rejected?" + urllib.parse.urlencode({"prefix": IDS["rejected"], "reason": "out of range"})
    open_page(browser, written["console"], route)
    wait_for(browser, "#rejected-rows", timeout=30, text=IDS["rejected"])
    rows = browser.find_element("id", "rejected-rows").text
    assert "out of range" in rows and "console-a" in rows
    browser.find_element("css selector", "#rejected-rows tr.clickable").click()
    wait_for(browser, "#rejected-detail", text='"increment"')
    assert "5000000000000" in browser.find_element("id", "rejected-detail").text
    shots(browser, "rejected")


def test_history_slider_shows_the_older_value(written, browser, shots) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, written["console"], "/history/" + urllib.parse.quote(IDS["history"], safe=""))
    wait_for(browser, "#at-value", text="second value")
    browser.find_element("id", "slider").send_keys(Keys.HOME)
    wait_for(browser, "#at-value", text="first value")
    assert "second value" not in browser.find_element("id", "at-value").text
    assert "after operation 1 of 2" in browser.find_element("id", "at").text
    shots(browser, "history")


def test_hostile_content_renders_as_text(written, browser, shots) -> None:
    open_page(browser, written["console"], "/object/" + urllib.parse.quote(HOSTILE, safe=""))
    wait_for(browser, "#value", text="<script>alert(2)</script>")
    assert browser.find_element("id", "object-id").text == HOSTILE
    assert browser.find_elements("css selector", "main img, main script") == []
    assert no_alert(browser)
    open_page(browser, written["console"], "/objects?prefix=" + urllib.parse.quote(HOSTILE, safe=""))
    wait_for(browser, "#listing a.oid", text=HOSTILE)
    open_page(browser, written["console"], "/object/" + urllib.parse.quote(IDS["members"], safe=""))
    wait_for(browser, "#members li", text="<img src=y onerror=alert(3)>")
    assert browser.find_elements("css selector", "main img") == []
    assert no_alert(browser)
    # Nothing the page holds was ever parsed into an element: every <img> would be in the DOM.
    assert browser.execute_script("return document.images.length") == 0
    shots(browser, "hostile")


def test_operation_page_traces_a_write_from_the_history(written, browser, shots) -> None:
    """The history's operation link opens the operation page: written and verified in eu, folded in
    both regions, archived, drawn on a timeline; the console's API answers bad asks with a 4xx."""
    from selenium.webdriver.common.by import By

    def traced() -> bool:
        open_page(browser, written["console"], "/history/" + urllib.parse.quote(IDS["history"], safe=""))
        wait_for(browser, "a.op-link", timeout=30)
        browser.find_elements(By.CSS_SELECTOR, "a.op-link")[0].click()
        wait_for(browser, "#trace-steps", timeout=60)
        return not browser.find_elements(By.ID, "trace-missing")

    assert wait_until(traced, 90), browser.find_element(By.ID, "trace").text
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#trace-steps tbody tr")]  # fmt: skip
    steps = [(r[0], r[1]) for r in rows]
    assert steps[:2] == [("written", "eu"), ("verified", "eu")]
    assert set(steps[2:]) == {("folded", "eu"), ("folded", "us"), ("archived", "archive")}
    assert all(int(r[3]) >= 0 for r in rows)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#trace-timeline rect.bar")) == len(rows)
    assert "ms end to end" in browser.find_element(By.ID, "trace-summary").text
    shots(browser, "trace")
    api = written["console"].rstrip("/") + "/api/trace"
    assert curl(api)[0] == 401  # curl, with no key
    admin = api_client.api_key()
    status, body, _ = curl(api + "?op=x", admin)
    assert status == 400 and "object" in body["error"]
    status, body, _ = curl(api + "?" + urllib.parse.urlencode({"op": "nope", "object": IDS["history"]}), admin)
    assert status == 404 and "no region's ingress holds operation nope" in body["error"]
