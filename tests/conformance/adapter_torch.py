"""Conformance adapter for nmn.torch (protocol in tests/conformance/__init__.py).

Torch layouts are the canonical ones, so inputs and gradients need no transposition. Forward runs in float32;
gradients are taken in float64 (a double copy of the layer) so that they compare cleanly with the float64
finite difference of the oracle.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from nmn.torch import spec as torch_spec

_SQUASH = ("softermax", "softer_sigmoid", "soft_tanh")


class TorchAdapter:
    name = "torch"

    def supports(self, kind, config):
        if kind == "YatConv" and config.get("spherical"):
            return "spherical conv has no nmn v1 function"
        if kind == "YatConvTranspose" and (config.get("spherical") or config.get("weight_normalized")):
            return "spherical / weight_normalized transposed conv has no nmn v1 function"
        return True

    def build(self, kind, config, params):
        return torch_spec.from_spec(kind, config, params)

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
        named = [(name, torch_spec._get(layer, path)) for name, path in paths.items() if name != "proj"]
        tensors = [xs[0]] + [t for _, t in named]
        gs = torch.autograd.grad(loss, tensors, allow_unused=True)
        out = {"input0": gs[0].numpy()}
        for (name, t), g in zip(named, gs[1:]):
            out[name] = (torch.zeros_like(t) if g is None else g).numpy()
        if "proj" in paths:  # a buffer, not trained; report its gradient for completeness
            out["proj"] = self._proj_grad(layer, kind, inputs, call, cotangent)
        return out

    def _proj_grad(self, layer, kind, inputs, call, cotangent):
        layer = copy.deepcopy(layer)
        layer.proj.requires_grad_(True)
        xs = [torch.as_tensor(np.asarray(x, np.float64)) for x in inputs]
        y = self._call(layer, kind, xs, call)
        loss = (y * torch.as_tensor(np.asarray(cotangent, np.float64))).sum()
        return torch.autograd.grad(loss, layer.proj)[0].numpy()


ADAPTER = TorchAdapter()
