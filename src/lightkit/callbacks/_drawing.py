"""The pictures of ValidationFigures, drawn from tensors with PIL: confusion matrix, prediction grid, segmentation overlays."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

# Distinct colours for mask classes (tab10), as 0..1 RGB.
PALETTE = torch.tensor(
    [
        [0.12, 0.47, 0.71], [1.00, 0.50, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16],
        [0.58, 0.40, 0.74], [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.50, 0.50, 0.50],
        [0.74, 0.74, 0.13], [0.09, 0.75, 0.81],
    ]
)  # fmt: skip
RIGHT, WRONG = torch.tensor([0.1, 0.7, 0.2]), torch.tensor([0.9, 0.1, 0.1])
# The confusion matrix's full colours (a row share of 1): errors in blue, the diagonal in green.
BLUE, GREEN = torch.tensor([0.03, 0.19, 0.42]), torch.tensor([0.0, 0.43, 0.17])


@functools.cache
def _font(size: int = 11) -> Any:
    return ImageFont.load_default(size=size)


def _fit(text: str, width: float, font: Any) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _to_tensor(canvas: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _rotated(
    canvas: Image.Image,
    x: int,
    middle: int | None,
    text: str,
    font: Any,
    fill: str,
    end: int | None = None,
) -> None:
    """Draw ``text`` turned a quarter left (read bottom to top), its box's left edge at ``x``,
    centred on the row ``middle`` or (``middle=None``) starting from the row ``end`` upwards."""
    width, height = math.ceil(font.getlength(text)) + 2, font.size + 4
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).text((1, height // 2), text, fill=255, font=font, anchor="lm")
    y = middle - width // 2 if middle is not None else end - width
    canvas.paste(fill, (x, y, x + height, y + width), mask.transpose(Image.Transpose.ROTATE_90))


def _label_step(cell: int, needed: float) -> int:
    """Label every 1st, 2nd, 5th, 10th, ... class: the first step with ``needed`` pixels."""
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500):
        if cell * step >= needed:
            return step
    return 1000


def _count(value: int) -> str:
    """``value`` in at most four characters: 987, 1.2k, 45k, 3.4M."""
    if value < 1000:
        return str(value)
    if value < 9_950:
        return f"{value / 1000:.1f}k"
    if value < 1_000_000:
        return f"{value // 1000}k"
    return f"{value / 1_000_000:.1f}M"


def _percent(count: int, total: int) -> str:
    """``count / total`` as a whole percentage, never rounded to a misleading 0% or 100%."""
    share = 100 * count / total
    if 0 < share < 0.5:
        return "<1%"
    if 99.5 <= share < 100:
        return ">99%"
    return f"{share:.0f}%"


def confusion_image(
    matrix: torch.Tensor, size: int | None = None, class_names: Sequence[str] | None = None
) -> torch.Tensor:
    """A confusion matrix drawn as a ``3×H×W`` image in [0, 1], ready for TensorBoard or a PNG.

    Rows are the true class, columns the predicted one, with axis titles and labels
    ``<index> <name>`` (indices alone without names; every 2nd, 5th, ... when cells are too small
    for each). A cell's colour is its share of the true class (its row): the diagonal in green,
    errors in blue, white at 0%, explained by a colour bar. Cells of at least 34 pixels show
    their count over that share (``12`` over ``80%``), cells of at least 22 the count; a column
    ``n`` gives each true class's samples and the title line the samples and accuracy.

    Args:
        matrix: ``C×C`` counts, ``matrix[t, p]`` the samples of true class ``t`` predicted ``p``.
        size: The matrix's side in pixels (cells of ``size // C``); None: cells of
            ``400 // C`` pixels, at least 12 (while the matrix stays within 1,200 pixels) and at
            most 80, so that counts and shares show up to 10 classes.
        class_names: A name for each class, or None for indices.

    Example:
        >>> image = confusion_image(torch.tensor([[12, 3], [1, 9]]), class_names=["cat", "dog"])
        >>> image.shape[0]
        3
    """
    counts = matrix.detach().long().cpu()
    n = counts.shape[0]
    totals = counts.sum(1)
    share = counts.float() / totals.clamp(min=1)[:, None]
    default = min(80, max(400 // n, min(12, 1200 // n)))  # the matrix at most ~1200 px
    cell = max(1, size // n if size is not None else default)
    side = cell * n
    cells, row_totals = counts.tolist(), totals.tolist()
    colour = torch.where(
        torch.eye(n, dtype=torch.bool)[None], GREEN[:, None, None], BLUE[:, None, None]
    )
    heat = 1 - share[None] * (1 - colour)  # white at 0, the full colour at 1
    heat = heat.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    if cell >= 4:  # grid lines between cells
        heat[:, ::cell, :] = 0.8
        heat[:, :, ::cell] = 0.8

    font, small = _font(), _font(10)

    def label(i: int) -> str:
        return f"{i} {class_names[i]}" if class_names and i < len(class_names) else str(i)

    row_step = _label_step(cell, 12)
    rows = range(0, n, row_step)
    row_width = min(130, max(font.getlength(label(i)) for i in rows))
    left = 18 + math.ceil(row_width) + 6  # the rotated axis title, then the labels
    # Columns: labels across when each fits its cell, else turned (names) or thinned (indices).
    widest = max(font.getlength(label(i)) for i in range(n))
    turned = widest > cell - 4 and bool(class_names)
    if turned:
        col_step = row_step
        col_height = min(100, math.ceil(widest)) + 6
    else:
        col_step = 1 if widest <= cell - 4 else _label_step(cell, widest + 6)
        col_height = 16
    top = 20 + 16 + col_height  # the title line, the axis title, the column labels
    rate_lines = cell >= 34
    totals_width = math.ceil(max(font.getlength(_count(t)) for t in row_totals)) + 12
    bar_height = min(240, max(120, side))
    legend_x = left + side + totals_width + 10
    width = legend_x + 110
    height = max(top + side, top + bar_height + 40) + 8

    canvas = Image.new("RGB", (width, height), "white")
    pixels = (heat.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    canvas.paste(Image.fromarray(pixels), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left, top, left + side, top + side), outline=(204, 204, 204))
    total = int(totals.sum())
    title = (
        f"{total:,} samples, accuracy {int(counts.diagonal().sum()) / total:.1%}"
        if total
        else "no samples"
    )
    draw.text((4, 4), _fit(title, width - 8, font), fill="black", font=font)
    draw.text((left + side // 2, 22), "predicted class", fill="black", font=font, anchor="mt")
    _rotated(canvas, 2, top + side // 2, "true class", font, "black")
    for i in rows:  # row labels, right-aligned against the matrix
        text = _fit(label(i), row_width, font)
        draw.text(
            (left - 4, top + i * cell + cell // 2), text, fill="black", font=font, anchor="rm"
        )
    for i in range(0, n, col_step):
        middle = left + i * cell + cell // 2
        if turned:
            text = _fit(label(i), col_height - 6, font)
            _rotated(canvas, middle - (font.size + 4) // 2, None, text, font, "black", end=top - 3)
        else:
            draw.text((middle, top - 3), label(i), fill="black", font=font, anchor="mb")
    # the samples of each true class
    draw.text(
        (left + side + totals_width // 2, top - 3), "n", fill="#555555", font=font, anchor="mb"
    )
    for i in rows:
        middle = top + i * cell + cell // 2
        draw.text(
            (left + side + totals_width // 2, middle),
            _count(row_totals[i]),
            fill="#555555",
            font=font,
            anchor="mm",
        )
    if cell >= 22:
        big = _font(13) if cell >= 60 else font
        gap = 8 if cell >= 60 else 7
        for t in range(n):
            for p in range(n):
                value = cells[t][p]
                middle = (left + p * cell + cell // 2, top + t * cell + cell // 2)
                if value == 0:
                    draw.text(middle, "0", fill="#b4b4b4", font=big, anchor="mm")
                    continue
                ink = "white" if value > 0.55 * row_totals[t] else "black"
                if not rate_lines:
                    draw.text(middle, _count(value), fill=ink, font=big, anchor="mm")
                    continue
                x, y = middle
                draw.text((x, y - gap), _count(value), fill=ink, font=big, anchor="mm")
                draw.text(
                    (x, y + gap), _percent(value, row_totals[t]), fill=ink, font=big, anchor="mm"
                )
    _colour_bar(canvas, draw, legend_x, top, bar_height, font, small)
    return _to_tensor(canvas)


def _colour_bar(
    canvas: Image.Image, draw: Any, x: int, y: int, height: int, font: Any, small: Any
) -> None:
    """Two strips (green: right, blue: wrong) from 100% at the top to 0% at the bottom, with
    ticks, the scale's title along them and a key below."""
    ramp = torch.linspace(1, 0, height)[None, :, None]
    for colour, left in ((GREEN, x), (BLUE, x + 12)):
        strip = 1 - ramp * (1 - colour[:, None, None])  # 3 × height × 1
        strip = (strip.expand(3, height, 10).permute(1, 2, 0).numpy() * 255).round()
        canvas.paste(Image.fromarray(strip.astype(np.uint8)), (left, y))
        draw.rectangle((left - 1, y - 1, left + 10, y + height), outline="#808080")
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        level = y + round((1 - fraction) * (height - 1))
        draw.line((x + 23, level, x + 26, level), fill="#555555")
        draw.text((x + 28, level), f"{fraction:.0%}", fill="black", font=small, anchor="lm")
    _rotated(canvas, x + 58, y + height // 2, "share of the true class", font, "black")
    for i, (colour, text) in enumerate(((GREEN, "right (diagonal)"), (BLUE, "wrong"))):
        row = y + height + 10 + 14 * i
        fill = tuple(round(255 * float(c)) for c in colour)
        draw.rectangle((x, row - 4, x + 8, row + 4), fill=fill)
        draw.text((x + 13, row), text, fill="black", font=small, anchor="lm")


def _to_rgb01(x: torch.Tensor) -> torch.Tensor:
    """``N×C×H×W`` images of any scale as ``N×3×H×W`` in [0, 1] (each image min-max scaled)."""
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    x = (x - low) / (high - low).clamp(min=1e-8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _upscale(x: torch.Tensor, minimum: int = 64) -> torch.Tensor:
    side = min(x.shape[-2:])
    if side >= minimum:
        return x
    factor = -(-minimum // side)
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def prediction_image(
    x: torch.Tensor,
    target: torch.Tensor,
    predicted: torch.Tensor,
    class_names: Sequence[str] | None = None,
    confidence: torch.Tensor | None = None,
) -> torch.Tensor:
    """A grid of images as a ``3×H×W`` image in [0, 1], each framed green (right) or red (wrong)
    and captioned with the predicted class and its confidence (``cat 93%``, in the frame's
    colour) over the true class (``true: dog``; grey when right, black when wrong).

    Args:
        x: ``N×C×H×W`` images (``C`` 1 or 3), any scale: each is min-max scaled; small ones are
            enlarged to at least 80 pixels (up to 128 for long captions).
        target: ``N`` true classes.
        predicted: ``N`` predicted classes.
        class_names: A name for each class, or None for indices.
        confidence: ``N`` probabilities of the predicted class, or None to leave them out.

    Example:
        >>> grid = prediction_image(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]),
        ...                         torch.tensor([0, 0]), ["cat", "dog"], torch.tensor([0.9, 0.6]))
        >>> grid.shape[0]
        3
    """
    targets, guesses = target.view(-1).tolist(), predicted.view(-1).tolist()
    confidences = confidence.view(-1).tolist() if confidence is not None else [None] * len(x)
    captions = [
        _caption(t, p, c, class_names)
        for t, p, c in zip(targets, guesses, confidences, strict=True)
    ]
    font = _font()
    widest = max(
        font.getlength(text) for name, suffix, truth in captions for text in (name + suffix, truth)
    )
    # images enlarged to at least 80 px, or up to 128 for the captions to fit (less the frame)
    images = _upscale(_to_rgb01(x.float()), minimum=min(128, max(80, math.ceil(widest) - 2)))
    right = torch.tensor([t == p for t, p in zip(targets, guesses, strict=True)])
    frame = torch.where(right.view(-1, 1, 1, 1), RIGHT.view(1, 3, 1, 1), WRONG.view(1, 3, 1, 1))
    framed = F.pad(images, (3, 3, 3, 3))
    border = torch.ones_like(framed, dtype=torch.bool)
    border[:, :, 3:-3, 3:-3] = False
    framed = torch.where(border, frame.expand_as(framed), framed)
    framed = torch.stack(
        [
            _captioned(image, *caption, good)
            for image, caption, good in zip(framed, captions, right.tolist(), strict=True)
        ]
    )
    return make_grid(framed, nrow=8, padding=2, pad_value=1.0)


def _caption(
    target: int, predicted: int, confidence: float | None, names: Sequence[str] | None
) -> tuple[str, str, str]:
    """The caption's parts: the predicted class, its confidence (``" 93%"``, or empty) and the
    true class (``"true: dog"``)."""

    def name(i: int) -> str:
        return names[i] if names is not None and 0 <= i < len(names) else str(i)

    suffix = f" {confidence:.0%}" if confidence is not None else ""
    return name(predicted), suffix, f"true: {name(target)}"


def _captioned(
    image: torch.Tensor, guess: str, suffix: str, truth: str, right: bool
) -> torch.Tensor:
    """``image`` over its caption: the prediction in the frame's colour, the truth below it
    (grey when right); both cut to the image's width, the confidence kept."""
    font = _font()
    width = image.shape[-1]
    strip = Image.new("RGB", (width, 28), "white")
    draw = ImageDraw.Draw(strip)
    guess = _fit(guess, width - 4 - font.getlength(suffix), font) + suffix
    draw.text((2, 1), guess, fill="#1a7f33" if right else "#c0141a", font=font)
    draw.text(
        (2, 14), _fit(truth, width - 4, font), fill="#777777" if right else "black", font=font
    )
    return torch.cat([image, _to_tensor(strip)], dim=1)


def _overlay(images: torch.Tensor, masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    colours = PALETTE[masks.clamp(min=0) % len(PALETTE)].permute(
        0, 3, 1, 2
    )  # class c: PALETTE[c % 10]
    valid = ((masks >= 0) & (masks < num_classes))[:, None]
    return torch.where(valid, 0.5 * images + 0.5 * colours, images)


def segmentation_image(
    x: torch.Tensor, target: torch.Tensor, predicted: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Rows of image | true mask | predicted mask (masks blended over the image)."""
    images = _to_rgb01(x)
    rows = torch.stack(
        [images, _overlay(images, target, num_classes), _overlay(images, predicted, num_classes)], 1
    ).flatten(0, 1)
    return make_grid(_upscale(rows), nrow=3, padding=2, pad_value=1.0)


__all__ = [
    "BLUE",
    "GREEN",
    "PALETTE",
    "RIGHT",
    "WRONG",
    "confusion_image",
    "prediction_image",
    "segmentation_image",
]
