"""The framework-free half shared by ``nmn.keras`` and ``nmn.tf``.

Both packages hold the same layers with the same attributes (``kernel (*k, C/G, M)``, ``bias``, ``alpha``,
``epsilon_param``, ...), so option handling, geometry checks and the neutral layer description (``spec``) are
written once here. This package imports numpy and :mod:`nmn.core` only, never keras or tensorflow (``import
nmn.tf`` must not import keras, nor ``import nmn.keras`` tensorflow); where a copy differed only by a framework
call, the caller passes that call in (usually its ops namespace ``F``).
"""
