"""A torch ``RotaryYatAttention`` exports after ``init_cache`` and decoding (issue 17: ``torch.fx`` could not trace
the decode branch). The file computes the full pass over a new input, checked by onnxruntime against the layer's
own full pass; the decode state is not part of the exported function."""

from __future__ import annotations

import numpy as np

from tests.frameworks import require


def test_torch_rotary_exports_after_init_cache_and_decoding():
    torch = require("torch")
    from nmn.interchange import export, run_onnx
    from nmn.torch import RotaryYatAttention

    torch.manual_seed(0)
    attn = RotaryYatAttention(16, 2, max_seq_len=8, causal=True).eval()
    x = torch.randn(2, 5, 16)
    attn.init_cache(2, 8)
    with torch.no_grad():
        attn(x[:, :2], decode=True)  # the cache now holds two tokens
        proto = export(attn, [x.numpy()], framework="torch")
        want = attn(x).numpy()
    assert attn.cache_index == 2, "export changed the decode state"
    (got,) = run_onnx(proto, {proto.graph.input[0].name: x.numpy()})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
