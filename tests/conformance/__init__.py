"""The conformance table: every framework's layers against the ``nmn`` ONNX functions.

Layers are described framework-free as a neutral *spec* ``(kind, config, params)``: ``config`` plain JSON,
``params`` numpy arrays by canonical name in the ONNX layout (dense ``weight (O, I)``, conv ``weight (M, C/G, *k)``,
transposed conv ``weight (C, M/G, *k)``, attention ``q/k/v/out_weight (out, in)``, embedding ``embedding (V, F)``;
``bias``, ``alpha``, ``epsilon_param``, ``proj`` when they are parameters). Each framework converts with
``nmn.<framework>.to_spec`` / ``from_spec``; the table of rows is ``cases.py``.

Adapter protocol: each ``adapter_<framework>.py`` defines ``ADAPTER`` (or a list ``ADAPTERS``) with

- ``name``: ``'torch'``, ``'nnx'``, ``'linen'``, ``'keras-<backend>'``, ``'tf'``, ``'mlx'`` (a ``-vmap`` suffix for
  the mapped JAX variants);
- ``supports(kind, config)``: ``True``, or the reason the framework cannot express the row (reported as xfail);
- ``build(kind, config, params)``: a built layer, via ``from_spec``;
- ``forward(layer, kind, inputs, call)``: the output in the canonical layout as float64 (inputs canonical:
  channels-first ``N C *S`` for convolutions, ``(B, L, E)`` for attention);
- ``grads(layer, kind, inputs, call, cotangent)``: the gradient of ``sum(output * cotangent)`` for ``'input0'``
  and every canonical parameter name, in the canonical layout.

``call`` holds call-time options: ``mask`` (bool, True = attend) and ``method`` (``'attend'`` for YatEmbed).
A framework that is not installed is skipped, never xfailed.
"""
