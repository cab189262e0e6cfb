"""A `Transformer`'s parameters by TransformerLens name (`embed.W_E`, `blocks.0.attn.W_Q`, ...).

The module's fields carry TransformerLens names, so a parameter's name is its pytree path joined
by dots. Used by the TransformerLens state dicts (`workbench.lens`) and the RASP compiler.
"""

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._config import TransformerConfig
from .transformer import Transformer


def param_name(path: tuple) -> str:
    """`blocks.0.attn.W_Q` from the pytree path `.blocks[0].attn.W_Q`."""
    return ".".join(str(getattr(k, "name", getattr(k, "idx", k))) for k in path)


def template(config: TransformerConfig) -> Transformer:
    """A `Transformer` with `config` whose leaves are shapes only (nothing is computed)."""
    return eqx.filter_eval_shape(Transformer, config, key=jax.random.key(0))


def param_shapes(config: TransformerConfig) -> dict[str, jax.ShapeDtypeStruct]:
    """Every parameter's name -> its shape and dtype, in pytree order."""
    leaves = jax.tree_util.tree_flatten_with_path(template(config))[0]
    return {param_name(path): leaf for path, leaf in leaves}


def named_params(model: Transformer) -> dict[str, Array]:
    """Every parameter of `model` by name, in pytree order."""
    leaves = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))[0]
    return {param_name(path): leaf for path, leaf in leaves}


def from_named(config: TransformerConfig, params: Mapping[str, ArrayLike], hint: str = "") -> Transformer:
    """A `Transformer` with `config` and exactly the parameters `params` (name -> array).

    Raises one `ValueError` listing the missing, unexpected and misshapen names, then `hint`."""
    want = param_shapes(config)
    missing, extra = sorted(set(want) - set(params)), sorted(set(params) - set(want))
    wrong = [f"{k} {jnp.shape(params[k])} (expected {want[k].shape})" for k in want
             if k in params and jnp.shape(params[k]) != want[k].shape]  # fmt: skip
    if missing or extra or wrong:
        problems = [f"missing {missing}"] * bool(missing) + [f"unexpected {extra}"] * bool(extra)
        problems += [f"wrong shape: {', '.join(wrong)}"] * bool(wrong)
        raise ValueError(" ".join(["the parameters do not fit the TransformerConfig: " + "; ".join(problems) + ".", hint]))
    treedef = jax.tree_util.tree_structure(template(config))
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(params[k], dtype=w.dtype) for k, w in want.items()])
