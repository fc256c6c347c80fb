"""Open every page of the built book in headless Chromium and check what a reader would see.

Usage (from the repository root, after ``make book``)::

    .venv/bin/python tools/check_book.py _build/html --screenshots _build/screenshots

Each page is loaded from ``file://`` in a real browser (Chromium, driven over the DevTools
protocol through a pipe, so no WebDriver or extra Python package is needed), MathJax is allowed
to finish, and the page fails on:

* a MathJax error or math left unrendered (``$…$``, ``\\(…\\)``, ``$$…$$`` in the text);
* a broken image (not loaded, or zero size);
* an error, warning or traceback in a cell output (stderr streams, ``Traceback``, ``…Warning:``),
  or a JavaScript exception on the page;
* a stray object repr (``<matplotlib.legend.Legend at 0x7f…>``);
* an absolute path of the build machine in any output (``/root/``, ``/home/``, ``/work/``,
  ``site-packages``, ``.venv``);
* a link inside the book that does not resolve (missing file or missing ``#anchor``);
* a request to any host outside the book's own files (the book must read offline).

A full-page screenshot of each page is saved for a person to look at. The exit status is 1 when
any page has a finding, 2 when no browser could be started.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome", "chromium-headless-shell")
PAGE_TIMEOUT_S = 60.0
# Console errors that are defects of the Jupyter Book 1 theme itself, not of this book, and that a
# reader never sees: sphinx-thebe's inline configuration script is emitted twice on every page, so
# its second `const THEBE_JS_URL` throws. Thebe only runs when a reader presses a launch button,
# which this offline book does not show. Anything else on the console is a finding.
KNOWN_THEME_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
# Schemes a page of an offline book may request: its own files and in-memory resources.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome-error:", "chrome:", "devtools:")

# Runs in the page once MathJax is done: everything the checks need, as JSON.
_INSPECT_JS = r"""
(() => {
  const text = el => (el.innerText || el.textContent || "");
  const main = document.querySelector("main") || document.body;
  const clone = main.cloneNode(true);
  // Text a reader sees outside code, math and outputs: where unrendered math would show.
  clone.querySelectorAll("pre, code, mjx-container, script, style, .cell_input, .cell_output, "
                         + "div.highlight, .MathJax").forEach(e => e.remove());
  const outputs = Array.from(document.querySelectorAll(".cell_output, .output")).map(o => ({
    cls: o.className, text: text(o).slice(0, 4000)}));
  const stderr = Array.from(document.querySelectorAll(
      ".cell_output .stderr, .output.stderr, .output.traceback, .cell_output .traceback"))
      .map(o => text(o).slice(0, 500));
  const images = Array.from(document.images).map(img => ({
    src: img.getAttribute("src") || "", ok: img.complete && img.naturalWidth > 0 && img.naturalHeight > 0}));
  const links = Array.from(document.querySelectorAll("a[href]")).map(a => a.getAttribute("href"));
  const ids = Array.from(document.querySelectorAll("[id]")).map(e => e.id)
      .concat(Array.from(document.querySelectorAll("a[name]")).map(e => e.getAttribute("name")));
  return JSON.stringify({
    title: document.title,
    mathErrors: Array.from(document.querySelectorAll("mjx-merror, .MathJax_Error, [data-mjx-error]"))
        .map(e => e.getAttribute("data-mjx-error") || text(e))
        // MathJax's noundefined extension typesets an unknown macro as its name in red
        .concat(Array.from(document.querySelectorAll("mjx-container [style*='color: red']"))
                .map(e => "undefined macro " + text(e)))
        .slice(0, 10),
    mathRendered: document.querySelectorAll("mjx-container").length,
    prose: text(clone).slice(0, 200000),
    outputs, stderr, images, links, ids});
})()
"""


class BrowserError(RuntimeError):
    """No browser could be started or it stopped answering."""


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH (or ``$CONDSPACE_BROWSER``), else ``None``."""
    explicit = os.environ.get("CONDSPACE_BROWSER")
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (NUL-separated JSON messages).

    The pipe needs no port, no WebDriver and no Python package beyond the standard library.
    """

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="condspace-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--allow-file-access-from-files", f"--user-data-dir={self._profile}",
                "--hide-scrollbars", "--window-size=1280,900",
                # No name resolves: a request to a host is still seen (and reported) but never leaves.
                "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"]

        def wire() -> None:  # in the child: the protocol wants fds 3 (commands in) and 4 (replies out)
            # Move both ends out of the way first: either may already sit on 3 or 4, and dup2 onto
            # itself would keep it close-on-exec.
            cmd_in, reply_out = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(cmd_in, 3)
            os.dup2(reply_out, 4)

        # close_fds=False: subprocess would otherwise close fds 3 and 4 after wire() ran. Every other
        # descriptor of this process is close-on-exec (os.pipe and open make them so), so none leaks.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=None if os.environ.get("CONDSPACE_BROWSER_LOG") else subprocess.DEVNULL,
                                      preexec_fn=wire, close_fds=False)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    # ----- protocol ---------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError("the browser closed its DevTools pipe (did it crash?)")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = PAGE_TIMEOUT_S) -> dict:
        """Send one DevTools command and return its result (events seen meanwhile are kept)."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = PAGE_TIMEOUT_S) -> None:
        """Wait until the event ``method`` arrives for ``session``."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return
            self.events.append(self._read_message(deadline))

    def new_page(self) -> str:
        """Open a tab, attach to it and enable the domains the checks listen to; returns the session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        return session

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        try:
            self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----- the checks ----------------------------------------------------------------------------------
@dataclass
class PageReport:
    """What one page showed: its findings (empty when the page is clean) and its screenshot."""

    page: str
    findings: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    math_rendered: int = 0


_ABSOLUTE_PATHS = ("/root/", "/home/", "/work/", "/tmp/", "/Users/", "site-packages", ".venv/", "C:\\")


def _output_findings(outputs: list[dict], stderr: list[str]) -> list[str]:
    import re

    found = [f"stderr/traceback output: {s.strip()[:200]!r}" for s in stderr if s.strip()]
    for out in outputs:
        text = out["text"]
        if re.search(r"Traceback \(most recent call last\)|^\w*Error: ", text, re.M):
            found.append(f"error in an output: {text.strip()[:200]!r}")
        if re.search(r"\b\w*Warning\b:", text):
            found.append(f"warning in an output: {text.strip()[:200]!r}")
        if re.search(r"<[\w.]+(?: object)? at 0x[0-9a-fA-F]+>", text):
            found.append(f"stray object repr in an output: {re.search(r'<[^<>]* at 0x[0-9a-fA-F]+>', text)[0]!r}")
        hits = [p for p in _ABSOLUTE_PATHS if p in text]
        if hits:
            found.append(f"absolute path of the build machine in an output ({hits[0]!r}): {text.strip()[:200]!r}")
    return sorted(set(found))


def _math_findings(data: dict) -> list[str]:
    import re

    found = [f"MathJax error: {e.strip()[:200]!r}" for e in data["mathErrors"]]
    prose = data["prose"]
    for pattern, what in ((r"\$\$[^$]+\$\$", "display math"), (r"(?<![\w$\\])\$[^$\s][^$\n]*?\$(?![\w$])",
                                                                    "inline math"),
                          (r"\\\(.+?\\\)", "\\( \\) math"), (r"\\\[.+?\\\]", "\\[ \\] math")):
        m = re.search(pattern, prose, re.S)
        if m:
            found.append(f"unrendered {what} in the text: {m[0][:80]!r}")
    return found


def _link_findings(page: Path, root: Path, links: list[str], ids_of) -> list[str]:
    found = []
    for href in links:
        if not href or href.startswith(("mailto:", "javascript:")):
            continue
        parsed = urlparse(href)
        if parsed.scheme in ("http", "https"):
            continue  # an external link is a citation a reader may follow; it is not loaded
        if parsed.scheme and parsed.scheme != "file":
            continue
        target = page if not parsed.path else (page.parent / unquote(parsed.path)).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            shown = target.relative_to(root) if target.is_relative_to(root) else target
            found.append(f"broken link {href!r} (no file {shown})")
            continue
        if parsed.fragment and target.suffix == ".html" and unquote(parsed.fragment) not in ids_of(target):
            found.append(f"broken link {href!r} (no #{parsed.fragment} in {target.name})")
    return found


def _request_findings(events: list[dict], session: str) -> list[str]:
    found = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith(LOCAL_SCHEMES):
                found.append(f"request outside the book (it must read offline): {url[:120]}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"a resource failed to load: {params.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            det = params.get("exceptionDetails", {})
            what = str(det.get("exception", {}).get("description", det.get("text")))
            if not any(known in what for known in KNOWN_THEME_ERRORS):
                found.append(f"JavaScript exception: {what!r}"[:300])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append(f"browser console error: {params['entry'].get('text', '')[:200]!r}")
    return found


def check_page(browser: Chromium, page: Path, root: Path, screenshots: Path | None, ids_of) -> PageReport:
    """Load ``page`` in a fresh tab, wait for MathJax, run every check and take a screenshot."""
    report = PageReport(str(page.relative_to(root)))
    browser.events.clear()
    session = browser.new_page()
    browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    browser.wait_for("Page.loadEventFired", session)
    # MathJax 3 typesets asynchronously after load; its startup promise resolves when it is done.
    browser.send("Runtime.evaluate", {"expression": "(window.MathJax && MathJax.startup && MathJax.startup.promise)"
                                      " ? MathJax.startup.promise.then(() => true) : true",
                                      "awaitPromise": True}, session=session)
    data = json.loads(browser.send("Runtime.evaluate", {"expression": _INSPECT_JS, "returnByValue": True},
                                   session=session)["result"]["value"])
    report.math_rendered = data["mathRendered"]
    report.findings += _math_findings(data)
    report.findings += [f"broken image {img['src']!r}" for img in data["images"] if not img["ok"]]
    report.findings += _output_findings(data["outputs"], data["stderr"])
    report.findings += _link_findings(page, root, data["links"], ids_of)
    report.findings += _request_findings(browser.events, session)
    report.findings = list(dict.fromkeys(report.findings))  # a redirect or retry reports twice
    if screenshots is not None:
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                            session=session)
        out = screenshots / (report.page.replace("/", "__").removesuffix(".html") + ".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        report.screenshot = out
    browser.send("Target.closeTarget", {"targetId": _target_of(browser, session)})
    return report


def _target_of(browser: Chromium, session: str) -> str:
    for ev in browser.events:
        if ev.get("method") == "Target.attachedToTarget" and ev["params"].get("sessionId") == session:
            return ev["params"]["targetInfo"]["targetId"]
    targets = browser.send("Target.getTargets")["targetInfos"]
    return next(t["targetId"] for t in targets if t.get("type") == "page" and t.get("attached"))


def book_pages(html: Path) -> list[Path]:
    """The pages a reader reaches: every ``.html`` of the built book except Sphinx's own scaffolding."""
    skip = {"_static", "_sources", "_images", "_downloads", ".doctrees"}
    return sorted(p for p in html.rglob("*.html") if not (set(p.relative_to(html).parts) & skip))


def _ids_reader():
    import re

    cache: dict[Path, set[str]] = {}

    def ids_of(target: Path) -> set[str]:
        if target not in cache:
            text = target.read_text(encoding="utf-8", errors="replace")
            cache[target] = set(re.findall(r'\b(?:id|name)="([^"]+)"', text))
        return cache[target]

    return ids_of


def check_book(html: str | os.PathLike, screenshots: str | os.PathLike | None = None,
               pages: list[Path] | None = None, browser: str | None = None) -> list[PageReport]:
    """Check every page of a built book (``_build/html``) in headless Chromium.

    Args:
        html: The built HTML folder (holds ``index.html``).
        screenshots: Folder for one full-page PNG per page; ``None`` takes none.
        pages: Only these pages (default every page of the book).
        browser: Browser executable (default: the first Chromium found on PATH).

    Returns:
        One :class:`PageReport` per page, in order.

    Raises:
        FileNotFoundError: ``html`` has no ``index.html``.
        BrowserError: No browser found or it could not be driven.
    """
    root = Path(html).resolve()
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"{root}: no index.html; build the book first (make book)")
    exe = browser or find_browser()
    if exe is None:
        raise BrowserError("no Chromium found on PATH; install one with `make browser` "
                           "(Debian's chromium package) or set CONDSPACE_BROWSER")
    shots = Path(screenshots) if screenshots is not None else None
    ids_of = _ids_reader()
    with Chromium(exe) as chrome:
        return [check_page(chrome, p.resolve(), root, shots, ids_of) for p in (pages or book_pages(root))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", default="_build/html", help="built book folder (default _build/html)")
    parser.add_argument("--screenshots", default=None, help="folder for one PNG per page (default: none)")
    args = parser.parse_args(argv)
    try:
        reports = check_book(args.html, args.screenshots)
    except (BrowserError, FileNotFoundError) as exc:
        print(f"check_book: {exc}", file=sys.stderr)
        return 2
    bad = 0
    for rep in reports:
        status = "ok" if not rep.findings else f"{len(rep.findings)} finding(s)"
        print(f"{rep.page:45s} {status:14s} math {rep.math_rendered:4d}")
        for f in rep.findings:
            print(f"    - {f}")
        bad += bool(rep.findings)
    shots = f"; screenshots in {args.screenshots}" if args.screenshots else ""
    print(f"{len(reports)} pages, {bad} with findings{shots}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
