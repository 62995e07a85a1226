"""Streaming data: write a Dataset or an image folder as LitData shards once, train from them anywhere.

:func:`write_streaming` decodes every sample once and writes each split (train, val, test) as a
LitData optimised dataset (chunk files plus ``index.json``), with a manifest,
``lightkit-streaming.json``, that records the split. :class:`StreamingDataModule` trains from such
a folder, local or at any fsspec URL (``s3://``, ``gs://``, ``memory://``, ``file://``, ...),
reading chunks as it goes through LitData's ``StreamingDataset`` and ``StreamingDataLoader``: the
data never has to fit in memory or on the local disk. Needs the ``streaming`` extra
(``pip install "lightkit[streaming]"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lightkit._lightning import processed_counter
from lightkit._validation import (
    check_bool,
    check_class_names,
    check_float,
    check_instance,
    check_int,
    check_seed,
    short_repr,
)
from lightkit._version import VERSION
from lightkit.data._checks import check_dataset
from lightkit.data._splits import split_indices
from lightkit.data.datasets import find_image_folder, load_image

MANIFEST = "lightkit-streaming.json"
FORMAT = "lightkit-streaming"
SPLITS = ("train", "val", "test")
_MAX_MANIFEST_BYTES = 64 * 2**20  # a manifest lists source indices: generous, but bounded

Transform = Callable[[Any], Any]


def _litdata(owner: str) -> Any:
    try:
        import litdata
    except ImportError as err:
        raise ImportError(
            f'{owner} needs LitData: pip install "lightkit[streaming]" ({err})'
        ) from None
    return litdata


# --- locations: a local folder or an fsspec URL -----------------------------------------------


def _is_url(location: str) -> bool:
    return "://" in location


def _location(owner: str, name: str, value: Any) -> str:
    """``value`` as a string: a local path (made absolute) or an fsspec URL (``file://`` becomes
    the local path it names)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"{owner}: {name} must be a folder path or an fsspec URL (such as 's3://bucket/data' "
            f"or 'memory://data'), got {short_repr(value)} ({type(value).__name__})"
        )
    if not _is_url(value):
        return os.path.abspath(value)
    protocol = value.split("://", 1)[0]
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as err:
        raise ValueError(
            f"{owner}: {name}={value!r}: fsspec has no usable filesystem for {protocol!r}:// "
            f"({err})"
        ) from None
    if protocol in ("file", "local"):
        return os.path.abspath(value.split("://", 1)[1])
    return value.rstrip("/")


def _filesystem(location: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(location, **dict(storage_options or {}))


def _join(location: str, *parts: str) -> str:
    return (
        "/".join([location.rstrip("/"), *parts])
        if _is_url(location)
        else os.path.join(location, *parts)
    )


# --- writing ----------------------------------------------------------------------------------


def _image_folder_source(root: str, mode: str) -> tuple[Dataset, list[int], list[str]]:
    class_names, paths, labels = find_image_folder(root)

    class _Images(Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, index: int) -> tuple[Any, int]:
            return load_image(paths[index], mode), labels[index]

    return _Images(), labels, class_names


_PALETTE_MODES = ("P", "PA", "1")  # stored as RGB(A): their raw bytes lose the palette
_WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")  # not 8-bit: no lossless PIL store


def _stored(owner: str, split: str, source_index: int, sample: Any) -> dict:
    """The record written for one sample: its source index, input and target."""
    where = f"{owner}: {split} sample {source_index}"
    if isinstance(sample, (tuple, list)):
        if len(sample) != 2:
            raise ValueError(
                f"{where} has {len(sample)} parts; expected (input, target) or an input alone"
            )
        x, y = sample
    else:
        x, y = sample, None
    if isinstance(x, Image.Image):
        if x.mode in _WIDE_MODES:
            raise TypeError(
                f"{where}: the input is a PIL image of mode {x.mode!r} (more than 8 bits per "
                "pixel), which would lose its range; give it as a tensor (e.g. "
                "torch.from_numpy(np.asarray(image, dtype=np.float32)))"
            )
        if x.mode in _PALETTE_MODES:
            x = x.convert("RGBA" if x.mode == "PA" or "transparency" in x.info else "RGB")
        else:
            x = x.copy()  # a plain Image (not a file-backed one): stored decoded, not as JPEG
    elif isinstance(x, torch.Tensor):
        x = x.detach().cpu().as_subclass(torch.Tensor).contiguous()
    elif not isinstance(x, (int, float, np.ndarray)) or isinstance(x, bool):
        raise TypeError(
            f"{where}: the input is a {type(x).__name__}; expected a tensor, a numpy array or a "
            "PIL image"
        )
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().contiguous()
        if y.ndim == 0:
            y = y.item()  # a class index, stored as the number it is
    elif isinstance(y, np.generic):
        y = y.item()
    elif y is not None and (not isinstance(y, (int, float, np.ndarray)) or isinstance(y, bool)):
        raise TypeError(
            f"{where}: the target is a {type(y).__name__} ({short_repr(y)}); expected a number, "
            "a tensor or a numpy array"
        )
    record = {"index": source_index, "input": x}
    if y is not None:
        record["target"] = y
    return record


def _kind(value: Any) -> str:
    """What LitData stores a value as: every sample of a split must store alike."""
    if isinstance(value, torch.Tensor):
        return f"a {value.ndim}-d {str(value.dtype).removeprefix('torch.')} tensor"
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-d {value.dtype} numpy array"
    if isinstance(value, Image.Image):
        return f"a PIL image of mode {value.mode!r}"
    return f"a Python {type(value).__name__}"


def _write_split(
    owner: str,
    split: str,
    dataset: Dataset,
    indices: Sequence[int],
    folder: str,
    chunk_bytes: int | str,
) -> None:
    from litdata.streaming import Cache

    os.makedirs(folder)
    cache = Cache(folder, chunk_bytes=chunk_bytes)
    first: dict[str, str] | None = None
    for position, source_index in enumerate(indices):
        try:
            sample = dataset[source_index]
        except Exception as err:
            raise RuntimeError(
                f"{owner}: reading {split} sample {source_index} failed: "
                f"{type(err).__name__}: {err}"
            ) from err
        record = _stored(owner, split, source_index, sample)
        kinds = {key: _kind(value) for key, value in record.items() if key != "index"}
        if first is None:
            first = kinds
        elif kinds != first:
            for key in ("input", "target"):
                if kinds.get(key) != first.get(key):
                    got, expected = kinds.get(key, "no " + key), first.get(key, "no " + key)
                    raise ValueError(
                        f"{owner}: {split} sample {source_index}: the {key} is {got}, but the "
                        f"first sample's is {expected}; every sample of a split is stored alike"
                    )
        cache[position] = record
    cache.done()
    cache.merge()


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)\s*", re.I)


def _check_size(owner: str, name: str, value: Any, fraction: bool = False) -> None:
    """A byte count: a positive integer or a size such as ``"64MB"`` (or, with ``fraction``, a
    share of the free disk in ``(0, 1]``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return
    if isinstance(value, str) and _SIZE.fullmatch(value) and float(_SIZE.fullmatch(value)[1]) > 0:
        return
    if fraction and isinstance(value, float) and 0 < value <= 1:
        return
    also = ", or a fraction of the free disk in (0, 1]" if fraction else ""
    raise (TypeError if not isinstance(value, (int, float, str)) else ValueError)(
        f"{owner}: {name} must be a positive number of bytes or a size such as '64MB'{also}, "
        f"got {short_repr(value)}"
    )


def write_streaming(
    dataset: Dataset | str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    val: Dataset | None = None,
    test: Dataset | None = None,
    val_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = 0,
    mode: str = "RGB",
    class_names: Sequence[str] | None = None,
    chunk_bytes: int | str = "64MB",
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Write ``dataset`` once as sharded, decoded LitData splits that :class:`StreamingDataModule` reads.

    Each split becomes a folder of chunk files (``train/``, ``val/``, ``test/``) holding, per
    sample, its index in the source, its input (a tensor, a numpy array or a decoded PIL image:
    images are decoded here, once, not every epoch) and its target. The manifest
    ``lightkit-streaming.json``, written last, records which source indices went to which split,
    the seed, the class names and the lightkit version; a folder without it is an unfinished write,
    and :class:`StreamingDataModule` refuses it. Transforms are not applied here: give them to the
    data module, which applies them per split as it reads.

    Args:
        dataset: A map-style ``Dataset`` of ``(input, target)`` samples (or inputs alone), or the
            path of an image folder ``root/<class_name>/*.png|jpg|...``, whose images are decoded
            as ``mode`` and labelled by folder (as :class:`~lightkit.data.ImageFolderDataModule`
            does, with the same stratified split for the same ``seed``).
        output_dir: Where to write: a local folder or an fsspec URL (``s3://bucket/digits``,
            ``memory://digits``, ``file:///data/digits``). Written locally first, then uploaded,
            manifest last.
        val: A validation dataset; when None, ``val_split`` of ``dataset`` is held out.
        test: A test dataset; when None, ``test_split`` of ``dataset`` is held out.
        val_split: Fraction of ``dataset`` held out for validation (when ``val`` is None).
        test_split: Fraction of ``dataset`` held out for testing (when ``test`` is None).
        seed: Seed of the split (stratified by folder for image folders).
        mode: ``"RGB"`` or ``"L"``: how image-folder images are decoded.
        class_names: The name of each class (an image folder's are its sub-folders).
        chunk_bytes: Size of each chunk file (LitData's ``chunk_bytes``): ``"64MB"`` suits
            object stores; smaller chunks suit small data.
        overwrite: Replace an existing ``output_dir``. Without it, a folder that already holds
            files is refused, so nothing written before is lost.
        storage_options: fsspec options for ``output_dir`` (credentials, endpoint).

    Returns:
        ``output_dir`` as written (a local folder as an absolute path).

    Example:
        >>> from pathlib import Path
        >>> out = lk.data.write_streaming(my_dataset, "shards", val_split=0.25, chunk_bytes="1MB")
        >>> sorted(p.name for p in Path(out).iterdir())
        ['lightkit-streaming.json', 'train', 'val']
        >>> dm = lk.data.StreamingDataModule(out, batch_size=64)
        >>> len(dm.manifest["splits"]["val"]["source_indices"])  # which samples went where
        24
    """
    owner = "write_streaming"
    _litdata(owner)
    check_float(owner, "val_split", val_split, 0.0, 1.0, max_inclusive=False)
    check_float(owner, "test_split", test_split, 0.0, 1.0, max_inclusive=False)
    seed = check_seed(owner, "seed", seed)
    check_bool(owner, "overwrite", overwrite)
    if mode not in ("RGB", "L"):
        raise ValueError(f"{owner}: mode must be 'RGB' or 'L', got {short_repr(mode)}")
    names = check_class_names(owner, "class_names", class_names)
    _check_size(owner, "chunk_bytes", chunk_bytes)
    output = _location(owner, "output_dir", output_dir)

    labels: list[int] | None = None
    if isinstance(dataset, (str, os.PathLike)):
        dataset_path = dataset
        source_name = f"image folder {os.fspath(dataset)}"
        dataset, labels, folder_names = _image_folder_source(os.fspath(dataset), mode)
        if names is not None and list(names) != folder_names:
            raise ValueError(
                f"{owner}: class_names {list(names)} differ from the image folder's classes "
                f"{folder_names}"
            )
        names = tuple(folder_names)
        source = os.path.realpath(os.fspath(dataset_path))
        target = os.path.realpath(output) if not _is_url(output) else None
        if target is not None and (os.path.commonpath([source, target]) in (source, target)):
            raise ValueError(
                f"{owner}: output_dir {output!r} and the image folder {os.fspath(dataset_path)!r} "
                "overlap; write the shards outside the images (and the images outside the shards)"
            )
    else:
        check_dataset(owner, "dataset", dataset, scan=False)
        source_name = f"dataset {type(dataset).__name__}"
    for name, given in (("val", val), ("test", test)):
        if given is not None:
            check_dataset(owner, name, given, scan=False)
            if len(given) == 0:  # type: ignore[arg-type]
                raise ValueError(f"{owner}: {name} is empty; leave it out (None) instead")
    if val is not None and val_split:
        raise ValueError(f"{owner}: give val or val_split, not both")
    if test is not None and test_split:
        raise ValueError(f"{owner}: give test or test_split, not both")
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError(f"{owner}: dataset is empty")
    test_idx, val_idx, train_idx = split_indices(
        n,
        [0.0 if test is not None else test_split, 0.0 if val is not None else val_split],
        seed,
        labels,
    )
    if not train_idx:
        raise ValueError(
            f"{owner}: val_split={val_split} and test_split={test_split} leave no training samples "
            f"of {n}"
        )
    plan: dict[str, tuple[Dataset, list[int], str]] = {"train": (dataset, train_idx, "dataset")}
    if val is not None:
        plan["val"] = (val, list(range(len(val))), "val")  # type: ignore[arg-type]
    elif val_idx:
        plan["val"] = (dataset, val_idx, "dataset")
    if test is not None:
        plan["test"] = (test, list(range(len(test))), "test")  # type: ignore[arg-type]
    elif test_idx:
        plan["test"] = (dataset, test_idx, "dataset")

    fs, root = _filesystem(output, storage_options)
    _check_output(owner, fs, root, output, overwrite)

    manifest = {
        "format": FORMAT,
        "version": 1,
        "lightkit": VERSION,
        "source": source_name,
        "seed": seed,
        "val_split": float(val_split),
        "test_split": float(test_split),
        "mode": mode,
        "class_names": list(names) if names is not None else None,
        "write_id": secrets.token_hex(8),  # caches of an earlier write of this folder are stale
        "splits": {
            split: {"num_samples": len(idx), "source": src, "source_indices": list(idx)}
            for split, (_, idx, src) in plan.items()
        },
    }
    local = not _is_url(output)
    parent = os.path.dirname(output) if local else None
    if parent:
        os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".lightkit-streaming-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide the shards from other users
    try:
        for split, (ds, idx, _) in plan.items():
            _write_split(owner, split, ds, idx, os.path.join(staging, split), chunk_bytes)
        with open(os.path.join(staging, MANIFEST), "w") as f:
            json.dump(manifest, f)
        _check_output(owner, fs, root, output, overwrite)  # again: the write took a while
        if local:
            _publish_local(owner, staging, output, overwrite)
        else:
            _publish_remote(fs, staging, root, list(plan))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def _check_output(owner: str, fs: Any, root: str, output: str, overwrite: bool) -> None:
    """``output_dir`` may be written: absent or empty, or (with ``overwrite``) a streaming folder."""
    if not fs.exists(root):
        return
    if not fs.isdir(root):
        raise NotADirectoryError(f"{owner}: output_dir {output!r} exists and is not a folder")
    if not fs.ls(root, detail=False):
        return
    if not overwrite:
        raise FileExistsError(
            f"{owner}: output_dir {output!r} already holds files; pass overwrite=True to replace "
            "an earlier write_streaming output, or choose another folder"
        )
    if not fs.exists(f"{root.rstrip('/')}/{MANIFEST}"):
        raise FileExistsError(
            f"{owner}: output_dir {output!r} holds files but no {MANIFEST}: it is not a folder "
            "write_streaming wrote, and overwrite=True replaces only those; choose another folder"
        )


def _publish_local(owner: str, staging: str, output: str, overwrite: bool) -> None:
    """Move the finished ``staging`` folder to ``output`` (renames on one filesystem)."""
    old = None
    if overwrite and os.path.lexists(output) and os.listdir(output):
        old = tempfile.mkdtemp(prefix=".lightkit-streaming-old-", dir=os.path.dirname(output))
        os.rename(output, os.path.join(old, "data"))
    try:
        os.rename(staging, output)  # replaces an empty folder only: never a folder with files
    except OSError as err:
        if old is not None:
            os.rename(os.path.join(old, "data"), output)
            shutil.rmtree(old, ignore_errors=True)
        raise FileExistsError(
            f"{owner}: output_dir {output!r} got files while the shards were written; nothing "
            f"was replaced ({err.strerror})"
        ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _publish_remote(fs: Any, staging: str, root: str, splits: list[str]) -> None:
    """Upload split by split, the manifest last: until it lands the folder reads as unfinished."""
    if fs.exists(root):  # overwrite: the manifest goes first, so the old data reads unfinished
        old = [entry for entry in fs.ls(root, detail=False) if not entry.endswith(MANIFEST)]
        if fs.exists(f"{root}/{MANIFEST}"):
            fs.rm(f"{root}/{MANIFEST}")
        for entry in old:
            fs.rm(entry, recursive=True)
    fs.makedirs(root, exist_ok=True)
    for split in splits:
        fs.put(os.path.join(staging, split), f"{root}/{split}", recursive=True)
    fs.put_file(os.path.join(staging, MANIFEST), f"{root}/{MANIFEST}")


# --- reading ----------------------------------------------------------------------------------


def _read_manifest(owner: str, location: str, storage_options: Mapping[str, Any] | None) -> dict:
    """The manifest of a streaming folder, checked: it comes from a file, so it is untrusted."""
    fs, root = _filesystem(location, storage_options)
    path = f"{root.rstrip('/')}/{MANIFEST}"
    if not fs.exists(path):
        what = "does not exist" if not fs.exists(root) else f"has no {MANIFEST}"
        raise FileNotFoundError(
            f"{owner}: input_dir {location!r} {what}: write it with lk.data.write_streaming "
            "(a folder without its manifest is an unfinished write)"
        )
    with fs.open(path, "rb") as f:
        raw = f.read(_MAX_MANIFEST_BYTES + 1)
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise ValueError(f"{owner}: {location}/{MANIFEST} is larger than a manifest can be")
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{owner}: {location}/{MANIFEST} is not valid JSON ({err})") from None
    where = f"{location}/{MANIFEST}"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{owner}: {where} is not a lightkit streaming manifest")
    if manifest.get("version") != 1:
        raise ValueError(
            f"{owner}: {where} has format version {short_repr(manifest.get('version'))}; this "
            "lightkit reads version 1"
        )
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or "train" not in splits or not set(splits) <= set(SPLITS):
        raise ValueError(
            f"{owner}: {where}: 'splits' must name 'train' and optionally 'val' and 'test', "
            f"got {short_repr(splits)}"
        )
    for split, info in splits.items():
        count = info.get("num_samples") if isinstance(info, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(
                f"{owner}: {where}: splits[{split!r}]['num_samples'] must be a count, got "
                f"{short_repr(count)}"
            )
    names = manifest.get("class_names")
    if names is not None:
        try:
            check_class_names(owner, f"{where}: class_names", names)
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from None
    write_id = manifest.get("write_id")
    if not isinstance(write_id, str) or not 0 < len(write_id) <= 64:
        raise ValueError(f"{owner}: {where}: 'write_id' must be a short string")
    return manifest


# What write_streaming stores: LitData serializers that only rebuild numbers, bytes, arrays and
# images. Anything else in an index.json (LitData's "pickle" among them) would run code on read.
_SAFE_FORMATS = frozenset(
    ("int", "float", "bool", "str", "bytes", "pil", "jpeg", "numpy", "no_header_numpy",
     "tensor", "no_header_tensor")
)  # fmt: skip
_LEAF = {"type": None, "context": None, "children_spec": []}


def _check_index(owner: str, location: str, storage_options: Mapping[str, Any] | None) -> None:
    """The split's ``index.json`` names only serializers that cannot run code, in the record
    layout write_streaming writes: it comes from the folder, so it is untrusted."""
    fs, path = _filesystem(_join(location, "index.json"), storage_options)
    where = _join(location, "index.json")
    try:
        with fs.open(path, "rb") as f:
            raw = f.read(_MAX_MANIFEST_BYTES + 1)
        index = json.loads(raw)
        config = index["config"]
        formats = config["data_format"]
        spec = json.loads(config["data_spec"])
    except FileNotFoundError:
        raise FileNotFoundError(f"{owner}: {where} is missing (an unfinished write?)") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{owner}: {where} is not a LitData index ({err})") from None
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise ValueError(f"{owner}: {where} is larger than an index can be")
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise ValueError(f"{owner}: {where}: data_format must be a list of names")
    unsafe = sorted({f for f in formats if f.split(":", 1)[0] not in _SAFE_FORMATS})
    if unsafe:
        raise ValueError(
            f"{owner}: {where} stores data as {unsafe}, which write_streaming never writes and "
            "lightkit does not read (a pickle runs code when it is loaded)"
        )
    layouts = [
        [
            1,
            {
                "type": "builtins.dict",
                "context": json.dumps(keys),
                "children_spec": [_LEAF] * len(keys),
            },
        ]
        for keys in (["index", "input", "target"], ["index", "input"])
    ]
    if spec not in layouts or len(formats) != len(spec[1]["children_spec"]):
        raise ValueError(
            f"{owner}: {where}: its samples are not laid out as write_streaming writes them "
            "({'index', 'input', 'target'})"
        )


class _Sample:
    """Turns a stored record into ``(input, target)`` (or the input alone) with a transform.

    A picklable class, not a closure, so DataLoader workers started with spawn can take it.
    """

    def __init__(self, transform: Transform | None) -> None:
        self.transform = transform

    def __call__(self, record: dict) -> Any:
        x = record["input"]
        if self.transform is not None:
            x = self.transform(x)
        elif isinstance(x, Image.Image):  # as ImageFileDataset does without a transform
            from torchvision.transforms.v2.functional import pil_to_tensor

            x = pil_to_tensor(x).float().div_(255)
        return (x, record["target"]) if "target" in record else x


_REGISTERED: set[str] = set()


def _register_fsspec_downloader(location: str) -> None:
    """Let LitData read ``location`` through fsspec when it has no downloader of its own for the
    protocol (LitData's own serve s3://, gs://, azure://, hf://)."""
    from litdata.streaming import downloader as litdata_downloader

    prefix = location.split("://", 1)[0] + "://"
    if prefix in _REGISTERED:
        return
    probe = litdata_downloader.get_downloader(location, tempfile.gettempdir(), [])
    if type(probe) is not litdata_downloader.LocalDownloader:
        return  # LitData serves it itself

    class FsspecDownloader(litdata_downloader.Downloader):
        """Copies a chunk from any fsspec filesystem into the local cache, atomically."""

        def download_file(self, remote_filepath: str, local_filepath: str) -> None:
            if not os.path.exists(local_filepath):
                fs, path = _filesystem(remote_filepath, self._storage_options)
                os.makedirs(os.path.dirname(local_filepath) or ".", exist_ok=True)
                partial = self._temp_download_path(local_filepath)
                try:
                    fs.get_file(path, partial)
                    self._atomic_replace(partial, local_filepath)
                finally:
                    if os.path.exists(partial):
                        os.remove(partial)
            self._notify_published(local_filepath)

    litdata_downloader.register_downloader(prefix, FsspecDownloader, overwrite=True)
    _REGISTERED.add(prefix)


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def _cache_dir(base: str | None, location: str, write_id: str) -> str:
    """Where chunks of ``location`` are copied: one folder per URL *and* write, so a rewritten
    folder never reads an earlier write's chunks; by default under this user's cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``), created private to the user."""
    if base is None:
        home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(home, "lightkit", "streaming")
        os.makedirs(base, mode=0o700, exist_ok=True)
    digest = hashlib.sha256(f"{location}\n{write_id}".encode()).hexdigest()[:24]
    return os.path.join(base, digest)


class StreamingDataModule(L.LightningDataModule):
    """Train from a folder that :func:`write_streaming` wrote, local or at an fsspec URL, without loading it.

    Each split is a LitData ``StreamingDataset`` read chunk by chunk (remote chunks are copied to
    ``cache_dir`` as they are needed), so a data set larger than memory or the local disk trains.
    ``train_transform`` is applied to training inputs, ``eval_transform`` to validation and test
    inputs, as they are read; without one, a PIL image becomes a float tensor in ``[0, 1]``. The
    training split is shuffled with ``seed`` (a new order each epoch, the same for the same seed);
    validation and test are read in order.

    Under DDP each rank reads its own part of each epoch and every sample is read once per epoch
    across ranks, except that every rank gets the same number of whole batches: up to
    ``world_size × max(num_workers, 1) × batch_size − 1`` training samples are left out of an
    epoch when the split does not divide evenly (LitData's ``drop_last`` under DDP). Validation
    and test keep every sample.

    A checkpoint records where the training epoch stands (the batches the trainer processed, not
    those prefetched), and a run resumed from it mid-epoch continues with the samples the
    uninterrupted run would have read next; with ``num_workers=0`` and no random transform the
    resumed run's weights equal the uninterrupted run's. With workers, random transforms draw
    from the workers' generators, which are not restored, so augmentations after a resume differ.
    Resume on as many processes with the same ``batch_size`` and ``num_workers``.

    Args:
        input_dir: The folder :func:`write_streaming` wrote: a local path or an fsspec URL.
        batch_size: Samples per batch.
        train_transform: Applied to each training input as it is read.
        eval_transform: Applied to each validation and test input.
        num_workers: DataLoader worker processes.
        seed: Seed of the training order.
        shuffle: Shuffle the training split (each epoch anew).
        cache_dir: Local folder for chunks copied from a remote ``input_dir``: a sub-folder per URL
            and write goes inside (default: ``~/.cache/lightkit/streaming``, or under
            ``$XDG_CACHE_HOME``). Delete it to reclaim the space; it is refilled as needed.
        max_cache_size: Most bytes of chunks kept in ``cache_dir`` at once (LitData's
            ``max_cache_size``, e.g. ``"10GB"``); older chunks are deleted as training moves on.
        storage_options: fsspec options for a remote ``input_dir``.

    Attributes:
        class_names: The class names the manifest records, or None.
        manifest: The manifest :func:`write_streaming` wrote (split sizes, source indices, seed).

    Example:
        >>> out = lk.data.write_streaming(my_dataset, "shards", val_split=0.25, chunk_bytes="1MB")
        >>> dm = lk.data.StreamingDataModule(out, batch_size=32, seed=0)
        >>> dm.num_samples("train"), dm.num_samples("val")
        (72, 24)
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> x.shape, y.shape
        (torch.Size([32, 8]), torch.Size([32]))
        >>> trainer = lk.make_trainer(
        ...     max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False
        ... )
        >>> trainer.fit(module, datamodule=dm)
        >>> trainer.global_step  # 72 samples in batches of 32
        3
    """

    def __init__(
        self,
        input_dir: str | os.PathLike[str],
        batch_size: int = 32,
        train_transform: Transform | None = None,
        eval_transform: Transform | None = None,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        max_cache_size: int | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _litdata(owner)
        self.input_dir = _location(owner, "input_dir", input_dir)
        self.batch_size = check_int(owner, "batch_size", batch_size, minimum=1)
        self.num_workers = check_int(owner, "num_workers", num_workers, minimum=0)
        self.seed = check_seed(owner, "seed", seed)
        self.shuffle = check_bool(owner, "shuffle", shuffle)
        for name, transform in (
            ("train_transform", train_transform),
            ("eval_transform", eval_transform),
        ):
            if transform is not None and not callable(transform):
                raise TypeError(
                    f"{owner}: {name} must be callable or None, got {short_repr(transform)}"
                )
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        if storage_options is not None:
            check_instance(owner, "storage_options", storage_options, Mapping, "a dict or None")
        self.storage_options = dict(storage_options or {})
        if cache_dir is not None:
            cache_dir = os.path.abspath(os.fspath(cache_dir))
        self.cache_dir = cache_dir
        if max_cache_size is not None:
            _check_size(owner, "max_cache_size", max_cache_size, fraction=True)
        self.max_cache_size = max_cache_size
        self.manifest = _read_manifest(owner, self.input_dir, self.storage_options)
        names = self.manifest.get("class_names")
        self.class_names: tuple[str, ...] | None = tuple(names) if names is not None else None
        self.datasets: dict[str, Any] = {}
        self._train_loader: _TrainLoader | None = None
        self._pending_loader_state: Mapping[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        """The number of classes the manifest names."""
        if self.class_names is None:
            raise AttributeError(
                f"{type(self).__name__}: {self.input_dir!r} records no class names "
                "(write_streaming(..., class_names=...))"
            )
        return len(self.class_names)

    def num_samples(self, split: str) -> int:
        """How many samples ``split`` (``"train"``, ``"val"`` or ``"test"``) holds (0 if none)."""
        info = self.manifest["splits"].get(split)
        return int(info["num_samples"]) if info else 0

    def _dataset(self, split: str) -> Any:
        if split in self.datasets:
            return self.datasets[split]
        if not self.num_samples(split):
            return None
        from litdata import StreamingDataset
        from litdata.streaming.resolver import Dir

        location = _join(self.input_dir, split)
        transform = _Sample(self.train_transform if split == "train" else self.eval_transform)
        kwargs: dict[str, Any] = {
            "shuffle": self.shuffle and split == "train",
            "seed": self.seed,
            "transform": transform,
            "storage_options": self.storage_options,
            "max_cache_size": self.max_cache_size,
        }
        quiet = contextlib.nullcontext()
        if split != "train":
            kwargs["drop_last"] = False  # evaluation keeps every sample, also under DDP
            # (LitData warns that uneven shares can stall collectives: evaluation has none
            # per batch, lightkit's tasks sync their metrics once per epoch)
            quiet = _logger_level("litdata.streaming.dataset", logging.ERROR)
        _check_index(type(self).__name__, location, self.storage_options)
        if _is_url(self.input_dir):
            _register_fsspec_downloader(location)
            cache = _cache_dir(self.cache_dir, self.input_dir, self.manifest["write_id"])
            source: Any = Dir(path=None, url=location)
            kwargs["cache_dir"] = os.path.join(cache, split)
        else:
            source = location
        with quiet:
            dataset = StreamingDataset(source, **kwargs)
        stored = sum(end - start for start, end in dataset.region_of_interest)  # all ranks'
        if stored != self.num_samples(split):
            raise ValueError(
                f"{type(self).__name__}: {location!r} holds {stored} samples; its manifest "
                f"says {self.num_samples(split)} (the folder was changed after it was written)"
            )
        self.datasets[split] = dataset
        return dataset

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage or "", SPLITS
        )
        for split in splits:
            self._dataset(split)

    def train_dataloader(self) -> Any:
        dataset = self._dataset("train")
        loader = _make_train_loader(dataset, self.batch_size, self.num_workers, self.seed)
        trainer = self.trainer
        if trainer is not None:
            loader.position = processed_counter(trainer)
        pending, self._pending_loader_state = self._pending_loader_state, None
        if pending:
            loader.load_state_dict(pending)
        self._train_loader = loader
        return loader

    def _eval_loader(self, split: str) -> Any:
        dataset = self._dataset(split)
        if dataset is None:
            return []
        from litdata import StreamingDataLoader

        return StreamingDataLoader(
            dataset, batch_size=self.batch_size, num_workers=self.num_workers
        )

    def val_dataloader(self) -> Any:
        return self._eval_loader("val")

    def test_dataloader(self) -> Any:
        if not self.num_samples("test"):
            raise ValueError(f"{type(self).__name__}: {self.input_dir!r} has no test split")
        return self._eval_loader("test")

    def state_dict(self) -> dict[str, Any]:
        """Where the training epoch stands, saved in checkpoints for a mid-epoch resume."""
        loader = self._train_loader
        return {"train_loader": loader.state_dict()} if loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        owner = f"{type(self).__name__}.load_state_dict"
        check_instance(owner, "state_dict", state_dict, Mapping, "the dict state_dict() returned")
        pending = state_dict.get("train_loader")
        if pending is not None:
            check_instance(owner, "state_dict['train_loader']", pending, Mapping, "a dict")
        self._pending_loader_state = pending


_TrainLoader: Any = None  # the StreamingDataLoader subclass, built when LitData is first used


def _make_train_loader(dataset: Any, batch_size: int, num_workers: int, seed: int) -> Any:
    global _TrainLoader
    if _TrainLoader is None:
        from litdata import StreamingDataLoader

        class TrainLoader(StreamingDataLoader):
            """A StreamingDataLoader whose state counts the batches the trainer processed.

            LitData counts the batches it handed out; Lightning asks for one batch ahead of the
            one it trains on, so a checkpoint taken by that count would skip a batch on resume.
            """

            position: Callable[[], int] | None = None
            _resumed_epoch_started = False

            def __iter__(self) -> Any:
                # LitData ends a resume (``restore``) only when the resumed epoch's iterator is
                # exhausted; Lightning stops asking at the epoch's known length, one short of
                # exhaustion, so the next epoch would "resume" again and yield nothing.
                if self._resumed_epoch_started:
                    self.restore = False
                self._resumed_epoch_started = bool(self.restore)
                return super().__iter__()

            def state_dict(self) -> dict[str, Any]:
                state = super().state_dict()
                if self.position is not None and self._num_samples_yielded_streaming:
                    processed = int(self.position())
                    yielded = self._num_samples_yielded_streaming // self.batch_size
                    if processed < yielded:
                        samples = processed * self.batch_size
                        state["dataset"] = self.dataset.state_dict(
                            samples, self.num_workers, self.batch_size
                        )
                        state["num_samples_yielded"] = samples
                        workers = max(self.num_workers, 1)
                        state["latest_worker_idx"] = (processed - 1) % workers
                return state

            def load_state_dict(self, obj: dict[str, Any]) -> None:
                _check_loader_state(self, obj)
                super().load_state_dict(dict(obj))

        _TrainLoader = TrainLoader
    return _TrainLoader(dataset, batch_size=batch_size, num_workers=num_workers, **_own_rng(seed))


def _own_rng(seed: int) -> dict[str, Any]:
    # A generator of its own for the workers' base seed: a DataLoader without one draws it from
    # the global RNG at every epoch start, which a resumed run would draw at another moment.
    return {"generator": torch.Generator().manual_seed(seed)}


def _plain(value: Any) -> Any:
    """Tuples as lists, for comparing states that went through a checkpoint."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_loader_state(loader: Any, state: Mapping[str, Any]) -> None:
    """A loader state read from a checkpoint must be for this data, on this layout, with counts in
    range: it is untrusted, and LitData acts on every key of it."""
    owner = "StreamingDataModule.load_state_dict"
    dataset = state.get("dataset")
    if not isinstance(dataset, Mapping):
        raise ValueError(f"{owner}: the checkpoint's streaming state has no dataset state")
    here = loader.dataset.state_dict(0, loader.num_workers, loader.batch_size)
    loader.dataset._state_dict = None  # (asking for the template must not count as a resume)
    total = sum(end - start for start, end in loader.dataset.region_of_interest)
    if set(dataset) != set(here):
        raise ValueError(
            f"{owner}: the checkpoint's streaming state has the keys {sorted(dataset)}; this "
            f"LitData writes {sorted(here)}"
        )
    for key in ("input_dir_path", "input_dir_url"):
        if dataset[key] != here[key]:
            raise ValueError(
                f"{owner}: the checkpoint was written reading {dataset[key]!r}, not "
                f"{here[key]!r}; resume with the data it was trained on"
            )
    for key in ("batch_size", "num_workers", "seed", "shuffle"):
        if dataset[key] != here[key] or type(dataset[key]) is not type(here[key]):
            raise ValueError(
                f"{owner}: the checkpoint's run read with {key}={dataset[key]!r}; this one "
                f"with {here[key]!r}. A streaming run resumes mid-epoch only with the same {key}"
            )
    for key in ("cache_dir_path", "item_loader", "drop_last", "subsampled_files",
                "region_of_interest", "item_shuffle_window", "state_version"):  # fmt: skip
        if _plain(dataset[key]) != _plain(here[key]):
            raise ValueError(
                f"{owner}: the checkpoint's streaming state has {key}={short_repr(dataset[key])}, "
                f"this data {short_repr(here[key])}"
            )
    counts = {
        "dataset.num_samples_yielded": (dataset["num_samples_yielded"], 0, total),
        "dataset.sample_in_epoch": (dataset["sample_in_epoch"], 0, total),
        "dataset.current_epoch": (dataset["current_epoch"], 0, None),
        "current_epoch": (state.get("current_epoch"), 0, None),
        "num_samples_yielded": (state.get("num_samples_yielded"), 0, total),
        "latest_worker_idx": (state.get("latest_worker_idx"), 0, max(loader.num_workers, 1) - 1),
    }
    for key in ("world_size", "num_canonical_nodes", "initial_world_size", "initial_num_workers",
                "initial_batch_size", "initial_num_nodes"):  # fmt: skip
        counts[f"dataset.{key}"] = (dataset[key], 1, None)
    for key, (value, low, high) in counts.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            bound = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise ValueError(
                f"{owner}: the checkpoint's streaming {key} is {short_repr(value)}; expected an "
                f"integer in {bound}"
            )
    if set(state) - {"dataset", "current_epoch", "num_samples_yielded", "latest_worker_idx"}:
        raise ValueError(f"{owner}: the checkpoint's streaming state has unknown keys")


__all__ = ["StreamingDataModule", "write_streaming"]
