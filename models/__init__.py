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
MLP_PARAMETERS = 235_148   # Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10): weights, biases, alphas
_MODULES = {fw: f"models.{fw}_models" for fw in FRAMEWORKS}


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
