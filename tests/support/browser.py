"""Drive a real headless Chromium (dump the DOM it built, take a
screenshot) and read the dumped DOM back with the standard library's
html.parser."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
QUIET_FLAGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
TIMEOUT_S = 90
# HTML elements that have no end tag
VOID = frozenset(
    (
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    )
)
INSTALL_HINT = "headless Chromium not found: run scripts/ensure-chromium.sh (CI installs it)"


def find_chromium() -> str | None:
    """The Chromium binary: /usr/bin/chromium, else ``chromium`` on PATH."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _run(binary: str, page: Path, *flags: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            binary,
            *CHROMIUM_FLAGS,
            *QUIET_FLAGS,
            f"--user-data-dir={profile}",
            *flags,
            page.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"chromium exited {done.returncode}: {' '.join(cmd)}\n"
            + done.stderr.decode(errors="replace")[-4000:]
        )
    return done


def dump_dom(binary: str, page: Path) -> str:
    """The DOM Chromium built from ``page``, serialized."""
    return _run(binary, page, "--dump-dom").stdout.decode("utf-8")


def screenshot(binary: str, page: Path, png: Path, size: tuple[int, int] = (1280, 2000)) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _run(binary, page, f"--screenshot={png}", f"--window-size={size[0]},{size[1]}")


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None = field(default=None, repr=False)
    parts: list[str] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        """All text inside the element (descendants included)."""
        return "".join(self.parts)

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def inside(self, other: Element) -> bool:
        """Whether ``other`` is an ancestor of this element."""
        node = self.parent
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


class DomCollector(HTMLParser):
    """Every element in document order, with its attributes and its text
    content; the text of <script> and <style> is kept too."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def _add(self, tag: str, attrs: list[tuple[str, str | None]]) -> Element:
        parent = self._open[-1] if self._open else None
        element = Element(tag, {k: v or "" for k, v in attrs}, parent)
        self.elements.append(element)
        return element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = self._add(tag, attrs)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    def find(
        self, tag: str | None = None, *, within: Element | None = None, **attrs: str
    ) -> list[Element]:
        """Elements with this tag (any if None), inside ``within`` if given,
        with these attribute values (``class_`` matches one class; other
        underscores in names become dashes)."""
        found = []
        for element in self.elements:
            if within is not None and not element.inside(within):
                continue
            if tag is not None and element.tag != tag:
                continue
            ok = True
            for key, want in attrs.items():
                if key == "class_":
                    ok = want in element.classes
                else:
                    ok = element.attrs.get(key.replace("_", "-")) == want
                if not ok:
                    break
            if ok:
                found.append(element)
        return found


def parse(html_text: str) -> DomCollector:
    collector = DomCollector()
    collector.feed(html_text)
    collector.close()
    return collector
