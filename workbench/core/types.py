"""Axis glossary and jaxtyping aliases used across the workbench.

Axis names (one example; batch with `jax.vmap`):

| name        | meaning                                          |
|-------------|--------------------------------------------------|
| `seq`       | positions in one sequence (query positions)      |
| `kv`        | key/value positions                              |
| `d_model`   | residual stream width                            |
| `head`      | attention heads                                  |
| `d_head`    | per-head width                                   |
| `d_mlp`     | MLP hidden width (neurons)                       |
| `vocab`     | input vocabulary; `vocab_out` output vocabulary  |
| `d_input`   | width of continuous input vectors                |
| `n`         | in-context points of a regression prompt         |
| `d`         | regression input dimension                       |
| `batch`     | examples in a batch (only on task outputs)       |
"""

from jaxtyping import Array, Float, Int, PRNGKeyArray

Key = PRNGKeyArray
Tokens = Int[Array, "seq"]
Vectors = Float[Array, "seq d_input"]
Resid = Float[Array, "seq d_model"]
Logits = Float[Array, "seq vocab_out"]
Pattern = Float[Array, "head seq kv"]

__all__ = ["Array", "Float", "Int", "Key", "Tokens", "Vectors", "Resid", "Logits", "Pattern"]
