"""Parameters by TransformerLens name: names from pytree paths, and a model rebuilt from them."""

import numpy as np
import pytest

from workbench.models import Transformer, TransformerConfig
from workbench.models.params import from_named, named_params, param_shapes

CONFIG = TransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=5, d_vocab=7, d_mlp=16)


def test_named_params_round_trip():
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s.shape).astype(s.dtype) for k, s in param_shapes(CONFIG).items()}
    assert params["blocks.1.attn.W_Q"].shape == (2, 8, 4) and params["blocks.0.mlp.W_in"].shape == (8, 16)
    model = from_named(CONFIG, params)
    assert isinstance(model, Transformer) and model.blocks[1].attn.W_Q.shape == (2, 8, 4)
    rebuilt = named_params(model)
    assert list(rebuilt) == list(params)
    assert all(np.array_equal(rebuilt[k], params[k]) for k in params)


def test_from_named_lists_what_does_not_fit():
    params = {k: np.zeros(s.shape, s.dtype) for k, s in param_shapes(CONFIG).items()}
    del params["unembed.W_U"]
    params["blocks.0.mlp.W_gate"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"missing \['unembed.W_U'\]; unexpected \['blocks.0.mlp.W_gate'\]. Check"):
        from_named(CONFIG, params, hint="Check d_vocab_out.")
