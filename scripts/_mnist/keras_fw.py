"""Keras 3 side of the MNIST parity run (``nmn.keras``), on the backend fixed for this process."""

from __future__ import annotations

import keras
import numpy as np

import nmn.interchange
from _mnist.common import HIDDEN, IMAGE_SHAPE, NUM_CLASSES, package_versions
from nmn.keras import YatNMN

_BACKEND_PACKAGE = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch"}


def versions() -> dict:
    out = package_versions("keras", _BACKEND_PACKAGE.get(keras.backend.backend(), keras.backend.backend()))
    if out.get("tensorflow-cpu") is None:
        out.update(package_versions("keras", "tensorflow"))
    out["keras_backend"] = keras.backend.backend()
    return out


def build_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(IMAGE_SHAPE, dtype="float32"),
            keras.layers.Flatten(),
            YatNMN(HIDDEN[0]),
            YatNMN(HIDDEN[1]),
            keras.layers.Dense(NUM_CLASSES),
        ],
        name="yat_mlp",
    )


class _Progress(keras.callbacks.Callback):
    """Every ``every`` batches: report the images and their mean loss. Keras logs the running (sample-weighted)
    mean of the epoch, so a window's mean is ``(M_now N_now - M_before N_before) / (N_now - N_before)``."""

    def __init__(self, progress, batch_size, n, every=25):
        super().__init__()
        self.progress, self.batch_size, self.n, self.every = progress, batch_size, n, every
        self.done, self.loss_sum = 0, 0.0

    def _report(self, done, logs):
        if done <= self.done:
            return
        running = float(logs["loss"]) if logs and "loss" in logs else None
        window = None
        if running is not None:
            window = (running * done - self.loss_sum) / (done - self.done)
            self.loss_sum = running * done
        self.progress(done - self.done, window)
        self.done = done

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            self._report(min((batch + 1) * self.batch_size, self.n), logs)

    def on_epoch_end(self, epoch, logs=None):
        self._report(self.n, logs)


class Trainer:
    def __init__(self, hp, init=None):
        keras.utils.set_random_seed(hp.seed)
        self.model = build_model()
        if init is not None:  # Keras kernels are (in, out)
            yat1, yat2, out = self.model.layers[1:4]
            for layer, name in ((yat1, "yat1"), (yat2, "yat2"), (out, "out")):
                by_name = {"kernel": init[f"{name}.weight"].T, "bias": init[f"{name}.bias"]}
                if f"{name}.alpha" in init:
                    by_name["alpha"] = init[f"{name}.alpha"]
                layer.set_weights([by_name[w.path.rsplit("/", 1)[-1]] for w in layer.weights])
        self.model.compile(
            optimizer=keras.optimizers.AdamW(
                learning_rate=hp.lr,
                weight_decay=hp.weight_decay,
                beta_1=hp.beta1,
                beta_2=hp.beta2,
                epsilon=hp.eps,
                amsgrad=False,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    def param_count(self) -> int:
        return int(sum(int(np.prod(w.shape)) for w in self.model.trainable_weights))

    def train_epoch(self, x, y, batch_size, progress) -> float:
        # x is already in this epoch's shuffled order (the same order as every other framework): no reshuffle.
        hist = self.model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[_Progress(progress, batch_size, len(x))],
        )
        return float(hist.history["loss"][-1])

    def logits(self, x, batch_size) -> np.ndarray:
        return np.asarray(self.model.predict(x, batch_size=batch_size, verbose=0))

    def export(self, path, example):
        return nmn.interchange.export(self.model, example, path, framework="keras")


def load_logits(path, x, batch_size) -> np.ndarray:
    model = nmn.interchange.load(path, "keras")
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
