"""A real headless browser for tests: Debian's ``chromium``, driven over the DevTools protocol with
``websocket-client`` (already in the runtime lock: no browser-automation package). It clicks with real mouse events at
an element's position and types with real key input, so forms submit as they do for a person: the browser sets
``Origin``, sends its cookies and follows redirects.

``.ci/run`` installs chromium when it is absent; elsewhere the browser tests skip without it, unless
``TRADEOPS_REQUIRE_BROWSER=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The chromium binary; skips the test when there is none (fails instead under ``TRADEOPS_REQUIRE_BROWSER=1``)."""
    if CHROMIUM:
        return CHROMIUM
    message = "no chromium: `apt-get install chromium` (.ci/run installs it)"
    if os.environ.get("TRADEOPS_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless chromium with one page. Use as a context manager."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900, timeout: float = 30):
        self.profile, self.width, self.height, self.timeout = profile, width, height, timeout
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        import websocket

        self.profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                require_chromium(),
                "--headless=new",
                "--no-sandbox",  # root in a container: chromium's sandbox needs user namespaces
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.profile / "chromium.log").open("w"),
        )
        try:
            port = self._port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                targets = json.load(response)
            page = next(t for t in targets if t["type"] == "page")
            self.ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True
            )
            for domain in ("Page", "Runtime", "Network"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.process.kill()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _port(self) -> int:
        """The DevTools port chromium chose (written to ``DevToolsActivePort`` in the profile)."""
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}: see {self.profile}/chromium.log")
            if active.exists() and active.read_text().strip():
                return int(active.read_text().splitlines()[0])
            time.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port")

    # --- the protocol -----------------------------------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events that arrive meanwhile are kept)."""
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str, after: int = 0) -> dict[str, Any]:
        """The first ``event`` at or after position ``after`` of the events seen, waiting for it if need be."""
        deadline = time.monotonic() + self.timeout
        while True:
            for message in self.events[after:]:
                if message["method"] == event:
                    return message["params"]
            if time.monotonic() > deadline:
                raise BrowserError(f"no {event} within {self.timeout}s")
            self.events.append(json.loads(self.ws.recv()))

    def _navigation(self, start: Any) -> None:
        """Do ``start()`` and wait until the page it leads to has loaded."""
        mark = len(self.events)
        start()
        self.wait_for("Page.loadEventFired", after=mark)

    # --- what a person does -----------------------------------------------------------------------------------------

    def goto(self, url: str) -> None:
        self._navigation(lambda: self.call("Page.navigate", url=url))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str) -> None:
        """Wait until a JavaScript expression is true in the page (evaluated again across navigations)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if self.evaluate(expression):
                    return
            except BrowserError:  # the page is between documents
                pass
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression} still not true after {self.timeout}s")
            time.sleep(0.1)

    def _center(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()"
        )
        if not box or not box[2] or not box[3]:
            raise BrowserError(f"nothing visible matches {selector!r}")
        return box[0], box[1]

    def click(self, selector: str, *, navigates: bool = False) -> None:
        """A left click (mouse pressed and released) in the middle of the element."""
        x, y = self._center(selector)

        def press() -> None:
            for kind in ("mousePressed", "mouseReleased"):
                self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

        if navigates:
            self._navigation(press)
        else:
            press()

    def type(self, selector: str, text: str) -> None:
        """Click into a field and type."""
        self.click(selector)
        self.call("Input.insertText", text=text)

    def text(self, selector: str) -> str:
        return self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def url(self) -> str:
        return self.evaluate("location.href")

    def cookies(self) -> list[dict[str, Any]]:
        return self.call("Network.getCookies")["cookies"]

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page (its full height, at the window's width)."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1, mobile=False
        )
        try:
            self.evaluate("window.scrollTo(0, 0)")
            shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        finally:
            self.call("Emulation.clearDeviceMetricsOverride")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
