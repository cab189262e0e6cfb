"""Learned Transformer Programs: the argmax program, its decompiled Python and its recompiled RASP
transformer agree on every output, for any (here random) discretised model."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import equinox as eqx
import pytest

from workbench.rasp import evaluate
from workbench.rasp.learned import ProgramConfig, TransformerProgram, discretise
from workbench.rasp.learned.decompile_python import load_python, python_source
from workbench.rasp.learned.decompile_rasp import compile_learned, compiled_outputs, rasp_program
from workbench.rasp.learned.objective import Annealed, optimizer
from workbench.rasp.learned.units import listing

CONFIG = ProgramConfig(n_symbols=3, length=4, d_out=4, n_layers=2, n_cat_heads=2, n_num_heads=1, n_cat_mlps=1,
                       n_num_mlps=1, d_mlp=8)


def _inputs(config: ProgramConfig, seed: int, count: int) -> list[np.ndarray]:
    """`[BOS, s_1..s_n]` rows of every length 1..length."""
    rng = np.random.default_rng(seed)
    return [np.concatenate([[config.bos], rng.integers(0, config.n_symbols, rng.integers(1, config.length + 1))])
            for _ in range(count)]


@pytest.fixture(scope="module", params=[0, 1, 2])
def random_program(request):
    return eqx.filter_jit(discretise)(TransformerProgram(CONFIG, key=jax.random.key(request.param)))


@eqx.filter_jit
def _forward(program, tokens):
    return program(tokens)


def test_python_and_rasp_agree_with_the_discretised_model(random_program):
    run = load_python(python_source(random_program))["run"]
    rasp = rasp_program(random_program)
    for row in _inputs(CONFIG, 0, 40):
        want = np.asarray(_forward(random_program, jnp.asarray(row))).tolist()
        assert run(row[1:].tolist()) == want[1:]
        assert evaluate(rasp, row.tolist()) == want


def test_recompiled_transformer_agrees_on_full_length_inputs(random_program):
    rng = np.random.default_rng(1)
    tokens = np.concatenate([np.full((64, 1), CONFIG.bos), rng.integers(0, CONFIG.n_symbols, (64, CONFIG.length))], 1)
    want = np.asarray(jax.vmap(random_program)(jnp.asarray(tokens)))[:, 1:]
    compiled = compile_learned(random_program)
    assert (compiled_outputs(compiled, tokens) == want).all()
    assert compiled.circuit.nodes  # the recompiled model carries its ground-truth circuit


def test_decompiled_python_runs_as_a_plain_script(random_program, tmp_path):
    path = tmp_path / "program.py"
    path.write_text(python_source(random_program))
    assert "import workbench" not in path.read_text() and "from workbench" not in path.read_text()
    tokens = [2, 0, 1, 1]
    done = subprocess.run([sys.executable, "-I", "-S", str(path), *map(str, tokens)], cwd=tmp_path,
                          capture_output=True, text=True, env={}, timeout=60)
    assert done.returncode == 0, done.stderr
    want = np.asarray(_forward(random_program, jnp.asarray([CONFIG.bos, *tokens])))[1:].tolist()
    assert done.stdout.split() == [str(y) for y in want]


def test_listing_prunes_to_what_the_output_reads(random_program):
    full, pruned = listing(random_program, prune=False), listing(random_program)
    assert len(full.units) == 2 * (2 + 1 + 1 + 1)
    names = {u.name for u in pruned.units}
    needed = {n for n, _ in pruned.out_terms} | {r for u in pruned.units for r in u.reads}
    assert names <= needed


def test_the_decompilers_reject_a_model_that_is_not_discretised():
    model = TransformerProgram(CONFIG, key=jax.random.key(0))
    for fn in (python_source, rasp_program, compile_learned, listing):
        with pytest.raises(TypeError, match=r"discretise\(model\) first"):
            fn(model)
    with pytest.raises(TypeError, match="needs a TransformerProgram"):
        discretise("not a model")


def test_decompiled_run_rejects_bad_tokens(random_program):
    run = load_python(python_source(random_program))["run"]
    for bad in ([], [CONFIG.n_symbols], [0] * (CONFIG.length + 1)):
        with pytest.raises(ValueError, match="need 1..4 symbols in 0..2"):
            run(bad)


def test_temperature_is_annealed_geometrically_to_its_end():
    tiny = ProgramConfig(n_symbols=2, length=2, d_out=2, n_layers=1, n_cat_heads=0, n_num_heads=0, n_cat_mlps=0,
                         n_num_mlps=0)
    model = Annealed(TransformerProgram(tiny, key=jax.random.key(0)), jnp.asarray(3.0))
    opt = optimizer(5e-2, steps=10, tau_init=3.0, tau_end=0.01)
    state = opt.init(model)
    grads = jax.tree.map(jnp.ones_like, model)
    taus = []
    for _ in range(10):
        updates, state = opt.update(grads, state, model)
        model = jax.tree.map(lambda p, u: p + u, model, updates)
        taus.append(float(model.tau))
    np.testing.assert_allclose(taus, 3.0 * (0.01 / 3.0) ** (np.arange(1, 11) / 10), rtol=1e-5)
    with pytest.raises(ValueError, match="tau_end"):
        optimizer(5e-2, steps=10, tau_init=0.01, tau_end=3.0)
