"""record_init_args: a class decorator that lets a checkpoint rebuild your own net from plain data."""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

from torch import nn

from lightkit._spec import is_plain
from lightkit._validation import short_repr

ModuleClass = TypeVar("ModuleClass", bound=type[nn.Module])


def record_init_args(cls: ModuleClass) -> ModuleClass:
    """Make instances of your ``nn.Module`` class remember their constructor arguments.

    lightkit checkpoints describe a net as ``{"class_path", "init_args"}``; lightkit's models
    record their arguments, and this decorator does the same for yours: after ``__init__`` the
    instance has ``init_args``, the arguments it was called with (defaults filled in). A task
    module built on it then reloads from the checkpoint alone, as soon as you trust your
    module: ``MyTask.load_from_checkpoint(path, trust=["mypkg.nets"])``,
    ``lk.Predictor.from_checkpoint(path, trust=["mypkg.nets"])``, ``lightkit serve CKPT --trust
    mypkg.nets``. The class must be importable (defined at the top level of a module).

    Only plain data can be recorded (numbers, strings, booleans, None, and lists and str-keyed
    dicts of them): an argument that is anything else (a tensor, another module) is a
    ``TypeError`` naming it when the net is built, since no checkpoint could rebuild it. A
    subclass with an ``__init__`` of its own records its arguments only when it is decorated too.

    Example:
        >>> @lk.models.record_init_args
        ... class MyNet(torch.nn.Module):
        ...     def __init__(self, width: int = 64, classes: int = 10):
        ...         super().__init__()
        ...         self.body = torch.nn.Sequential(torch.nn.LazyLinear(width), torch.nn.ReLU(),
        ...                                         torch.nn.Linear(width, classes))
        ...     def forward(self, x):
        ...         return self.body(x)
        >>> MyNet(width=32).init_args
        {'width': 32, 'classes': 10}
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(
            f"record_init_args decorates a torch.nn.Module class, got {short_repr(cls)}"
        )
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self).__init__ is not __init__:
            # A subclass with an __init__ of its own called this one through super(): these are
            # not its arguments. It records its own when it is decorated too; otherwise nothing
            # is recorded, and a checkpoint needs the net given again (net=...).
            return
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:  # after self
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                raise TypeError(
                    f"{cls.__qualname__}: record_init_args cannot record *{name}; take named "
                    "arguments instead"
                )
            if kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            else:
                arguments[name] = value
        for name, value in arguments.items():
            if not is_plain(value):
                raise TypeError(
                    f"{cls.__qualname__}({name}=...): record_init_args records only plain data "
                    f"(numbers, strings, booleans, None, lists and dicts of them), got "
                    f"{short_repr(value)} ({type(value).__name__}); a checkpoint could not "
                    "rebuild the net from it. Pass plain values, or drop the decorator and give "
                    "the net when loading (net=...)"
                )
        self.init_args = {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


__all__ = ["record_init_args"]
