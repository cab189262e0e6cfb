"""The discretised Transformer Program: every choice of the relaxed model replaced by its argmax.

A `DiscreteProgram` holds integers only: which variable each head and MLP reads, each head's
predicate as a table `query value -> key value`, each MLP and the classifier as a lookup table over
its two inputs. Its forward pass is integer logic, so the decompiled Python and RASP programs,
which read the same tables, can agree with it exactly.

Semantics of one sequence `[BOS, s_1..s_n]` (positions `0..n`):

- categorical head: query `i` matches key `j` when `pred[q_i] == k_j`; it reads the value at the
  nearest matching `j != i` (the left one on a tie), else at `i` itself if it matches, else at BOS;
- numerical head: the number of keys `j` (BOS and `i` included) with `pred[q_i] == k_j`;
- MLP: `table[a, b]` of its two inputs (numerical inputs are counts `0..n_ctx`);
- classifier: the argmax (first on a tie) of `bias + sum_v out_cat[v, x_v] + sum_u out_num[u, n_u]`,
  integer scores: the linear classifier's weights scaled so that the largest is `SCORE_LEVELS` and
  rounded, which keeps the three implementations' sums exact.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from .model import MLPs, ProgramConfig, TransformerProgram

SCORE_LEVELS = 256  # the largest classifier score (in absolute value) after rounding


class DiscreteBlock(eqx.Module):
    """One layer's choices: `cat_*`/`num_*` per head, `mlp_*`/`num_mlp_*` per MLP (variable indices)."""

    cat_read: Int[Array, "3 heads"]  # q, k, v variables of each categorical head
    cat_pred: Int[Array, "heads d_var"]
    num_read: Int[Array, "2 heads"]
    num_pred: Int[Array, "heads d_var"]
    mlp_read: Int[Array, "mlps 2"]
    mlp_table: Int[Array, "mlps d_var d_var"]
    num_mlp_read: Int[Array, "mlps 2"]
    num_mlp_table: Int[Array, "mlps n_counts n_counts"]


class DiscreteProgram(eqx.Module):
    """The argmax program of a `TransformerProgram` (build it with `discretise`)."""

    config: ProgramConfig = eqx.field(static=True)
    blocks: tuple[DiscreteBlock, ...]
    out_cat: Int[Array, "n_cat d_var d_out"]
    out_num: Int[Array, "n_num n_counts d_out"]
    out_bias: Int[Array, " d_out"]

    def __call__(self, tokens: Int[Array, " seq"]) -> Int[Array, " seq"]:
        """The output class of every position of `tokens = [BOS, s_1..s_n]`."""
        return jnp.argmax(self.scores(tokens), -1)

    def scores(self, tokens: Int[Array, " seq"]) -> Int[Array, "seq d_out"]:
        """The classifier's integer scores at every position."""
        cat, num = self.variables(tokens)
        v_cat, v_num = jnp.arange(cat.shape[1]), jnp.arange(num.shape[1])
        return (self.out_cat[v_cat[None, :], cat].sum(1) + self.out_num[v_num[None, :], num].sum(1)
                + self.out_bias)

    def variables(self, tokens: Int[Array, " seq"]) -> tuple[Int[Array, "seq n_cat"], Int[Array, "seq n_num"]]:
        """Every variable's value at every position: categorical `[seq, n_cat]`, numerical `[seq, n_num]`."""
        n = tokens.shape[0]
        cat = jnp.stack([tokens, jnp.arange(n)], 1).astype(jnp.int32)
        num = jnp.ones((n, 1), jnp.int32)
        for block in self.blocks:
            attn = _per(lambda q, k, v, p: cat_head(cat, q, k, v, p), n, *block.cat_read, block.cat_pred)
            counts = _per(lambda q, k, p: num_head(cat[:, q], cat[:, k], p), n, *block.num_read, block.num_pred)
            cat = jnp.concatenate([cat, attn], 1)
            num = jnp.concatenate([num, counts], 1)
            mlp = _per(lambda r, t: t[cat[:, r[0]], cat[:, r[1]]], n, block.mlp_read, block.mlp_table)
            num_mlp = _per(lambda r, t: t[num[:, r[0]], num[:, r[1]]], n, block.num_mlp_read, block.num_mlp_table)
            cat = jnp.concatenate([cat, mlp, num_mlp], 1)
        return cat, num


def _per(f, n: int, *args) -> Int[Array, "seq units"]:
    """`f` vmapped over the units (heads or MLPs) of `args`, as columns `[seq, units]`."""
    if args[0].shape[0] == 0:
        return jnp.zeros((n, 0), jnp.int32)
    return jax.vmap(f, out_axes=1)(*args).astype(jnp.int32)


def cat_head(cat: Int[Array, "seq n_cat"], q: Int[Array, ""], k: Int[Array, ""], v: Int[Array, ""],
             pred: Int[Array, " d_var"]) -> Int[Array, " seq"]:
    """The value each query reads: variable `v` at its chosen key (see the module docstring)."""
    return cat[chosen_keys(cat[:, q], cat[:, k], pred), v]


def chosen_keys(queries: Int[Array, " seq"], keys: Int[Array, " seq"],
                pred: Int[Array, " d_var"]) -> Int[Array, " seq"]:
    """The key position each query attends to: nearest match (left first), itself last, BOS if none."""
    n = queries.shape[0]
    i, j = jnp.arange(n)[:, None], jnp.arange(n)[None, :]
    match = pred[queries][:, None] == keys[None, :]
    preference = jnp.where(i == j, 0, 2 * n - 2 * jnp.abs(i - j) + (j < i))  # all >= 1 off the diagonal
    return jnp.argmax(jnp.where(match, preference, -1), axis=1)  # no match: every score -1, argmax 0 = BOS


def num_head(queries: Int[Array, " seq"], keys: Int[Array, " seq"], pred: Int[Array, " d_var"]) -> Int[Array, " seq"]:
    return jnp.sum(pred[queries][:, None] == keys[None, :], axis=1)


def _table(mlps: MLPs, d_in: int, values: Int[Array, " n"]) -> Int[Array, "mlps n n"]:
    """Each MLP's argmax output on every pair of input values (one-hot codes when `d_in > 1`)."""
    code = jax.nn.one_hot(values, d_in) if d_in > 1 else values[:, None].astype(jnp.float32)
    n = values.shape[0]
    pairs = jnp.concatenate([jnp.repeat(code, n, 0), jnp.tile(code, (n, 1))], 1)  # [(a, b), 2 d_in]
    inputs = jnp.broadcast_to(pairs[:, None], (n * n, mlps.W_in.shape[0], pairs.shape[1]))
    return jnp.argmax(mlps.logits(inputs), -1).T.reshape(-1, n, n).astype(jnp.int32)


def discretise(model: TransformerProgram) -> DiscreteProgram:
    """The argmax program of `model`: reads, predicates, MLP and classifier tables (jit-able)."""
    if not isinstance(model, TransformerProgram):
        raise TypeError(f"discretise(model=...) needs a TransformerProgram, got {type(model).__name__}")
    c = model.config
    blocks = []
    for block in model.blocks:
        blocks.append(DiscreteBlock(
            cat_read=jnp.argmax(block.cat_attn.read, -1).astype(jnp.int32),
            cat_pred=jnp.argmax(block.cat_attn.pred, -1).astype(jnp.int32),
            num_read=jnp.argmax(block.num_attn.read, -1).astype(jnp.int32),
            num_pred=jnp.argmax(block.num_attn.pred, -1).astype(jnp.int32),
            mlp_read=jnp.argmax(block.cat_mlp.read, -1).astype(jnp.int32),
            mlp_table=_table(block.cat_mlp, c.d_var, jnp.arange(c.d_var)),
            num_mlp_read=jnp.argmax(block.num_mlp.read, -1).astype(jnp.int32),
            num_mlp_table=_table(block.num_mlp, 1, jnp.arange(c.n_ctx + 1)),
        ))
    clf = model.classifier
    num_terms = jnp.arange(c.n_ctx + 1)[None, :, None] * clf.W_num[:, None, :]  # [n_num, n_counts, d_out]
    largest = jnp.max(jnp.abs(jnp.concatenate([clf.W_cat.ravel(), num_terms.ravel(), clf.b])))
    scale = SCORE_LEVELS / jnp.maximum(largest, 1e-12)

    def rounded(x):
        return jnp.round(x * scale).astype(jnp.int32)
    return DiscreteProgram(c, tuple(blocks), rounded(clf.W_cat), rounded(num_terms), rounded(clf.b))
