"""Scan and Snap (Tian, Wang, Chen, Du 2023): the reduced Y/Z model trained by SGD, one instance per call.

The authors' `Model2` (luckmatters `ssl/real-dataset/decoder_only.py`) on one sequence
`x_1..x_T` of one-hot tokens with query `m = x_T`:

$$b_t = \\mathrm{softmax}_t(Z_{m, x_t}),\\quad c = \\sum_{t<T} b_t e_{x_t},\\quad f = c/\\|c\\|,
\\quad \\mathrm{loss} = \\mathrm{CE}(Y f, n).$$

With no positional encoding the context enters only through its token counts `k_l`, so
`c_l = k_l e^{Z_{ml}} / \\sum_{l'} k_{l'} e^{Z_{ml'}}` exactly; the kernel samples count vectors
(multinomial) instead of sequences. It keeps only the parameters that can move or matter: the
columns of `Y` for context tokens (`f` is zero elsewhere) and the rows of `Z` for query tokens.

Token layout (as in `Dataset2` with `num_common_per_last = 0`): `[common | distinct blocks]`
are the `context` tokens, then the `num_last` query tokens, then the `num_next` label tokens.

Padding: a `Dataset2` fixes the largest shapes; an instance may use only `active_last <= num_last`
query tokens. Inactive label tokens are masked out of the softmax and inactive context tokens are
never sampled, so a padded instance is the same model as the unpadded one (this is what lets one
`vmap` cover several `num_last` values).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


class Dataset2(eqx.Module):
    """Class-conditional token distributions of the paper's synthetic data (`Dataset2`).

    **Arguments:** `num_last` query tokens m; `num_next_per_last` label tokens n per m;
    `num_common` tokens shared by every class (weight `common_prob`); `num_unique_per_next`
    distinct tokens per class with weights `linspace(unique_min, unique_max)`; `seq_len` L
    (L - 1 context tokens plus the query).
    """

    num_last: int = eqx.field(static=True)
    num_next_per_last: int = eqx.field(static=True, default=1)
    num_common: int = eqx.field(static=True, default=10)
    num_unique_per_next: int = eqx.field(static=True, default=10)
    seq_len: int = eqx.field(static=True, default=128)
    common_prob: float = eqx.field(static=True, default=1.0)
    unique_min: float = eqx.field(static=True, default=0.1)
    unique_max: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        for name in ("num_last", "num_next_per_last", "num_unique_per_next"):
            if getattr(self, name) < 1:
                raise ValueError(f"Dataset2: `{name}` must be >= 1, got {getattr(self, name)}")
        if self.num_common < 0:
            raise ValueError(f"Dataset2: `num_common` must be >= 0, got {self.num_common}")
        if self.seq_len < 2:
            raise ValueError(f"Dataset2: `seq_len` must be >= 2 (context + query), got {self.seq_len}")
        if not 0 < self.unique_min <= self.unique_max or self.common_prob < 0:
            raise ValueError("Dataset2: need 0 < `unique_min` <= `unique_max` and `common_prob` >= 0")

    @property
    def num_next(self) -> int:
        return self.num_last * self.num_next_per_last

    @property
    def num_context(self) -> int:
        return self.num_common + self.num_unique_per_next * self.num_next

    @property
    def vocab(self) -> int:
        """M: every token id (context, query and label tokens)."""
        return self.num_context + self.num_last + self.num_next

    def support_probs(self) -> Float[Array, "support"]:
        """P(l | n) over the support of one class: `num_common` common then the distinct tokens."""
        weights = jnp.concatenate([
            jnp.full((self.num_common,), self.common_prob),
            jnp.linspace(self.unique_min, self.unique_max, self.num_unique_per_next),
        ])
        return weights / weights.sum()

    def last_of_next(self) -> Int[Array, " next"]:
        """psi(n): the query token index m of each class n."""
        return jnp.arange(self.num_next) // self.num_next_per_last

    def output_mask(self, active_last: Int[Array, ""]) -> Bool[Array, " vocab"]:
        """Output tokens that exist when only `active_last` query tokens are used."""
        active_next = active_last * self.num_next_per_last
        k = jnp.arange(self.num_context)
        context = k < self.num_common + self.num_unique_per_next * active_next
        last = jnp.arange(self.num_last) < active_last
        nxt = jnp.arange(self.num_next) < active_next
        return jnp.concatenate([context, last, nxt])

    def sample_counts(
        self, key: PRNGKeyArray, active_last: Int[Array, ""]
    ) -> tuple[Float[Array, " support"], Int[Array, ""]]:
        """One sequence as (counts over its class's support, class n): n uniform over the active
        classes, then L - 1 i.i.d. draws from P(. | n) by inverse CDF, one uniform per draw."""
        u = jax.random.uniform(key, (self.seq_len,))  # u[0] picks the class, u[1:] the tokens
        active_next = active_last * self.num_next_per_last
        n = jnp.minimum(jnp.floor(u[0] * active_next), active_next - 1).astype(jnp.int32)
        # Token l is drawn when cdf[l-1] <= u < cdf[l]; counting the draws at or above each cdf[l]
        # and differencing gives the counts. XLA on CPU does not fuse a compare into the reduction
        # after it (a one-shot compare-and-sum writes out a [draws, support] mask per sequence,
        # 300 MB for 256 instances), so the draws are accumulated in a partly unrolled loop whose
        # state stays in cache; a scatter-add of token ids is slower still.
        cdf = jnp.cumsum(self.support_probs())[:-1]

        def add_draw(t, above):  # above[l]: draws so far at or past cdf[l]
            return above + (u[t] >= cdf).astype(jnp.float32)

        above = jax.lax.fori_loop(1, self.seq_len, add_draw, jnp.zeros(cdf.shape), unroll=8)
        at_least = jnp.concatenate([jnp.array([self.seq_len - 1.0]), above])
        return at_least - jnp.append(above, 0.0), n

    def sample_tokens(self, key: PRNGKeyArray) -> tuple[Int[Array, " seq"], Int[Array, ""]]:
        """One sequence of token ids as in the paper (context, then the query token) and its label
        token id; for checking the count form against the authors' sequence form."""
        k_class, k_draw = jax.random.split(key)
        n = jax.random.randint(k_class, (), 0, self.num_next)
        idx = jax.random.categorical(k_draw, jnp.log(self.support_probs()), shape=(self.seq_len - 1,))
        query = self.num_context + n // self.num_next_per_last
        tokens = jnp.concatenate([self.support_tokens(n)[idx], query[None]])
        return tokens, self.num_context + self.num_last + n

    def support_tokens(self, n: Int[Array, ""]) -> Int[Array, " support"]:
        """Token ids of class n's support: the common tokens, then its distinct block."""
        nc, nu = self.num_common, self.num_unique_per_next
        return jnp.concatenate([jnp.arange(nc), nc + n * nu + jnp.arange(nu)])


class Model2(eqx.Module):
    """The reduced model's parameters that can move or matter, split by token kind.

    `Y_common` / `Y_distinct[n]`: decoder columns for the common tokens / class n's distinct
    tokens (all `vocab` outputs). `Z_common[m]` / `Z_distinct[n]`: attention logits of query m
    (= psi(n)) on the common tokens / class n's distinct tokens. `to_dense` gives the authors'
    `K1.weight` (Y) and `K2.weight` (Z) as `vocab x vocab` matrices.
    """

    Y_common: Float[Array, "vocab common"]
    Y_distinct: Float[Array, "next vocab unique"]
    Z_common: Float[Array, "last common"]
    Z_distinct: Float[Array, "next unique"]


def init_model2(data: Dataset2, key: PRNGKeyArray, active_last: Int[Array, ""], zero_init: bool) -> Model2:
    """Zeros (`zero_init`, Fig. 4) or PyTorch's `nn.Linear` default U(+-1/sqrt(M)) with M the
    active vocabulary (Fig. 6)."""
    nc, nu, nn, v = data.num_common, data.num_unique_per_next, data.num_next, data.vocab
    shapes = ((v, nc), (nn, v, nu), (data.num_last, nc), (nn, nu))
    if zero_init:
        return Model2(*(jnp.zeros(s) for s in shapes))
    active_next = active_last * data.num_next_per_last
    vocab = nc + (nu + 1) * active_next + active_last
    bound = 1.0 / jnp.sqrt(vocab.astype(jnp.float32))
    sizes = [int(np.prod(s)) for s in shapes]
    flat = jax.random.uniform(key, (sum(sizes),), minval=-bound, maxval=bound)  # one draw, split below
    parts = jnp.split(flat, np.cumsum(sizes)[:-1])
    return Model2(*(p.reshape(s) for p, s in zip(parts, shapes)))


def to_dense(model: Model2, data: Dataset2) -> tuple[Float[Array, "vocab vocab"], Float[Array, "vocab vocab"]]:
    """(Y, Z) as the authors' full `K1.weight`, `K2.weight` (entries that never matter are 0)."""
    nc, nu, v, k = data.num_common, data.num_unique_per_next, data.vocab, data.num_context
    y = jnp.zeros((v, v)).at[:, :nc].set(model.Y_common)
    y = y.at[:, nc:k].set(jnp.moveaxis(model.Y_distinct, 0, 1).reshape(v, -1))
    rows = k + data.last_of_next()
    z = jnp.zeros((v, v)).at[k : k + data.num_last, :nc].set(model.Z_common)
    cols = nc + jnp.arange(data.num_next)[:, None] * nu + jnp.arange(nu)
    z = z.at[rows[:, None], cols].set(model.Z_distinct)
    return y, z


def support_logits(model: Model2, data: Dataset2, n: Int[Array, ""]) -> Float[Array, " support"]:
    """Z[psi(n), l] over class n's support."""
    return jnp.concatenate([model.Z_common[n // data.num_next_per_last], model.Z_distinct[n]])


def attention_from_counts(z: Float[Array, " support"], counts: Float[Array, " support"]) -> Float[Array, " support"]:
    """c: softmax attention over positions, summed per token (`c_l = k_l e^{z_l} / sum k e^z`)."""
    logits = jnp.where(counts > 0, z + jnp.log(jnp.maximum(counts, 1.0)), -jnp.inf)
    return jax.nn.softmax(logits)


def decode(model: Model2, data: Dataset2, n: Int[Array, ""], f: Float[Array, " support"]) -> Float[Array, " vocab"]:
    """Y f for an f supported on class n's support."""
    nc = data.num_common
    return model.Y_common @ f[:nc] + model.Y_distinct[n] @ f[nc:]


def sequence_loss(
    model: Model2, data: Dataset2, counts: Float[Array, " support"], n: Int[Array, ""], out_mask: Bool[Array, " vocab"]
) -> Float[Array, ""]:
    """Cross-entropy of one sequence, given its support counts and class n."""
    c = attention_from_counts(support_logits(model, data, n), counts)
    logits = jnp.where(out_mask, decode(model, data, n, c / jnp.linalg.norm(c)), -jnp.inf)
    return jax.nn.logsumexp(logits) - logits[data.num_context + data.num_last + n]


def sequence_loss_tokens(
    Y: Float[Array, "vocab vocab"], Z: Float[Array, "vocab vocab"], tokens: Int[Array, " seq"], label: Int[Array, ""]
) -> Float[Array, ""]:
    """The authors' `Model2.forward` on one sequence (dense K1 = Y, K2 = Z), position by position."""
    b = jax.nn.softmax(Z[tokens[-1]][tokens[:-1]])
    c = jax.nn.one_hot(tokens[:-1], Y.shape[1]).T @ b
    logits = Y @ (c / jnp.linalg.norm(c))
    return jax.nn.logsumexp(logits) - logits[label]


def class_attention(model: Model2, data: Dataset2) -> Float[Array, "next support"]:
    """Long-sequence c_n over each class's support: `softmax(Z[psi(n)] + log P(. | n))` (Fig. 4)."""
    z = jax.vmap(support_logits, in_axes=(None, None, 0))(model, data, jnp.arange(data.num_next))
    return jax.nn.softmax(z + jnp.log(data.support_probs()), axis=-1)


def distinct_entropy(model: Model2, data: Dataset2, active_last: Int[Array, ""]) -> Float[Array, ""]:
    """Fig. 6 metric: entropy of c_n restricted to class n's distinct tokens (renormalised),
    averaged over the active classes. It is 2.151 when Z = 0."""
    logq = jax.nn.log_softmax(model.Z_distinct + jnp.log(data.support_probs()[data.num_common :]), axis=-1)
    entropy = -(jnp.exp(logq) * logq).sum(-1)
    active = jnp.arange(data.num_next) < active_last * data.num_next_per_last
    return jnp.where(active, entropy, 0.0).sum() / active.sum()


class ScanSnapTrace(eqx.Module):
    """One instance's run. Step t rows are measured before update t (as the authors log them);
    `entropy`, `common_mass` and `max_abs_z` have a last row after the final update.
    `attention` is c_n over each class's support, `[steps + 1, next, support]`, when recorded
    (`record_attention`), else `[0]`."""

    loss: Float[Array, " steps"]
    entropy: Float[Array, " steps_plus_1"]
    common_mass: Float[Array, " steps_plus_1"]
    max_abs_z: Float[Array, " steps_plus_1"]
    attention: Float[Array, "..."]
    model: Model2


def _observe(model: Model2, data: Dataset2, active_last):
    c = class_attention(model, data)
    active = jnp.arange(data.num_next) < active_last * data.num_next_per_last
    common = jnp.where(active, c[:, : data.num_common].sum(-1), 0.0).sum() / active.sum()
    max_z = jnp.maximum(
        jnp.where(jnp.arange(data.num_last)[:, None] < active_last, jnp.abs(model.Z_common), 0.0).max(),
        jnp.where(active[:, None], jnp.abs(model.Z_distinct), 0.0).max(),
    )
    return distinct_entropy(model, data, active_last), common, max_z


def simulate(
    data: Dataset2,
    key: PRNGKeyArray,
    lr_z: Float[Array, ""],
    lr_y: Float[Array, ""],
    active_last: Int[Array, ""] | None = None,
    *,
    steps: int,
    batch_size: int = 128,
    momentum: float = 0.9,
    zero_init: bool = True,
    record_attention: bool = False,
) -> ScanSnapTrace:
    """Train one `Model2` by minibatch SGD with momentum (separate rates for Y and Z) in one
    `lax.scan`; batch t is drawn from `fold_in(data_key, t)`. `vmap` over `key`, `lr_z`, `lr_y`
    and `active_last` for sweeps (see `simulate_batch`)."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"simulate: `steps` and `batch_size` must be >= 1, got {steps}, {batch_size}")
    active_last = jnp.asarray(data.num_last if active_last is None else active_last, jnp.int32)
    with jax.threefry_partitionable(False):  # see workbench.kernels: much faster to compile
        return _simulate(data, key, lr_z, lr_y, active_last, steps, batch_size, momentum, zero_init, record_attention)


def train_step(
    data: Dataset2, model: Model2, velocity: Model2, batch_key: PRNGKeyArray, lr_y, lr_z, active_last, *,
    batch_size: int = 128, momentum: float = 0.9,
) -> tuple[Model2, Model2, Float[Array, ""]]:
    """One minibatch SGD-with-momentum step (PyTorch convention: v <- mu v + g, p <- p - lr v)."""
    out_mask = data.output_mask(active_last)
    counts, labels = jax.vmap(data.sample_counts, in_axes=(0, None))(jax.random.split(batch_key, batch_size), active_last)

    def batch_loss(model):
        losses = jax.vmap(sequence_loss, in_axes=(None, None, 0, 0, None))(model, data, counts, labels, out_mask)
        return losses.mean()

    loss, grads = jax.value_and_grad(batch_loss)(model)
    velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grads)
    lrs = Model2(lr_y, lr_y, lr_z, lr_z)
    return jax.tree.map(lambda p, v, lr: p - lr * v, model, velocity, lrs), velocity, loss


def _simulate(data, key, lr_z, lr_y, active_last, steps, batch_size, momentum, zero_init, record_attention):
    k_init, k_data = jax.random.split(key)
    model = init_model2(data, k_init, active_last, zero_init)
    lr_y, lr_z = jnp.asarray(lr_y, jnp.float32), jnp.asarray(lr_z, jnp.float32)

    def step(carry, t):
        model, velocity = carry
        new, velocity, loss = train_step(data, model, velocity, jax.random.fold_in(k_data, t), lr_y, lr_z, active_last,
                                         batch_size=batch_size, momentum=momentum)
        obs = _observe(model, data, active_last)
        att = class_attention(model, data) if record_attention else jnp.zeros((0,))
        return (new, velocity), (loss, *obs, att)

    velocity = jax.tree.map(jnp.zeros_like, model)
    (model, _), (loss, ent, common, max_z, zs) = jax.lax.scan(step, (model, velocity), jnp.arange(steps))
    last = _observe(model, data, active_last)
    append = lambda xs, x: jnp.concatenate([xs, x[None]])  # noqa: E731
    zs = append(zs, class_attention(model, data)) if record_attention else jnp.zeros((0,))
    return ScanSnapTrace(loss, append(ent, last[0]), append(common, last[1]), append(max_z, last[2]), zs, model)


def simulate_batch(
    data: Dataset2,
    keys: PRNGKeyArray,
    lr_z: Float[Array, " instance"],
    lr_y: Float[Array, " instance"],
    active_last: Int[Array, " instance"],
    *,
    steps: int,
    batch_size: int = 128,
    momentum: float = 0.9,
    zero_init: bool = True,
    record_attention: bool = False,
) -> ScanSnapTrace:
    """Every instance in one jitted, vmapped call (leading `instance` axis on every output)."""
    return _simulate_batch(data, keys, lr_z, lr_y, active_last, steps, batch_size, momentum, zero_init, record_attention)


@eqx.filter_jit
def _simulate_batch(data, keys, lr_z, lr_y, active_last, steps, batch_size, momentum, zero_init, record_attention):
    fn = lambda k, a, b, c: simulate(  # noqa: E731
        data, k, a, b, c, steps=steps, batch_size=batch_size, momentum=momentum, zero_init=zero_init, record_attention=record_attention
    )
    return jax.vmap(fn)(keys, lr_z, lr_y, active_last)
