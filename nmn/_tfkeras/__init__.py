"""The framework-free half shared by ``nmn.keras`` and ``nmn.tf``.

Both packages hold the same layers with the same attributes (``kernel (*k, C/G, M)``, ``bias``, ``alpha``,
``epsilon_param``, ...), so what does not touch a tensor is written once here:

- :mod:`~nmn._tfkeras.options`: Yat, conv and embedding option checks, the effective alpha / bias / epsilon,
  input checks and channel permutations;
- :mod:`~nmn._tfkeras.attention`: attention and RoPE options, the performer projection, the RoPE tables, the KV
  cache geometry and the Yat-Performer / quadratic choice;
- :mod:`~nmn._tfkeras.padding`: explicit padding with the torch padding modes, transposed-conv pads;
- :mod:`~nmn._tfkeras.squashers`: the squashers' checks;
- :mod:`~nmn._tfkeras.spec`: the neutral layer description (``to_spec`` / ``from_spec``) and the layout
  conversions (through :mod:`nmn.core.layouts`).

This package imports numpy and :mod:`nmn.core` only, never keras or tensorflow (``import nmn.tf`` must not
import keras, nor ``import nmn.keras`` tensorflow); where a copy differed only by a framework call, the caller
passes that call in (usually its ops namespace ``F``).
"""
