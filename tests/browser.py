"""Open the built site in a real browser: headless Chromium driven by Playwright, the site served
on 127.0.0.1. Finds Chromium where Debian installs it (``apt-get install chromium``) or
Playwright's own copy (``playwright install chromium``)."""

import functools
import http.server
import os
import shutil
import threading
from contextlib import contextmanager

# Chromium on its own fetches updates, safe-browsing lists and more; none of that is the site's.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serve(folder):
    """Serve ``folder`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def chromium_path():
    """Debian's Chromium, or None to use Playwright's own."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@contextmanager
def chromium():
    """A headless Chromium (a Playwright Browser). Raises RuntimeError saying what to install
    when there is none."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise RuntimeError("the browser tests need Playwright: pip install -e \".[dev]\"")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=chromium_path(),
                                                 args=CHROMIUM_ARGS)
        except Error as error:
            raise RuntimeError(f"no Chromium to run: apt-get install chromium (or playwright "
                               f"install chromium) ({str(error).splitlines()[0]})")
        try:
            yield browser
        finally:
            browser.close()


class PageVisit:
    """One page opened in a fresh browser context, with everything it asked the network for and
    everything it reported as an error."""

    def __init__(self, browser, url, width, height, color_scheme="light"):
        self.context = browser.new_context(viewport={"width": width, "height": height},
                                           color_scheme=color_scheme)
        self.page = self.context.new_page()
        self.requests, self.failures, self.errors = [], [], []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("requestfailed", lambda request: self.failures.append(
            f"{request.url} ({request.failure})"))
        self.page.on("response", lambda response: response.status >= 400 and self.failures.append(
            f"{response.url} (HTTP {response.status})"))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(
            message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url, wait_until="load")
        # MathJax typesets after the load event; its queue runs the callback when it is done.
        self.page.evaluate("() => new Promise(done => window.MathJax && MathJax.Hub "
                           "? MathJax.Hub.Queue(() => done(true)) : done(false))")
        self.page.wait_for_load_state("networkidle")

    def close(self):
        self.context.close()
