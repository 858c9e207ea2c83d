"""A headless Chromium driven over the Chrome DevTools Protocol, for the console's browser tests.

Chromium is started with `--remote-debugging-pipe`: it reads protocol messages on fd 3 and
writes answers on fd 4, each a JSON document ended by a NUL byte. That is the whole driver —
no chromedriver whose version must match the browser, no port, no extra package — and it is
asyncio, like the rest of the suite. Clicks and typing are real input events
(`Input.dispatchMouseEvent`, `Input.insertText`) at the element's place on the page.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.helpers.waiting import wait_for

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
VIEWPORT = (1440, 960)


class BrowserError(Exception):
    """A protocol command failed, or the page threw while evaluating an expression."""


def chromium_path() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One tab, attached with a flat session: every command carries its `sessionId`."""

    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self._browser = browser
        self._target = target
        self._session = session

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser.send(method, params, session=self._session)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await wait_for(self._loaded, what=f"{url} to load", within=15)

    async def _loaded(self) -> bool:
        return bool(await self.evaluate("document.readyState === 'complete'"))

    async def evaluate(self, expression: str) -> Any:
        """The expression's value (promises awaited), returned by value.

        Raises:
            BrowserError: the expression threw.
        """
        answer = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression!r} threw: {text}")
        return answer["result"].get("value")

    async def wait(self, expression: str, what: str, within: float = 15.0) -> Any:
        """Polls a JavaScript expression until it is truthy and returns its value."""

        async def truthy() -> Any:
            value = await self.evaluate(expression)
            return value or None

        return await wait_for(truthy, what=what, within=within, interval=0.05)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first element `selector` matches."""
        box = await self.wait(
            f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
                if (!el) return null; el.scrollIntoView({{block: 'center'}});
                const r = el.getBoundingClientRect();
                return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()""",
            what=f"{selector} to be visible",
        )
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def type_into(self, selector: str, text: str) -> None:
        """Replaces the field's text as a user would: focus, select all, type."""
        await self.click(selector)
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        await self.send("Input.insertText", text=text)

    async def close(self) -> None:
        await self._browser.send("Target.closeTarget", {"targetId": self._target})

    async def screenshot(self, path: Path) -> Path:
        answer = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        await asyncio.to_thread(_write, path, base64.b64decode(answer["data"]))
        return path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class Browser:
    def __init__(
        self, process: asyncio.subprocess.Process, commands: int, answers: asyncio.StreamReader
    ) -> None:
        self._process = process
        self._commands = commands
        self._answers = answers
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        try:
            while True:
                raw = await self._answers.readuntil(b"\0")
                message = json.loads(raw[:-1])
                waiter = self._waiting.pop(message.get("id", -1), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(BrowserError("chromium closed the DevTools pipe"))

    async def send(self, method: str, params: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        """Raises BrowserError: the browser answered with an error or went away."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[number] = waiter
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        answer = await asyncio.wait_for(waiter, 30)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, target["targetId"], attached["sessionId"])
        width, height = VIEWPORT
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page

    async def close(self) -> None:
        with contextlib.suppress(BrowserError, TimeoutError):
            await asyncio.wait_for(self.send("Browser.close", {}), 5)
        try:
            await asyncio.wait_for(self._process.wait(), 5)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        os.close(self._commands)


@asynccontextmanager
async def chromium(executable: str) -> AsyncIterator[Browser]:
    """A headless Chromium with a throw-away profile, closed on exit."""
    to_browser_read, to_browser_write = os.pipe()
    from_browser_read, from_browser_write = os.pipe()

    def wire_fds() -> None:
        """In the child, before exec: the protocol's fixed descriptors (via copies above 10, so
        that placing one cannot overwrite the other)."""
        reading = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
        writing = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
        os.dup2(reading, 3)
        os.dup2(writing, 4)

    with tempfile.TemporaryDirectory(prefix="console-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            executable,
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-sandbox",  # tests run as root in CI; Chromium's sandbox refuses root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            "--hide-scrollbars",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),  # kept open after `wire_fds` placed the pipes there
            preexec_fn=wire_fds,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        answers = asyncio.StreamReader(limit=64 * 1024 * 1024)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(answers), os.fdopen(from_browser_read, "rb")
        )
        browser = Browser(process, to_browser_write, answers)
        try:
            yield browser
        finally:
            await browser.close()
