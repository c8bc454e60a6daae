"""The validation report as the UIs show it: plots inlined as data URIs, and as HTML."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.modeling import plots
from huleedu_pipelines.modeling.report_html import (
    HTML_FILENAME,
    PNG_SIGNATURE,
    ReportImageError,
    inline_images,
    png_data_uri,
    render_html,
)

DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
MARKDOWN = """# huleedu-grade-sv v3 — validation report

**Verdict: PASS** — every gate passed

| gate | value | result |
|---|---:|---|
| min_qwk | 0.812 | pass |
| max_ece | 0.031 | pass |

Raw <script>alert(1)</script> text stays text.

## Plots

![Confusion matrix](confusion.png)

![Distribution](plots/distribution.png)

![External](https://example.org/x.png)
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A report folder with two real plots, one in a sub-folder."""
    rng = np.random.default_rng(0)
    k = len(SWEDISH_GRADES)
    confusion = rng.integers(0, 30, (k, k)) + np.diag(rng.integers(20, 60, k))
    plots.confusion_matrix_plot(confusion, SWEDISH_GRADES, tmp_path / "confusion.png")
    share = np.full(k, 1 / k)
    plots.distribution_plot(SWEDISH_GRADES, share, share, tmp_path / "plots" / "distribution.png")
    return tmp_path


def _decoded(text: str) -> list[bytes]:
    return [base64.b64decode(match) for match in DATA_URI.findall(text)]


def _size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return image.size


def test_inline_images_embeds_each_relative_png_byte_for_byte(folder: Path) -> None:
    inlined = inline_images(MARKDOWN, folder)

    assert _decoded(inlined) == [
        (folder / "confusion.png").read_bytes(),
        (folder / "plots" / "distribution.png").read_bytes(),
    ]
    assert "](confusion.png)" not in inlined
    assert "![Confusion matrix](data:image/png;base64," in inlined
    assert "![External](https://example.org/x.png)" in inlined  # links with a scheme stay
    # Everything but the image links is the report as written.
    assert DATA_URI.sub("X", inlined) == (
        MARKDOWN.replace("(confusion.png)", "(X)").replace("(plots/distribution.png)", "(X)")
    )


def test_compact_copies_keep_the_picture_size_and_shrink_the_bytes(folder: Path) -> None:
    original = (folder / "confusion.png").read_bytes()
    compact = _decoded(inline_images(MARKDOWN, folder, compact=True))[0]

    assert compact.startswith(PNG_SIGNATURE)
    assert _size(compact) == _size(original)
    assert len(compact) < len(original)
    assert (folder / "confusion.png").read_bytes() == original  # the file is not touched


@pytest.mark.parametrize(
    ("link", "message"),
    [("missing.png", "missing"), ("../outside.png", "outside"), ("notes.txt", "not a PNG")],
)
def test_a_link_that_would_show_a_broken_image_raises(
    folder: Path, link: str, message: str
) -> None:
    (folder.parent / "outside.png").write_bytes((folder / "confusion.png").read_bytes())
    (folder / "notes.txt").write_text("plain text")
    with pytest.raises(ReportImageError, match=message):
        inline_images(f"![plot]({link})", folder)


def test_render_html_has_tables_escaped_html_and_inlined_images(folder: Path) -> None:
    page = render_html(MARKDOWN, folder)

    assert page.startswith("<!DOCTYPE html>")
    assert "<title>huleedu-grade-sv v3 — validation report</title>" in page
    assert "<h1>huleedu-grade-sv v3 — validation report</h1>" in page
    assert page.count("<table>") == 1
    assert "<th>gate</th>" in page
    assert '<td style="text-align:right">0.812</td>' in page
    assert "<strong>Verdict: PASS</strong>" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    images = re.findall(r'<img src="([^"]+)" alt="([^"]*)"', page)
    assert [alt for _, alt in images] == ["Confusion matrix", "Distribution", "External"]
    assert _decoded(images[0][0]) == [(folder / "confusion.png").read_bytes()]
    assert _decoded(images[1][0]) == [(folder / "plots" / "distribution.png").read_bytes()]
    assert images[2][0] == "https://example.org/x.png"


def test_png_data_uri_refuses_a_file_that_is_not_a_png(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"GIF89a not a png")
    with pytest.raises(ReportImageError, match="not a PNG"):
        png_data_uri(fake)


def test_report_bundle_writes_the_html_beside_the_unchanged_markdown(folder: Path) -> None:
    markdown = MARKDOWN.replace("![External](https://example.org/x.png)\n", "")
    figures = {
        "Confusion matrix": folder / "confusion.png",
        "Distribution": folder / "plots" / "distribution.png",
    }
    path = plots.write_report_bundle(folder, markdown, figures)

    assert path.read_text(encoding="utf-8") == markdown  # relative links, as written
    page = (folder / HTML_FILENAME).read_text(encoding="utf-8")
    assert page == render_html(markdown, folder)
    assert _decoded(page) == [figure.read_bytes() for figure in figures.values()]
