"""Console speed in region eu of the real local stack (workers running, console included).

(a) First objects page: N counters `ctr:consbench-<run>-<i>` are written through the SDK, then the
    time to the first page of 50 objects under that prefix, three ways in the same run:
    the raw query API (`GET /v1/objects?prefix=&limit=50`, the baseline), the console's JSON API
    (`/api/objects`, which proxies it), and the browser (Debian's Chromium: navigation until the
    page's table lists 50 objects). Medians. Target: page < 500 ms in the browser.
(b) Live update: one object open in the browser; an increment is written; a thread polls the query
    API every 2 ms for the new value while the browser waits for it on screen. The delay is screen
    time minus queryable time (median of R rounds). Target: < 200 ms.
Run `jarvis stack up` first. `--quick`: N 10,000 and 3 rounds; default N 100,000 (`--objects 1000000`
for the issue's figure, which takes the pipeline a while to fold).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import orjson

from benchmarks.stack_check import require_stack
from connectors import api_client
from connectors.sdk import Client
from jarvis.config import settings
from jarvis.stack.stack import console_url
from tests.integration.browser import chromium, login

REGION = "eu"
PAGE = 50


def get(url: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    try:
        with api_client.urlopen(url, 30) as r:
            body = orjson.loads(r.read())
    except urllib.error.HTTPError as e:  # 404 until the object is folded
        body = {"error": e.code}
    return time.perf_counter() - t0, body


def write_objects(prefix: str, n: int) -> None:
    c = Client(region=REGION, node_id="bench-console", batch_size=1000, dev_trust=True)
    for i in range(n):
        c.counter(f"{prefix}{i:07d}").increment(1)
    c.flush()
    c.close()


def wait_listed(query: str, prefix: str, n: int, timeout: float) -> None:
    """Until the last object written is listed (objects are listed in id order)."""
    last = f"{prefix}{n - 1:07d}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = get(f"{query}/v1/objects/{urllib.parse.quote(last, safe='')}")
        if isinstance(body, dict) and body.get("value") == 1:
            return
        time.sleep(1)
    raise SystemExit(f"{last} not folded within {timeout:.0f} s")


def first_page(driver, console: str, query: str, prefix: str, rounds: int) -> dict[str, float]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    qs = urllib.parse.urlencode({"prefix": prefix, "limit": PAGE})
    raw = [get(f"{query}/v1/objects?{qs}")[0] for _ in range(rounds * 4)]
    api = [get(f"{console}api/objects?{qs}")[0] for _ in range(rounds * 4)]
    page = []
    for _ in range(rounds):
        driver.get("about:blank")
        t0 = time.perf_counter()
        driver.get(f"{console}#/objects?prefix={urllib.parse.quote(prefix, safe='')}")
        WebDriverWait(driver, 30, poll_frequency=0.005).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#listing a.oid")) == PAGE
        )
        page.append(time.perf_counter() - t0)
    return {"raw": statistics.median(raw), "api": statistics.median(api), "browser": statistics.median(page)}


def live_delay(driver, console: str, query: str, oid: str, rounds: int) -> list[float]:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    c = Client(region=REGION, node_id="bench-console-live", dev_trust=True)
    c.counter(oid).increment(1)
    c.flush()
    url = f"{query}/v1/objects/{urllib.parse.quote(oid, safe='')}"
    while get(url)[1].get("value") != 1:
        time.sleep(0.05)
    driver.get(f"{console}#/object/{urllib.parse.quote(oid, safe='')}")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "live").get_attribute("class") == "live")
    delays = []
    for want in range(2, 2 + rounds):
        seen: dict[str, float] = {}

        def poll(w: int = want, seen: dict[str, float] = seen) -> None:
            while get(url)[1].get("value") != w:
                time.sleep(0.002)
            seen["t"] = time.perf_counter()

        t = threading.Thread(target=poll)
        t.start()
        c.counter(oid).increment(1)
        c.flush()
        # A redraw replaces the element between two looks at it: stale is "not yet".
        WebDriverWait(driver, 30, poll_frequency=0.002, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d, w=want: d.find_element(By.ID, "value").text == str(w)
        )
        on_screen = time.perf_counter()
        t.join()
        delays.append(on_screen - seen["t"])
        time.sleep(0.5)
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--objects", type=int)
    ap.add_argument("--rounds", type=int)
    a = ap.parse_args()
    n = a.objects or (10_000 if a.quick else 100_000)
    rounds = a.rounds or (3 if a.quick else 10)
    s = settings()
    require_stack(s)
    query, console = s.region_config(REGION).query_url, console_url(s, REGION)
    prefix = f"ctr:consbench-{uuid.uuid4().hex[:6]}-"
    t0 = time.perf_counter()
    write_objects(prefix, n)
    wait_listed(query, prefix, n, timeout=max(120, n / 500))
    print(f"{n:,} objects written and folded in {time.perf_counter() - t0:.1f} s")
    with chromium() as driver:
        login(driver, console, api_client.api_key(s) or "")
        p = first_page(driver, console, query, prefix, rounds)
        print(f"first page of {PAGE} ({n:,} objects under the prefix), medians:")
        print(f"  raw query API        {p['raw'] * 1000:8.1f} ms   (baseline)")
        print(f"  console JSON API     {p['api'] * 1000:8.1f} ms   ({p['api'] / p['raw']:.1f}x raw)")
        print(f"  browser, to table    {p['browser'] * 1000:8.1f} ms   target < 500 ms", flush=True)
        d = live_delay(driver, console, query, f"ctr:consbench-live-{uuid.uuid4().hex[:6]}", rounds)
    print(f"live update, queryable -> on screen: median {statistics.median(d) * 1000:.1f} ms, "
          f"max {max(d) * 1000:.1f} ms over {len(d)} rounds   target < 200 ms")  # fmt: skip


if __name__ == "__main__":
    main()
