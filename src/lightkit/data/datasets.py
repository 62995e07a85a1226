"""Datasets over files: labelled image files, image/mask pairs for segmentation, and image folders."""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_MODES = ("RGB", "L", "RGBA")
# The formats lightkit decodes: PIL can read many more (EPS through Ghostscript, a subprocess;
# rarely used plugins that are less hardened), and an image file is untrusted input.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF", "PPM")  # JPEG: MPO too
_BAD_FILE = ("error", "skip")

PathLike = str | os.PathLike[str]


class BadImageError(ValueError):
    """An image or mask file that cannot be used: missing, truncated, corrupt, not an image, a
    possible decompression bomb, or pixel values outside the range lightkit can scale.

    Example:
        >>> from pathlib import Path
        >>> _ = Path("broken.png").write_bytes(b"not a png")
        >>> try:
        ...     lk.data.ImageFileDataset(["broken.png"], [0])[0]
        ... except lk.data.BadImageError as error:  # a ValueError
        ...     print(error)
        cannot read image file 'broken.png': not an image in a format lightkit reads (PNG, JPEG, ...)
    """


# PIL modes that hold more than 8 bits per pixel. PIL has no multi-channel high-depth mode (16-bit
# RGB files open as 8-bit "RGB"), so these are all single-channel.
_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_HIGH_DEPTH_MODES = (*_UINT16_MODES, "I", "F")
_MASK_MODES = ("1", "L", "P", "I", *_UINT16_MODES)


def load_image(path: PathLike, mode: str = "RGB") -> Image.Image | tv_tensors.Image:
    """Open and fully decode an image file as ``mode`` (``"RGB"`` or ``"L"``), naming it on failure.

    8-bit images (PNG, JPEG, ...) come back as a PIL image converted to ``mode``, which is what
    torchvision transforms take. Images with more than 8 bits per pixel come back as a float32
    ``tv_tensors.Image`` (``C×H×W``, 3 channels for ``"RGB"``, 1 for ``"L"``) in ``[0, 1]``,
    because PIL's own conversion to 8 bits clips them (a 16-bit value of 1000 would become 255):

    * 16-bit images (PIL mode ``"I;16"``: 16-bit PNG and TIFF) are divided by 65535;
    * 32-bit integer images (mode ``"I"``: 16-bit PGM, integer TIFF) are divided by 65535 and
      must lie in ``[0, 65535]``;
    * float images (mode ``"F"``: float TIFF) must already lie in ``[0, 1]`` and are kept as they
      are.

    Values outside those ranges (and NaN or infinity) are refused rather than clipped or
    rescaled per image. torchvision v2 transforms (``v2.ToImage()``, ``v2.ToDtype(torch.float32,
    scale=True)``, the presets in :mod:`lightkit.data.transforms`) take both results.

    Images larger than ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 megapixels by default) are refused
    before they are decoded: a small file can decode to gigabytes (a decompression bomb). If you
    trust such a file, raise the limit explicitly, e.g. ``PIL.Image.MAX_IMAGE_PIXELS = 200_000_000``
    at the top of your script.

    Args:
        path: The image file.
        mode: ``"RGB"`` or ``"L"``; ``""`` returns the file's PIL image unconverted (for masks).

    Raises:
        BadImageError: naming the file, when it is missing, truncated, not an image, a possible
            decompression bomb, or has values outside the range above.

    Example:
        >>> from lightkit.data.datasets import load_image
        >>> image = load_image("scan.png", mode="L")  # a 16-bit PNG: 1×H×W in [0, 1]
    """
    _check_choice("load_image", "mode", mode, (*_MODES, ""))
    return _load(path, os.fspath(path), mode)


def decode_image(
    data: bytes, mode: str = "RGB", name: str = "the image", max_pixels: int | None = None
) -> Image.Image | tv_tensors.Image:
    """:func:`load_image` for the bytes of an image file (an upload); ``name`` names it in errors.

    ``max_pixels``: a lower limit than ``PIL.Image.MAX_IMAGE_PIXELS`` (a server's), checked on
    the header before anything is decoded.

    Example:
        >>> from lightkit.data.datasets import decode_image
        >>> image = decode_image(Path("cat.jpg").read_bytes(), name="cat.jpg")
    """
    _check_choice("decode_image", "mode", mode, _MODES)
    return _load(io.BytesIO(data), name, mode, max_pixels)


def _load(
    source: Any, name: str, mode: str, max_pixels: int | None = None
) -> Image.Image | tv_tensors.Image:
    with _open(source, name, max_pixels) as img:
        try:
            img.load()
        except MemoryError as err:
            raise BadImageError(f"image file {name!r} is too large to decode here") from err
        except Exception as err:  # a format plugin may raise anything on a crafted file
            raise BadImageError(
                f"cannot read image file {name!r}: {type(err).__name__}: {err}"
            ) from err
        if not mode:
            return img.copy()
        if img.mode in _HIGH_DEPTH_MODES:
            return _high_depth_image(img, name, mode)
        try:
            return img.convert(mode) if img.mode != mode else img.copy()
        except Exception as err:
            raise BadImageError(
                f"cannot convert image file {name!r} from PIL mode {img.mode!r} to {mode!r}: {err}"
            ) from err


def load_mask(path: PathLike) -> torch.Tensor:
    """Decode a segmentation mask file into an ``H×W`` int64 tensor of class indices.

    The pixel values are the class indices, never scaled: a one-channel image in PIL mode
    ``"L"``, ``"P"`` (palette PNG), ``"1"``, ``"I"`` or ``"I;16"`` (16-bit PNG).

    Raises:
        BadImageError: naming the file, when it cannot be read or is not one channel of indices.

    Example:
        >>> from lightkit.data.datasets import load_mask
        >>> mask = load_mask("masks/0001.png")  # torch.int64, H×W
    """
    img = load_image(path, "")
    if img.mode not in _MASK_MODES:
        raise BadImageError(
            f"mask file {os.fspath(path)!r} is a PIL mode {img.mode!r} image; expected one channel "
            f"of integer class indices (PIL mode {', '.join(_MASK_MODES)}). Convert colour-coded "
            "or float masks to class indices first"
        )
    return torch.from_numpy(np.array(img, dtype=np.int64))


def verify_image_files(paths: Sequence[PathLike]) -> list[tuple[str, str]]:
    """Scan image files without decoding their pixels: ``(path, what is wrong)`` per bad file.

    Each file is opened (its header read: a file that is missing, not an image, or a possible
    decompression bomb is found) and checked with PIL's ``verify()`` (chunk checksums for PNG,
    the structure of other formats; a JPEG must end with its end-of-image marker, so a cut-off
    download is found). It is fast (no pixels are decoded), so it can run over a whole dataset
    before training; a file damaged only inside its compressed pixel data is found when it is
    decoded.

    Example:
        >>> from lightkit.data.datasets import verify_image_files
        >>> verify_image_files(["a.png", "broken.jpg"])
        [('broken.jpg', "cannot read image file 'broken.jpg': ...")]
    """
    problems = []
    for path in paths:
        try:
            with _open(path) as img:
                jpeg = img.format == "JPEG"
                img.verify()
            if jpeg and not _has_jpeg_end(path):
                problems.append((os.fspath(path), "truncated: no JPEG end-of-image marker"))
        except BadImageError as err:
            problems.append((os.fspath(path), str(err)))
        except Exception as err:  # PIL's verify() raises whatever the format's plugin raises
            problems.append((os.fspath(path), f"{type(err).__name__}: {err}"))
    return problems


def _has_jpeg_end(path: PathLike) -> bool:
    """Whether a JPEG file's last KiB holds the end-of-image marker (a cut-off file does not)."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 1024))
        return b"\xff\xd9" in f.read()


@contextmanager
def _open(
    path: Any, name: str | None = None, max_pixels: int | None = None
) -> Iterator[Image.Image]:
    """``Image.open`` that names the file on failure and refuses possible decompression bombs."""
    name = name if name is not None else os.fspath(path)
    try:
        with warnings.catch_warnings():
            # PIL warns above MAX_IMAGE_PIXELS and raises above twice that; refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.init()  # registers every format plugin (once), so that formats= can name them
            img = Image.open(path, formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(_bomb_message(name, _pixels_in(err), None)) from None
    except FileNotFoundError as err:
        raise BadImageError(f"cannot read image file {name!r}: {err}") from err
    except Exception as err:  # a format plugin may raise anything on a crafted file
        detail = (
            f"not an image in a format lightkit reads ({', '.join(IMAGE_FORMATS)})"
            if isinstance(err, Image.UnidentifiedImageError)
            else f"{type(err).__name__}: {err}"
        )
        raise BadImageError(f"cannot read image file {name!r}: {detail}") from err
    with img:
        limit = Image.MAX_IMAGE_PIXELS
        width, height = img.size
        if limit is not None and width * height > limit:  # whatever the warning filters say
            raise BadImageError(_bomb_message(name, width * height, img.size))
        if max_pixels is not None and width * height > max_pixels:
            raise BadImageError(
                f"image file {name!r} has {width * height:,} pixels ({width}×{height}), more "
                f"than the limit of {max_pixels:,} here; send a smaller image"
            )
        yield img


def _pixels_in(err: BaseException) -> int | None:
    found = re.search(r"\((\d+) pixels\)", str(err))
    return int(found.group(1)) if found else None


def _bomb_message(name: str, pixels: int | None, size: tuple[int, int] | None) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    count = f"{pixels:,} pixels" if pixels is not None else "more pixels than allowed"
    if size is not None:
        count += f" ({size[0]}×{size[1]})"
    suggestion = f"{pixels}" if pixels is not None else "<the pixel count>"
    return (
        f"image file {name!r} is refused as a possible decompression bomb: it would decode to "
        f"{count}, over PIL's limit of {limit:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); a small "
        "file can decode to gigabytes. If you trust this file, raise the limit explicitly at the "
        "top of your script (DataLoader workers inherit it): "
        f"`PIL.Image.MAX_IMAGE_PIXELS = {suggestion}` (or None to disable the check)"
    )


def _high_depth_image(img: Image.Image, name: str, mode: str) -> tv_tensors.Image:
    """A single-channel 16-bit, 32-bit integer or float PIL image as a float32 image in [0, 1]."""
    array = np.asarray(img)
    if img.mode == "F":
        finite = np.isfinite(array)
        if not finite.all():
            raise BadImageError(
                f"image file {name!r} (a float image, PIL mode 'F') has {int((~finite).sum())} NaN "
                "or infinite pixel(s); lightkit expects finite float images in [0, 1]"
            )
        scale, low, high, expected = 1.0, 0.0, 1.0, "float images in [0, 1]"
    else:  # I;16 (uint16) or I (int32)
        scale, low, high = 65535.0, 0, 65535
        expected = "integer images in [0, 65535] (16 bits), which it scales by 1/65535"
    lo, hi = (array.min(), array.max()) if array.size else (low, high)
    if lo < low or hi > high:
        raise BadImageError(
            f"image file {name!r} (PIL mode {img.mode!r}, {array.dtype}) has values in "
            f"[{lo}, {hi}]; lightkit reads {expected} and refuses to clip or rescale others "
            "per image. Rescale the file to that range, or load it yourself and pass tensors"
        )
    tensor = torch.from_numpy(array.astype(np.float32))[None]
    if scale != 1.0:
        tensor = tensor.div_(scale)
    if mode in ("RGB", "RGBA"):
        tensor = tensor.expand(3, -1, -1)
    if mode == "RGBA":  # opaque
        tensor = torch.cat([tensor, torch.ones_like(tensor[:1])])
    return tv_tensors.Image(tensor.contiguous())


def _check_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(
            f"{owner}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


def _drop_bad_files(
    owner: str, columns: list[list[Any]], loaders: dict[int, Callable[[Any], Any]]
) -> list[list[Any]]:
    """Decode every file up front; drop the rows with a bad file and warn with the first paths.

    ``loaders`` maps a column index to the function that decodes its files (and raises
    :class:`BadImageError` for a bad one).
    """
    bad: list[str] = []
    keep = []
    for row in zip(*columns, strict=True):
        try:
            for c, load in loaders.items():
                load(row[c])
        except BadImageError:
            bad.append(os.fspath(row[next(iter(loaders))]))
            continue
        keep.append(row)
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        warnings.warn(
            f"{owner}: skipped {len(bad)} unreadable file(s) (on_bad_file='skip'): {shown}",
            stacklevel=3,
        )
    return [list(col) for col in zip(*keep, strict=True)] if keep else [[] for _ in columns]


class ImageFileDataset(Dataset):
    """Images loaded from files with PIL, with optional integer labels.

    A sample is ``(image, label)`` (or the image alone when ``labels`` is None). Without a
    ``transform`` the image is a float tensor ``C×H×W`` in ``[0, 1]``; with one, it is whatever
    the transform returns for what :func:`load_image` gives it: a PIL image for 8-bit files, a
    float32 ``tv_tensors.Image`` in ``[0, 1]`` for 16-bit and float files (the presets in
    :mod:`lightkit.data.transforms` take both and return normalized tensors).

    Args:
        paths: Image file paths.
        labels: One integer label per path, or None.
        transform: Applied to each loaded image (see above).
        mode: ``"RGB"`` (3 channels) or ``"L"`` (grayscale, 1 channel).
        on_bad_file: ``"error"`` (default): reading a bad file (truncated, not an image, a
            possible decompression bomb, values out of range: see :func:`load_image`) raises a
            :class:`BadImageError` naming it. ``"skip"``: every file is decoded once up front and
            bad ones are dropped, with a warning giving their count and the first few paths.

    Example:
        >>> from PIL import Image
        >>> Image.new("RGB", (40, 30), "red").save("a.png")
        >>> Image.new("RGB", (40, 30), "blue").save("b.jpg")
        >>> ds = lk.data.ImageFileDataset(["a.png", "b.jpg"], [0, 1], mode="L")
        >>> image, label = ds[0]
        >>> image.shape, image.dtype, label  # C×H×W in [0, 1]
        (torch.Size([1, 30, 40]), torch.float32, 0)
    """

    def __init__(
        self,
        paths: Sequence[PathLike],
        labels: Sequence[int] | None = None,
        transform: Callable[[Any], Any] | None = None,
        mode: str = "RGB",
        on_bad_file: str = "error",
    ) -> None:
        _check_choice("ImageFileDataset", "mode", mode, _MODES)
        _check_choice("ImageFileDataset", "on_bad_file", on_bad_file, _BAD_FILE)
        paths = list(paths)
        if labels is not None:
            labels = [int(label) for label in labels]
            if len(labels) != len(paths):
                raise ValueError(
                    f"ImageFileDataset: got {len(paths)} paths but {len(labels)} labels; "
                    "expected one label per path"
                )
        if on_bad_file == "skip":
            columns = [paths, labels] if labels is not None else [paths]
            kept = _drop_bad_files("ImageFileDataset", columns, {0: lambda p: load_image(p, mode)})
            paths = kept[0]
            labels = kept[1] if labels is not None else None
        self.paths = paths
        self.labels = labels
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        image = load_image(self.paths[index], self.mode)
        if self.transform is None:
            sample = _to_float_tensor(image)
        else:
            try:
                sample = self.transform(image)
            except (RuntimeError, ValueError, TypeError) as err:
                raise BadImageError(
                    f"{os.fspath(self.paths[index])!r} (sample {index}): the transform failed on "
                    f"this image ({image_size_text(image)}): {err}"
                ) from err
        if self.labels is None:
            return sample
        return sample, self.labels[index]


class SegmentationDataset(Dataset):
    """Paired image and mask files for semantic segmentation.

    Masks are single-channel images whose pixel values are class indices, never scaled (PNG in
    mode ``"L"``, ``"P"`` or 16-bit; see :func:`load_mask`). A sample is ``(image, mask)``: with no ``transform``, a float ``C×H×W`` tensor in
    ``[0, 1]`` and a long ``H×W`` tensor. A ``transform`` is called as ``transform(image, mask)``
    with a ``tv_tensors.Image`` and a ``tv_tensors.Mask``, so torchvision v2 applies the same
    geometric transform to both (masks with nearest-neighbour interpolation) and colour
    transforms to the image only; the presets in :mod:`lightkit.data.transforms` work as they are.

    Image and mask sizes are compared when the dataset is built (from the file headers, which is
    cheap), so a mismatched pair is reported before training starts, naming both files.

    Args:
        images: Image file paths.
        masks: Mask file paths, one per image.
        transform: ``(image, mask) -> (image, mask)``.
        mode: ``"RGB"`` or ``"L"`` for the images.
        on_bad_file: ``"error"`` or ``"skip"`` (see :class:`ImageFileDataset`).

    Example:
        >>> from PIL import Image
        >>> Image.new("RGB", (40, 40)).save("image.png")
        >>> Image.new("L", (40, 40), 1).save("mask.png")  # pixel values are class indices
        >>> ds = lk.data.SegmentationDataset(
        ...     ["image.png"], ["mask.png"], lk.data.transforms.train_preset(32)
        ... )
        >>> image, mask = ds[0]  # cropped and flipped alike
        >>> image.shape, mask.shape, mask.unique()
        (torch.Size([3, 32, 32]), torch.Size([32, 32]), tensor([1]))
    """

    def __init__(
        self,
        images: Sequence[PathLike],
        masks: Sequence[PathLike],
        transform: Callable[[Any, Any], tuple[Any, Any]] | None = None,
        mode: str = "RGB",
        on_bad_file: str = "error",
    ) -> None:
        _check_choice("SegmentationDataset", "mode", mode, _MODES)
        _check_choice("SegmentationDataset", "on_bad_file", on_bad_file, _BAD_FILE)
        images, masks = list(images), list(masks)
        if len(images) != len(masks):
            raise ValueError(
                f"SegmentationDataset: got {len(images)} images but {len(masks)} masks; "
                "expected one mask per image"
            )
        if on_bad_file == "skip":
            loaders = {0: lambda p: load_image(p, mode), 1: load_mask}
            images, masks = _drop_bad_files("SegmentationDataset", [images, masks], loaders)
        for image_path, mask_path in zip(images, masks, strict=True):
            image_size, mask_size = _header_size(image_path), _header_size(mask_path)
            if image_size != mask_size:
                raise ValueError(
                    f"SegmentationDataset: mask {os.fspath(mask_path)!r} is {mask_size[0]}×"
                    f"{mask_size[1]} but its image {os.fspath(image_path)!r} is {image_size[0]}×"
                    f"{image_size[1]} (width×height); they must match"
                )
        self.images = images
        self.masks = masks
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = _to_image(load_image(self.images[index], self.mode))
        mask = tv_tensors.Mask(load_mask(self.masks[index]))
        if self.transform is not None:
            try:
                image, mask = self.transform(image, mask)
            except (RuntimeError, ValueError, TypeError) as err:
                raise BadImageError(
                    f"{os.fspath(self.images[index])!r} (sample {index}): the transform failed on "
                    f"this image and its mask: {err}"
                ) from err
        else:
            image = TF.to_dtype(image, torch.float32, scale=True)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def find_image_folder(root: PathLike) -> tuple[list[str], list[Path], list[int]]:
    """Scan ``root/<class_name>/*.{png,jpg,jpeg,bmp,webp,tif,tiff}``.

    Returns:
        ``(class_names, paths, labels)`` with classes sorted by name and labels indexing them.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no class folders, an empty class folder, or no images at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder root {os.fspath(root)!r} does not exist or is not a folder"
        )
    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise ValueError(
            f"image folder {os.fspath(root)!r} has no class folders; expected "
            f"root/<class_name>/*{{{','.join(IMAGE_EXTENSIONS)}}}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise ValueError(
                f"class folder {os.fspath(class_dir)!r} has no images "
                f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add images"
            )
        paths += files
        labels += [label] * len(files)
    return [d.name for d in class_dirs], paths, labels


def compute_mean_std(
    dataset: Dataset, max_samples: int | None = None
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a dataset's images (``C×H×W`` tensors, or ``(image, ...)``).

    Use it on the training split, without normalization in its transform, and pass the result
    to the presets in :mod:`lightkit.data.transforms`.

    Args:
        dataset: A map-style dataset of image tensors or ``(image, target)`` samples.
        max_samples: Use only the first ``max_samples`` samples (None: all).

    Example:
        >>> images = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 8, 8)  # black, white
        >>> mean, std = lk.data.compute_mean_std(images)  # any dataset of C×H×W images
        >>> mean, std
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
        >>> tf = lk.data.transforms.train_preset(64, mean=mean, std=std)
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("compute_mean_std: the dataset is empty")
    total = total_sq = None
    count = 0
    for i in range(n if max_samples is None else min(n, max_samples)):
        sample = dataset[i]
        image = sample[0] if isinstance(sample, (tuple, list)) else sample
        if not isinstance(image, torch.Tensor) or image.ndim != 3:
            raise TypeError(
                f"compute_mean_std: sample {i} is not a C×H×W tensor (got "
                f"{type(image).__name__}{'' if not isinstance(image, torch.Tensor) else tuple(image.shape)})"
            )
        pixels = image.double().flatten(1)
        total = pixels.sum(1) if total is None else total + pixels.sum(1)
        total_sq = (pixels**2).sum(1) if total_sq is None else total_sq + (pixels**2).sum(1)
        count += pixels.shape[1]
    assert total is not None and total_sq is not None
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def _header_size(path: PathLike) -> tuple[int, int]:
    with _open(path) as img:
        return img.size


def _to_image(image: Image.Image | tv_tensors.Image) -> tv_tensors.Image:
    """What :func:`load_image` returned, as a ``tv_tensors.Image`` (uint8 or float32)."""
    if isinstance(image, tv_tensors.Image):
        return image
    return tv_tensors.Image(TF.pil_to_tensor(image))


def _to_float_tensor(image: Image.Image | tv_tensors.Image) -> torch.Tensor:
    float_image = TF.to_dtype(_to_image(image), torch.float32, scale=True)
    return float_image.as_subclass(torch.Tensor)


__all__ = [
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "ImageFileDataset",
    "SegmentationDataset",
    "compute_mean_std",
    "find_image_folder",
    "load_image",
    "load_mask",
]


def image_size_text(image: Any) -> str:
    """``"W×H"`` of a PIL image or tensor image, for error messages."""
    if isinstance(image, Image.Image):
        return f"{image.width}×{image.height}"
    shape = getattr(image, "shape", None)
    return f"{shape[-1]}×{shape[-2]}" if shape is not None and len(shape) >= 2 else "unknown size"
