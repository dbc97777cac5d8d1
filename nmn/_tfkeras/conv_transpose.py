"""The Keras convention of a transposed convolution's geometry, shared by ``nmn.keras`` and ``nmn.tf``.

``keras.layers.Conv{1,2,3}DTranspose`` (and ``tf.keras``) give ``padding``/``output_padding`` a meaning of their own:
with ``output_padding`` set, ``'same'`` means ``out = (n - 1) s + k_eff % 2 + output_padding`` rather than
``n s + output_padding`` (issue 18: ``padding='same', output_padding=1`` is 8x8 in Keras for a 4x4 input, stride
2, kernel 3). The host layer places its zero padding around the stride-dilated input of a stride-1 convolution
(``left``, ``right``); here that is turned into ONNX ``ConvTranspose`` pads ``(lo, hi)`` plus an output padding,
so the nmn function computes exactly the host's output. The padding rule follows the description in Keras'
``backend_utils`` (the conversion of Keras transpose padding to JAX's); the code is written here.

>>> from nmn.core.conv import transpose_output_size
>>> pads, outpad = keras_transpose_geometry("same", (3, 3), (2, 2), (1, 1), (1, 1))
>>> transpose_output_size(4, 3, 2, 1, *pads[0], outpad[0])      # keras Conv2DTranspose: 8, not 9
8
>>> keras_transpose_geometry("valid", (2,), (3,), (1,), None)
([(0, 0)], [1])
"""

from __future__ import annotations

from collections.abc import Sequence


def _host_pads(k_eff: int, s: int, padding: str, output_padding: int | None) -> tuple[int, int]:
    """``(left, right)`` zero padding of the stride-1 convolution over the stride-dilated input (Keras rule)."""
    if padding == "valid":
        extra = max(k_eff, s) - k_eff if output_padding is None else output_padding
        return k_eff - 1, k_eff - 1 + extra
    total = s + k_eff - 2 if output_padding is None else k_eff + k_eff % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, k_eff - 1)
    return left, total - left


def keras_transpose_geometry(
    padding,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    output_padding: Sequence[int] | None,
) -> tuple[list[tuple[int, int]], list[int]]:
    """ONNX ``ConvTranspose`` pads ``(lo, hi)`` per axis and ``output_padding`` equal to the Keras layer's.

    Explicit ``(lo, hi)`` padding pairs pass through (with ``output_padding`` or zeros).

    Args:
        padding: ``'valid'``, ``'same'`` or a sequence of ``(lo, hi)`` pairs.
        kernel, strides, dilations: one int per spatial axis.
        output_padding: ``None`` (the Keras default) or one int per axis.
    """
    rank = len(kernel)
    if not isinstance(padding, str):
        return [tuple(p) for p in padding], [0] * rank if output_padding is None else list(output_padding)
    if padding not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} is not supported by transposed convolutions")
    pads, outpad = [], []
    for i, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        k_eff = (k - 1) * d + 1
        left, right = _host_pads(k_eff, s, padding, None if output_padding is None else output_padding[i])
        # the stride-1 conv pads (k_eff - 1 - lo, k_eff - 1 - hi + op) of nmn.core.conv.transpose_as_conv_pads
        lo = k_eff - 1 - left
        hi = k_eff - 1 - right
        pads.append((lo, max(hi, 0)))
        outpad.append(max(-hi, 0))
    return pads, outpad
