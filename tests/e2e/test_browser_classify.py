"""The Classify tab and the figures in a real browser (Chromium through Playwright, as test_browser.py): the
page opens on a classified reference sample, states the upload limits and says next to an upload's result that
it means nothing; plots fill their container after a redraw while hidden and after a resize while hidden; a
typed top-k counts; heatmap rows are 12 px or more; on a 390 px phone every map keeps a readable plot; a class
name with markup is shown as text. Screenshots go to tests/artifacts/ (name prefix classify-)."""

from __future__ import annotations

import pytest

try:  # app and page are fixtures: one server and page per module
    from test_browser import ARTIFACTS, VIDEO, app, page, pick_class  # noqa: F401
except ImportError:  # tests/ imported as a package
    from tests.e2e.test_browser import ARTIFACTS, VIDEO, app, page, pick_class  # noqa: F401

PLOT_WIDTH = """id => {
    const root = document.getElementById(id);
    const svg = root.querySelector('svg.main-svg'), box = root.querySelector('[data-testid=plotly]');
    return [Number(svg.getAttribute('width')), box.getBoundingClientRect().width];
}"""
PLOT_AREAS = """sel => Array.from(document.querySelectorAll(sel)).filter(e => e.offsetParent !== null)
    .map(p => p.querySelector('.nsewdrag').getBoundingClientRect()).map(r => [r.width, r.height])"""


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)  # let plotly finish its transition
    page.screenshot(path=str(ARTIFACTS / f"classify-{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def wait_filled(page, elem_id: str) -> None:
    """Until the plot is as wide as its container (Plotly resizes after a short debounce); fails if never."""
    page.wait_for_function(f"Math.abs(({PLOT_WIDTH})('{elem_id}').reduce((a, b) => a - b)) <= 2", timeout=10_000)


def test_the_page_opens_on_a_classified_reference_sample_and_an_upload_says_it_means_nothing(page):
    notes = page.locator("#prediction-notes")
    notes.get_by_text("reference sample", exact=False).first.wait_for()  # nothing clicked yet
    limits = page.locator("#upload-limits").inner_text()
    assert "200 MB" in limits and "600 s" in limits
    shoot(page, "start")
    page.locator("input[type=file]").first.set_input_files(str(VIDEO))
    page.get_by_role("button", name="Classify video").click()
    notes.get_by_text(VIDEO.name).wait_for()
    assert notes.inner_text().startswith("This prediction means nothing: demo weights.")  # next to the result


def test_a_plot_redrawn_or_resized_while_hidden_fills_its_container_when_shown(page):
    page.get_by_role("button", name="Classify reference sample").click()
    page.locator("#prediction-notes").get_by_text("reference sample", exact=False).first.wait_for()
    top = page.locator("#top-classes [data-testid=label-output-value]").inner_text().rsplit(" (", 1)[0]
    open_tab(page, "Knowledge")
    pick_class(page, top)
    page.get_by_label("Introduction description").fill("A quiet room with nothing happening in it at all.")
    page.get_by_role("button", name="Save edit").click()  # re-draws the Classify panel while it is hidden
    page.locator("#knowledge-status").get_by_text("Saved").wait_for()
    open_tab(page, "Classify")
    wait_filled(page, "distance-plot")
    assert page.evaluate(PLOT_WIDTH, "distance-plot")[0] > 1000
    open_tab(page, "Knowledge")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone turned while another tab was shown
    page.wait_for_timeout(300)
    open_tab(page, "Classify")
    wait_filled(page, "modality-plot")
    assert page.evaluate(PLOT_WIDTH, "modality-plot")[0] < 390
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_a_typed_top_k_counts_without_leaving_the_box(page):
    box = page.get_by_label("number input for Top k")
    box.fill("3")
    box.press("Enter")
    page.wait_for_function("document.querySelector('#top-classes').innerText.split('%').length - 1 === 3")


def test_heatmap_rows_are_12_px_or_more(page):
    open_tab(page, "Heatmaps")
    page.locator(".js-plotly-plot").filter(has_text="Adaptive margin").first.wait_for()
    page.wait_for_timeout(500)
    areas = page.evaluate(PLOT_AREAS, ".js-plotly-plot")
    assert len(areas) == 2 and all(height / 48 >= 12 for _, height in areas), areas
    shoot(page, "heatmaps")


def test_on_a_phone_every_map_keeps_a_readable_plot(page):
    open_tab(page, "Embeddings")  # a phone's tab bar puts it in its overflow menu: chosen first
    page.locator(".js-plotly-plot").filter(has_text="t-SNE").first.wait_for()  # its draw on selection, done
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_text("PCA", exact=True).click()  # drawn again, at the phone's width
    page.locator(".js-plotly-plot").filter(has_text="PCA").first.wait_for()
    page.wait_for_timeout(500)
    areas = page.evaluate(PLOT_AREAS, ".js-plotly-plot")
    assert len(areas) == 4 and all(width >= 200 and height >= 200 for width, height in areas), areas
    shoot(page, "embeddings-390")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_timeout(500)
    shoot(page, "embeddings")


@pytest.mark.parametrize("name", ["<b>Bold</b> Class"])
def test_a_class_name_with_markup_is_shown_as_text(page, name):
    open_tab(page, "Knowledge")
    page.get_by_label("New class name").fill(name)
    page.get_by_role("button", name="Add class").click()
    status = page.locator("#knowledge-status")
    status.get_by_text("Added", exact=False).wait_for()
    assert name in status.inner_text() and status.locator("b").count() == 0
    open_tab(page, "Heatmaps")
    page.get_by_role("button", name="Draw").click()
    label = f"{name} (unseen)"
    page.wait_for_function(
        "label => Array.from(document.querySelectorAll('.xtick text')).some(t => t.textContent === label)",
        arg=label,
    )
