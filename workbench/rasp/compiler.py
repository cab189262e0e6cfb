"""Compile a RASP program into a `workbench.models.Transformer`, with its ground-truth circuit.

```python
from workbench.rasp import compile_program, library
compiled = compile_program(library.make_reverse(), vocab={1, 2, 3}, max_seq_len=5)
compiled([1, 2, 3])              # [3, 2, 1]
logits = compiled.model(compiled.encode([1, 2, 3]))   # [4, vocab_out]; position 0 is BOS
compiled.circuit                 # a workbench.models.Circuit over input, a{l}.h{h}, m{l}, logits
```

Stages (one module each): graph -> static validation -> value sets -> dynamic validation ->
components -> layout -> assembly. Dynamic validation runs the interpreter on every input up to
`max_seq_len` when there are at most `validation_budget` of them (20,000 by default: a few seconds),
and a successful compile then guarantees agreement on every input. Past the budget it runs on a
sample of `validation_budget` inputs (every input of the shortest lengths, every constant sequence,
the rest random), and the result is loud about it: `CompiledProgram.exhaustive` is False, its
`validation` reads "validated on a sample of N of M inputs", and `compile_program` warns once
(`SampledValidationWarning`).
"""

import dataclasses
import itertools
import warnings
from collections.abc import Iterable, Iterator, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..models import Transformer
from ..models.circuit import Circuit
from . import language as L
from .assemble import assemble
from .circuit import build_circuit
from .components import build_components
from .graph import ProgramGraph, extract_graph
from .inputs import sample_inputs
from .interpreter import evaluate
from .language import Value
from .layout import Layout, allocate
from .validate import CompileError, Unsupported, dynamic_problems, static_problems
from .values import ValueSetError, infer_value_sets, sort_values

NUMERICAL_ATOL = 1e-3  # compiled vs interpreted, numerical outputs
VALIDATION_BUDGET = 20_000  # ~70-180 us an input in the interpreter: 1.5-4 s for the library programs


class SampledValidationWarning(UserWarning):
    """A program was compiled after validation on a sample of its inputs only (it may miscompile)."""


@dataclasses.dataclass(frozen=True)
class CompiledProgram:
    """A compiled program: the model, its codec, what each residual dimension means, its circuit.

    `sites`: expression label -> the circuit nodes computing it (`a{l}.h{h}`, `m{l}` or `input`).
    `validation`: which inputs dynamic validation ran on, in words; `n_validated` of `n_inputs`
    (all inputs up to `max_seq_len`): only when `exhaustive` is the model proven to agree with the
    interpreter on every input.
    """

    program: L.SOp
    model: Transformer
    vocab: tuple[Value, ...]
    max_seq_len: int
    output_values: tuple[Value, ...]
    residual_labels: tuple[str, ...]
    circuit: Circuit
    sites: dict[str, tuple[str, ...]]
    graph: ProgramGraph
    layout: Layout
    validation: str
    n_validated: int
    n_inputs: int

    @property
    def exhaustive(self) -> bool:
        return self.n_validated == self.n_inputs

    @property
    def numerical(self) -> bool:
        return L.is_numerical(self.program)

    @property
    def pad_id(self) -> int:
        return len(self.vocab) + 1

    def encode(self, xs: Sequence[Value], pad_to: int | None = None) -> Int[Array, " seq"]:
        """`[BOS] + xs` as token ids (BOS is 0, `vocab[i]` is `i + 1`), padded to `pad_to` inputs."""
        return jnp.asarray(self._ids(xs, pad_to))

    def _ids(self, xs: Sequence[Value], pad_to: int | None = None) -> np.ndarray:
        if not 1 <= len(xs) <= self.max_seq_len:
            raise ValueError(f"input length {len(xs)} is outside 1..max_seq_len={self.max_seq_len}")
        ids = {v: i + 1 for i, v in enumerate(self.vocab)}
        unknown = [x for x in xs if x not in ids]
        if unknown:
            raise ValueError(f"tokens {unknown} are not in the compiled vocab {list(self.vocab)}")
        pad = 0 if pad_to is None else pad_to - len(xs)
        if pad < 0 or (pad_to is not None and pad_to > self.max_seq_len):
            raise ValueError(f"encode(pad_to={pad_to}) must be in {len(xs)}..max_seq_len={self.max_seq_len}")
        return np.array([0] + [ids[x] for x in xs] + [self.pad_id] * pad, dtype=np.int32)

    def decode(self, logits: Float[Array, "seq vocab_out"], length: int | None = None) -> list[Value]:
        """The outputs at positions 1..`length` (None where no categorical logit reaches 1/2)."""
        out = np.asarray(logits)[1:][:length]
        if self.numerical:
            return [float(x) for x in out[:, 0]]
        best = out.argmax(-1)
        return [self.output_values[j] if row[j] > 0.5 else None for j, row in zip(best, out)]

    def decode_residual(self, resid: Float[Array, "seq d_model"], length: int | None = None) -> dict[str, list]:
        """Every SOp's value read off a residual stream (e.g. `resid_post` of the last layer), by label."""
        resid = np.asarray(resid)[1:][:length]
        out = {}
        for sop in self.graph.sops:
            label = self.graph.label(sop)
            cols = [i for i, d in enumerate(self.layout.dirs) if d.name == label]
            block = resid[:, cols]
            if L.is_numerical(sop):
                out[label] = [float(x) for x in block[:, 0]]
                continue
            values = [self.layout.dirs[i].value for i in cols]
            out[label] = [values[j] if row[j] > 0.5 else None for j, row in zip(block.argmax(-1), block)] if cols else [
                None] * len(block)
        return out

    def __call__(self, xs: Sequence[Value]) -> list[Value]:
        return self.decode(self.model(self.encode(xs)))

    def run_batch(self, batch: Sequence[Sequence[Value]]) -> list[list[Value]]:
        """Decoded outputs of `batch` (any lengths, padded to the longest) in one jitted, vmapped call."""
        longest = max(len(xs) for xs in batch)
        tokens = jnp.asarray(np.stack([self._ids(xs, pad_to=longest) for xs in batch]))
        logits = np.asarray(_forward(self.model, tokens))
        return [self.decode(row, len(xs)) for row, xs in zip(logits, batch)]


@eqx.filter_jit
def _forward(model: Transformer, tokens: Int[Array, "batch seq"]) -> Float[Array, "batch seq vocab_out"]:
    return jax.vmap(model)(tokens)


def all_inputs(vocab: Sequence[Value], max_seq_len: int, min_len: int = 1) -> Iterator[tuple[Value, ...]]:
    """Every sequence over `vocab` of length `min_len..max_seq_len`, shortest first."""
    for n in range(min_len, max_seq_len + 1):
        yield from itertools.product(vocab, repeat=n)


def count_inputs(vocab: Sequence[Value], max_seq_len: int) -> int:
    return sum(len(vocab) ** n for n in range(1, max_seq_len + 1))


def validation_inputs(vocab, max_seq_len: int, budget: int, seed: int = 0) -> tuple[list, str]:
    """Every input when there are at most `budget`; else a sample of `budget` distinct inputs (every
    input of the shortest lengths up to half the budget, every constant sequence, the rest random).
    Returns the inputs and a description."""
    total = count_inputs(vocab, max_seq_len)
    if total <= budget:
        return list(all_inputs(vocab, max_seq_len)), f"exhaustive: all {total} inputs"
    if budget < 1:
        raise ValueError(f"compile_program(validation_budget=...) must be >= 1, got {budget}")
    short = max((n for n in range(1, max_seq_len + 1) if count_inputs(vocab, n) <= budget // 2), default=0)
    chosen = dict.fromkeys(all_inputs(vocab, short))
    chosen.update(dict.fromkeys((v,) * n for n in range(short + 1, max_seq_len + 1) for v in vocab))
    for draw in itertools.count():  # random inputs longer than `short`, from the rasp_inputs stream
        if len(chosen) >= budget:
            break
        key = jax.random.fold_in(jax.random.key(seed), draw)
        chosen.update(dict.fromkeys(x for x in sample_inputs(vocab, max_seq_len, budget, key) if len(x) > short))
    sample = list(chosen)[:budget]
    return sample, f"validated on a sample of {len(sample)} of {total} inputs"


def _check_args(program, vocab, max_seq_len) -> tuple[Value, ...]:
    if not isinstance(program, L.SOp):
        raise TypeError(f"compile_program(program=...) needs an SOp (a selector is not a program), got {program!r}")
    if not isinstance(max_seq_len, int) or max_seq_len < 1:
        raise ValueError(f"compile_program(max_seq_len=...) must be an int >= 1, got {max_seq_len!r}")
    vocab = list(vocab)
    if any(v is None for v in vocab):
        raise ValueError("compile_program(vocab=...) cannot contain None (it encodes 'no value')")
    vocab = sort_values(vocab)
    if not vocab:
        raise ValueError(f"compile_program(vocab=...) must be a non-empty set of tokens without None, got {vocab}")
    return vocab


def compile_program(
    program: L.SOp, vocab: Iterable[Value], max_seq_len: int, *, validation_budget: int = VALIDATION_BUDGET,
    seed: int = 0,
) -> CompiledProgram:
    """Compile `program` for inputs over `vocab` of length 1..`max_seq_len` (raises `CompileError`).

    With more than `validation_budget` inputs, validation runs on a sample of that many (`seed` picks
    it) and a `SampledValidationWarning` says so."""
    vocab = _check_args(program, vocab, max_seq_len)
    graph = extract_graph(program)
    problems = static_problems(graph)
    if problems:
        raise CompileError(problems, "static")
    try:
        values = infer_value_sets(graph, vocab, max_seq_len)
    except ValueSetError as e:
        raise CompileError([Unsupported(graph.label(e.expr), e.expr.describe(), e.reason)], "value-set") from e
    inputs, described = validation_inputs(vocab, max_seq_len, validation_budget, seed)
    problems = dynamic_problems(graph, values, inputs)
    if problems:
        raise CompileError(problems, f"dynamic, {described}")
    n_inputs = count_inputs(vocab, max_seq_len)
    if len(inputs) < n_inputs:
        warnings.warn(f"compile_program: {described}, so the compiled model may disagree with the interpreter "
                      f"on the others (pass validation_budget={n_inputs} to check them all)",
                      SampledValidationWarning, stacklevel=2)
    components = build_components(graph, values, max_seq_len)
    layout = allocate(graph, components, values)
    model = assemble(graph, values, layout, vocab, max_seq_len)
    circuit = build_circuit(graph, layout)
    sites: dict[str, list[str]] = {}
    for node, data in circuit.node_data.items():
        for label in data["exprs"]:
            sites.setdefault(label, []).append(node.name)
    return CompiledProgram(
        program=program,
        model=model,
        vocab=vocab,
        max_seq_len=max_seq_len,
        output_values=values[program.uid],
        residual_labels=tuple(str(d) for d in layout.dirs),
        circuit=circuit,
        sites={k: tuple(v) for k, v in sites.items()},
        graph=graph,
        layout=layout,
        validation=described,
        n_validated=len(inputs),
        n_inputs=n_inputs,
    )


def outputs_agree(expected: Sequence[Value], got: Sequence[Value], numerical: bool) -> bool:
    """Categorical: equal values (None only with None). Numerical: within `NUMERICAL_ATOL`."""
    if len(expected) != len(got):
        return False
    for e, g in zip(expected, got):
        if numerical:
            if e is None or g is None or abs(float(e) - float(g)) > NUMERICAL_ATOL:
                return False
        elif (e is None) != (g is None) or e != g:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Agreement:
    n_inputs: int
    n_agree: int
    mismatches: tuple[tuple[tuple[Value, ...], list[Value], list[Value]], ...]  # (input, interpreted, compiled)

    @property
    def rate(self) -> float:
        return self.n_agree / self.n_inputs if self.n_inputs else float("nan")


def agreement(
    compiled: CompiledProgram, inputs: Iterable[Sequence[Value]] | None = None, keep: int = 5, batch_size: int = 4096
) -> Agreement:
    """Compare the compiled model with the interpreter on `inputs` (default: every input up to
    `max_seq_len`), run padded in batches; `mismatches` keeps the first `keep` disagreements."""
    inputs = [tuple(xs) for xs in (all_inputs(compiled.vocab, compiled.max_seq_len) if inputs is None else inputs)]
    n_agree, bad = 0, []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        for xs, got in zip(batch, compiled.run_batch(batch)):
            want = evaluate(compiled.program, xs)
            if outputs_agree(want, got, compiled.numerical):
                n_agree += 1
            elif len(bad) < keep:
                bad.append((xs, want, got))
    return Agreement(len(inputs), n_agree, tuple(bad))
