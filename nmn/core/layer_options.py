"""Validation of nmn 0.3 layer keywords shared by the six frameworks (standard library only).

``freeze_kernel`` is nmn 0.3's alias of ``lazy`` (the kernel is not trained); :func:`resolve_freeze_kernel`
folds the pair into one flag. :func:`refuse_value` accepts an nmn 0.3 keyword only at the value that keeps the
layer's nmn ONNX function, and otherwise raises the reason of :data:`nmn.core.names.REFUSED_VALUES`.
"""

from __future__ import annotations

from typing import Any

from nmn.core.names import REFUSED_VALUES

__all__ = ["resolve_freeze_kernel", "refuse_value", "check_choice"]


def resolve_freeze_kernel(lazy: bool | None, freeze_kernel: bool | None, layer: str) -> bool:
    """The one "kernel not trained" flag from ``lazy`` and its nmn 0.3 alias ``freeze_kernel`` (None: not given).

    >>> resolve_freeze_kernel(False, True, "YatNMN"), resolve_freeze_kernel(True, None, "YatNMN")
    (True, True)
    >>> resolve_freeze_kernel(True, False, "YatNMN")
    Traceback (most recent call last):
    ...
    ValueError: YatNMN: lazy=True and freeze_kernel=False disagree (freeze_kernel is nmn 0.3's name of lazy); give one
    """
    if freeze_kernel is None:
        return bool(lazy)
    if lazy and not freeze_kernel:
        raise ValueError(
            f"{layer}: lazy={lazy!r} and freeze_kernel={freeze_kernel!r} disagree (freeze_kernel is nmn 0.3's name "
            "of lazy); give one"
        )
    if not isinstance(freeze_kernel, (bool, int)):
        raise TypeError(f"{layer}: freeze_kernel must be True, False or None, got {freeze_kernel!r}")
    return bool(freeze_kernel)


def refuse_value(layer: str, keyword: str, value: Any, accepted: tuple) -> None:
    """``ValueError`` naming ``layer``, ``keyword``, the accepted values and ``value`` with the reason of
    :data:`nmn.core.names.REFUSED_VALUES` unless ``value`` is one of ``accepted`` (compared by ``is``, then ``==``).

    >>> refuse_value("YatNMN", "distance_floor", 0.0, (0.0,))
    >>> refuse_value("YatNMN", "distance_floor", 0.5, (0.0,))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: YatNMN: distance_floor=0.5 (nmn 0.3) is not supported (accepted: 0.0): the layer's nmn ONNX ...
    """
    for ok in accepted:
        if value is ok:
            return
        try:
            if isinstance(value, (str, int, float)) and value == ok:
                return
        except Exception:  # an array-like value: not a plain default
            pass
    names = ", ".join(getattr(ok, "__qualname__", None) or repr(ok) for ok in accepted)
    raise ValueError(
        f"{layer}: {keyword}={value!r} (nmn 0.3) is not supported (accepted: {names}): {REFUSED_VALUES[keyword]}"
    )


def check_choice(layer: str, keyword: str, value: Any, choices: tuple) -> None:
    """``ValueError`` naming the layer and keyword unless ``value`` is one of ``choices``.

    >>> check_choice("YatNMN", "compute_mode", "fp16", ("fp32", "mixed", "bf16"))
    Traceback (most recent call last):
    ...
    ValueError: YatNMN: compute_mode must be one of ('fp32', 'mixed', 'bf16'), got 'fp16'
    """
    if value not in choices:
        raise ValueError(f"{layer}: {keyword} must be one of {choices}, got {value!r}")
