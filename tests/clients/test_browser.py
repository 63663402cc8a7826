"""The demo page, /docs and /redoc in a real headless Chromium (Debian's `chromium`,
driven by Playwright; nothing downloaded): the answers a person sees, right-to-left
Arabic, and no request to any host but the server.

``FACEMATCH_UPDATE_DOCS=1`` also writes the demo's screenshot to docs/demo.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from facematch.service.errors import CATALOGUE
from tests.clients.conftest import REPO, LiveClient, no_face_photo

pytestmark = [pytest.mark.lfw, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
ANSWER_TIMEOUT_MS = 120_000  # a match on a busy 2-core machine, first call included


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (`.ci/run` installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


class Visit:
    """A fresh page on a phone-sized viewport that records every request it makes."""

    def __init__(self, browser: object, live: LiveClient) -> None:
        self.context = browser.new_context(viewport=PHONE, device_scale_factor=1)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.live = live

    def foreign(self) -> list[str]:
        """Requests to anything but the server (data: and blob: URLs stay in the page)."""
        own = (self.live.url + "/", "data:", "blob:")
        return [url for url in self.requests if not url.startswith(own)]


@pytest.fixture
def visit(chromium: object, live: LiveClient) -> Iterator[Visit]:
    opened = Visit(chromium, live)
    yield opened
    opened.context.close()


def _compare(visit: Visit, first: Path, second: Path, *, lang: str = "en") -> None:
    page = visit.page
    page.goto(f"{visit.live.url}/demo")
    if lang != "en":
        page.get_by_label("Language").select_option(lang)
    page.set_input_files("#first", str(first))
    page.set_input_files("#second", str(second))
    page.locator("#compare").click()
    page.wait_for_selector(
        "#result:not([hidden]), #refusal:not([hidden])", timeout=ANSWER_TIMEOUT_MS
    )


def _box_pixels(visit: Visit, canvas: str) -> int:
    """How many pixels of the overlay canvas are painted (the drawn face box)."""
    return visit.page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            if (!canvas.width) return 0;
            const context = canvas.getContext("2d");
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
            return painted;
        }""",
        canvas,
    )


def test_same_person_with_boxes(visit: Visit, photos: dict[str, Path], tmp_path: Path) -> None:
    # Copied under the names a person would pick (only into the test's temporary folder).
    selfie, id_card = tmp_path / "selfie.jpg", tmp_path / "id-card.jpg"
    shutil.copyfile(photos["same_a"], selfie)
    shutil.copyfile(photos["same_b"], id_card)
    _compare(visit, selfie, id_card)
    page = visit.page
    page.wait_for_function("document.getElementById('first-boxes').dataset.boxes === '1'")
    assert page.inner_text("#verdict") == "Same person"
    assert page.inner_text("#confidence").endswith("%")
    assert page.inner_text("#trials") == "2"
    assert _box_pixels(visit, "first-boxes") > 100
    assert _box_pixels(visit, "second-boxes") > 100
    if os.environ.get("FACEMATCH_UPDATE_DOCS") == "1":
        # The LFW photos are blurred: the repository never holds a copy of them.
        page.evaluate(
            "document.querySelectorAll('.frame img').forEach(i => i.style.filter = 'blur(9px)')"
        )
        (REPO / "docs" / "demo.png").write_bytes(page.screenshot(full_page=True))
    assert visit.foreign() == []


def test_two_people_are_different(visit: Visit, photos: dict[str, Path]) -> None:
    _compare(visit, photos["same_a"], photos["other"])
    assert visit.page.inner_text("#verdict") == "Different people"
    assert visit.foreign() == []


def test_photo_without_a_face_is_refused(
    visit: Visit, photos: dict[str, Path], tmp_path: Path
) -> None:
    _compare(visit, no_face_photo(tmp_path), photos["same_b"])
    refusal = visit.page.inner_text("#refusal")
    assert refusal == f"Selfie: {CATALOGUE['no_face'].en}"
    assert visit.page.is_hidden("#result")


def test_arabic_is_right_to_left_with_the_arabic_message(
    visit: Visit, photos: dict[str, Path], tmp_path: Path
) -> None:
    _compare(visit, no_face_photo(tmp_path), photos["same_b"], lang="ar")
    page = visit.page
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.evaluate("document.documentElement.lang") == "ar"
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.inner_text("#refusal") == f"الصورة الشخصية: {CATALOGUE['no_face'].ar}"
    assert page.inner_text("#compare") == "قارن"


def test_form_is_usable_from_the_keyboard(visit: Visit) -> None:
    page = visit.page
    page.goto(f"{visit.live.url}/demo")
    focused = []
    for _ in range(4):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert focused == ["lang", "first", "second", "compare"]
    for control in ("#first", "#second", "#lang"):
        label = page.evaluate(
            "(sel) => document.querySelector(sel).labels[0].textContent.trim()", control
        )
        assert label


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".swagger-ui .opblock-summary-path"),
        ("/redoc", 'h1:has-text("facematch")'),
    ],
)
def test_api_docs_render_without_other_hosts(visit: Visit, path: str, rendered: str) -> None:
    page = visit.page
    page.goto(f"{visit.live.url}{path}", wait_until="networkidle")
    page.wait_for_selector(rendered, timeout=60_000)
    assert "/api/v1/face/match/" in page.content()
    assert visit.foreign() == []
