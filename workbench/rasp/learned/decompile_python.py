"""Decompile a `DiscreteProgram` into a standalone, readable Python module.

The module imports only `sys`. `run(tokens)` takes the symbols (without BOS) and returns one output
class per symbol; `python program.py 2 0 1` prints them. Each head becomes a predicate function
(`if q in {...}: return k == ...`) with `select_closest`/`aggregate` (categorical) or `count`
(numerical), each MLP a lookup table given as its most common value plus exceptions, and the
classifier integer scores per value of each variable it reads (the output: the first class with the
highest total).
"""

from collections import Counter

import numpy as np

from .discrete import DiscreteProgram
from .units import Listing, Unit, check_discrete, listing

PRELUDE = '''
def select_closest(keys, queries, predicate):
    """The key each query reads: the nearest match (left first), else itself, else BOS (0)."""
    chosen = []
    for i, q in enumerate(queries):
        matches = [j for j, k in enumerate(keys) if j != i and predicate(q, k)]
        if matches:
            chosen.append(min(matches, key=lambda j: (abs(i - j), j)))
        else:
            chosen.append(i if predicate(q, keys[i]) else 0)
    return chosen


def aggregate(chosen, values):
    return [values[j] for j in chosen]


def count(keys, queries, predicate):
    """How many keys match each query."""
    return [sum(1 for k in keys if predicate(q, k)) for q in queries]


def classify(bias, tables, values):
    """The first class with the highest score: bias plus each variable's scores for its value."""
    scores = list(bias)
    for table, x in zip(tables, values):
        for c, s in enumerate(table[x]):
            scores[c] += s
    return max(range(len(scores)), key=lambda c: (scores[c], -c))
'''


def _predicate(u: Unit, prefix: str) -> list[str]:
    qn, kn = f"q_{u.reads[0]}", f"k_{u.reads[1]}"
    lines = [f"def {prefix}predicate_{u.name.split('attn_')[1]}({qn}, {kn}):"]
    groups: dict[int, list[int]] = {}
    for qv, kv in enumerate(u.table.tolist()):
        groups.setdefault(kv, []).append(qv)
    for i, (kv, qvs) in enumerate(sorted(groups.items(), key=lambda g: g[1][0])):
        if i == len(groups) - 1:
            lines.append(f"    return {kn} == {kv}")
        else:
            lines += [f"    {'if' if i == 0 else 'elif'} {qn} in {set(qvs)}:", f"        return {kn} == {kv}"]
    return lines


def _table(name: str, table: np.ndarray, args: tuple[str, str]) -> list[str]:
    """`name(a, b)` as the most common output plus the exceptions."""
    flat = table.tolist()
    default = Counter(v for row in flat for v in row).most_common(1)[0][0]
    exceptions = {(a, b): v for a, row in enumerate(flat) for b, v in enumerate(row) if v != default}
    a, b = args
    if a == b:  # both inputs are one variable: only the diagonal is reachable
        exceptions = {k: v for k, v in exceptions.items() if k[0] == k[1]}
    lines = [f"def {name}({a}, {b if a != b else b + '_'}):"]
    if exceptions:
        body = ", ".join(f"{k}: {v}" for k, v in sorted(exceptions.items()))
        lines.append(f"    return {{{body}}}.get(({a}, {b if a != b else b + '_'}), {default})")
    else:
        lines.append(f"    return {default}")
    return lines


def _call(u: Unit) -> str:
    if u.kind == "cat_head":
        q, k, v = u.reads
        return f"{u.name} = aggregate(select_closest({k}, {q}, predicate_{u.name[5:]}), {v})"
    if u.kind == "num_head":
        q, k = u.reads
        return f"{u.name} = count({k}, {q}, num_predicate_{u.name[9:]})"
    a, b = u.reads
    return f"{u.name} = [{u.name}_table(a, b) for a, b in zip({a}, {b})]"


def python_source(program: DiscreteProgram, *, title: str = "A learned Transformer Program") -> str:
    """The source of a standalone module computing `program` (pruned to what the output reads)."""
    program = check_discrete(program, "python_source(program=...)")
    lst: Listing = listing(program)
    c = program.config
    out = [f'"""{title}, decompiled.', "",
           f"run(tokens) takes symbols 0..{c.n_symbols - 1} (without BOS) and returns one class per",
           'symbol; as a script: python this_file.py 2 0 1"""', "", "import sys", "", f"BOS = {c.bos}",
           f"N_SYMBOLS = {c.n_symbols}", f"MAX_LENGTH = {c.length}", PRELUDE]
    for u in lst.units:
        out.append(f"# {u.name} (layer {u.layer}, {u.kind.replace('_', ' ')}) reads {', '.join(u.reads)}")
        if u.kind in ("cat_head", "num_head"):
            out += _predicate(u, "num_" if u.kind == "num_head" else "")
        else:
            out += _table(f"{u.name}_table", u.table, u.reads)
        out.append("")
    names = [name for name, _ in lst.out_terms]
    out.append("# classifier: integer scores per class, for each value of the variables it reads")
    out.append(f"CLASSIFIER_BIAS = {tuple(int(x) for x in lst.out_bias)}")
    for name, table in lst.out_terms:
        rows = ",\n    ".join(f"{tuple(int(x) for x in row)}" for row in table)
        out.append(f"SCORES_{name.upper()} = [  # by value of {name}\n    {rows},\n]")
    out.append(f"CLASSIFIER_TABLES = [{', '.join(f'SCORES_{n.upper()}' for n in names)}]")
    out += ["", "", "def run(tokens):", '    """One output class per symbol of `tokens` (symbols, without BOS)."""',
            "    tokens = [int(t) for t in tokens]",
            "    if not 1 <= len(tokens) <= MAX_LENGTH or any(not 0 <= t < N_SYMBOLS for t in tokens):",
            "        raise ValueError(",
            "            f'run(tokens): need 1..{MAX_LENGTH} symbols in 0..{N_SYMBOLS - 1}, got {tokens}')",
            "    tokens = [BOS] + tokens", "    positions = list(range(len(tokens)))", "    ones = [1] * len(tokens)"]
    out += [f"    {_call(u)}" for u in lst.units]
    values = f"zip({', '.join(names)})" if names else "([] for _ in tokens)"
    out += [f"    return [classify(CLASSIFIER_BIAS, CLASSIFIER_TABLES, xs) for xs in {values}][1:]", "", "",
            'if __name__ == "__main__":', '    print(" ".join(str(y) for y in run(sys.argv[1:])))', ""]
    return "\n".join(out)


def load_python(source: str) -> dict:
    """Execute a decompiled module's source and return its namespace (`namespace["run"](tokens)`)."""
    namespace: dict = {"__name__": "decompiled_program"}
    exec(compile(source, "<decompiled program>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace
