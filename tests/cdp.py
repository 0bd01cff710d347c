"""A minimal headless-Chromium driver over the DevTools protocol, standard library only.

Chromium is started with ``--remote-debugging-pipe``: it reads commands on fd 3 and writes
responses and events on fd 4, each message one JSON object followed by a NUL byte. No port is
opened, so nothing else on the machine can talk to it.

    with Browser(chromium_path, tmp_path) as browser:
        page = browser.open(Path("report.html").as_uri())
        assert page.evaluate("document.title") == "..."
        png = page.screenshot(clip=page.rect("svg.path"))

Also a small PNG decoder (``decode_png``) so tests can count the pixels of a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--remote-debugging-pipe",
)


class CDPError(RuntimeError):
    """A DevTools command failed, timed out, or the browser went away."""


class Browser:
    """One headless Chromium process driven through the DevTools pipe."""

    def __init__(self, executable: str, user_data_dir: Path, *, width: int = 1400, height: int = 1000,
                 timeout: float = 90.0) -> None:
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._responses: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next_id = 0
        self._closed = False
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # in the child, before exec: fd 3 = commands in, fd 4 = messages out
            cmd_in, msg_out = os.dup(to_child_r), os.dup(from_child_w)  # above 4: no clobbering
            os.dup2(cmd_in, 3)  # os.dup2 makes the target inheritable (no close-on-exec)
            os.dup2(msg_out, 4)

        Path(user_data_dir).mkdir(parents=True, exist_ok=True)
        args = [executable, *FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}",
                "about:blank"]
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed browser binary with fixed flags
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire_fds, close_fds=False,  # noqa: PLW1509 - needed to place the pipe on fds 3/4
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._stderr: list[bytes] = []
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()
        self.version = self.send("Browser.getVersion")

    # -- plumbing ---------------------------------------------------------------------------
    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self._stderr) < 200:
                self._stderr.append(line)

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._responses[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def stderr_tail(self) -> str:
        return b"".join(self._stderr[-20:]).decode("utf-8", "replace")

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_child, data):]
        except OSError as exc:
            raise CDPError(f"{method}: browser pipe closed ({exc}); stderr: {self.stderr_tail()}") from exc
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._responses:
                left = deadline - time.monotonic()
                if self._closed:
                    raise CDPError(f"{method}: browser exited; stderr: {self.stderr_tail()}")
                if left <= 0:
                    raise CDPError(f"{method}: no answer within {timeout or self.timeout} s")
                self._cond.wait(left)
            resp = self._responses.pop(mid)
        if "error" in resp:
            raise CDPError(f"{method}: {resp['error']}")
        return resp.get("result", {})

    def wait_event(self, method: str, *, session: str | None = None, since: int = 0,
                   timeout: float | None = None) -> dict[str, Any]:
        """The first event ``method`` (of ``session``) at or after index ``since`` of ``events``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for ev in self.events[since:]:
                    if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                        return ev
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise CDPError(f"no {method} event within {timeout or self.timeout} s")
                self._cond.wait(left)

    def events_of(self, session: str, *methods: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("sessionId") == session and e.get("method") in methods]

    # -- pages ------------------------------------------------------------------------------
    def open(self, url: str, *, auto_dismiss_dialogs: bool = True, javascript: bool = True) -> Page:
        """A new tab with console, network and page events recorded, navigated to ``url``.

        Dialogs (``alert()``) are recorded and dismissed so they cannot block the page;
        ``javascript=False`` loads the page with script execution disabled."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        if not javascript:
            self.send("Emulation.setScriptExecutionDisabled", {"value": True}, session=session)
        since = len(self.events)
        self.send("Page.navigate", {"url": url}, session=session)
        if auto_dismiss_dialogs:
            page._dismiss_dialogs_until_load(since)
        else:
            self.wait_event("Page.loadEventFired", session=session, since=since)
        return page

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(CDPError):
                self.send("Browser.close", timeout=5)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Page:
    browser: Browser
    session: str
    target: str

    def _dismiss_dialogs_until_load(self, since: int) -> None:
        deadline = time.monotonic() + self.browser.timeout
        seen = since
        while time.monotonic() < deadline:
            with self.browser._cond:
                new = self.browser.events[seen:]
                seen = len(self.browser.events)
            for ev in new:
                if ev.get("sessionId") != self.session:
                    continue
                if ev.get("method") == "Page.javascriptDialogOpening":
                    self.browser.send("Page.handleJavaScriptDialog", {"accept": False}, session=self.session)
                if ev.get("method") == "Page.loadEventFired":
                    return
            with self.browser._cond:
                if len(self.browser.events) == seen:
                    self.browser._cond.wait(0.2)
        raise CDPError("page did not finish loading")

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True})
        if "exceptionDetails" in res:
            raise CDPError(f"evaluate failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def rect(self, selector: str) -> dict[str, float]:
        """Bounding box of the first element matching ``selector``, in page (document) pixels."""
        script = (
            "(() => { const e = document.querySelector(SEL); if (!e) return null;"
            " e.scrollIntoView(); const r = e.getBoundingClientRect();"
            " return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height}; })()"
        )
        got = self.evaluate(script.replace("SEL", json.dumps(selector)))
        if got is None:
            raise CDPError(f"no element matches {selector!r}")
        return got

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    # what happened on the page
    def exceptions(self) -> list[dict[str, Any]]:
        return self.browser.events_of(self.session, "Runtime.exceptionThrown")

    def console_errors(self) -> list[str]:
        out = []
        for ev in self.browser.events_of(self.session, "Runtime.consoleAPICalled", "Log.entryAdded"):
            p = ev["params"]
            if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif ev["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"{p['entry'].get('source')}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.browser.events_of(self.session, "Network.requestWillBeSent")]

    def dialogs(self) -> list[str]:
        return [e["params"].get("message", "") for e in
                self.browser.events_of(self.session, "Page.javascriptDialogOpening")]


# -- PNG ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Image:
    width: int
    height: int
    channels: int  # 3 (RGB) or 4 (RGBA)
    rows: tuple[bytes, ...]

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        c = self.channels
        return tuple(self.rows[y][x * c:(x + 1) * c])

    def count(self, predicate) -> int:  # type: ignore[no-untyped-def]
        c = self.channels
        return sum(1 for row in self.rows for i in range(0, len(row), c) if predicate(row[i:i + c]))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> Image:
    """8-bit RGB/RGBA, non-interlaced PNG (what Chromium's screenshots are) to rows of pixels."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up_left = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 0xFF
        elif ftype != 0:
            raise ValueError(f"bad PNG filter {ftype} on row {y}")
        rows.append(bytes(line))
        prev = line
    return Image(width, height, bpp, tuple(rows))
