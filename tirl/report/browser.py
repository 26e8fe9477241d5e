"""Headless Chromium driven over the Chrome DevTools Protocol, to check a report in a real browser
(the tests) and to take its screenshots (``scripts/report_screenshots.py``).

The protocol runs over a pipe (``--remote-debugging-pipe``: the browser reads commands on file
descriptor 3 and writes replies and events on 4, each a JSON message ended by a NUL byte), so no
port is opened, nothing else on the machine can connect, and no websocket client is needed.
Protocol reference: https://chromedevtools.github.io/devtools-protocol/ (Target, Page, Runtime,
Log, Network, Emulation domains).

What a page reports as an error is collected in ``errors``: uncaught exceptions
(``Runtime.exceptionThrown``), ``console.error`` / ``console.assert`` calls
(``Runtime.consoleAPICalled``) and the browser's own error entries (``Log.entryAdded``: a
resource that failed to load, a blocked request). ``requests`` lists every URL the page asked
for, so a test can check that a report loads nothing from the network.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tirl.errors import UserError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(UserError, RuntimeError):
    """Chromium is missing, did not start, or a page did not do what was asked."""


def find_chromium() -> str | None:
    """``TIRL_CHROMIUM``, else the first of ``NAMES`` on the PATH."""
    env = os.environ.get("TIRL_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, binary: str | None = None, width: int = 1400, height: int = 900, timeout_s: float = 60.0):
        binary = binary or find_chromium()
        if binary is None:
            raise BrowserError("Chromium is not installed (apt-get install chromium, or set TIRL_CHROMIUM to its path)")
        self.timeout_s = timeout_s
        # Chromium's own sandbox refuses to run as root, and cannot start where user namespaces are
        # off (many containers); the pages opened here are local report files
        try:
            self._start(binary, width, height, no_sandbox=os.geteuid() == 0)
        except BrowserError as e:
            if os.geteuid() == 0 or "sandbox" not in str(e).lower():
                raise
            self._start(binary, width, height, no_sandbox=True)

    def _start(self, binary: str, width: int, height: int, no_sandbox: bool) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self._events: list[dict] = []
        self._next_id = 0
        self._buf = b""
        self._profile = tempfile.mkdtemp(prefix="tirl-chromium-")
        self._log = open(Path(self._profile) / "stderr.log", "wb")  # noqa: SIM115 - closed in close()
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [
            binary,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            f"--window-size={width},{height}",
        ] + (["--no-sandbox"] if no_sandbox else [])

        def wire() -> None:
            # the browser expects the protocol on fds 3 and 4; dup first, as dup2 onto an fd that
            # already has the number would keep its close-on-exec flag
            r, w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        try:
            self._proc = subprocess.Popen(
                args + ["about:blank"], stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, preexec_fn=wire, close_fds=False
            )
        except OSError as e:
            self._cleanup_files()
            raise BrowserError(f"cannot start {binary}: {e.strerror or e}") from None
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    # -- the protocol --------------------------------------------------------------------------
    def _send(self, method: str, params: dict | None, session: str | None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"Chromium exited ({self._stderr_tail()})") from None
        return self._next_id

    def _recv(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"Chromium did not answer within {self.timeout_s:g} s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium exited ({self._stderr_tail()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self._on_event(msg)
        return msg

    def _call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        want = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._recv(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})

    def call(self, method: str, params: dict | None = None) -> dict:
        """A command to the page's session."""
        return self._call(method, params, self._session)

    def _on_event(self, msg: dict) -> None:
        m, p = msg["method"], msg.get("params", {})
        self._events.append(msg)
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
        elif m == "Network.requestWillBeSent":
            self.requests.append(p.get("request", {}).get("url", ""))

    def _wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        seen = len(self._events)
        while True:
            for msg in self._events[seen:]:
                if msg["method"] == method:
                    return msg
            seen = len(self._events)
            self._recv(deadline)

    # -- what tests and scripts use ------------------------------------------------------------
    def open(self, url: str, ready: str | None = None) -> None:
        """Load ``url`` and wait for its load event (and until the JS expression ``ready`` is true)."""
        del self._events[:]
        self.call("Page.navigate", {"url": url})
        self._wait_event("Page.loadEventFired")
        if ready is not None:
            self.wait_for(ready)

    def evaluate(self, expression: str) -> Any:
        """The value of a JS expression in the page (awaited when it is a promise)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError(f"{expression[:80]!r} raised {d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise BrowserError(f"the page never made {expression!r} true")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """Click the element ``selector`` names (a DOM click, as a user's on that element)."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false;"
            " e.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true; })()"
        )
        if not found:
            raise BrowserError(f"no element {selector!r} to click")

    def screenshot(self, path: Path, selector: str | None = None, full_page: bool = False, max_height: int | None = None) -> Path:
        """A PNG of the viewport, of the element ``selector`` names (its top ``max_height``
        pixels), or of the whole page."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            box = self.evaluate(
                f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null; e.scrollIntoView();"
                " const r = e.getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })()"
            )
            if box is None:
                raise BrowserError(f"no element {selector!r} to capture")
            if max_height is not None:
                box["height"] = min(box["height"], max_height)
            params.update({"clip": {**box, "scale": 1}, "captureBeyondViewport": True})
        elif full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update({"clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}, "captureBeyondViewport": True})
        data = self.call("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    # -- shutting down -------------------------------------------------------------------------
    def _stderr_tail(self) -> str:
        try:
            self._log.flush()
            lines = (Path(self._profile) / "stderr.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        useful = [line for line in lines if "dbus" not in line]  # a headless box has no D-Bus; Chromium says so at length
        return " | ".join(useful[-3:]) or "no log"

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                self._send("Browser.close", None, None)
                proc.wait(timeout=5)
            except (BrowserError, OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        for fd in (getattr(self, "_to_browser", None), getattr(self, "_from_browser", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_browser = self._from_browser = None
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
