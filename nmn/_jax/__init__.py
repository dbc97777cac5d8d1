"""The JAX half shared by ``nmn.nnx`` and ``nmn.linen``: the ``F`` namespace and the functional Yat ops.

Both Flax APIs call the same functions here, which call the math of :mod:`nmn.core.yat` once; only the
contractions (``jnp.matmul``, ``jax.lax.conv_general_dilated``) are JAX-native.
"""

try:
    import jax
    import jax.numpy
except ImportError as err:  # pragma: no cover - exercised only without jax
    raise ImportError('nmn.nnx and nmn.linen need JAX and Flax: pip install "nmn[jax]>=1.0"') from err
