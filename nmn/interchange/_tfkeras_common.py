"""What ``keras_io`` and ``tf_io`` share and the other exporters do not: the hosts' Yat parameter names.

Both hosts keep Yat kernels under the same attribute names (the standard ONNX ops every loader runs live in
:mod:`nmn.interchange.stdops`).

>>> HOST_NAMES["YatNMN"]
{'weight': 'kernel'}
"""

from __future__ import annotations

HOST_NAMES = {
    "YatNMN": {"weight": "kernel"},
    "YatConv": {"weight": "kernel"},
    "YatConvTranspose": {"weight": "kernel"},
    "MultiHeadYatAttention": {f"{p}_weight": f"{p}_kernel" for p in ("q", "k", "v", "out")},
    "RotaryYatAttention": {f"{p}_weight": f"{p}_kernel" for p in ("q", "k", "v", "out")},
    "YatEmbed": {},
}
"""Canonical param name -> host attribute name, where they differ, per Yat kind (both hosts alike)."""
