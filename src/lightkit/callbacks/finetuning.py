"""FineTuning: train a pretrained net's new head first, then the whole net at discriminative LRs."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch import nn

from lightkit._lightning import skip_unused_step_hooks
from lightkit._validation import check_bool, check_float, check_int, short_repr

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_NORMS = (
    *_BATCH_NORMS,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    *([nn.RMSNorm] if hasattr(nn, "RMSNorm") else []),
)


@skip_unused_step_hooks
class FineTuning(Callback):
    """Fine-tune a pretrained net: its head alone for ``freeze_epochs``, then the whole net with
    the body at ``body_lr_ratio`` times the head's learning rate.

    In the spirit of fastai's ``fine_tune`` and Lightning's ``BackboneFinetuning``, but without
    changing the optimizer mid-run: the head and the body are two param groups from the start
    (through the task's ``lr_multipliers``), and freezing turns the body's gradients off
    (``requires_grad=False``: no backward pass through its weights, no optimizer update, no
    weight decay). So LR schedulers see every group from the first step, and a run killed at any
    point resumes bit-identically (whether the body is frozen follows from the epoch alone).

    Normalisation layers (BatchNorm, GroupNorm, LayerNorm, InstanceNorm) are a documented choice:
    with ``train_bn=True`` (the default, as in fastai) their affine weights keep training while
    the body is frozen and BatchNorm keeps updating its running statistics, which adapts a net
    pretrained on other images to yours; with ``train_bn=False`` they are frozen too and
    BatchNorm layers stay in eval mode (running statistics kept) until the body is unfrozen.

    Layer-wise learning-rate decay (``layer_decay``, as in BEiT and timm): each block of the
    body, from the head down to the stem, learns ``layer_decay`` times slower than the block
    above it, since the first layers hold the most general features. The blocks are the net's
    top-level parts with parameters, in order (``conv1, bn1, layer1, ..., layer4`` in a ResNet);
    a part holding most of the weights in more parts than there are blocks is opened up
    (``features.0, features.1, ...`` in a MobileNet, EfficientNet or ConvNeXt,
    ``encoder.layers.*`` in a ViT). The block just below the head
    learns at ``body_lr_ratio``, parameters outside every block (a ViT's embeddings) with the
    stem. :meth:`multipliers` shows the result; set ``lr_multipliers`` on the task yourself for
    another split.

    The head is the net's last ``nn.Linear`` layer (the new head of ``lk.models.backbone``, and
    of lightkit's ``MLP`` and ``ConvNet``), or the submodule named by ``head``. Works on any task
    module with a ``net`` attribute and ``lr_multipliers`` (every lightkit task); under DDP, use
    ``strategy="ddp_find_unused_parameters_true"`` (``lk.fine_tune`` picks it for a run on
    several devices), since frozen parameters get no gradient.

    Args:
        freeze_epochs: Epochs that train only the head (0: none, the body trains at once at its
            lower learning rate).
        body_lr_ratio: The body's learning rate as a fraction of the head's, in (0, 1].
        head: The head's name inside ``net`` (``"fc"``, ``"classifier.3"``); default: the last
            ``nn.Linear``.
        train_bn: Keep normalisation layers training while the body is frozen.
        layer_decay: Layer-wise LR decay in (0, 1] (``0.75`` is common); None: the whole body
            learns at ``body_lr_ratio``.

    Example:
        >>> trainer = lk.make_trainer(max_epochs=5, callbacks=[lk.callbacks.FineTuning(freeze_epochs=1)])
    """

    def __init__(
        self,
        freeze_epochs: int = 1,
        body_lr_ratio: float = 0.1,
        head: str | None = None,
        train_bn: bool = True,
        layer_decay: float | None = None,
    ) -> None:
        owner = "FineTuning"
        self.freeze_epochs = check_int(owner, "freeze_epochs", freeze_epochs, minimum=0)
        self.body_lr_ratio = check_float(
            owner, "body_lr_ratio", body_lr_ratio, 0.0, 1.0, min_inclusive=False
        )
        if head is not None and (not isinstance(head, str) or not head):
            raise TypeError(
                f"{owner}: head must be the name of a submodule of the net (such as 'fc') or "
                f"None, got {short_repr(head)}"
            )
        self.head = head
        self.train_bn = check_bool(owner, "train_bn", train_bn)
        self.layer_decay = (
            None
            if layer_decay is None
            else check_float(owner, "layer_decay", layer_decay, 0.0, 1.0, min_inclusive=False)
        )
        self._frozen: list[nn.Parameter] = []
        self._frozen_norms: list[nn.Module] = []
        self._previous_multipliers: Any = None

    # --- which parameters are the head -----------------------------------------------------------

    def head_name(self, pl_module: L.LightningModule) -> str:
        """The head's name inside ``pl_module.net`` (checked)."""
        net = getattr(pl_module, "net", None)
        if not isinstance(net, nn.Module):
            raise TypeError(
                f"FineTuning: the module ({type(pl_module).__name__}) has no `net` attribute "
                "holding the network; fine-tuning needs a lightkit task module (or one with `net`)"
            )
        children = [n for n, _ in net.named_children()]
        if self.head is not None:
            try:
                module = net.get_submodule(self.head)
            except AttributeError:
                raise ValueError(
                    f"FineTuning: the net ({type(net).__name__}) has no submodule {self.head!r} "
                    f"to use as its head; its top-level parts are {children}"
                ) from None
            if not any(True for _ in module.parameters()):
                raise ValueError(f"FineTuning: head {self.head!r} has no parameters to train")
            return self.head
        linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"FineTuning: cannot find the head of {type(net).__name__} (it has no nn.Linear "
                f"layer); pass head=<the name of its last layer or block>, one of {children}"
            )
        return linears[-1]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.head_name(pl_module)  # a net without a head lightkit can find fails here
        if not hasattr(pl_module, "lr_multipliers"):
            raise TypeError(
                f"FineTuning: {type(pl_module).__name__} has no `lr_multipliers`; use a lightkit "
                "task module"
            )
        self._unfreeze()  # whatever an interrupted run left frozen trains again
        # Read when the optimizer is built, which Lightning does after this hook; the module's
        # own value comes back when fitting ends.
        self._previous_multipliers = pl_module.lr_multipliers
        pl_module.lr_multipliers = self.multipliers(pl_module)

    def multipliers(self, pl_module: L.LightningModule) -> dict[str, float]:
        """The ``lr_multipliers`` fine-tuning gives ``pl_module`` (parameter-name prefix → the
        fraction of the optimizer's learning rate; the longest matching prefix wins)."""
        head = self.head_name(pl_module)
        multipliers = {"net": self.body_lr_ratio}
        if self.layer_decay is not None:
            blocks = _body_blocks(pl_module.net, head)  # type: ignore[arg-type]
            for depth, block in enumerate(reversed(blocks)):
                multipliers[f"net.{block}"] = self.body_lr_ratio * self.layer_decay**depth
            # Parameters outside every block (a ViT's class token and position embedding)
            # belong with the stem.
            multipliers["net"] = self.body_lr_ratio * self.layer_decay ** len(blocks)
        multipliers[f"net.{head}"] = 1.0
        return multipliers

    # --- freezing --------------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch < self.freeze_epochs:
            self._freeze(pl_module)
        elif self._frozen or self._frozen_norms:
            self._unfreeze()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore(pl_module)  # the module you get back trains as a whole

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # A crash, an interrupt or an out-of-memory retry (lk.fit) must not leave the body
        # frozen: the next fit builds its optimizer from the trainable parameters.
        self._restore(pl_module)

    def _restore(self, pl_module: L.LightningModule) -> None:
        self._unfreeze()
        if hasattr(pl_module, "lr_multipliers"):
            pl_module.lr_multipliers = self._previous_multipliers

    def _freeze(self, pl_module: L.LightningModule) -> None:
        net: nn.Module = pl_module.net  # type: ignore[assignment]
        head = net.get_submodule(self.head_name(pl_module))
        head_params = {id(p) for p in head.parameters()}
        norm_params = set()
        self._frozen_norms = []
        for module in net.modules():
            if isinstance(module, _NORMS):
                if self.train_bn:
                    norm_params |= {id(p) for p in module.parameters(recurse=False)}
                elif isinstance(module, _BATCH_NORMS):
                    module.eval()  # re-set each epoch: Lightning puts the module in train mode
                    self._frozen_norms.append(module)
        if not self._frozen:
            self._frozen = [
                p
                for p in net.parameters()
                if p.requires_grad and id(p) not in head_params and id(p) not in norm_params
            ]
        for param in self._frozen:
            param.requires_grad_(False)

    def _unfreeze(self) -> None:
        for param in self._frozen:
            param.requires_grad_(True)
        for module in self._frozen_norms:
            module.train()
        self._frozen, self._frozen_norms = [], []


def _body_blocks(net: nn.Module, head: str) -> list[str]:
    """The body's blocks in order, for layer-wise decay.

    The net's top-level parts with parameters, the head left out. A part that holds the head is
    opened up into its other parts; so is a part that holds more than half of the body's
    parameters in more parts of its own than there are blocks (``features`` of a MobileNet, the
    encoder layers of a ViT), so that the blocks follow the net's depth.
    """

    def size(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    def parts(name: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
        prefix = f"{name}." if name else ""
        found = []
        for child_name, child in module.named_children():
            full = prefix + child_name
            if full == head or size(child) == 0:
                continue
            if head.startswith(full + "."):
                found += parts(full, child)  # the head's container: its other parts are blocks
            else:
                found.append((full, child))
        return found

    body = size(net) - size(net.get_submodule(head))
    blocks = parts("", net)
    while True:
        for index, (name, module) in enumerate(blocks):
            inner = parts(name, module)
            own = 1 if any(True for _ in module.parameters(recurse=False)) else 0
            if 2 * size(module) > body and len(inner) + own > len(blocks):
                blocks[index : index + 1] = inner
                break
        else:
            return [name for name, _ in blocks]


__all__ = ["FineTuning"]
