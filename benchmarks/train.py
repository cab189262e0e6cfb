"""Training speed: the workbench against TransformerLens 4.x (and plain PyTorch) on the same machine.

Each configuration trains the same model both ways: a workbench `Transformer` with the workbench's
`make_step` and `optax.adamw` (donated buffers, losses fetched once per block, as `workbench.train.train`
runs it), and the TransformerLens `TransformerBridge.boot_native` model with the same config and
initial weights (exported through `workbench.lens.to_transformer_lens`) with `torch.optim.AdamW`
(same lr, betas, eps, weight decay), on the same fixed batch of tokens, next-token cross-entropy.
After a warm-up, blocks of `BLOCK` steps alternate A/B `REPEATS` times; steps/s are medians over the
blocks. Before timing, the first `CHECK_STEPS` losses of both are compared (same data, weights and
optimiser: they must agree to float32 rounding).

Configurations (`ratios`, workbench steps/s over the other's; above 1 means the workbench is faster):

- `small_mlp` (a): 2 layers, d_model 128, 4 heads, d_mlp 512, n_ctx 64, vocab 64, batch 32, LN, GELU.
- `attn_only` (b): 2 attention-only layers, d_model 64, 4 heads, n_ctx 32, vocab 64, batch 64, LN.
- `seeds16` (c): 16 seeds of (b) trained at once (vmap over the seed axis) against 16 sequential
  TransformerLens runs (seed-steps per second; the sequential rate is one run's rate / 16).
- `lsa` (d): the icl-gd linear self-attention layer (d = 10, N = 10, batch 2048, Adam) against the
  same layer written in plain PyTorch (TransformerLens has no linear attention).
- `peak_fraction`: (a)'s achieved FLOP/s (6 x parameters x tokens per step x steps/s) over the
  float32 matmul peak of this machine, measured in the same run as the median rate of a jitted
  2048 x 2048 `jnp.dot` (2 n^3 FLOP per call). (a)'s results also give `gemm_fraction`, what the
  step's own GEMMs alone reach at its shapes over that peak (the bound the shapes set), and
  `achieved_over_gemm`, the step's rate over them.

`results` also holds `compile_s`, the first-step compile time of (a)'s workbench step.
Needs the `lens` extra (TransformerLens, torch).
"""

import platform
import statistics
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from workbench.models import LinearSelfAttention, Transformer, TransformerConfig
from workbench.train import make_step, stack

BLOCK, REPEATS, WARMUP, CHECK_STEPS = 40, 5, 5, 3
LR, WEIGHT_DECAY = 1e-3, 0.01
SEEDS = 16

CONFIGS = {
    "small_mlp": (TransformerConfig(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512, n_ctx=64, d_vocab=64,
                                    act_fn="gelu"), 32),
    "attn_only": (TransformerConfig(n_layers=2, d_model=64, n_heads=4, d_head=16, n_ctx=32, d_vocab=64,
                                    attn_only=True), 64),
}


def _median_rate(run_block: Callable[[], None], steps: int) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        run_block()
        times.append(time.perf_counter() - t)
    return steps / statistics.median(times)


def next_token_loss(model: Transformer, tokens: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy of `model` on `tokens [batch, seq + 1]` (the batched forward)."""
    logp = jax.nn.log_softmax(model.batched(tokens[:, :-1]), -1)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()


class _Workbench:
    """`n_seeds` copies of the model trained as one vmapped step on a fixed batch."""

    def __init__(self, model, loss_fn, optimizer, batch, n_seeds: int = 1):
        self.step = make_step(loss_fn, optimizer, lambda key: batch, donate=True)  # as `train` runs it
        self.models = stack([model] * n_seeds)
        self.opt = eqx.filter_vmap(lambda m: optimizer.init(eqx.filter(m, eqx.is_array)))(self.models)
        self.keys = jax.random.split(jax.random.key(0), n_seeds)
        self.t = 0

    def run(self, steps: int) -> np.ndarray:
        losses = []
        for _ in range(steps):
            self.models, self.opt, loss = self.step(self.models, self.opt, self.keys, jnp.asarray(self.t))
            losses.append(loss)
            self.t += 1
        return np.asarray(jax.block_until_ready(losses))[:, 0]


class _Torch:
    """A torch module trained with AdamW on a fixed batch; `loss(module, batch)` gives the loss."""

    def __init__(self, module, loss, batch, adam):
        import torch

        self.torch, self.module, self.loss, self.batch = torch, module, loss, batch
        module.train()
        self.opt = adam(module.parameters())

    def run(self, steps: int) -> np.ndarray:
        losses = []
        for _ in range(steps):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.module, self.batch)
            loss.backward()
            self.opt.step()
            losses.append(loss.detach())
        return self.torch.stack(losses).numpy()


def _compare(name: str, a, b, extra: dict | None = None) -> dict:
    """Check equal first losses, warm up, then alternate timed blocks of `a` and `b`."""
    la, lb = a.run(CHECK_STEPS), b.run(CHECK_STEPS)
    a.run(WARMUP), b.run(WARMUP)
    rates = {"workbench": [], "other": []}
    for _ in range(REPEATS):
        for key, trainer in (("workbench", a), ("other", b)):
            t = time.perf_counter()
            trainer.run(BLOCK)
            rates[key].append(BLOCK / (time.perf_counter() - t))
    wb, other = statistics.median(rates["workbench"]), statistics.median(rates["other"])
    return {"name": name, "workbench_steps_s": wb, "other_steps_s": other, "ratio": wb / other,
            "first_losses_workbench": la.tolist(), "first_losses_other": lb.tolist(),
            "max_loss_diff": float(np.max(np.abs(la - lb))), **(extra or {})}


def _transformer_pair(config: TransformerConfig, batch_size: int, n_seeds: int = 1):
    import torch

    from workbench.lens import to_transformer_lens

    model = Transformer(config, key=jax.random.key(0))
    tokens = np.random.default_rng(0).integers(0, config.d_vocab, (batch_size, config.n_ctx + 1))
    optimizer = optax.adamw(LR, weight_decay=WEIGHT_DECAY)
    wb = _Workbench(model, next_token_loss, optimizer, jnp.asarray(tokens), n_seeds)

    def tl_loss(bridge, t):
        logits = bridge(t[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), t[:, 1:].reshape(-1))

    bridge = to_transformer_lens(model)
    tl = _Torch(bridge, tl_loss, torch.tensor(tokens), lambda p: torch.optim.AdamW(p, LR, weight_decay=WEIGHT_DECAY))
    return wb, tl, model


def _lsa_pair():
    import torch

    from workbench.experiments.icl_gd import Config, loss_fn, make_task

    config = Config()
    batch = make_task(config).sample(jax.random.key(1), config.batch_size)
    model = LinearSelfAttention(config.d, key=jax.random.key(0), init_scale=config.init_scale)
    wb = _Workbench(model, loss_fn, optax.adam(LR), batch)

    class TorchLSA(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name in ("W_Q", "W_K", "W_V", "P"):
                setattr(self, name, torch.nn.Parameter(torch.tensor(np.asarray(getattr(model, name)))))

        def forward(self, xs, ys, xq):
            context = torch.cat([xs, ys[..., None]], -1)
            query = torch.cat([xq, torch.zeros_like(xq[..., :1])], -1)[:, None]
            scores = (query @ self.W_Q.T) @ (context @ self.W_K.T).transpose(1, 2)
            return -(query + (scores @ (context @ self.W_V.T)) @ self.P.T)[:, 0, -1]

    data = tuple(torch.tensor(np.asarray(a)) for a in (batch.context_xs, batch.context_ys, batch.query_x, batch.query_y))

    def lsa_loss(module, d):
        return 0.5 * ((module(*d[:3]) - d[3]) ** 2).mean()

    pt = _Torch(TorchLSA(), lsa_loss, data, lambda p: torch.optim.Adam(p, LR))
    return wb, pt


def _matmul_peak(n: int = 2048) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n))
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, a))
    return 2 * n**3 * _median_rate(lambda: jax.block_until_ready(dot(a, a)), 1)


def _gemm_rate(config: TransformerConfig, batch_size: int) -> float:
    """FLOP/s of (a)'s dense GEMMs alone at the model's shapes: per layer the QKV, output and both MLP
    products, then the unembedding, each forward (x W) and backward (g W^T and x^T g), in one jitted call.

    Over the 2048^3 peak it is the fraction that GEMMs of these sizes reach on this machine: the bound
    on `peak_fraction` that the matmul shapes set before any attention, softmax or norm is counted."""
    t, d, hd = batch_size * config.n_ctx, config.d_model, config.n_heads * config.d_head
    shapes = [(d, 3 * hd), (hd, d), (d, config.d_mlp), (config.d_mlp, d)] * config.n_layers + [(d, config.d_vocab)]
    keys = jax.random.split(jax.random.key(0), 2 * len(shapes))
    xs = [jax.random.normal(k, (t, k_in)) for k, (k_in, _) in zip(keys[::2], shapes)]
    ws = [jax.random.normal(k, shape) for k, shape in zip(keys[1::2], shapes)]

    @jax.jit
    def gemms(xs, ws):
        out = []
        for x, w in zip(xs, ws):
            g = x @ w
            out += [g, g @ w.T, x.T @ g]
        return out

    jax.block_until_ready(gemms(xs, ws))
    flop = sum(3 * 2 * t * k_in * k_out for k_in, k_out in shapes)
    return flop * _median_rate(lambda: jax.block_until_ready(gemms(xs, ws)), 1)


def _n_params(model) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))))


def run() -> dict:
    import torch

    results, ratios = [], {}
    config, batch_size = CONFIGS["small_mlp"]
    first, _, _ = _transformer_pair(config, batch_size)  # a fresh step: its first call compiles
    started = time.perf_counter()
    first.run(1)
    compile_s = time.perf_counter() - started
    wb, tl, model = _transformer_pair(config, batch_size)
    small = _compare("small_mlp", wb, tl, {"compile_s": compile_s})
    peak = _matmul_peak()
    flops = 6 * _n_params(model) * batch_size * config.n_ctx * small["workbench_steps_s"]
    gemm = _gemm_rate(config, batch_size)
    small.update(achieved_flop_s=flops, peak_flop_s=peak, gemm_flop_s=gemm, gemm_fraction=gemm / peak,
                 achieved_over_gemm=flops / gemm)
    results.append(small)
    ratios["small_mlp"], ratios["peak_fraction"] = small["ratio"], flops / peak

    config, batch_size = CONFIGS["attn_only"]
    wb, tl, _ = _transformer_pair(config, batch_size)
    attn = _compare("attn_only", wb, tl)
    results.append(attn)
    ratios["attn_only"] = attn["ratio"]

    wb16, tl1, _ = _transformer_pair(config, batch_size, n_seeds=SEEDS)
    seeds = _compare("seeds16", wb16, tl1)
    seeds.update(other_steps_s=seeds["other_steps_s"] / SEEDS, ratio=seeds["ratio"] * SEEDS,
                 note=f"workbench: {SEEDS} seeds per vmapped step; other: one run's steps/s divided by {SEEDS}")
    results.append(seeds)
    ratios["seeds16"] = seeds["ratio"]

    lsa = _compare("lsa", *_lsa_pair())
    results.append(lsa)
    ratios["lsa"] = lsa["ratio"]

    machine = dict(platform=platform.platform(), processor=platform.processor(), backend=jax.default_backend(),
                   devices=[str(d) for d in jax.devices()], jax=jax.__version__, torch=torch.__version__,
                   torch_threads=torch.get_num_threads())
    return {"benchmark": "train", "machine": machine, "results": results, "ratios": ratios,
            "compile_s": compile_s}
