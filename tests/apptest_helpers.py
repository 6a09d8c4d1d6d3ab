"""What every AppTest of the full app needs: run ``app.py`` on a page with a modality, read its texts.

Shared by ``test_app.py`` (histopathology) and ``test_app_modalities.py`` (the other modalities),
so how a page is opened and what "rendered without error" means is written once.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from bcc_model import RESEARCH_USE_NOTICE
from tests.timing import SLOWDOWN

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PNG = "image/png"
BASE_TIMEOUT_S = 180  # the first run imports TensorFlow and loads the model; explain runs five methods
TIMEOUT_S = BASE_TIMEOUT_S * SLOWDOWN  # more time on a busy machine, never a fixed limit


def run_app(page: str | None = None, modality: str | None = None) -> AppTest:
    """Run the real router on ``page`` (``None``: the default Classify page) with ``modality`` selected.

    The modality goes into session state before the first run, as the sidebar selectbox (key
    ``"modality"``) would have put it; the page switch follows that first run, as ``AppTest``
    requires. Fails on any exception and when the research-use notice is missing.
    """
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    if modality is not None:
        at.session_state["modality"] = modality
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert_rendered(at)
    if modality is not None:  # the Cytology page keeps the choice without showing the image modality's box
        assert at.session_state["modality"] == modality
    return at


def assert_rendered(at: AppTest) -> None:
    """No exception on the page, and the research-use banner above it."""
    assert not at.exception, [e.message for e in at.exception]
    assert any(RESEARCH_USE_NOTICE in w.value for w in at.warning), "research-use notice missing"


def page_texts(at: AppTest) -> str:
    """Markdown, warnings, captions, infos and errors of the page, one per line."""
    parts = [m.value for m in at.markdown] + [w.value for w in at.warning] + [c.value for c in at.caption]
    parts += [i.value for i in at.info] + [e.value for e in at.error]
    return "\n".join(parts)


def image_captions(at: AppTest) -> list[str]:
    """Every caption of every ``st.image`` on the page."""
    return [caption for image in at.image for caption in image.captions]


def heatmap_images(at: AppTest) -> list:
    """The ``st.image`` elements that show a Grad-CAM overlay."""
    return [image for image in at.image if any("Grad-CAM" in caption for caption in image.captions)]


def plain(markdown_source: str) -> str:
    """The text a reader sees of escaped Markdown (``escape_markdown``): backslashes and zero-width breaks removed."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown_source).replace("\u200b", "")


def verdict_text(bundle, prediction) -> str:
    """The words the page must show for ``prediction`` (``analysis.wording``, the one phrasing of a result)."""
    from bcc_model.analysis.wording import statement
    from bcc_model.models.quality import performance_caution

    words = statement(bundle, prediction, caution=performance_caution(bundle.metrics))
    if words.kind == "indeterminate":
        return f"**{words.headline}.**"
    return f"Model output: {words.label}" if words.kind == "model output" else f"Result: {words.label}"


def assert_card_shown(at: AppTest, card: str) -> None:
    """Every ``## `` section of the model card is on the page, folded under its title, pictures drawn (not linked)."""
    titles = [line[3:].strip() for line in card.splitlines() if line.startswith("## ")]
    assert [e.label for e in at.expander if e.label in titles] == titles
    shown = "\n".join(m.value for m in at.markdown)
    assert "![" not in shown, "a relative picture link is a broken image on a page"
    assert sum(c.startswith("Picture ") for image in at.image for c in image.captions) == card.count("![")
