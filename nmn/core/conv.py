"""Convolution geometry shared by every framework: argument normalisation and explicit padding.

Every framework pads explicitly (with the layer's padding mode) and then runs a VALID native convolution, so
``'same'``, ``'causal'``, ints and ``(lo, hi)`` pairs mean the same thing everywhere and export as the same
``pads`` attribute.

>>> conv_pads("same", (5,), (3,), (2,), (1,))
[(1, 1)]
>>> conv_pads("causal", (5,), (3,), (1,), (2,))
[(4, 0)]
>>> transpose_geometry("same", (3,), (2,), (1,))
([(0, 1)], [0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nmn.core import yat

PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def as_tuple(value: Any, rank: int, name: str, layer: str) -> tuple[int, ...]:
    """An int or a sequence of ``rank`` positive ints as a tuple; ``ValueError`` naming the option otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        values = (value,) * rank
    else:
        try:
            values = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"{layer}: {name} must be an int or {rank} ints, got {value!r}") from None
    if len(values) != rank or any(v <= 0 for v in values):
        raise ValueError(f"{layer}: {name} must be a positive int or {rank} positive ints, got {value!r}")
    return values


def output_padding_tuple(
    value: Any, rank: int, layer: str, *, strides: Sequence[int] | None = None, dilations: Sequence[int] | None = None
) -> tuple[int, ...]:
    """``output_padding`` of a transposed convolution as ``rank`` ints >= 0 (an int means every axis).

    With ``strides`` and ``dilations``, each value must also be below ``max(stride, dilation)`` (the ONNX and
    PyTorch rule, which some hosts check at construction).

    >>> output_padding_tuple(1, 2, "YatConvTranspose2D")
    (1, 1)
    >>> output_padding_tuple((2,), 1, "YatConvTranspose1D", strides=(2,), dilations=(1,))
    Traceback (most recent call last):
    ...
    ValueError: YatConvTranspose1D: output_padding must be 1 ints >= 0 and below max(stride, dilation), got (2,)
    """
    op = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    bounded = strides is not None and dilations is not None
    limits = [max(s, d) for s, d in zip(strides, dilations)] if bounded else [None] * rank
    if len(op) != rank or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 0 or (lim is not None and v >= lim)
        for v, lim in zip(op, limits)
    ):
        need = f"{rank} ints >= 0 and below max(stride, dilation)" if bounded else f"an int >= 0 or {rank} of them"
        raise ValueError(f"{layer}: output_padding must be {need}, got {value!r}")
    return tuple(int(v) for v in op)


def normalize_padding(padding: Any, rank: int, layer: str) -> Any:
    """Validate ``padding``: ``'valid'``, ``'same'``, ``'causal'`` (1-D), an int, ``rank`` ints or (lo, hi) pairs."""
    if isinstance(padding, str):
        p = padding.lower()
        if p not in ("valid", "same", "causal"):
            raise ValueError(f"{layer}: padding must be 'valid', 'same', 'causal', an int or pairs, got {padding!r}")
        if p == "causal" and rank != 1:
            raise ValueError(f"{layer}: padding='causal' is only defined for 1-D convolutions, this one is {rank}-D")
        return p
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"{layer}: padding must be >= 0, got {padding}")
        return tuple((padding, padding) for _ in range(rank))
    try:
        items = list(padding)
    except TypeError:
        raise ValueError(f"{layer}: padding must be a string, an int or a sequence, got {padding!r}") from None
    if len(items) != rank:
        raise ValueError(f"{layer}: padding needs {rank} entries, got {padding!r}")
    pairs = []
    for item in items:
        pair = (item, item) if isinstance(item, int) else tuple(item)
        if len(pair) != 2 or any((not isinstance(v, int)) or v < 0 for v in pair):
            raise ValueError(f"{layer}: padding entries must be ints >= 0 or (lo, hi) pairs, got {padding!r}")
        pairs.append(pair)
    return tuple(pairs)


def conv_pads(
    padding: Any, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> list[tuple[int, int]]:
    """Explicit ``(lo, hi)`` pads per spatial axis for a normalised ``padding``.

    ``'same'`` is ONNX ``SAME_UPPER`` (out = ceil(in / stride), the odd pixel on the high side), which is also
    what JAX, TF and Keras do; ``'causal'`` pads ``dilation * (k - 1)`` on the left.
    """
    if not isinstance(padding, str):
        return [tuple(p) for p in padding]
    pads = []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        k_eff = (k - 1) * d + 1
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "causal":
            pads.append((k_eff - 1, 0))
        else:
            out = -(-n // s)
            total = max((out - 1) * s + k_eff - n, 0)
            pads.append((total // 2, total - total // 2))
    return pads


def conv_output_size(n: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    """Output length of a convolution along one axis."""
    return (n + lo + hi - ((k - 1) * d + 1)) // s + 1


def transpose_geometry(
    padding: Any, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int], output_padding: Any = None
) -> tuple[list[tuple[int, int]], list[int]]:
    """ONNX ``ConvTranspose`` pads (cropping, ``(lo, hi)`` per axis) and ``output_padding`` for ``padding``.

    ``'same'`` gives ``out = in * stride`` and ``'valid'`` gives ``out = (in - 1) * stride + k_eff``
    (with ``k_eff < stride`` the gap is filled by output padding), matching JAX/Keras/TF.
    """
    rank = len(kernel)
    extra = [0] * rank if output_padding is None else list(output_padding)
    if not isinstance(padding, str):
        return [tuple(p) for p in padding], extra
    pads, outpad = [], []
    for i, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        k_eff = (k - 1) * d + 1
        if padding == "valid":
            pads.append((0, 0))
            outpad.append(extra[i] + max(s - k_eff, 0))
        elif padding == "same":
            total = max(k_eff - s, 0)
            pads.append((total // 2, total - total // 2))
            outpad.append(extra[i] + max(s - k_eff, 0))
        else:
            raise ValueError(f"padding={padding!r} is not supported by transposed convolutions")
    return pads, outpad


def transpose_output_size(n: int, k: int, s: int, d: int, lo: int, hi: int, outpad: int) -> int:
    """Output length of a transposed convolution along one axis (ONNX / torch formula)."""
    return (n - 1) * s + (k - 1) * d + 1 - lo - hi + outpad


def transpose_as_conv_pads(pad_pairs, kernel, dilations, output_padding) -> list[tuple[int, int]]:
    """The ``(lo, hi)`` pads of the stride-1 convolution (input dilated by the stride, kernel flipped) that
    computes an ONNX ``ConvTranspose`` with these ``pads``; a negative value is a crop.

    >>> transpose_as_conv_pads([(1, 1)], [3], [1], [1])
    [(1, 2)]
    """
    return [
        ((k - 1) * d - lo, (k - 1) * d - hi + op)
        for (lo, hi), k, d, op in zip(pad_pairs, kernel, dilations, output_padding)
    ]


def onnx_pads(pairs: Sequence[tuple[int, int]]) -> list[int]:
    """``[(lo, hi), ...]`` as ONNX ``pads``: all begins, then all ends."""
    return [p[0] for p in pairs] + [p[1] for p in pairs]


def pairs_from_onnx(pads: Sequence[int]) -> list[tuple[int, int]]:
    """ONNX ``pads`` back to ``[(lo, hi), ...]``."""
    r = len(pads) // 2
    return [(int(pads[i]), int(pads[i + r])) for i in range(r)]


def yat_conv_tail(F, dot, energy, ww, bias, alpha, eps):
    """The Yat tail of a (transposed) convolution: ``alpha (dot + b)^2 / (relu(energy + |w|^2 - 2 dot) + eps)``.

    ``dot`` is the native convolution of the input with the kernel, ``energy`` the patch energy ``sum x^2`` under
    each output position and ``ww`` the kernel energy ``|w_o|^2`` per output channel (or ``1.0`` for unit
    kernels). Every framework's conv and conv-transpose call this: the distance is written here once.
    """
    return yat.yat_tail(F, dot, energy + ww - 2.0 * dot, bias, alpha, eps)


def channels_last_energy(F, x, groups: int):
    """``sum of x^2`` over each group's input channels of channels-last ``x (N, *S, C)``: ``(N, *S, groups)``.

    >>> import numpy as np
    >>> class F:
    ...     sum = staticmethod(lambda v, axis, keepdims=False: v.sum(axis, keepdims=keepdims))
    ...     reshape = staticmethod(np.reshape)
    >>> channels_last_energy(F, np.ones((1, 2, 4)), 2).tolist()
    [[[2.0, 2.0], [2.0, 2.0]]]
    """
    xx = x * x
    if groups == 1:
        return F.sum(xx, -1, True)
    shape = tuple(x.shape)
    return F.sum(F.reshape(xx, (*shape[:-1], groups, shape[-1] // groups)), -1)


def window_sum(xs, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]):
    """Sum of channels-last ``xs (N, *S, G)`` over every VALID conv window: the patch energy of a padded input.

    The window of ones is separable, so the sum runs axis by axis as ``k`` strided slices added together (any
    stride and dilation). It replaces a convolution of ``x * x`` with a ones kernel, which XLA on the CPU runs as
    a thin conv (one output channel) in both directions: TF, 32 x 32 x 32 x 64 with a 3 x 3 window, 6.3 ms ->
    3.3 ms forward and 7.4 ms -> 4.1 ms with its gradient (measured, ``jit_compile``). Plain slicing and ``+``:
    TF, JAX, torch and MLX tensors alike; the spatial sizes must be static.

    >>> import numpy as np
    >>> window_sum(np.arange(5.0).reshape(1, 5, 1), (3,), (2,), (1,))[0, :, 0].tolist()   # 0+1+2, 2+3+4
    [3.0, 9.0]
    >>> window_sum(np.arange(5.0).reshape(1, 5, 1), (2,), (1,), (3,))[0, :, 0].tolist()   # 0+3, 1+4
    [3.0, 5.0]
    >>> window_sum(np.ones((1, 2, 1)), (3,), (2,), (1,)).shape    # no whole window fits: empty, as the conv
    (1, 0, 1)
    """
    for i, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        axis = 1 + i
        n_out = max((int(xs.shape[axis]) - (k - 1) * d - 1) // s + 1, 0)
        index = [slice(None)] * len(xs.shape)
        total = None
        for t in range(k):
            # n_out == 0: an empty slice (a negative stop would wrap round to the far end)
            index[axis] = slice(t * d, t * d + (n_out - 1) * s + 1 if n_out else t * d, s)
            part = xs[tuple(index)]
            total = part if total is None else total + part
        xs = total
    return xs


def patch_energy(F, x, groups: int, kernel, strides, dilations, fallback, pad_energy=None, channel_energy=None):
    """The patch energy of a padded channels-last ``x (N, *S, C)`` for a VALID conv: ``(N, *S_out, groups)``.

    :func:`window_sum` over :func:`channels_last_energy` where the spatial sizes are static, else ``fallback()``
    (the caller's convolution of ``x * x`` with ones, for sizes known only at run time). ``pad_energy``, when
    given, zero-pads the ``(N, *S, groups)`` channel energy of an unpadded ``x`` whose conv the native
    ``'same'`` pads (see :func:`native_same`): the pad then touches a tensor ``C / groups`` times smaller.
    ``channel_energy(x, groups)``, when given, replaces :func:`channels_last_energy` (a framework's fused one).
    """
    if all(n is not None for n in x.shape[1:-1]):
        xs = channels_last_energy(F, x, groups) if channel_energy is None else channel_energy(x, groups)
        xs = xs if pad_energy is None else pad_energy(xs)
        return window_sum(xs, tuple(kernel), tuple(strides), tuple(dilations))
    return fallback()


def native_same(pads, spatial, kernel, strides, dilations, padding_mode: str = "zeros") -> bool:
    """True when explicit ``pads`` are what a native ``'same'`` conv pads by itself, in every backend alike:
    zeros, stride 1, the same amount on both sides (an odd effective kernel). A native ``'same'`` then skips the
    copy an explicit pad makes (JAX on the CPU, 32 x 32 x 32 x 64 by 3 x 3: 50 -> 42 ms forward, 293 -> 229 ms
    with the gradient, measured).

    >>> native_same([(1, 1)], (5,), (3,), (1,), (1,)), native_same([(1, 1)], (5,), (3,), (2,), (1,))
    (True, False)
    >>> native_same([(1, 0)], (5,), (2,), (1,), (1,)), native_same([(1, 1)], (5,), (3,), (1,), (1,), "reflect")
    (False, False)
    """
    if isinstance(pads, str) or padding_mode != "zeros" or any(int(s) != 1 for s in strides):
        return False
    if any(n is None for n in spatial) or any(lo != hi for lo, hi in pads):
        return False
    return [tuple(p) for p in pads] == conv_pads("same", spatial, kernel, strides, dilations)


def refuse_input_dilations(kind: str, config: dict, host: str) -> None:
    """``ValueError`` when a neutral conv config carries Flax's ``input_dilation`` and ``host`` has no such option.

    nmn::YatConv's ``input_dilations`` (zeros inserted between input samples) is a layer option of nmn.nnx and
    nmn.linen only; elsewhere dropping it would compute a different function, so the load is refused.

    >>> refuse_input_dilations("YatConv", {"input_dilations": [1, 1]}, "torch")
    >>> refuse_input_dilations("YatConv", {"input_dilations": [2, 1]}, "torch")
    Traceback (most recent call last):
    ...
    ValueError: from_spec: YatConv with input_dilations=[2, 1] (Flax's input_dilation) has no torch layer; load it into nmn.nnx or nmn.linen
    """
    d = config.get("input_dilations") or ()
    if any(int(v) != 1 for v in d):
        raise ValueError(
            f"from_spec: {kind} with input_dilations={list(d)} (Flax's input_dilation) has no {host} layer; "
            "load it into nmn.nnx or nmn.linen"
        )


def check_mask(mask: Any, kernel_shape: Sequence[int], layer: str, layout: str) -> Any:
    """A conv ``mask`` (Flax's ``nn.Conv(mask=...)`` meaning) as a float32 numpy array, or ``None``.

    The mask has the kernel's shape in the host's own layout (``layout`` names it in the error) and multiplies the
    kernel before every use (the product is what trains, what the distance sees and what a file carries). Any
    array-like works (numpy, a host tensor, nested lists); entries must be finite.

    >>> check_mask([[1, 0]], (1, 2), "YatConv1D", "(k, C/G, M)").tolist()
    [[1.0, 0.0]]
    >>> check_mask([1, 0], (1, 2), "YatConv1D", "(k, C/G, M)")
    Traceback (most recent call last):
    ...
    ValueError: YatConv1D: mask must have the kernel's shape (1, 2) (layout (k, C/G, M)), got shape (2,)
    """
    if mask is None:
        return None
    import numpy as np

    try:
        if hasattr(mask, "detach"):  # a torch tensor (any device, any requires_grad)
            mask = mask.detach().cpu().float().numpy()
        elif hasattr(mask, "numpy") and not isinstance(mask, np.ndarray):  # a TF tensor
            mask = mask.numpy()
        value = np.asarray(mask).astype(np.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{layer}: mask must be an array of numbers of the kernel's shape, got {mask!r}") from None
    if tuple(value.shape) != tuple(kernel_shape):
        raise ValueError(
            f"{layer}: mask must have the kernel's shape {tuple(kernel_shape)} (layout {layout}), "
            f"got shape {tuple(value.shape)}"
        )
    if not np.isfinite(value).all():
        raise ValueError(f"{layer}: mask must be finite, got NaN or infinite entries")
    return value
