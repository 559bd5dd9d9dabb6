"""The real app in a real browser: Debian's Chromium (/usr/bin/chromium, never `playwright install`) driven
by Playwright. Upload a video, read the top prediction, edit a description and watch the prediction panel
change, open every tab. Screenshots go to tests/artifacts/ (kept by CI); with KDA_UPDATE_SCREENSHOTS=1 they
also replace the README's ones in docs/screenshots/ (so a plain test run leaves the tracked files alone).

Skipped when Chromium or Playwright is missing, except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

try:
    from app_server import CHECKPOINT, NO_LLM, ROOT, start_app
except ImportError:  # tests/ imported as a package
    from tests.app_server import CHECKPOINT, NO_LLM, ROOT, start_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
VIDEO = ROOT / "assets" / "examples" / "pattern_tone_440.mp4"
PASTA = (
    "Boiling pasta in a big pot on a kitchen stove.",
    "Steam rises while a cook stirs noodles with a wooden spoon.",
    "Bubbling water and the clink of a spoon against metal.",
)
TIMEOUT_MS = 120_000  # the first classification builds the extractor's networks


def missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    if not CHECKPOINT.is_dir():
        return "no demo checkpoint: run `make checkpoint`"
    return None


MISSING = missing()
if MISSING and os.environ.get("CI", "").lower() in ("1", "true"):
    pytest.fail(f"CI is set but {MISSING}", pytrace=False)
if MISSING:
    pytest.skip(MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    server = start_app(tmp_path_factory.mktemp("app") / "app.log", env=NO_LLM)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url)
        page.get_by_text("KDA Studio", exact=False).first.wait_for()
        yield page
        browser.close()


def shoot(page, name: str) -> None:
    """One screenshot into the test artefacts (and the README's, with KDA_UPDATE_SCREENSHOTS=1)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)  # let plotly finish its transition
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if os.environ.get("KDA_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / f"{name}.png", SCREENSHOTS / f"{name}.png")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def top_classes(page) -> str:
    """The prediction panel's text: the top class, then every class of the top-k with its score."""
    return page.locator("#top-classes").inner_text()


def top_prediction(page) -> str:
    return page.locator("#top-classes [data-testid=label-output-value]").inner_text()


def pick_class(page, name: str) -> None:
    """On the Knowledge tab, open class `name` in the editor (typed into the picker, then chosen)."""
    from playwright.sync_api import expect

    picker = page.get_by_label("Class", exact=True)
    picker.click()
    picker.fill(name)
    page.get_by_role("option", name=name, exact=False).first.click()
    expect(page.get_by_label("Name (encoded as the first text)")).to_have_value(name)  # the editor shows it


def save_descriptions(page, texts: tuple[str, str, str]) -> None:
    """On the Knowledge tab, replace the editor's three descriptions by `texts` and save."""
    for aspect, text in zip(("Introduction", "Visual", "Auditory"), texts, strict=True):
        page.get_by_label(f"{aspect} description").fill(text)
    page.get_by_role("button", name="Save edit").click()
    page.locator("#knowledge-status").get_by_text("Saved").wait_for()


def test_upload_classify_edit_and_every_tab(page):
    from playwright.sync_api import expect

    # Classify: upload a video and read the top prediction.
    assert "mean nothing" in page.locator("#banner").inner_text()  # the honesty banner
    page.locator("input[type=file]").first.set_input_files(str(VIDEO))
    page.get_by_role("button", name="Classify video").click()
    page.locator("#prediction-notes").get_by_text(VIDEO.name).wait_for()  # the page opened on a sample
    before = top_classes(page)
    top = top_prediction(page).rsplit(" (", 1)[0]  # "Playing Flute (unseen)" -> "Playing Flute"
    assert top and "offline" in page.locator("#prediction-notes").inner_text()
    page.locator(".js-plotly-plot").first.wait_for()
    shoot(page, "classify")

    # Knowledge: rewrite the top class's descriptions; the prediction panel follows without a reload.
    open_tab(page, "Knowledge")
    pick_class(page, top)
    shoot(page, "knowledge")  # the checkpoint's own knowledge, before any edit
    save_descriptions(page, PASTA)
    expect(page.get_by_label("Introduction description")).to_have_value(PASTA[0])
    page.locator("#ab-summary").get_by_text("1 class(es) edited").wait_for()  # the A/B panel followed the edit
    shoot(page, "knowledge-ab")  # the A/B panel after a misleading edit
    open_tab(page, "Classify")
    page.wait_for_function(
        "before => document.querySelector('#top-classes').innerText !== before", arg=before, timeout=TIMEOUT_MS
    )
    assert top_classes(page) != before

    # Heatmaps and Embeddings draw when opened.
    open_tab(page, "Heatmaps")
    page.get_by_text("Knowledge similarity", exact=False).first.wait_for()
    page.locator(".js-plotly-plot").filter(has_text="Adaptive margin").first.wait_for()
    shoot(page, "heatmaps")
    open_tab(page, "Embeddings")
    page.locator("#embedding-counts").get_by_text("Points per map").wait_for()
    page.locator(".js-plotly-plot").filter(has_text="t-SNE").first.wait_for()
    shoot(page, "embeddings")


def error_badges(page) -> int:
    """Gradio's lasting red "Error" badges over outputs (one per output of an event that raised)."""
    return page.locator("[data-testid=status-tracker] .error").count()


def test_a_refusal_speaks_once_in_the_status_line_and_marks_no_output(page):
    from playwright.sync_api import expect

    open_tab(page, "Knowledge")
    expect(page.get_by_role("button", name="Regenerate descriptions", exact=False)).to_be_disabled()
    assert "No LLM is configured" in page.locator("#llm-status").inner_text()  # the reason, on the tab
    name = page.get_by_label("Name (encoded as the first text)")
    name.fill("N" * 150)
    page.get_by_role("button", name="Save edit").click()
    status = page.locator("#knowledge-status")
    status.get_by_text("a name may have at most 100").wait_for()
    assert status.inner_text().startswith("Nothing changed:")
    expect(name).to_have_value("N" * 150)  # what the person typed is still there to shorten
    assert error_badges(page) == 0

    # A subset of chosen classes waits for two of them and says so, instead of an error over the chooser.
    open_tab(page, "Heatmaps")
    page.get_by_role("radio", name="classes chosen below").check()
    page.locator("#heatmap-status").get_by_text("Choose two or more classes below").wait_for()
    assert error_badges(page) == 0
