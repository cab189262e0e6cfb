"""Random program inputs, drawn from the `rasp_inputs` stream of `workbench.core.rng`."""

from collections.abc import Sequence

import jax
import numpy as np

from ..core.rng import derive_key
from ..core.types import Key
from .language import Value

STREAM = "rasp_inputs"


def sample_inputs(vocab: Sequence[Value], max_seq_len: int, n: int, key: Key | int) -> list[tuple[Value, ...]]:
    """`n` random inputs: lengths uniform in `1..max_seq_len`, tokens uniform over `vocab`.

    `key` is a JAX key or an integer seed; the draw comes from its `rasp_inputs` stream, so the same
    key (or seed), vocab order and sizes give the same inputs on every machine.
    """
    if max_seq_len < 1 or n < 0 or not vocab:
        raise ValueError(f"sample_inputs needs a non-empty vocab, max_seq_len >= 1 and n >= 0, got "
                         f"{len(vocab)} tokens, max_seq_len={max_seq_len}, n={n}")  # fmt: skip
    root = jax.random.key(key) if isinstance(key, int) else key
    lengths_key, tokens_key = jax.random.split(derive_key(root, STREAM))
    lengths = np.asarray(jax.random.randint(lengths_key, (n,), 1, max_seq_len + 1))
    ids = np.asarray(jax.random.randint(tokens_key, (n, max_seq_len), 0, len(vocab)))
    vocab = list(vocab)
    return [tuple(vocab[i] for i in row[:length]) for row, length in zip(ids, lengths)]
