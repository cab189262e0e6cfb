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
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from workbench.core import validate as v
from ._base import AbstractTask

SPLITS = ("train", "iwl", "ic", "ic2")


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
        return jax.nn.log_softmax(-self.zipf_exponent * jnp.log(jnp.arange(1, self.n_classes + 1.0)))

    def _items(self, key, means: Float[Array, "m dim"]) -> Float[Array, "m dim"]:
        noise = jax.random.normal(key, means.shape) / math.sqrt(self.dim)
        return (means + self.eps * noise) / math.sqrt(1 + self.eps**2)

    def _bursty(self, key, novel: Array, relabel: Array):
        """Classes and labels of one bursty sequence (`novel`/`relabel`: fresh centroids/labels)."""
        kc, kp, kq, kn, kl = jax.random.split(key, 5)
        groups = self.n_context // self.burstiness
        gumbel = jax.random.gumbel(kc, (self.n_classes,))
        chosen = jax.lax.top_k(self.class_log_probs + gumbel, groups)[1]  # distinct, Zipf-weighted
        slots = jax.random.permutation(kp, jnp.repeat(jnp.arange(groups), self.burstiness))
        slots = jnp.concatenate([slots, jax.random.randint(kq, (1,), 0, groups)])
        fresh_mu = jax.random.normal(kn, (groups, self.dim)) / math.sqrt(self.dim)
        means = jnp.where(novel, fresh_mu, self.centroids[chosen])
        group_labels = jnp.where(novel | relabel, jax.random.randint(kl, (groups,), 0, self.n_labels), self.class_labels[chosen])
        classes = jnp.where(novel, -1, chosen[slots])
        return means[slots], group_labels[slots], classes

    def _iid(self, key, exclude_query: bool):
        """i.i.d. Zipf classes by inverse-CDF lookup (O(log K) per draw); with `exclude_query` the context
        skips the query's class (uniforms are squeezed past its slice of the CDF)."""
        kq, kc = jax.random.split(key)
        probs = jnp.exp(self.class_log_probs)
        cdf = jnp.cumsum(probs)
        draw = lambda u: jnp.minimum(jnp.searchsorted(cdf, u * cdf[-1], side="right"), self.n_classes - 1)
        query = draw(jax.random.uniform(kq))
        u = jax.random.uniform(kc, (self.n_context,)) * cdf[-1]
        if exclude_query:
            start = cdf[query] - probs[query]
            u = u * (1 - probs[query] / cdf[-1])
            u = jnp.where(u >= start, u + probs[query], u)
        classes = jnp.concatenate([draw(u / cdf[-1]), query[None]])
        return self.centroids[classes], self.class_labels[classes], classes

    def _one(self, key: PRNGKeyArray, split: str):
        kb, kn, ks, ki, kx = jax.random.split(key, 5)
        if split == "iwl":
            means, labels, classes = self._iid(ki, exclude_query=True)
            bursty = jnp.asarray(False)
        elif split in ("ic", "ic2"):
            means, labels, classes = self._bursty(ks, jnp.asarray(split == "ic"), jnp.asarray(split == "ic2"))
            bursty = jnp.asarray(True)
        else:
            novel = jax.random.bernoulli(kn, self.p_novel)
            bursty = novel | jax.random.bernoulli(kb, self.p_bursty)
            b_means, b_labels, b_classes = self._bursty(ks, novel, jnp.asarray(False))
            i_means, i_labels, i_classes = self._iid(ki, exclude_query=False)
            means = jnp.where(bursty, b_means, i_means)
            labels = jnp.where(bursty, b_labels, i_labels)
            classes = jnp.where(bursty, b_classes, i_classes)
        return self._items(kx, means), labels.astype(jnp.int32), classes.astype(jnp.int32), bursty

    def sample_split(self, key: PRNGKeyArray, batch_size: int, split: str) -> ClassificationBatch:
        """A batch of one split: `"train"` (the training mixture), `"iwl"`, `"ic"` or `"ic2"`."""
        v.check_choice(type(self).__name__, "split", split, SPLITS)
        items, labels, classes, bursty = jax.vmap(lambda k: self._one(k, split))(jax.random.split(key, batch_size))
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
