"""Linear self-attention implements one step of gradient descent (von Oswald et al. 2023, Prop. 1).

Two results, each derived with sympy and checked by tests, plus the numeric versions the icl-gd
experiment overlays:

1. `construction_equals_gd(d, n)`: with W_K = W_Q = [[I, 0], [0, 0]], W_V = [[0, 0], [W_0, -I]] and
   P = (eta/n) I, the LSA update of a query token (x_q, -W_0 x_q) has y-slot -W_1 x_q, where
   W_1 = W_0 - eta * grad L(W_0) is one GD step on L(W) = 1/(2n) sum_i |W x_i - y_i|^2.
2. `expected_gd_loss`: for y = w^T x, w ~ N(0, I), i.i.d. input coordinates with E x^2 = s2 and
   E x^4 = m4, the one-step GD predictor y_hat = (eta/n) sum_i y_i x_i^T x_q has
   E[(y_hat - y)^2 / 2] = (eta^2 s2 Q - 2 eta d s2^2 + d s2) / 2 with
   Q = E|S|_F^2 = (d m4 + d(d-1) s2^2) / n + (n-1) d s2^2 / n, S = (1/n) sum_i x_i x_i^T,
   hence eta* = d s2 / Q. `symbolic_expected_gd_loss(d, n)` recomputes the expectation by
   expanding the polynomial and taking moments monomial by monomial, independently of the formula.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from workbench.models import LinearSelfAttention

ETA, S2, M4 = sp.symbols("eta s2 m4", positive=True)


def construction(d: int, n: int, eta: float) -> LinearSelfAttention:
    """The LSA weights of Prop. 1 with W_0 = 0 (prediction = one GD step from zero with step `eta`)."""
    eye = np.eye(d + 1)
    kq = eye.copy()
    kq[d, d] = 0.0
    v = np.zeros((d + 1, d + 1))
    v[d, d] = -1.0
    lsa = LinearSelfAttention(d, key=jax.random.key(0))
    weights = tuple(jnp.asarray(a, dtype=jnp.float32) for a in (kq, kq, v, (eta / n) * eye))
    return eqx.tree_at(lambda m: (m.W_Q, m.W_K, m.W_V, m.P), lsa, weights)


def construction_equals_gd(d: int = 2, n: int = 3) -> bool:
    """Symbolic check of result 1 for general W_0 and all entries symbolic."""
    xs = sp.Matrix(n, d, lambda i, j: sp.Symbol(f"x_{i}{j}"))
    ys = sp.Matrix(n, 1, lambda i, j: sp.Symbol(f"y_{i}"))
    xq = sp.Matrix(d, 1, lambda i, j: sp.Symbol(f"xq_{i}"))
    W0 = sp.Matrix(1, d, lambda i, j: sp.Symbol(f"w0_{j}"))
    kq = sp.diag(*([1] * d + [0]))
    W_V = sp.zeros(d + 1, d + 1)
    W_V[d, :d] = W0
    W_V[d, d] = -1
    P = (ETA / n) * sp.eye(d + 1)
    tokens = [sp.Matrix.vstack(xs[i, :].T, ys[i, :]) for i in range(n)]
    query = sp.Matrix.vstack(xq, -W0 * xq)
    update = sp.zeros(d + 1, 1)
    for e in tokens:
        update += P * W_V * e * ((kq * e).T * (kq * query))[0, 0]
    y_slot = (query + update)[d, 0]
    grad = sp.zeros(1, d)
    for i in range(n):
        grad += (W0 * xs[i, :].T - ys[i, :])[0, 0] * xs[i, :] / n
    W1 = W0 - ETA * grad
    return sp.expand(y_slot + (W1 * xq)[0, 0]) == 0


def closed_form_loss(d, n, eta=ETA, s2=S2, m4=M4):
    """Result 2 as a sympy expression (or a number when all arguments are numbers)."""
    q = (d * m4 + d * (d - 1) * s2**2) / n + sp.Rational(1, 1) * (n - 1) * d * s2**2 / n
    return (eta**2 * s2 * q - 2 * eta * d * s2**2 + d * s2) / 2


def _moment(power: int, second, fourth):
    if power % 2:
        return 0
    table = {0: 1, 2: second, 4: fourth}
    if power not in table:
        raise ValueError(f"moment of order {power} not needed here")
    return table[power]


def symbolic_expected_gd_loss(d: int, n: int):
    """E[(y_hat - y)^2 / 2] by monomial-wise expectation: x coordinates (s2, m4), w ~ N(0, 1)."""
    xs = [[sp.Symbol(f"x_{i}{j}") for j in range(d)] for i in range(n)]
    xq = [sp.Symbol(f"xq_{j}") for j in range(d)]
    w = [sp.Symbol(f"w_{j}") for j in range(d)]
    ys = [sum(w[j] * xs[i][j] for j in range(d)) for i in range(n)]
    y_hat = (ETA / n) * sum(ys[i] * sum(xs[i][j] * xq[j] for j in range(d)) for i in range(n))
    y = sum(w[j] * xq[j] for j in range(d))
    poly = sp.Poly(sp.expand((y_hat - y) ** 2 / 2), *[v for row in xs for v in row], *xq, *w)
    x_vars = len(xs) * d + d
    total = 0
    for powers, coeff in poly.terms():
        term = coeff
        for k, p in enumerate(powers):
            term *= _moment(p, S2, M4) if k < x_vars else _moment(p, 1, 3)
            if term == 0:
                break
        total += term
    return sp.expand(total)


def expected_gd_loss(eta, d: int, n: int, s2: float, m4: float):
    """Numeric result 2 (works on numpy/jax arrays of `eta`)."""
    q = (d * m4 + d * (d - 1) * s2**2) / n + (n - 1) * d * s2**2 / n
    return (eta**2 * s2 * q - 2 * eta * d * s2**2 + d * s2) / 2


def optimal_eta(d: int, n: int, s2: float, m4: float) -> float:
    q = (d * m4 + d * (d - 1) * s2**2) / n + (n - 1) * d * s2**2 / n
    return d * s2 / q


def bilinear_form(lsa: LinearSelfAttention) -> jnp.ndarray:
    """The scale-free content of an LSA predictor: T [d+1, d+1, d] with y_hat = sum T_abc M_ab x_c.

    Here M = sum_i e_i e_i^T is the context's token second moment; T is symmetrised in (a, b) since
    M is symmetric. Only the products P W_V and W_K^T W_Q enter, so T is invariant to the scale
    symmetry (W_V, P) -> (c W_V, P / c), (W_K, W_Q) -> (c W_K, W_Q / c).
    """
    d = lsa.W_Q.shape[0] - 1
    u = -(lsa.P @ lsa.W_V)[d]  # y_hat = u^T M K[:, :d] x_q
    k = (lsa.W_K.T @ lsa.W_Q)[:, :d]
    t = jnp.einsum("a,bc->abc", u, k)
    return (t + t.transpose(1, 0, 2)) / 2


def construction_distance(lsa: LinearSelfAttention, n: int, eta: float) -> float:
    """Relative Frobenius distance |T - T_GD| / |T_GD| between bilinear forms (see `bilinear_form`)."""
    d = lsa.W_Q.shape[0] - 1
    target = bilinear_form(construction(d, n, eta))
    return float(jnp.linalg.norm(bilinear_form(lsa) - target) / jnp.linalg.norm(target))


def effective_eta(lsa: LinearSelfAttention, n: int) -> float:
    """The GD step size whose construction is closest to `lsa` (projection of T on T_GD(1))."""
    d = lsa.W_Q.shape[0] - 1
    unit = bilinear_form(construction(d, n, 1.0))
    return float(jnp.vdot(bilinear_form(lsa), unit) / jnp.vdot(unit, unit))
