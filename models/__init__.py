"""Reference architectures of nmn, written with the public API of each of the six frameworks.

Every framework module (``models.torch_models``, ``models.nnx_models``, ``models.linen_models``,
``models.keras_models``, ``models.tf_models``, ``models.mlx_models``) exposes ``build(name, seed) ->
(model, example_inputs)`` for every name of :data:`NAMES`, with seeded weights and tiny shapes (the any-to-any
interchange matrix builds each of them in each framework). The same architecture is written idiomatically in each
framework, so data layouts follow the host: channels-first in PyTorch, channels-last elsewhere. Example inputs
are numpy arrays (``float32`` data, ``int64`` token ids) in the host layout; convert them with the host's own
array constructor before calling the model.

Linen modules are stateless: ``models.linen_models.build`` returns ``(LinenModel(module, variables), inputs)``,
a named pair (``nmn.interchange.predict(model, "linen", inputs)`` takes it as it is; export it with
``export(model.module, inputs, framework="linen", variables=model.variables)``).

The performer variant swaps only ``MultiHeadYatAttention`` to ``use_performer=True`` (``num_features=8``):
``RotaryYatAttention`` has no performer form in nmn v1 (no ONNX function), so the rotary layer stays exact.

    >>> from models import NAMES
    >>> NAMES[0]
    'yat_mlp'
"""

from __future__ import annotations

import importlib

NAMES = ("yat_mlp", "yat_cnn", "yat_autoencoder", "yat_seq", "yat_volume", "yat_transformer", "yat_performer")
FRAMEWORKS = ("torch", "nnx", "linen", "keras", "tf", "mlx")
MLP_PARAMETERS = 235_148  # Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10): weights, biases, alphas
_MODULES = {fw: f"models.{fw}_models" for fw in FRAMEWORKS}

# The sizes every framework's modules share (tiny, so the interchange matrix stays fast).
VOCAB, DIM, HEADS, SEQ = 16, 8, 2, 6
_SHAPES_CHANNELS_FIRST = {
    "yat_mlp": (2, 28, 28),
    "yat_cnn": (2, 3, 8, 8),
    "yat_autoencoder": (2, 1, 8, 8),
    "yat_seq": (2, 3, 8),
    "yat_volume": (2, 2, 4, 4, 4),
}


def input_shape(name: str, *, channels_last: bool) -> tuple[int, ...]:
    """The example input shape of a non-token model, in the host's layout."""
    shape = _SHAPES_CHANNELS_FIRST[name]
    if channels_last and name != "yat_mlp":  # (N, C, *S) -> (N, *S, C); the MLP's input has no channels
        return (shape[0], *shape[2:], shape[1])
    return shape


def example_inputs(name: str, seed: int = 0, *, channels_last: bool = True, ids_dtype: str = "int64"):
    """Seeded numpy example inputs of reference model ``name``: float32 data, or token ids."""
    import numpy as np

    rng = np.random.default_rng(seed + 1000)
    if name in ("yat_transformer", "yat_performer"):
        return [rng.integers(0, VOCAB, size=(2, SEQ)).astype(ids_dtype)]
    return [rng.normal(size=input_shape(name, channels_last=channels_last)).astype(np.float32)]


def module(framework: str):
    """The module of ``framework``'s reference models (imports that framework)."""
    if framework not in _MODULES:
        raise ValueError(f"unknown framework {framework!r}; expected one of {list(FRAMEWORKS)}")
    return importlib.import_module(_MODULES[framework])


def build(framework: str, name: str, seed: int = 0):
    """Build reference model ``name`` in ``framework`` with seeded weights: ``(model, example_inputs)``."""
    if name not in NAMES:
        raise ValueError(f"unknown reference model {name!r}; expected one of {list(NAMES)}")
    return module(framework).build(name, seed)


def count_parameters(framework: str, model) -> int:
    """The number of trainable scalars of a model built by :func:`build` (as the framework counts them)."""
    return int(module(framework).count_parameters(model))
