"""The validation report as the UIs show it: its plots inlined as ``data:`` URIs.

``report.md`` links its PNG plots by paths relative to its folder, which resolve on disk and
in a copied folder, but not where the text is shown on its own: Dagster's Markdown metadata
has no folder, and MLflow's artifact viewer shows a ``.md`` file as plain text. Here the same
Markdown becomes

- ``inline_images``: Markdown whose images are ``data:image/png;base64,...`` URIs (what the
  asset's metadata holds; Dagster renders it), optionally from compact copies of the PNGs;
- ``render_html``: a standalone HTML page (``report.html``, which MLflow's artifact viewer
  renders), from markdown-it-py with tables, the images inlined at full quality.

The files on disk are never changed. Pillow (a matplotlib dependency) is imported only for
the compact copies.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

HTML_FILENAME = "report.html"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMPACT_COLOURS = 256
"""Palette size of the compact copies: the plots' flat colours and anti-aliased text survive
it; the files shrink to about a third."""

_IMAGE = re.compile(r"!\[(?P<alt>[^\]\n]*)\]\((?P<src>[^)\s]+)\)")
"""A Markdown image with a plain link (what ``modeling.report`` writes for each plot)."""
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class ReportImageError(ValueError):
    """A report links an image that is not a PNG inside its folder."""


def png_bytes(path: Path | str, *, compact: bool = False) -> bytes:
    """The PNG at ``path``; with ``compact``, a 256-colour palette copy at the same size."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ReportImageError(f"{path} is not a PNG file; the report embeds PNG plots only")
    if not compact:
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        palette = image.convert("RGB").quantize(colors=COMPACT_COLOURS)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    smaller = buffer.getvalue()
    return smaller if len(smaller) < len(data) else data


def png_data_uri(path: Path | str, *, compact: bool = False) -> str:
    """``data:image/png;base64,...`` of the PNG at ``path`` (see ``png_bytes``)."""
    encoded = base64.b64encode(png_bytes(path, compact=compact)).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def inline_images(markdown: str, folder: Path | str, *, compact: bool = False) -> str:
    """``markdown`` with every image linked relative to ``folder`` replaced by a data URI.

    Links with a scheme (``https:``, ``data:``) are left as they are. A relative link that
    leaves ``folder``, or names a missing or non-PNG file, raises ``ReportImageError``: the
    report would show a broken image.
    """
    root = Path(folder).resolve()
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        src = match["src"]
        if _SCHEME.match(src):
            return match[0]
        if src not in cache:
            cache[src] = png_data_uri(_image_path(root, src), compact=compact)
        return f"![{match['alt']}]({cache[src]})"

    return _IMAGE.sub(replace, markdown)


def _image_path(root: Path, src: str) -> Path:
    path = (root / src).resolve()
    if not path.is_relative_to(root):
        raise ReportImageError(f"image {src!r} is outside the report folder {root}")
    if not path.is_file():
        raise ReportImageError(f"image {src!r} is missing from the report folder {root}")
    return path


def render_html(markdown: str, folder: Path | str, *, title: str | None = None) -> str:
    """A standalone HTML page of ``markdown`` (CommonMark with tables, raw HTML escaped) whose
    images are inlined from ``folder`` at full quality. ``title`` defaults to the first
    heading."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = parser.render(inline_images(markdown, folder))
    if title is None:
        heading = re.search(r"^# (.+)$", markdown, flags=re.MULTILINE)
        title = heading[1].strip() if heading else "Validation report"
    return _PAGE.format(title=html.escape(title), body=body)


def write_report_html(report_path: Path | str) -> Path:
    """Render ``report.md`` at ``report_path`` into ``report.html`` beside it; its path."""
    source = Path(report_path)
    target = source.with_name(HTML_FILENAME)
    target.write_text(render_html(source.read_text(encoding="utf-8"), source.parent), "utf-8")
    return target


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 14px; line-height: 1.45;
       max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 0.8em 0; }}
th, td {{ border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; }}
th {{ background: #f6f8fa; }}
code {{ background: #f6f8fa; padding: 0 3px; border-radius: 3px; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0 1.2em; }}
</style>
</head>
<body>
{body}</body>
</html>
"""

__all__ = [
    "HTML_FILENAME",
    "ReportImageError",
    "inline_images",
    "png_bytes",
    "png_data_uri",
    "render_html",
    "write_report_html",
]
