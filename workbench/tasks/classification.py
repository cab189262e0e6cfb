"""In-context classification (Reddy 2023, after Chan et al. 2022): bursty, Zipfian sequences of item-label pairs.

`n_classes` classes with centroids mu_k ~ N(0, I_D / D) and a fixed label in [0, n_labels) each. An
item of class k is x = (mu_k + eps * eta) / sqrt(1 + eps^2), eta ~ N(0, I_D / D). Class frequency is
proportional to rank^-zipf_exponent. A sequence has `n_context` item-label pairs and a query.

- A *bursty* sequence (probability `p_bursty`) holds `n_context / burstiness` distinct classes, each
  `burstiness` times, in random order; the query's class is one of them.
- Otherwise all `n_context + 1` classes are i.i.d. from the rank-frequency distribution.
- With probability `p_novel` a sequence is bursty and built from fresh classes (new centroids and
  labels, only solvable in context).

Evaluation splits (`sample_split`): `"iwl"` (query class absent from the context), `"ic"` (novel
classes, random labels), `"ic2"` (known classes, labels re-drawn at random per sequence).
Defaults follow Reddy: n_labels = 32, n_context = 8, dim = 63, eps = 0.1, zipf_exponent = 0.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from workbench.core import validate as v
from ._base import AbstractTask, unsharded_draws

SPLITS = ("train", "iwl", "ic", "ic2")
_UNROLL = 8  # loops over at most this many classes are unrolled (cheaper than a while loop on CPU)


class ClassificationBatch(eqx.Module):
    """`items [batch, n_context+1, dim]`, `labels [batch, n_context+1]` (the last is the query's target),
    `classes [batch, n_context+1]` (-1 for novel classes), `bursty [batch]`."""

    items: Float[Array, "batch n_plus_1 dim"]
    labels: Int[Array, "batch n_plus_1"]
    classes: Int[Array, "batch n_plus_1"]
    bursty: Bool[Array, " batch"]


class InContextClassification(AbstractTask):
    """Reddy's task; `centroids [n_classes, dim]` and `class_labels [n_classes]` are drawn once from `key`."""

    centroids: Float[Array, "n_classes dim"]
    class_labels: Int[Array, " n_classes"]
    n_classes: int = eqx.field(static=True)
    n_labels: int = eqx.field(static=True)
    n_context: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    burstiness: int = eqx.field(static=True)
    p_bursty: float = eqx.field(static=True)
    p_novel: float = eqx.field(static=True)
    zipf_exponent: float = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __init__(
        self,
        n_classes: int = 512,
        n_labels: int = 32,
        n_context: int = 8,
        dim: int = 63,
        burstiness: int = 4,
        p_bursty: float = 1.0,
        p_novel: float = 0.0,
        zipf_exponent: float = 0.0,
        eps: float = 0.1,
        *,
        key: PRNGKeyArray,
    ):
        name = type(self).__name__
        v.check_int(name, "n_labels", n_labels, low=2)
        v.check_int(name, "n_classes", n_classes)
        if n_classes < n_labels:
            raise ValueError(f"{name}.n_classes (K={n_classes}) must be >= n_labels (L={n_labels}); raise K or lower L")
        v.check_int(name, "n_context", n_context)
        v.check_int(name, "dim", dim)
        v.check_int(name, "burstiness", burstiness, high=n_context)
        if n_context % burstiness or n_context // burstiness > n_classes:
            raise ValueError(
                f"{name}.burstiness ({burstiness}) must divide n_context ({n_context}) into at most n_classes groups"
            )
        v.check_float(name, "p_bursty", p_bursty, high=1.0)
        v.check_float(name, "p_novel", p_novel, high=1.0)
        v.check_float(name, "zipf_exponent", zipf_exponent)
        v.check_float(name, "eps", eps)
        self.n_classes, self.n_labels, self.n_context, self.dim = n_classes, n_labels, n_context, dim
        self.burstiness, self.p_bursty, self.p_novel = burstiness, p_bursty, p_novel
        self.zipf_exponent, self.eps = zipf_exponent, eps
        kc, kl = jax.random.split(key)
        self.centroids = jax.random.normal(kc, (n_classes, dim)) / math.sqrt(dim)
        self.class_labels = jax.random.randint(kl, (n_classes,), 0, n_labels)

    @property
    def class_log_probs(self) -> Float[Array, " n_classes"]:
        """log p_k, p_k proportional to k^-zipf_exponent (k = 1..n_classes)."""
        return jnp.asarray(np.log(self._class_probs()), jnp.float32)

    def _class_probs(self) -> np.ndarray:
        """p_k in float64 numpy: it depends only on static fields, so under `jit` it and its CDF are
        constants rather than work done on every call."""
        w = np.arange(1, self.n_classes + 1.0) ** -self.zipf_exponent
        return w / w.sum()

    def _items(self, noise: Float[Array, "m dim"], means: Float[Array, "m dim"]) -> Float[Array, "m dim"]:
        """Items from standard-normal `noise`: (mu + eps * eta) / sqrt(1 + eps^2), eta = noise / sqrt(D)."""
        return (means + (self.eps / math.sqrt(self.dim)) * noise) / math.sqrt(1 + self.eps**2)

    def _draw(self, u: Float[Array, ""], taken: Int[Array, " m"]) -> Int[Array, ""]:
        """One class with probability proportional to p_k among the classes not in `taken` (distinct ids;
        the value `n_classes` pads). Inverse CDF on the reduced line, mapped onto the full CDF by adding
        the mass of every taken class that starts at or before the point (a fixpoint reached in <= m
        rounds): O(m^2 + K) elementwise work, no sort and no loop over K."""
        K, m = self.n_classes, taken.shape[0]
        p = self._class_probs()
        cdf = jnp.asarray(np.cumsum(p), jnp.float32)
        probs = jnp.asarray(np.append(p, 0.0), jnp.float32)[taken]  # the padding id has no mass
        start = jnp.asarray(np.append(np.cumsum(p) - p, np.inf), jnp.float32)[taken]
        t = u * (cdf[-1] - probs.sum())
        loop = lambda body, init: jax.lax.fori_loop(0, m, lambda _, x: body(x), init, unroll=m <= _UNROLL)  # noqa: E731
        full = loop(lambda full: t + jnp.where(start <= full, probs, 0.0).sum(), t)
        k = jnp.minimum(jnp.searchsorted(cdf, full, side="right", method="compare_all"), K - 1)
        # Rounding can leave k on a taken class (an interval of width 0 after removal): step off it.
        up = loop(lambda up: up + jnp.any(taken == up), k)
        down = loop(lambda down: down - jnp.any(taken == down), jnp.asarray(K - 1, k.dtype))
        return jnp.where(up < K, up, down)

    def _distinct(self, u: Float[Array, " groups"]) -> Int[Array, " groups"]:
        """`groups` distinct classes, each drawn in proportion to p_k among those not drawn yet (sampling
        without replacement, the same law as the top `groups` of log p_k + Gumbel noise)."""
        def step(taken, j):
            return taken.at[j].set(self._draw(u[j], taken)), None

        groups = u.shape[0]
        return jax.lax.scan(step, jnp.full(groups, self.n_classes), jnp.arange(groups), unroll=groups <= _UNROLL)[0]

    def _slots(self, u: Float[Array, " n_context"]) -> Int[Array, " n_context"]:
        """A uniformly random arrangement of `burstiness` copies of each group: group = rank of u // burstiness
        (ranks by pairwise comparison, ties broken by position)."""
        i = jnp.arange(u.shape[0])
        before = (u[None, :] < u[:, None]) | ((u[None, :] == u[:, None]) & (i[None, :] < i[:, None]))
        return before.sum(1) // self.burstiness

    def _bursty(self, u: dict, fresh_mu, novel, relabel):
        """Means, labels and classes of one bursty sequence. `novel` / `relabel` (bool or traced): fresh
        centroids `fresh_mu [groups, dim]` / labels drawn from `u["labels"]`."""
        groups = self.n_context // self.burstiness
        chosen = self._distinct(u["classes"])
        query = jnp.minimum(jnp.floor(u["query"] * groups), groups - 1).astype(jnp.int32)
        slots = jnp.concatenate([self._slots(u["order"]), query])
        group_mu = self.centroids[chosen] if fresh_mu is None else jnp.where(novel, fresh_mu, self.centroids[chosen])
        # Items pick their group's mean by a select-and-sum over the few groups, not a gather: XLA fuses a
        # gather with the item noise's erf_inv into one loop that it cannot vectorise (3x slower sampling).
        pick = slots[:, None] == jnp.arange(groups)
        means = jnp.where(pick[:, :, None], group_mu[None], 0.0).sum(1)
        labels = self.class_labels[chosen]
        if "labels" in u:
            fresh = jnp.minimum(jnp.floor(u["labels"] * self.n_labels), self.n_labels - 1).astype(jnp.int32)
            labels = jnp.where(novel | relabel, fresh, labels)
        classes = jnp.where(novel, -1, chosen[slots])
        return means, labels[slots], classes

    def _iid(self, u: dict, exclude_query: bool):
        """`n_context` i.i.d. Zipf classes then the query's (O(log K) per draw); with `exclude_query` the
        context never holds the query's class."""
        query = self._draw(u["iid_query"][0], jnp.zeros((0,), jnp.int32))
        taken = query[None] if exclude_query else jnp.zeros((0,), jnp.int32)
        context = jax.vmap(self._draw, in_axes=(0, None))(u["iid"], taken)
        classes = jnp.concatenate([context, query[None]])
        return self.centroids[classes], self.class_labels[classes], classes

    def _layout(self, split: str) -> tuple[dict, int, bool, bool, bool]:
        """Static plan of one sequence's randomness: uniform block sizes by name, extra normal rows
        (fresh centroids), and which parts the split can use (`bursty`, `iid`, `novel`)."""
        groups, n = self.n_context // self.burstiness, self.n_context
        if split == "iwl":
            use_bursty, use_iid, novel = False, True, False
        elif split in ("ic", "ic2"):
            use_bursty, use_iid, novel = True, False, split == "ic"
        else:  # the training mixture: only the parts its probabilities can reach
            novel = self.p_novel > 0
            use_bursty, use_iid = novel or self.p_bursty > 0, self.p_novel < 1 and self.p_bursty < 1
        sizes = {"flags": 2 if split == "train" else 0}
        if use_bursty:
            sizes |= {"classes": groups, "order": n, "query": 1}
            if novel or split == "ic2":
                sizes["labels"] = groups
        if use_iid:
            sizes |= {"iid": n, "iid_query": 1}
        return {k: s for k, s in sizes.items() if s}, groups if novel else 0, use_bursty, use_iid, novel

    def _one(self, flat: Float[Array, " n_uniform"], z: Float[Array, "rows dim"], split: str):
        """One sequence from its uniforms (`flat`, blocks as in `_layout`) and standard normals `z`
        (item noise, then fresh centroids)."""
        sizes, fresh_rows, use_bursty, use_iid, novel_possible = self._layout(split)
        u = dict(zip(sizes, jnp.split(flat, np.cumsum(list(sizes.values()))[:-1])))
        noise = z[: self.n_context + 1]
        fresh_mu = z[self.n_context + 1 :] / math.sqrt(self.dim) if fresh_rows else None
        if split == "iwl":
            means, labels, classes = self._iid(u, exclude_query=True)
            bursty = jnp.asarray(False)
        elif split in ("ic", "ic2"):
            means, labels, classes = self._bursty(u, fresh_mu, split == "ic", split == "ic2")
            bursty = jnp.asarray(True)
        else:
            novel = (u["flags"][0] < self.p_novel) if novel_possible else jnp.asarray(False)
            bursty = novel | (u["flags"][1] < self.p_bursty)
            parts = []
            if use_bursty:
                parts.append(self._bursty(u, fresh_mu, novel, False))
            if use_iid:
                parts.append(self._iid(u, exclude_query=False))
            if len(parts) == 1:
                means, labels, classes = parts[0]
            else:
                means, labels, classes = (jnp.where(bursty, b, i) for b, i in zip(*parts))
        return self._items(noise, means), labels.astype(jnp.int32), classes.astype(jnp.int32), bursty

    @unsharded_draws
    def sample_split(self, key: PRNGKeyArray, batch_size: int, split: str) -> ClassificationBatch:
        """A batch of one split: `"train"` (the training mixture), `"iwl"`, `"ic"` or `"ic2"`.

        The batch's uniforms and normals come from two draws, then `vmap` builds each sequence: a few
        large draws cost much less than a small one per sequence."""
        v.check_choice(type(self).__name__, "split", split, SPLITS)
        sizes, fresh_rows = self._layout(split)[:2]
        ku, kz = jax.random.split(key)
        flat = jax.random.uniform(ku, (batch_size, sum(sizes.values())))
        z = jax.random.normal(kz, (batch_size, self.n_context + 1 + fresh_rows, self.dim))
        items, labels, classes, bursty = jax.vmap(lambda f, zz: self._one(f, zz, split))(flat, z)
        return ClassificationBatch(items=items, labels=labels, classes=classes, bursty=bursty)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> ClassificationBatch:
        return self.sample_split(key, batch_size, "train")

    def in_weights(self, items: Float[Array, "n_plus_1 dim"], labels: Int[Array, " n_plus_1"]) -> Float[Array, " n_labels"]:
        """The in-weights optimum: the label of the most probable known class of the query (prior times
        Gaussian likelihood; nearest centroid when eps = 0), ignoring the context. One-hot `[n_labels]`."""
        x = items[-1] * math.sqrt(1 + self.eps**2)
        sq = jnp.sum((self.centroids - x) ** 2, axis=1)
        score = -sq if self.eps == 0 else self.class_log_probs - sq * self.dim / (2 * self.eps**2)
        return jax.nn.one_hot(self.class_labels[jnp.argmax(score)], self.n_labels)

    def predictors(self) -> dict:
        return {
            "nearest_context": lambda items, labels: nearest_context_label(items, labels, self.n_labels),
            "random_context_label": lambda items, labels: context_label_histogram(items, labels, self.n_labels),
            "in_weights": self.in_weights,
        }


def nearest_context_label(
    items: Float[Array, "n_plus_1 dim"], labels: Int[Array, " n_plus_1"], n_labels: int
) -> Float[Array, " n_labels"]:
    """The label of the context item closest to the query (the induction-head solution), one-hot."""
    dist = jnp.sum((items[:-1] - items[-1]) ** 2, axis=1)
    return jax.nn.one_hot(labels[:-1][jnp.argmin(dist)], n_labels)


def context_label_histogram(
    items: Float[Array, "n_plus_1 dim"], labels: Int[Array, " n_plus_1"], n_labels: int
) -> Float[Array, " n_labels"]:
    """A uniformly random context label (Reddy's plateau before the induction head): accuracy ~ 1/n_context."""
    del items
    return jnp.mean(jax.nn.one_hot(labels[:-1], n_labels), axis=0)


def accuracy(predictor, batch: ClassificationBatch) -> Float[Array, " batch"]:
    """Probability each prompt's prediction puts on the query's true label."""
    probs = jax.vmap(predictor)(batch.items, batch.labels)
    return jnp.take_along_axis(probs, batch.labels[:, -1:], axis=1)[:, 0]
