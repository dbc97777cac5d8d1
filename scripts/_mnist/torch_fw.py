"""PyTorch side of the MNIST parity run (``nmn.torch``)."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import nmn.interchange
from _mnist.common import HIDDEN, IMAGE_SHAPE, NUM_CLASSES, LossMeter, batches, package_versions
from nmn.torch import YatNMN

torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def versions() -> dict:
    return package_versions("torch")


def build_model() -> nn.Module:
    n_in = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    return nn.Sequential(
        nn.Flatten(), YatNMN(n_in, HIDDEN[0]), YatNMN(HIDDEN[0], HIDDEN[1]), nn.Linear(HIDDEN[1], NUM_CLASSES)
    )


class Trainer:
    def __init__(self, hp, init=None):
        torch.manual_seed(hp.seed)
        self.model = build_model()
        if init is not None:  # canonical layout == torch layout
            with torch.no_grad():
                for i, name in ((1, "yat1"), (2, "yat2"), (3, "out")):
                    for key in ("weight", "bias", "alpha"):
                        if f"{name}.{key}" in init:
                            getattr(self.model[i], key).copy_(torch.from_numpy(init[f"{name}.{key}"]))
        self.opt = torch.optim.AdamW(
            self.model.parameters(),
            lr=hp.lr,
            betas=(hp.beta1, hp.beta2),
            eps=hp.eps,
            weight_decay=hp.weight_decay,
            amsgrad=False,
        )

    def param_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def train_epoch(self, x, y, batch_size, progress) -> float:
        self.model.train()
        meter = LossMeter(progress)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
        for s in batches(len(x), batch_size):
            loss = F.cross_entropy(self.model(xt[s]), yt[s])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            meter.add(loss.detach(), s.stop - s.start)
        return meter.mean()

    def logits(self, x, batch_size) -> np.ndarray:
        return predict(self.model, x, batch_size)

    def export(self, path, example):
        return nmn.interchange.export(self.model, torch.from_numpy(example), path, framework="torch")


def predict(model, x, batch_size) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        xt = torch.from_numpy(x)
        return np.concatenate([model(xt[s]).numpy() for s in batches(len(x), batch_size)])


def load_logits(path, x, batch_size) -> np.ndarray:
    return predict(nmn.interchange.load(path, "torch"), x, batch_size)
