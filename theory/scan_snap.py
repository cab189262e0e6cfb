"""Scan and Snap, symbolically: the attention-logit gradient of the reduced model and the entropy
of c_n at z = 0. Numeric (NumPy) versions are below for overlays and checks.

For one class with support probabilities p, logits z, `c = softmax(z + log p)`, `f = c / |c|`,
`alpha = softmax(Y f)`, the loss `-log alpha_n` has

    -dL/dz = (diag(c) - c c^T) (I - f f^T) / |c| * Y^T (e_n - alpha),

the Z part of the reduced dynamics (workbench/kernels/scan_snap_reduced.py); `z_gradient_residual` checks
it with sympy on a small symbolic instance.
"""

import numpy as np
import sympy as sp


def entropy_at_zero(num_unique: int = 10, lo: sp.Rational = sp.Rational(1, 10), hi: sp.Rational = 1) -> sp.Expr:
    """Exact entropy of the distinct-token attention at z = 0: P(l|n) ∝ linspace(lo, hi, num_unique)."""
    w = [lo + (hi - lo) * sp.Rational(k, num_unique - 1) for k in range(num_unique)]
    total = sum(w)
    return sp.simplify(-sum((wi / total) * sp.log(wi / total) for wi in w))


def z_gradient_residual(support: int = 3, vocab: int = 2, label: int = 0) -> sp.Matrix:
    """Autodiff-free check: (symbolic -dL/dz) - (closed form), simplified; the zero vector if the
    formula holds. Small sizes keep sympy fast."""
    z = sp.Matrix(sp.symbols(f"z0:{support}", real=True))
    p = sp.Matrix(sp.symbols(f"p0:{support}", positive=True))
    Y = sp.Matrix(vocab, support, lambda i, j: sp.Symbol(f"y{i}{j}", real=True))
    e = sp.Matrix([sp.exp(z[i]) * p[i] for i in range(support)])
    c = e / sum(e)
    norm = sp.sqrt(sum(ci**2 for ci in c))
    f = c / norm
    logits = Y * f
    loss = -(logits[label] - sp.log(sum(sp.exp(v) for v in logits)))
    grad = sp.Matrix([-sp.diff(loss, zi) for zi in z])
    alpha = sp.Matrix([sp.exp(v) for v in logits]) / sum(sp.exp(v) for v in logits)
    onehot = sp.Matrix([1 if i == label else 0 for i in range(vocab)])
    J = sp.diag(*c) - c * c.T
    formula = J * (sp.eye(support) - f * f.T) / norm * Y.T * (onehot - alpha)
    values = {s: v for s, v in zip(list(z) + list(p) + list(Y), np.linspace(0.3, 1.7, len(z) + len(p) + len(Y)))}
    return sp.simplify((grad - formula).subs(values).evalf())


def z_velocity(z: np.ndarray, p: np.ndarray, Y: np.ndarray, label: int) -> np.ndarray:
    """NumPy version of the closed form: -dL/dz for one class."""
    c = np.exp(z - z.max()) * p
    c = c / c.sum()
    f = c / np.linalg.norm(c)
    logits = Y @ f
    alpha = np.exp(logits - logits.max())
    alpha = alpha / alpha.sum()
    g = Y.T @ (np.eye(len(alpha))[label] - alpha)
    g = (g - f * (f @ g)) / np.linalg.norm(c)
    return c * g - c * (c @ g)
