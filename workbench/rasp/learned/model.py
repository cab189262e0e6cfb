"""The relaxed Transformer Program (Friedman, Wettig and Chen 2023): a transformer whose residual
stream is a list of variables, trained through Gumbel-softmax relaxations and then discretised.

The residual stream holds categorical variables (one-hot over `d_var` values) and numerical ones
(scalars). Modules never add into the stream: each writes new variables.

- categorical: `tokens`, `positions`, then per layer one output per categorical head, categorical
  MLP and numerical MLP;
- numerical: `ones`, then per layer one count per numerical head.

Every head and MLP chooses the variables it reads with a `ConstrainedRead` (a Gumbel-softmax over
the variables written so far). A categorical head maps its query value to one key value through a
learned predicate matrix (row-softmax), attends to the nearest matching key (left first on a tie,
itself last) and to BOS when none matches; a numerical head counts its matching keys (the values
are fixed to `ones`, the paper's `selector_width` option, so every numerical variable is an integer
count). MLPs read two variables and write a categorical one. The output classifier is linear
over every final variable (the one-hot codes of the categorical ones and the numerical values).

`model(tokens, tau, key)` is the relaxed forward pass of one sequence (`key=None`: no Gumbel noise);
`workbench.rasp.learned.discretise` gives the argmax program.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from workbench.core import validate as v

EPS = 1e-20  # log(match + EPS): a key that does not match scores log(1e-20) = -46


@dataclasses.dataclass(frozen=True)
class ProgramConfig:
    """Sizes of a Transformer Program over sequences `[BOS, s_1..s_length]`, symbols `0..n_symbols-1`,
    BOS `= n_symbols`, with `d_out` output classes."""

    n_symbols: int
    length: int
    d_out: int
    n_layers: int = 3
    n_cat_heads: int = 4
    n_num_heads: int = 4
    n_cat_mlps: int = 2
    n_num_mlps: int = 2
    d_mlp: int = 64

    def __post_init__(self):
        for name in ("n_symbols", "length", "d_out", "n_layers", "d_mlp"):
            v.check_int("ProgramConfig", name, getattr(self, name))
        for name in ("n_cat_heads", "n_num_heads", "n_cat_mlps", "n_num_mlps"):
            v.check_int("ProgramConfig", name, getattr(self, name), low=0)

    @property
    def bos(self) -> int:
        return self.n_symbols

    @property
    def n_ctx(self) -> int:
        return self.length + 1

    @property
    def d_var(self) -> int:
        """Values of every categorical variable: enough for a token (with BOS) and a position."""
        return max(self.n_symbols + 1, self.n_ctx)

    def n_cat(self, layer: int) -> int:
        """Categorical variables written before layer `layer` (`layer = n_layers`: all of them)."""
        return 2 + layer * (self.n_cat_heads + self.n_cat_mlps + self.n_num_mlps)

    def n_num(self, layer: int) -> int:
        return 1 + layer * self.n_num_heads

    def cat_names(self) -> list[str]:
        names = ["tokens", "positions"]
        for l in range(self.n_layers):
            names += [f"attn_{l}_{h}" for h in range(self.n_cat_heads)]
            names += [f"mlp_{l}_{m}" for m in range(self.n_cat_mlps)]
            names += [f"num_mlp_{l}_{m}" for m in range(self.n_num_mlps)]
        return names

    def num_names(self) -> list[str]:
        return ["ones"] + [f"num_attn_{l}_{h}" for l in range(self.n_layers) for h in range(self.n_num_heads)]


def sample(logits: Float[Array, "... n"], tau, key: PRNGKeyArray | None) -> Float[Array, "... n"]:
    """Gumbel-softmax over the last axis at temperature `tau` (a plain softmax when `key` is None)."""
    if key is not None:
        logits = logits - jnp.log(-jnp.log(jax.random.uniform(key, logits.shape, minval=1e-10, maxval=1.0)))
    return jax.nn.softmax(logits / tau, axis=-1)


def _key(key, i):
    return None if key is None else jax.random.fold_in(key, i)


def position_bias(n: int) -> Float[Array, "n n"]:
    """`bias[i, j]`: nearer keys score higher, the left one first on a tie, the query itself last (-2)."""
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    rank = 2 * np.abs(i - j) - (j < i)  # 1, 2 (distance 1, left then right), 3, 4, ...
    return jnp.asarray(np.where(i == j, -2.0, -rank / (2 * n)), jnp.float32)


def _init_read(key, n_reads: int, n_vars: int) -> Float[Array, "n_reads n_vars"]:
    return jax.random.normal(key, (n_reads, n_vars)) / np.sqrt(n_vars)


class CatAttention(eqx.Module):
    """Categorical heads: read logits `[3 (q, k, v), heads, n_vars]`, predicates `[heads, d_var, d_var]`."""

    read: Float[Array, "3 heads n_vars"]
    pred: Float[Array, "heads d_var d_var"]

    def __init__(self, n_heads: int, n_vars: int, d_var: int, *, key: PRNGKeyArray):
        kr, kp = jax.random.split(key)
        self.read = _init_read(kr, 3 * n_heads, n_vars).reshape(3, n_heads, n_vars)
        self.pred = jax.random.normal(kp, (n_heads, d_var, d_var)) / np.sqrt(d_var)

    def __call__(self, x: Float[Array, "seq n_vars d_var"], tau, key) -> Float[Array, "seq heads d_var"]:
        w = sample(self.read, tau, _key(key, 0))  # [3, heads, n_vars]
        q, k, val = jnp.einsum("rhv,svd->rshd", w, x)  # each [seq, heads, d_var]
        pred = sample(self.pred, tau, _key(key, 1))  # [heads, d_var, d_var]: query value -> key value
        match = jnp.einsum("qhd,hde,khe->hqk", q, pred, k)  # [heads, seq_q, seq_k]
        bos = jax.nn.relu(1.0 - match.sum(-1))  # default to BOS when nothing matches
        match = match.at[:, :, 0].add(bos)
        n, d_var = x.shape[0], x.shape[-1]
        scores = (jnp.log(match + EPS) + position_bias(n)) / np.sqrt(d_var)
        pattern = sample(scores, tau, _key(key, 2))
        return jnp.einsum("hqk,khd->qhd", pattern, val)


class NumAttention(eqx.Module):
    """Numerical heads: count the keys whose value matches the query's (read logits `[2 (q, k), heads, n_vars]`)."""

    read: Float[Array, "2 heads n_vars"]
    pred: Float[Array, "heads d_var d_var"]

    def __init__(self, n_heads: int, n_vars: int, d_var: int, *, key: PRNGKeyArray):
        kr, kp = jax.random.split(key)
        self.read = _init_read(kr, 2 * n_heads, n_vars).reshape(2, n_heads, n_vars)
        self.pred = jax.random.normal(kp, (n_heads, d_var, d_var)) / np.sqrt(d_var)

    def __call__(self, x: Float[Array, "seq n_vars d_var"], tau, key) -> Float[Array, "seq heads"]:
        w = sample(self.read, tau, _key(key, 0))
        q, k = jnp.einsum("rhv,svd->rshd", w, x)
        pred = sample(self.pred, tau, _key(key, 1))
        return jnp.einsum("qhd,hde,khe->qh", q, pred, k)


class MLPs(eqx.Module):
    """MLPs that each read two variables (`d_in` features each) and write a categorical variable."""

    read: Float[Array, "mlps 2 n_vars"]
    W_in: Float[Array, "mlps two_d_in d_mlp"]
    b_in: Float[Array, "mlps d_mlp"]
    W_out: Float[Array, "mlps d_mlp d_var"]
    b_out: Float[Array, "mlps d_var"]

    def __init__(self, n_mlps: int, n_vars: int, d_in: int, d_mlp: int, d_var: int, *, key: PRNGKeyArray):
        kr, ki, ko = jax.random.split(key, 3)
        self.read = _init_read(kr, 2 * n_mlps, n_vars).reshape(n_mlps, 2, n_vars)
        self.W_in = jax.random.normal(ki, (n_mlps, 2 * d_in, d_mlp)) / np.sqrt(2 * d_in)
        self.b_in = jnp.zeros((n_mlps, d_mlp))
        self.W_out = jax.random.normal(ko, (n_mlps, d_mlp, d_var)) / np.sqrt(d_mlp)
        self.b_out = jnp.zeros((n_mlps, d_var))

    def logits(self, inputs: Float[Array, "... mlps two_d_in"]) -> Float[Array, "... mlps d_var"]:
        hidden = jax.nn.relu(jnp.einsum("...mi,mih->...mh", inputs, self.W_in) + self.b_in)
        return jax.nn.log_softmax(jnp.einsum("...mh,mho->...mo", hidden, self.W_out) + self.b_out, -1)

    def __call__(self, x: Float[Array, "seq n_vars d_in"], tau, key) -> Float[Array, "seq mlps d_var"]:
        w = sample(self.read, tau, _key(key, 0))  # [mlps, 2, n_vars]
        inputs = jnp.einsum("mrv,svd->smrd", w, x).reshape(x.shape[0], w.shape[0], 2 * x.shape[-1])
        return sample(self.logits(inputs), tau, _key(key, 1))


class Block(eqx.Module):
    cat_attn: CatAttention
    num_attn: NumAttention
    cat_mlp: MLPs
    num_mlp: MLPs


class Classifier(eqx.Module):
    """Linear over all final variables: `W_cat` per categorical value, `W_num` per unit of a count."""

    W_cat: Float[Array, "n_cat d_var d_out"]
    W_num: Float[Array, "n_num d_out"]
    b: Float[Array, " d_out"]

    def __call__(self, cat: Float[Array, "seq n_cat d_var"],
                 num: Float[Array, "seq n_num"]) -> Float[Array, "seq d_out"]:
        return jnp.einsum("svd,vdo->so", cat, self.W_cat) + num @ self.W_num + self.b


class TransformerProgram(eqx.Module):
    """The relaxed program; `config` fixes the sizes (see `ProgramConfig`)."""

    config: ProgramConfig = eqx.field(static=True)
    blocks: tuple[Block, ...]
    classifier: Classifier

    def __init__(self, config: ProgramConfig, *, key: PRNGKeyArray):
        c = config
        self.config = c
        keys = jax.random.split(key, c.n_layers + 2)
        blocks = []
        for l in range(c.n_layers):
            ka, kn, kc, km = jax.random.split(keys[l], 4)
            n_cat, n_num = c.n_cat(l), c.n_num(l)
            blocks.append(Block(
                CatAttention(c.n_cat_heads, n_cat, c.d_var, key=ka),
                NumAttention(c.n_num_heads, n_cat, c.d_var, key=kn),
                MLPs(c.n_cat_mlps, n_cat + c.n_cat_heads, c.d_var, c.d_mlp, c.d_var, key=kc),
                MLPs(c.n_num_mlps, n_num + c.n_num_heads, 1, c.d_mlp, c.d_var, key=km),
            ))
        self.blocks = tuple(blocks)
        kc, kn = jax.random.split(keys[-1])
        n_cat, n_num = c.n_cat(c.n_layers), c.n_num(c.n_layers)
        self.classifier = Classifier(jax.random.normal(kc, (n_cat, c.d_var, c.d_out)) / np.sqrt(n_cat),
                                     jax.random.normal(kn, (n_num, c.d_out)) / np.sqrt(n_num) / c.n_ctx,
                                     jnp.zeros(c.d_out))

    def embed(self, tokens: Int[Array, " seq"]) -> tuple[Float[Array, "seq 2 d_var"], Float[Array, "seq 1"]]:
        d_var = self.config.d_var
        cat = jnp.stack([jax.nn.one_hot(tokens, d_var), jax.nn.one_hot(jnp.arange(tokens.shape[0]), d_var)], 1)
        return cat, jnp.ones((tokens.shape[0], 1))

    def __call__(self, tokens: Int[Array, " seq"], tau, key: PRNGKeyArray | None = None) -> Float[Array, "seq d_out"]:
        """Logits of every position of `tokens = [BOS, s_1..s_n]` at temperature `tau`."""
        cat, num = self.embed(tokens)
        for l, block in enumerate(self.blocks):
            k = _key(key, l)
            attn = block.cat_attn(cat, tau, _key(k, 0))
            counts = block.num_attn(cat, tau, _key(k, 1))
            cat = jnp.concatenate([cat, attn], 1)
            num = jnp.concatenate([num, counts], 1)
            mlp = block.cat_mlp(cat, tau, _key(k, 2))
            num_mlp = block.num_mlp(num[:, :, None], tau, _key(k, 3))
            cat = jnp.concatenate([cat, mlp, num_mlp], 1)
        return self.classifier(cat, num)
