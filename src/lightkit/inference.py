"""Predictor: a trained task module rebuilt from its checkpoint, predicting in batches."""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms import v2

from lightkit._metadata import CheckpointMetadata
from lightkit._spec import check_trust, from_spec, resolve, trusting
from lightkit._validation import (
    check_bool,
    check_choice,
    check_class_names,
    check_int,
    check_path,
    check_sequence,
)
from lightkit.checkpointing import load_checkpoint
from lightkit.data._recorded import check_image_size, image_size
from lightkit.data.datasets import load_image
from lightkit.outputs import DescribedTask, TaskOutputs

# One sample may hold at most this many numbers (a 3×4096×4096 image is 50M): a recorded input
# shape sizes example inputs (export) and request limits (serve).
_MAX_SAMPLE_NUMEL = 2**26


class Predictor:
    """Batched inference with a trained module: eval mode, ``inference_mode``, natural outputs.

    ``predict`` returns what the task means rather than raw logits: class probabilities
    (``N×C``) for classification, probabilities for binary (``N``) and multilabel (``N×L``)
    classification, values for regression, per-pixel class probabilities (``N×C×H×W``) for
    segmentation: the module's ``predict_output`` applied to its forward pass. A module
    calibrated with :func:`lightkit.calibrate` has its raw outputs divided by its
    ``temperature`` first (recorded in its checkpoint, so ``from_checkpoint`` and ``lightkit
    serve`` use it too).

    Args:
        module: A trained LightningModule (a lightkit task module, or any module whose
            ``predict_output`` maps raw outputs to predictions; without one, raw outputs).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        transform: Turns one loaded image into an input tensor, for image paths: it receives a
            PIL image for 8-bit files and a float32 ``tv_tensors.Image`` in [0, 1] for 16-bit
            and float files. Default: the eval transform recorded in the checkpoint, else
            scaling to [0, 1].
        input_shape: The shape of one input sample, checked before predicting; default: the
            shape recorded by a lightkit task module during training.
        image_mode: How image files are loaded: ``"RGB"``, ``"L"`` (grayscale) or ``"RGBA"``.
        class_names: The name of each class, for :meth:`predict_labels`; default: the names
            recorded in the checkpoint (``ImageFolderDataModule``'s folders, ``class_names=``).
        tta: Test-time augmentation: predict each image batch (``N×C×H×W``) as it is and
            flipped left to right, and average the two natural outputs (segmentation
            probabilities are flipped back first, so each pixel averages with itself). Hard
            predictions (:meth:`predict_labels`, serve's labels) come from the average. Costs a
            second forward pass.

    Example:
        >>> predictor = lk.Predictor.from_checkpoint(checkpoint)
        >>> probs = predictor.predict(torch.randn(5, 8))  # tensor, numpy array, list, Dataset
        >>> probs.shape, bool(probs.sum(dim=1).allclose(torch.ones(5)))
        (torch.Size([5, 3]), True)
        >>> predictor.predict_labels(np.zeros((2, 8), dtype=np.float32))  # class names if known
        [...]
    """

    def __init__(
        self,
        module: nn.Module,
        device: str | torch.device = "auto",
        transform: Any = None,
        input_shape: Sequence[int] | None = None,
        image_mode: str = "RGB",
        class_names: Sequence[str] | None = None,
        tta: bool = False,
    ) -> None:
        self.tta = check_bool("Predictor", "tta", tta)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"Predictor: module must be a torch.nn.Module, got {type(module).__name__}"
            )
        if transform is not None and not callable(transform):
            raise TypeError(f"Predictor: transform must be callable or None, got {transform!r}")
        check_choice("Predictor", "image_mode", image_mode, ("RGB", "L", "RGBA"))
        self.device = _resolve_device(device)
        self.module = module.to(self.device).eval()
        self._transform = transform
        self._transform_spec: dict[str, Any] | None = None
        shape = input_shape if input_shape is not None else getattr(module, "input_shape", None)
        self.input_shape: tuple[int, ...] | None = _check_shape(shape)
        self.image_mode = image_mode
        self._checkpoint: str | None = None  # the file from_checkpoint loaded, for messages
        self._warned_no_transform = False
        described = module.task_outputs() if isinstance(module, DescribedTask) else None
        self.task_outputs: TaskOutputs = described or TaskOutputs()
        self.class_names: tuple[str, ...] | None = None
        try:
            self.class_names = self._checked_names(class_names)
        except (TypeError, ValueError) as err:
            if class_names is not None:
                raise  # yours: named as an error
            # A module's own `class_names` attribute is only borrowed: left out, with a word.
            warnings.warn(f"Predictor: not using the module's class names: {err}", stacklevel=2)

    def _checked_names(self, given: Sequence[str] | None) -> tuple[str, ...] | None:
        names = given if given is not None else getattr(self.module, "class_names", None)
        names = check_class_names("Predictor", "class_names", names)
        count = self.task_outputs.num_classes
        if names is not None and count is not None and len(names) != count:
            raise ValueError(
                f"Predictor: {len(names)} class_names for a model with {count} classes "
                f"({self.task_outputs.kind})"
            )
        return names

    @property
    def transform(self) -> Any:
        """The image transform; a recorded one is built on first use (when an image is predicted)."""
        if self._transform is None and self._transform_spec is not None:
            self._transform = from_spec(
                self._transform_spec, "Predictor: the recorded eval transform", kind="transform"
            )
        return self._transform

    @property
    def transform_spec(self) -> dict[str, Any] | None:
        """The eval transform recorded in the checkpoint, as plain data (None when the transform
        was given, or none was recorded)."""
        return dict(self._transform_spec) if self._transform_spec is not None else None

    @transform.setter
    def transform(self, value: Any) -> None:
        if value is not None and not callable(value):
            raise TypeError(f"Predictor: transform must be callable or None, got {value!r}")
        self._transform, self._transform_spec = value, None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        net: nn.Module | None = None,
        task: type[L.LightningModule] | None = None,
        transform: Any = None,
        trust: str | list[str] | None = None,
        tta: bool = False,
    ) -> Predictor:
        """Rebuild the task module (and its net) from a checkpoint alone and wrap it.

        The checkpoint is untrusted input. It is loaded with ``weights_only=True`` (nothing in
        it is unpickled), and the task class, net, optimizer and transform it names are imported
        and built only when they are on lightkit's allow-list (lightkit's tasks, models and
        presets; ``torch.nn`` layer and ``torch.optim`` classes) or in
        ``trust``. lightkit task modules record their class, and lightkit models their
        constructor, so no code is needed; for your own net either trust its module or pass
        ``net=`` (an instance of the trained architecture) and, for task classes defined in a
        script, ``task=``.

        Args:
            path: A ``.ckpt`` file written by a lightkit trainer, or its fsspec URL
                (``"s3://bucket/runs/version_0/checkpoints/best.ckpt"``), downloaded to a
                temporary file and checked as a local one.
            device: See :class:`Predictor`.
            net: The net to load the weights into, when it cannot be rebuilt from the file.
            task: The task module class, when the checkpoint does not name an importable one.
            transform: See :class:`Predictor`.
            trust: Module prefixes or class paths (``"mypkg.nets"``) that the checkpoint may name
                and lightkit may import and call: see "What lightkit trusts" in the README.
            tta: Test-time augmentation (flips); see :class:`Predictor`.

        Example:
            >>> predictor = lk.Predictor.from_checkpoint("best.ckpt", trust=["mypkg.nets"])
        """
        check_bool("Predictor.from_checkpoint", "tta", tta)
        trusted = check_trust(trust, "Predictor.from_checkpoint")
        check_path("Predictor.from_checkpoint", "path", path, "a checkpoint file path")
        checkpoint = load_checkpoint(path)
        meta = CheckpointMetadata.from_checkpoint(checkpoint, os.fspath(path))
        with trusting(trusted):
            if task is None:
                if not meta.task:
                    raise ValueError(
                        f"Predictor.from_checkpoint: {os.fspath(path)!r} does not name its task "
                        "module class (not written by a lightkit task module); pass task=<the "
                        "LightningModule class>, or build the module and use Predictor(module)"
                    )
                task = resolve(
                    {"class_path": meta.task}, "Predictor.from_checkpoint: the task", "task"
                )
            # The recorded transform is checked now (a bad one fails here) and built only when an
            # image is predicted.
            transform_spec = meta.transform_spec
            if transform is None and transform_spec is not None:
                resolve(transform_spec, "Predictor: the recorded eval transform", "transform")
        if not (isinstance(task, type) and issubclass(task, L.LightningModule)):
            raise TypeError(
                f"Predictor.from_checkpoint: task must be a LightningModule class, got {task!r}"
            )
        kwargs = {"net": net} if net is not None else {}
        if trusted:
            kwargs["trust"] = list(trusted)
        del checkpoint
        try:
            module = task.load_from_checkpoint(path, map_location="cpu", **kwargs)
        except TypeError as err:
            if net is not None or "was written by" in str(err):
                raise
            raise TypeError(
                f"Predictor.from_checkpoint: cannot rebuild the net from {os.fspath(path)!r} "
                f"({err}); pass net=<an instance of the trained architecture>"
            ) from err
        predictor = cls(
            module,
            device=device,
            transform=transform,
            input_shape=meta.input_shape,
            image_mode=meta.image_mode,
            class_names=getattr(module, "class_names", None) or meta.class_names,
            tta=tta,
        )
        if transform is None and transform_spec is not None:
            predictor._transform_spec = dict(transform_spec)
        predictor._checkpoint = os.fspath(path)
        return predictor

    @classmethod
    def ensemble(
        cls,
        checkpoints: Sequence[str | os.PathLike[str]],
        device: str | torch.device = "auto",
        net: nn.Module | None = None,
        task: type[L.LightningModule] | None = None,
        transform: Any = None,
        trust: str | list[str] | None = None,
        tta: bool = False,
    ) -> EnsemblePredictor:
        """One predictor for several checkpoints of the same task: their probabilities averaged.

        Each checkpoint is loaded exactly as :meth:`from_checkpoint` loads one (untrusted input,
        the same ``trust`` allow-list), and the result is an :class:`EnsemblePredictor`: a
        :class:`Predictor` whose ``predict`` returns the mean of the members' natural outputs
        (probabilities, after each member's own temperature; values for regression) and whose
        hard predictions come from that mean. The usual source is :func:`lightkit.cross_validate`,
        whose ``result["checkpoints"]`` holds each fold's best checkpoint.

        Args:
            checkpoints: The ``.ckpt`` files, a list or tuple of at least one path.
            device: See :class:`Predictor`; every member runs on it.
            net: An instance of the trained architecture, when the nets cannot be rebuilt from
                the files; each member loads its weights into its own copy.
            task: The task module class, when the checkpoints do not name an importable one.
            transform: See :class:`Predictor` (default: the eval transform the checkpoints
                record, which must be the same in all of them).
            trust: See :meth:`from_checkpoint`; it applies to every checkpoint.
            tta: Test-time augmentation (flips), applied once around the whole ensemble.

        Raises:
            ValueError: the checkpoints disagree on the task (kind, classes, class names,
                threshold), input shape, image mode or transform; the message names the one
                that differs. An error loading a checkpoint carries a note naming it.

        Example:
            >>> result = lk.cross_validate(make_module, dataset, k=5)
            >>> ensemble = lk.Predictor.ensemble(result["checkpoints"])
            >>> probs = ensemble.predict(x_test)   # the mean of the 5 fold models' probabilities
        """
        owner = "Predictor.ensemble"
        paths = check_sequence(owner, "checkpoints", checkpoints, min_length=1)
        for i, path in enumerate(paths):
            if path is None:
                raise ValueError(
                    f"{owner}: checkpoints[{i}] is None, not a checkpoint file (cross_validate "
                    "gives None for a fold that saved no best checkpoint: leave checkpointing on)"
                )
            check_path(owner, f"checkpoints[{i}]", path, "a checkpoint file path")
        check_bool(owner, "tta", tta)
        trusted = check_trust(trust, owner)
        if net is not None and not isinstance(net, nn.Module):
            raise TypeError(
                f"{owner}: net must be None or a torch.nn.Module (an instance of the trained "
                f"architecture), got {type(net).__name__}"
            )
        members = []
        for i, path in enumerate(paths):
            try:
                member = Predictor.from_checkpoint(
                    path,
                    device=device,
                    net=copy.deepcopy(net) if net is not None else None,
                    task=task,
                    transform=transform,
                    trust=list(trusted) or None,
                )
            except Exception as err:
                err.add_note(f"{owner}: while loading checkpoints[{i}] ({os.fspath(path)!r})")
                raise
            members.append(member)
        return EnsemblePredictor(members, tta=tta)

    @torch.inference_mode()
    def predict(self, inputs: Any, batch_size: int = 256) -> torch.Tensor:
        """Predict for a batch of inputs, ``batch_size`` samples at a time; returns a CPU tensor.

        Args:
            inputs: A tensor or numpy array (``N×...``: one sample per row), a list of samples
                (tensors, arrays or nested lists), a ``Dataset`` (``(x, y)`` items use ``x``),
                or image file paths (a path or a list of them), which are loaded and passed
                through the transform.
            batch_size: Samples per forward pass.

        Returns:
            The task's natural output for each sample, stacked (``N×...``), on the CPU.
        """
        batch_size = check_int("Predictor.predict", "batch_size", batch_size, 1)
        outputs = [self.predict_batch(batch) for batch in self._batches(inputs, batch_size)]
        if not outputs:
            raise ValueError("Predictor.predict: inputs is empty")
        return torch.cat(outputs)

    @torch.inference_mode()
    def predict_batch(self, x: torch.Tensor, labels: bool = False) -> Any:
        """The natural output for one batch tensor that is already checked (``N×...``), on the CPU.

        ``predict`` checks inputs and cuts them into batches, then calls this; ``lightkit serve``
        calls it for the batches it assembles from checked requests. With ``labels=True``, returns
        ``(outputs, predicted)``: the hard predictions of the same forward pass (class indices,
        0/1 per label; None for a model whose outputs are values), see
        :meth:`~lightkit.TaskOutputs.predicted`.
        """
        x = x.to(self.device, non_blocking=True)
        if self.tta:
            out = self._flip_averaged(x)
            predicted = _hard_predictions(self.task_outputs, out) if labels else None
        else:
            out, predicted = self._outputs(x, labels)
        out = out.float().cpu()
        if not labels:
            return out
        return out, predicted.cpu() if predicted is not None else None

    def _outputs(self, x: torch.Tensor, labels: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The natural output for a batch on :attr:`device` (float, left there), and with
        ``labels`` the hard predictions from the raw outputs (else None). No TTA."""
        raw = self._calibrated(self.module(x))
        to_output = getattr(self.module, "predict_output", None)
        out = (to_output(raw) if callable(to_output) else raw).float()
        return out, self.task_outputs.predicted(raw) if labels else None

    def _calibrated(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw outputs divided by the module's fitted temperature (``lk.calibrate``), if any."""
        calibrated = getattr(self.module, "calibrated", None)
        return calibrated(raw) if callable(calibrated) else raw

    def _flip_averaged(self, x: torch.Tensor) -> torch.Tensor:
        """The average of the natural outputs for ``x`` and ``x`` flipped left to right."""
        if x.ndim != 4:
            raise ValueError(
                f"Predictor: tta=True flips images (N×C×H×W batches), got inputs of shape "
                f"{tuple(x.shape)}; use tta=False for other inputs"
            )
        out = self._outputs(x, False)[0]
        flipped = self._outputs(x.flip(-1), False)[0]
        if self.task_outputs.kind == "segmentation":
            flipped = flipped.flip(-1)  # back to the original pixels
        return (out + flipped) / 2

    @torch.inference_mode()
    def predict_labels(self, inputs: Any, batch_size: int = 256) -> Any:
        """The predicted class of each sample, by name when the class names are known.

        For multiclass and binary classification a list with one label per sample (a name from
        :attr:`class_names`, else the class index); for multilabel classification a list of the
        labels present in each sample; for segmentation the ``N×H×W`` tensor of class indices
        (look names up in :attr:`class_names`). Inputs are taken as by :meth:`predict`.

        Raises:
            TypeError: the model's outputs are values, not classes (``TaskOutputs`` kind
                ``"values"``, for example regression).

        Example:
            >>> predictor.predict_labels(["cat.png", "dog.jpg"])
            ['cat', 'dog']
        """
        batch_size = check_int("Predictor.predict_labels", "batch_size", batch_size, 1)
        kind = self.task_outputs.kind
        if kind == "values":
            raise TypeError(
                "Predictor.predict_labels: the model's outputs are values, not classes (its task "
                "describes them as TaskOutputs kind 'values'); use predict()"
            )
        found = [self.predict_batch(b, labels=True)[1] for b in self._batches(inputs, batch_size)]
        if not found:
            raise ValueError("Predictor.predict_labels: inputs is empty")
        predicted = torch.cat(found)
        return predicted if kind == "segmentation" else self.labels(predicted)

    def labels(self, predicted: torch.Tensor) -> list[Any]:
        """Hard predictions (from ``predict_batch(x, labels=True)``) as labels, one per sample:
        a class name (or index), or for multilabel models the list of labels present."""
        names = self.class_names

        def name(index: int) -> Any:
            return names[index] if names is not None else index

        if self.task_outputs.kind == "multilabel":
            return [[name(i) for i in row.nonzero().flatten().tolist()] for row in predicted]
        return [name(int(i)) for i in predicted.flatten().tolist()]

    # --- inputs ----------------------------------------------------------------------------------

    def _batches(self, inputs: Any, batch_size: int) -> Iterator[torch.Tensor]:
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        if isinstance(inputs, np.ndarray):
            inputs = _from_numpy(inputs)
        if isinstance(inputs, torch.Tensor):
            tensor = self._check(inputs.float() if not inputs.is_floating_point() else inputs)
            yield from tensor.split(batch_size)
            return
        if isinstance(inputs, Dataset) or (
            hasattr(inputs, "__getitem__")
            and hasattr(inputs, "__len__")
            and not isinstance(inputs, (list, tuple, Mapping, str, bytes))
        ):
            samples: Sequence[Any] = _DatasetInputs(inputs)
        elif isinstance(inputs, (list, tuple)):
            samples = inputs
        else:
            raise TypeError(
                "Predictor.predict: inputs must be a tensor, a numpy array, a list of samples, "
                f"a Dataset or image paths, got {type(inputs).__name__}"
            )
        for start in range(0, len(samples), batch_size):
            chunk = [
                self._sample(samples[i], i)
                for i in range(start, min(start + batch_size, len(samples)))
            ]
            yield torch.stack(chunk)

    def _sample(self, value: Any, index: int) -> torch.Tensor:
        if isinstance(value, (str, os.PathLike)):
            return self._image(Path(value), index)
        try:
            if isinstance(value, np.ndarray):
                tensor = _from_numpy(value)
            elif isinstance(value, torch.Tensor):
                tensor = value
            else:
                tensor = torch.as_tensor(value, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"Predictor.predict: sample {index} is not numeric data (a tensor, array or nested "
                f"list of numbers): {type(value).__name__} ({err})"
            ) from None
        tensor = tensor.float() if not tensor.is_floating_point() else tensor
        return self._check(tensor, index=index)

    def _image(self, path: Path, index: int) -> torch.Tensor:
        image = load_image(path, self.image_mode)  # BadImageError names the file
        if self._transform_spec is not None:  # from the checkpoint: sizes checked before it runs
            where = f"Predictor.predict: image {os.fspath(path)!r}"
            check_image_size(self._transform_spec, *image_size(image), where)

        transform = self.transform
        if transform is None:
            if not self._warned_no_transform:
                self._warned_no_transform = True
                warnings.warn(
                    "Predictor: predicting image files, but the checkpoint records no eval "
                    "transform and none was given: images are only scaled to [0, 1]. If training "
                    "resized or normalized them (a transform in your own Dataset, say), the "
                    "predictions are wrong: pass transform=<the eval transform you trained with> "
                    "(or train through lk.data.DataModule(eval_transform=...) with a pipeline of "
                    "deterministic torchvision steps, or ImageFolderDataModule: their checkpoints "
                    "record it)",
                    stacklevel=4,
                )
            transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
        try:
            tensor = transform(image)
        except (RuntimeError, ValueError, TypeError) as err:
            raise ValueError(
                f"Predictor.predict: image {os.fspath(path)!r} (sample {index}): the transform "
                f"failed on it: {err}"
            ) from err
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"Predictor.predict: the transform turned {os.fspath(path)!r} into "
                f"{type(tensor).__name__}, expected a tensor"
            )
        return self._check(tensor.float(), index=index, what=f"image {os.fspath(path)!r}")

    def _check(
        self, tensor: torch.Tensor, index: int | None = None, what: str | None = None
    ) -> torch.Tensor:
        """Check one sample (``index`` given) or a batch against the recorded input shape."""
        expected = self.input_shape
        if index is None:
            if tensor.ndim == 0:
                raise ValueError(
                    "Predictor.predict: inputs must have a batch dimension, got a scalar"
                )
            if expected is not None and tuple(tensor.shape[1:]) != expected:
                hint = (
                    "; for a single sample, add a batch dimension (x[None])"
                    if tuple(tensor.shape) == expected
                    else ""
                )
                raise ValueError(
                    f"Predictor.predict: inputs of shape {tuple(tensor.shape)} do not match the "
                    f"model's input: N×{'×'.join(map(str, expected))}{hint}"
                )
        elif expected is not None and tuple(tensor.shape) != expected:
            raise ValueError(
                f"Predictor.predict: {what or f'sample {index}'} has shape {tuple(tensor.shape)}, "
                f"the model expects {expected}"
            )
        if not torch.isfinite(tensor).all():
            where = what or (f"sample {index}" if index is not None else "inputs")
            raise ValueError(f"Predictor.predict: {where} contains NaN or Inf")
        return tensor


class EnsemblePredictor(Predictor):
    """Several trained models of one task predicting as one: their natural outputs averaged.

    ``predict`` returns the mean of the members' natural outputs, with the same shapes and types
    as a :class:`Predictor`'s: averaged class probabilities (softmax of each member's logits,
    after its own temperature) for multiclass and segmentation, averaged sigmoid probabilities
    for binary and multilabel classification, the mean value for regression. Hard predictions
    (:meth:`predict_labels`, ``predict_batch(x, labels=True)``) come from the averaged
    probabilities: the argmax, or the task's threshold. Averaging probabilities rather than
    logits keeps each member's calibration, and is the usual k-fold ensemble.

    Inputs are checked and images loaded once, with the members' shared input shape, image mode
    and transform; each batch then goes through every member in turn, so memory holds one
    member's activations at a time. Members must agree on the task (kind, number of classes,
    class names, threshold), the input shape, the image mode and the transform, run on one
    device and have ``tta=False`` (the ensemble's ``tta`` flips once around all of them).

    Args:
        members: The :class:`Predictor` of each model, at least one.
        tta: Test-time augmentation (flips) around the whole ensemble; see :class:`Predictor`.

    Attributes:
        members: The member predictors, in order.
        module: The members' modules, in an ``nn.ModuleList``.

    Example:
        >>> # From files: lk.Predictor.ensemble(result["checkpoints"]) after lk.cross_validate.
        >>> first = lk.Predictor.from_checkpoint(checkpoint)
        >>> second = lk.Predictor(module, input_shape=(8,))  # another model of the same task
        >>> ensemble = lk.inference.EnsemblePredictor([first, second])
        >>> x = torch.randn(4, 8)
        >>> probs = ensemble.predict(x)  # N×C: the mean of the members' probabilities
        >>> probs.shape, torch.allclose(probs, (first.predict(x) + second.predict(x)) / 2)
        (torch.Size([4, 3]), True)
        >>> ensemble.predict_labels(x) == probs.argmax(dim=1).tolist()  # from the mean
        True
    """

    def __init__(self, members: Sequence[Predictor], tta: bool = False) -> None:
        self.members: tuple[Predictor, ...] = _check_members(members)
        first = self.members[0]
        super().__init__(
            nn.ModuleList(member.module for member in self.members),
            device=first.device,
            transform=first._transform if first._transform_spec is None else None,
            input_shape=first.input_shape,
            image_mode=first.image_mode,
            class_names=first.class_names,
            tta=tta,
        )
        self.task_outputs = first.task_outputs
        self._transform_spec = first.transform_spec

    @classmethod
    def from_checkpoint(cls, *args: Any, **kwargs: Any) -> Predictor:  # type: ignore[override]
        """Not for an ensemble: load several checkpoints with :meth:`Predictor.ensemble`."""
        raise TypeError(
            "EnsemblePredictor.from_checkpoint: an ensemble loads several checkpoints; use "
            "lk.Predictor.ensemble([path, ...]) (or lk.Predictor.from_checkpoint for one model)"
        )

    def _outputs(self, x: torch.Tensor, labels: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The mean of the members' natural outputs, and with ``labels`` its hard predictions."""
        total = self.members[0]._outputs(x, False)[0]
        for member in self.members[1:]:
            total = total + member._outputs(x, False)[0]
        out = total / len(self.members)
        return out, _hard_predictions(self.task_outputs, out) if labels else None


def _check_members(members: Any) -> tuple[Predictor, ...]:
    """``members`` as a tuple of Predictors that agree on everything an ensemble shares."""
    owner = "EnsemblePredictor"
    members = check_sequence(owner, "members", members, min_length=1)
    for i, member in enumerate(members):
        if not isinstance(member, Predictor):
            raise TypeError(
                f"{owner}: members[{i}] must be a lightkit Predictor, got {type(member).__name__} "
                "(wrap a module with lk.Predictor(module); load files with lk.Predictor.ensemble)"
            )
        if member.tta:
            raise ValueError(
                f"{owner}: {_member(i, member)} has tta=True; pass tta=True to the ensemble "
                "instead, which flips each batch once for all of its members"
            )

    def transform_of(member: Predictor) -> Any:
        # A recorded transform is compared as plain data, one that was given as the object.
        spec = member.transform_spec
        return ("recorded", spec) if spec is not None else ("given", id(member._transform))

    first = members[0]
    checks = [
        ("task outputs", lambda m: m.task_outputs),
        ("class names", lambda m: m.class_names),
        ("input shape", lambda m: m.input_shape),
        ("image mode", lambda m: m.image_mode),
    ]
    for i, member in enumerate(members[1:], start=1):
        for what, value in checks:
            if value(member) != value(first):
                raise ValueError(
                    f"{owner}: {_member(i, member)} does not match {_member(0, first)}: its "
                    f"{what} {value(member)!r} != {value(first)!r}; an ensemble averages models "
                    "of one task, trained on the same classes and inputs"
                )
        if member.device != first.device:
            raise ValueError(
                f"{owner}: {_member(i, member)} runs on {member.device}, {_member(0, first)} on "
                f"{first.device}; an ensemble runs its members on one device"
            )
        if transform_of(member) != transform_of(first):
            raise ValueError(
                f"{owner}: {_member(i, member)} does not match {_member(0, first)}: it has "
                f"another eval transform ({member.transform_spec or member._transform!r} != "
                f"{first.transform_spec or first._transform!r}); an ensemble loads each image "
                "once, so its members must share one (or pass transform=)"
            )
    return members


def _member(index: int, member: Predictor) -> str:
    path = member._checkpoint or getattr(member.module, "checkpoint_path", None)
    return f"member {index} ({path!r})" if path else f"member {index}"


def _hard_predictions(described: TaskOutputs, out: torch.Tensor) -> torch.Tensor | None:
    """Hard predictions from natural outputs (probabilities): the argmax for multiclass and
    segmentation, above the threshold for binary and multilabel; None for values."""
    if described.kind in ("multiclass", "segmentation"):
        return out.argmax(1 if described.kind == "segmentation" else -1)
    if described.kind in ("binary", "multilabel"):
        return (out > described.threshold).long()
    return None


class _DatasetInputs(Sequence):
    """The inputs of a Dataset's items (``x`` of ``(x, y)`` pairs)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        item = self.dataset[index]
        return item[0] if isinstance(item, (tuple, list)) else item


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise TypeError(
            f"Predictor.predict: expected a numeric numpy array, got dtype {array.dtype}"
        )
    return torch.from_numpy(np.ascontiguousarray(array)).float()


def _check_shape(shape: Any) -> tuple[int, ...] | None:
    if shape is None:
        return None
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape:
        raise TypeError(
            "Predictor: input_shape must be None or a non-empty sequence of positive integers "
            f"(the shape of one sample, e.g. (3, 32, 32)), got {shape!r}"
        )
    dims = tuple(check_int("Predictor", f"input_shape[{i}]", s, 1) for i, s in enumerate(shape))
    if math.prod(dims) > _MAX_SAMPLE_NUMEL:
        raise ValueError(
            f"Predictor: input_shape {dims} holds {math.prod(dims):,} numbers per sample, more "
            f"than the {_MAX_SAMPLE_NUMEL:,} lightkit accepts (a damaged or crafted checkpoint?)"
        )
    return dims


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"Predictor: device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', got {device!r}"
        ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"Predictor: device={device!r} but CUDA is not available; use 'auto' or 'cpu'"
        )
    return resolved


__all__ = ["EnsemblePredictor", "Predictor"]
