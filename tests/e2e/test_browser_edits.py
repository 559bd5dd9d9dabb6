"""A person's edits in a real browser (Chromium through Playwright, as test_browser.py) outlive what ends their
session on the server: a reload of the page, the session's time-to-live, a restart of the server. Each time the
page shows the edits and the server predicts with them (the reference sample's prediction after a misleading
edit of its class), and the person is told that they were restored."""

from __future__ import annotations

import pytest

try:
    from app_server import NO_LLM, start_app
    from test_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        PASTA,
        TIMEOUT_MS,
        open_tab,
        pick_class,
        save_descriptions,
        top_classes,
        top_prediction,
    )
except ImportError:  # tests/ imported as a package
    from tests.app_server import NO_LLM, start_app
    from tests.e2e.test_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        PASTA,
        TIMEOUT_MS,
        open_tab,
        pick_class,
        save_descriptions,
        top_classes,
        top_prediction,
    )

# The server forgets a visitor this long after their last request: longer than the test's own steps between two
# requests on a busy machine, since a visitor forgotten before their first edit has no prediction to re-score.
TTL_S = 30
RESTORED = "restored from this browser"
CHANGED = """before => {
    const text = document.querySelector('#top-classes').innerText;
    return text !== before && text.startsWith('Top classes');
}"""  # while it updates, a progress line ("0.1s", "processing | 0.2/0.2s") comes before the label


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def app(tmp_path):
    server = start_app(tmp_path / "app.log", env=NO_LLM)
    yield server
    server.stop()


@pytest.fixture
def forgetful_app(tmp_path):
    """The app, forgetting a visitor TTL_S seconds after their last request."""
    server = start_app(tmp_path / "app.log", env=NO_LLM | {"KDA_SESSION_TTL_SECONDS": str(TTL_S)})
    yield server
    server.stop()


def changed(page, before: str) -> None:
    """Until the Classify panel shows another prediction than `before`, drawn (no progress line over it)."""
    page.wait_for_function(CHANGED, arg=before, timeout=TIMEOUT_MS)


def notice(page) -> None:
    """Until a notice (a toast) says that the edits were restored."""
    page.locator("[data-testid=toast-body]").filter(has_text=RESTORED).first.wait_for()


def opened(browser, url: str):
    """A page of a new browser profile (nothing saved yet) on the app, once it shows the classified sample."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator("#prediction-notes").get_by_text("reference sample", exact=False).first.wait_for()
    return page


def mislead_the_samples_class(page) -> tuple[str, str]:
    """Describe the reference sample's predicted class as boiling pasta; returns (that class, the Classify
    panel's text once it followed the edit)."""
    before = top_classes(page)
    top = top_prediction(page).rsplit(" (", 1)[0]
    open_tab(page, "Knowledge")
    pick_class(page, top)
    save_descriptions(page, PASTA)
    open_tab(page, "Classify")
    changed(page, before)
    return top, top_classes(page)


def shows_the_edit(page, top: str) -> None:
    """The Knowledge tab has the edited texts of `top` in its editor and says they were restored."""
    from playwright.sync_api import expect

    open_tab(page, "Knowledge")
    page.locator("#knowledge-status").get_by_text(RESTORED).wait_for()
    expect(page.get_by_label("Name (encoded as the first text)")).to_have_value(top)
    expect(page.get_by_label("Introduction description")).to_have_value(PASTA[0])
    open_tab(page, "Classify")


def test_a_reload_and_a_restart_keep_the_edits_and_predict_with_them(app, browser, tmp_path):
    page = opened(browser, app.url)
    top, edited = mislead_the_samples_class(page)

    page.reload()  # a new session on the server: the page opens with the browser's saved edits
    page.locator("#prediction-notes").get_by_text("reference sample", exact=False).first.wait_for()
    assert top_classes(page) == edited  # the sample classified on opening, with the edits
    shows_the_edit(page, top)

    app.stop()  # the server forgets everyone; the same address comes back
    again = start_app(tmp_path / "again.log", env=NO_LLM, port=app.port)
    try:
        classify_sample(page, 1)  # the page left open: its next request meets a server that never saw it
        notice(page)
        assert classify_sample(page, 0) == edited
        page.reload()
        page.locator("#prediction-notes").get_by_text("reference sample", exact=False).first.wait_for()
        assert top_classes(page) == edited
        shows_the_edit(page, top)
    finally:
        again.stop()


def classify_sample(page, position: int) -> str:
    """Pick the reference sample at `position` of the picker, classify it, and return the Classify panel's text
    once it changed."""
    before = top_classes(page)
    page.get_by_label("Start here", exact=False).click()
    page.get_by_role("option").nth(position).click()
    page.get_by_role("button", name="Classify reference sample").click()
    changed(page, before)
    return top_classes(page)


def test_after_the_session_expired_the_next_request_predicts_with_the_edits_and_says_so(forgetful_app, browser):
    page = opened(browser, forgetful_app.url)
    top, edited = mislead_the_samples_class(page)
    classify_sample(page, 1)  # another sample on screen, so the first one's next prediction shows as a change
    page.wait_for_timeout((TTL_S + 3) * 1000)  # the server forgot this visitor (it checks every second)
    open_tab(page, "Knowledge")
    assert page.get_by_label("Name (encoded as the first text)").input_value() == top  # the page did not
    open_tab(page, "Classify")

    assert classify_sample(page, 0) == edited  # the first sample again, predicted with the edits
    notice(page)  # and a notice: the server had lost them, the browser had not
