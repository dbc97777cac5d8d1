"""Conformance adapter for nmn.torch (protocol in tests/conformance/__init__.py).

Torch layouts are the canonical ones, so inputs and gradients need no transposition. Forward runs in float32;
gradients are taken in float64 (a double copy of the layer) so that they compare cleanly with the float64
finite difference of the oracle.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

import nmn.torch as nt
from nmn.torch import spec as torch_spec
from nmn.torch.attention import RF_BUFFERS
from tests.conformance.cases import host_options

_YAT = ("use_bias", "constant_bias", "use_alpha", "constant_alpha", "epsilon", "learnable_epsilon")


def _pads(padding):
    return padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)


_SQUASH = ("softermax", "softer_sigmoid", "soft_tanh")
#: the attention's frozen projections (torch buffers): the SLAY proj and the MAY / RAY arrays
_BUFFERS = ("proj", *RF_BUFFERS["maclaurin"], *RF_BUFFERS["radial"])


class TorchAdapter:
    name = "torch"

    def supports(self, kind, config):
        if kind == "YatConv" and config.get("spherical"):
            return "spherical conv has no nmn v1 function"
        if kind == "YatConvTranspose" and config.get("spherical"):
            return "spherical transposed conv has no nmn v1 function"
        return True

    def build(self, kind, config, params):
        return torch_spec.from_spec(kind, config, params)

    def build_options(self, kind, config, params, options):
        """The torch constructor with nmn 0.3's options, then the raw parameters (``load_params``)."""
        c = config
        opts = host_options(kind, options, "torch", c.get("groups", 1))
        if opts.get("mask") is not None:
            opts["mask"] = torch.as_tensor(opts["mask"])
        yat = {k: c[k] for k in _YAT}
        if kind == "YatNMN":
            layer = nt.YatNMN(
                c["in_features"],
                c["out_features"],
                spherical=c["spherical"],
                weight_normalized=c["weight_normalized"],
                **yat,
                **opts,
            )
        elif kind == "YatConv":
            layer = getattr(nt, f"YatConv{c['rank']}D")(
                c["in_channels"],
                c["out_channels"],
                tuple(c["kernel_size"]),
                stride=tuple(c["strides"]),
                padding=_pads(c["padding"]),
                dilation=tuple(c["dilations"]),
                groups=c["groups"],
                padding_mode=c["padding_mode"],
                weight_normalized=c["weight_normalized"],
                **yat,
                **opts,
            )
        else:
            layer = getattr(nt, f"YatConvTranspose{c['rank']}D")(
                c["in_channels"],
                c["out_channels"],
                tuple(c["kernel_size"]),
                stride=tuple(c["strides"]),
                padding=_pads(c["padding"]),
                output_padding=tuple(c["output_padding"]),
                groups=c["groups"],
                dilation=tuple(c["dilations"]),
                **yat,
                **opts,
            )
        return torch_spec.load_params(layer, params)

    def _call(self, layer, kind, xs, call):
        mask = call.get("mask")
        if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
            m = None if mask is None else torch.as_tensor(np.asarray(mask, bool))
            if kind == "RotaryYatAttention":
                return layer(xs[0], mask=m)
            return layer(*xs, mask=m)
        if kind == "YatEmbed":
            return layer.attend(xs[0]) if call.get("method", "attend") == "attend" else layer(xs[0])
        return layer(xs[0])

    def forward(self, layer, kind, inputs, call):
        layer.eval()
        xs = [torch.as_tensor(np.asarray(x, np.float32)) for x in inputs]
        with torch.no_grad():
            y = self._call(layer, kind, xs, call)
        return y.double().numpy()

    def grads(self, layer, kind, inputs, call, cotangent):
        layer = copy.deepcopy(layer).double().eval()
        for p in layer.parameters():
            p.requires_grad_(True)
        xs = [torch.as_tensor(np.asarray(x, np.float64)) for x in inputs]
        xs[0].requires_grad_(True)
        y = self._call(layer, kind, xs, call)
        loss = (y * torch.as_tensor(np.asarray(cotangent, np.float64))).sum()
        paths = torch_spec.param_paths(layer) if kind not in _SQUASH else {}
        buffers = [name for name in paths if name in _BUFFERS]
        named = [(name, torch_spec._get(layer, path)) for name, path in paths.items() if name not in buffers]
        tensors = [xs[0]] + [t for _, t in named]
        gs = torch.autograd.grad(loss, tensors, allow_unused=True)
        out = {"input0": gs[0].numpy()}
        for (name, t), g in zip(named, gs[1:]):
            out[name] = (torch.zeros_like(t) if g is None else g).numpy()
        if buffers:  # buffers, not trained (the performers' projections); report their gradients for completeness
            out.update(self._buffer_grads(layer, kind, inputs, call, cotangent, buffers))
        return out

    def _buffer_grads(self, layer, kind, inputs, call, cotangent, names):
        layer = copy.deepcopy(layer)
        tensors = [getattr(layer, name).requires_grad_(True) for name in names]
        xs = [torch.as_tensor(np.asarray(x, np.float64)) for x in inputs]
        y = self._call(layer, kind, xs, call)
        loss = (y * torch.as_tensor(np.asarray(cotangent, np.float64))).sum()
        gs = torch.autograd.grad(loss, tensors, allow_unused=True)
        return {n: (torch.zeros_like(t) if g is None else g).numpy() for n, t, g in zip(names, tensors, gs)}


ADAPTER = TorchAdapter()
