"""report.html: one self-contained page (images embedded, nothing fetched) that shows what the
Markdown report can only tell: the verdict first, then the float and int8 models' boxes side by
side (a classifier: the images whose top-1 changed), the calibration images, and the whole
Markdown report below. Bounded in size whatever the dataset: a few images, each at most
EXAMPLE_SIDE pixels."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

from int8lab.atomic import write_text_atomic
from int8lab.tasks.registry import task_of_results

EXAMPLE_SIDE = 360  # pixels, the longer side of a drawn example
THUMB_SIDE = 96  # a calibration thumbnail
CALIBRATION_THUMBS = 12

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .verdict{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.8rem 1rem;min-width:180px}
.card b{display:block;font-size:1.4rem} .pair{display:flex;gap:.6rem;flex-wrap:wrap;margin:.8rem 0}
figure{margin:0} figcaption{font-size:.85rem;color:#555;max-width:360px} img{border-radius:4px}
table{border-collapse:collapse;margin:.6rem 0} td,th{border:1px solid #ddd;padding:.25rem .5rem;font-size:.9rem}
.strip img{margin:2px} li,p{overflow-wrap:anywhere} ol{margin:.2rem 0 .2rem 1.2rem;padding:0;font-size:.85rem}
"""


def write_html_report(out_dir: Path) -> Path:
    """OUT/report.html from OUT's saved results (summary.json, else validation.json, and report.md):
    what ``int8lab report OUT`` and every quantize and validate run."""
    out_dir = Path(out_dir)
    summary_file = out_dir / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
    else:
        summary = {"validation": json.loads((out_dir / "validation.json").read_text())}
        summary["examples"] = summary["validation"].get("examples")
    markdown = (out_dir / "report.md").read_text() if (out_dir / "report.md").exists() else ""
    return write_text_atomic(out_dir / "report.html", html_report(summary, markdown, out_dir))


def html_report(summary: dict, markdown: str, out_dir: Path) -> str:
    body = [f"<h1>int8lab report</h1><p>{html.escape(str(summary['validation'].get('quantized_model', '')))}</p>",
            _verdict(summary), _examples(summary.get("examples")), _calibration(summary),
            "<h2>The full report</h2>", _markdown(markdown, out_dir)]
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>int8lab report</title>"
            f"<style>{STYLE}</style></head><body>" + "\n".join(b for b in body if b) + "</body></html>\n")


def _verdict(summary: dict) -> str:
    v = summary["validation"]
    task = task_of_results(v)
    cards = []
    for key, words in task.RECOVERY_METRICS:
        if v.get(key) is not None:
            reference = v.get(key.replace("_quantized", "_reference")) if key.endswith("_quantized") else None
            reference = reference if reference is not None else v.get(f"{key}_reference")
            before = f"float {100 * reference:.2f}% → " if reference is not None else ""
            cards.append((words, f"{100 * v[key]:.2f}%", before + "int8"))
    sizes, latency, cpu = summary.get("sizes"), summary.get("latency"), summary.get("cpu")
    if sizes:
        cards.append(("size", f"{sizes['int8_tflite_bytes'] / 1024:.0f} KiB",
                      f"{100 * sizes['int8_vs_fp32']:.0f}% of fp32 ({sizes['fp32_tflite_bytes'] / 1024:.0f} KiB)"))
    if latency and cpu:
        fp32, int8 = latency["fp32"]["mean_ms"], latency["int8"]["mean_ms"]
        cards.append(("latency", f"{int8:.3f} ms", f"fp32 {fp32:.3f} ms ({fp32 / int8:.2f}×) on {cpu['model']}"))
    target = (summary.get("conversion") or {}).get("target") or {}
    if target.get("name"):
        cards.append(("plan", f"--target {target['name']}", (summary.get("conversion") or {}).get("mode", "")))
    return '<div class="verdict">' + "".join(
        f'<div class="card">{html.escape(words)}<b>{html.escape(value)}</b>{html.escape(note)}</div>'
        for words, value, note in cards) + "</div>"


def _examples(examples: dict | None) -> str:
    if not examples or not examples.get("images"):
        return ""
    if examples["task"] == "detect":
        parts = [f"<h2>Float and int8 detections</h2><p>The images of {examples['pool']} held-out ones where the two "
                 f"models differ most, then some where they agree (boxes at score ≥ 0.25, after NMS).</p>"]
        for row in examples["images"]:
            drawn = [_drawn(row["image"], row[side]) for side in ("float", "int8")]
            if None in drawn:
                continue
            parts.append('<div class="pair">' + "".join(
                f'<figure><img alt="{side} detections" src="{uri}"><figcaption>{side}: {len(row[side])} detection(s)'
                f'{", difference " + format(row["difference"], ".2f") if side == "int8" else ""} — '
                f'{html.escape(Path(row["image"]).name)}</figcaption></figure>'
                for side, uri in zip(("float", "int8"), drawn)) + "</div>")
        return "\n".join(parts)
    changed = [r for r in examples["images"] if r["difference"] > 0]
    title = (f"<h2>Images whose top-1 changed</h2><p>{len(changed)} of the {examples['pool']} held-out images looked at."
             "</p>" if changed else f"<h2>Top-1 unchanged</h2><p>On all {examples['pool']} held-out images looked at; "
                                    "two of them:</p>")
    parts = [title]
    for row in examples["images"]:
        uri = _thumbnail(row["image"], EXAMPLE_SIDE // 2)
        if uri is None:
            continue
        tops = "".join(f"<div><b style='font-size:.9rem'>{side}</b><ol>" + "".join(
            f"<li>{html.escape(t['label'])} {t['score']:.3f}</li>" for t in row[side]) + "</ol></div>"
            for side in ("float", "int8"))
        parts.append(f'<div class="pair"><figure><img alt="held-out image" src="{uri}"><figcaption>'
                     f'{html.escape(Path(row["image"]).name)}</figcaption></figure>{tops}</div>')
    return "\n".join(parts)


def _calibration(summary: dict) -> str:
    calibration = (summary.get("conversion") or {}).get("calibration") or {}
    thumbs = [uri for uri in (_thumbnail(p, THUMB_SIDE) for p in (calibration.get("sample") or [])[:CALIBRATION_THUMBS])
              if uri]
    if not thumbs:
        return ""
    return (f"<h2>Calibration images</h2><p>{len(thumbs)} of the {calibration['count']} images of split "
            f"<code>{html.escape(str(calibration['split']))}</code> (seed {calibration['seed']}):</p>"
            '<div class="strip">' + "".join(f'<img alt="calibration image" src="{u}">' for u in thumbs) + "</div>")


def _markdown(text: str, out_dir: Path) -> str:
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)

    def embed(match: re.Match) -> str:
        path = out_dir / html.unescape(match.group(1))
        if not path.is_file() or path.suffix.lower() != ".png":
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    return re.sub(r'src="([^":]+)"', embed, rendered)


def _drawn(image: str, detections: list[dict]) -> str | None:
    from int8lab.tasks.boxes import draw_detections

    picture = _open(image)
    if picture is None:
        return None
    boxes = [d["box"] for d in detections]
    names = {d["class"]: d["label"] for d in detections}
    labels = [names.get(k, str(k)) for k in range(max(names, default=-1) + 1)]
    drawn = draw_detections(picture, boxes, [d["score"] for d in detections], [d["class"] for d in detections], labels)
    return _jpeg(drawn, EXAMPLE_SIDE)


def _thumbnail(image: str, side: int) -> str | None:
    picture = _open(image)
    return None if picture is None else _jpeg(picture, side)


def _open(image: str):
    from PIL import Image, ImageOps

    try:
        with Image.open(image) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, ValueError):  # moved or unreadable since: the report leaves it out
        return None


def _jpeg(picture, side: int) -> str:
    """At most ``side`` pixels on its longer side; a small image (28 px) enlarged by whole steps."""
    from PIL import Image

    picture = picture.copy()
    factor = side // max(picture.size)
    if factor >= 2:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    picture.thumbnail((side, side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=82)
    return f"data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}"
