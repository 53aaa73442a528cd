"""Debian's Chromium driven by Selenium through Debian's chromium-driver: never a downloaded browser.

The flags keep the browser off the network beyond the page under test: on this machine's closed
network its background connections (updates, sync, field trials) would otherwise hang or fail."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from connectors import http_tls

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1400",
)  # fmt: skip


def trust_flags() -> list[str]:
    """Chromium's way to trust the stack's HTTPS leaf alone (pinned by its public key's SHA-256),
    in this throwaway profile: nothing else is trusted beyond the system's CAs."""
    from jarvis.config import settings

    s = settings()
    if not s.http_secure:
        return []
    cert = x509.load_pem_x509_certificates(http_tls.leaf_files(s)[0].read_bytes())[0]
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return [f"--ignore-certificate-errors-spki-list={base64.b64encode(hashlib.sha256(spki).digest()).decode()}"]


@contextmanager
def chromium() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "make install installs chromium and chromium-driver"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    profile = tempfile.mkdtemp(prefix="jarvis-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", *trust_flags()):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def login(driver: object, console: str, key: str, timeout: float = 20.0) -> None:
    """Log in to the console at `console` with `key` through its login page (the key is then kept in
    this tab's sessionStorage, so every page opened after in the tab sends it)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    d: Any = driver
    d.get(console + "#/objects")
    w = WebDriverWait(d, timeout)
    w.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#api-key"))).send_keys(key)
    d.find_element(By.CSS_SELECTOR, "#login").click()
    w.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#who button")))  # Log out: logged in
