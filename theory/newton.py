"""Newton-Schulz iterates for (X^T X)^+ and their quadratic convergence (Fu et al. 2024, Iterative Newton).

With S = X^T X, M_0 = alpha S (alpha = 1 / ||S S^T||_F, as in Fu et al.'s code) and
M_{k+1} = M_k (2I - S M_k), every iterate is a polynomial in S, so in S's eigenbasis each eigenvalue s
evolves on its own: m_{k+1} = m_k (2 - s m_k), hence

    1 - s m_{k+1} = (1 - s m_k)^2   and   1 - s m_k = (1 - alpha s^2)^(2^k).

The residual squares each step: after k steps the error of w_k = M_k X^T y is at most
max_s |1 - alpha s^2|^(2^k), so reaching a relative error eps takes about log2(log eps / log(1 - alpha s_min^2))
steps, against log eps / log(1 - s_min / s_max) for gradient descent with step 1 / s_max.
"""

import numpy as np
import sympy as sp
from jaxtyping import Array, Float


def symbolic_residual_squares() -> bool:
    """sympy: with m' = m (2 - s m), 1 - s m' equals (1 - s m)^2 exactly."""
    s, m = sp.symbols("s m")
    return sp.expand((1 - s * m * (2 - s * m)) - (1 - s * m) ** 2) == 0


def alpha(gram: Float[Array, "d d"]) -> float:
    """The code's initial scale 1 / ||S S^T||_F."""
    gram = np.asarray(gram, np.float64)
    return 1.0 / np.linalg.norm(gram @ gram.T)


def iterate_closed_form(gram: Float[Array, "d d"], k: int) -> np.ndarray:
    """M_k = S^+ (I - (I - alpha S^2)^(2^k)) in S's eigenbasis (0 on S's null space)."""
    gram = np.asarray(gram, np.float64)
    evals, vecs = np.linalg.eigh(gram)
    a = alpha(gram)
    inv = np.where(evals > 1e-12 * evals.max(), 1.0 / np.where(evals > 0, evals, 1.0), 0.0)
    m = inv * (1.0 - (1.0 - a * evals**2) ** (2**k))
    return (vecs * m) @ vecs.T


def residual_bound(gram: Float[Array, "d d"], k: int) -> float:
    """max over S's non-zero eigenvalues of |1 - s m_k| = |1 - alpha s^2|^(2^k)."""
    gram = np.asarray(gram, np.float64)
    evals = np.linalg.eigvalsh(gram)
    evals = evals[evals > 1e-12 * evals.max()]
    return float(np.max(np.abs(1.0 - alpha(gram) * evals**2)) ** (2**k))


def newton_steps_to(gram: Float[Array, "d d"], eps: float) -> int:
    """Steps until the residual bound is <= eps: ceil(log2(log eps / log(1 - alpha s_min^2)))."""
    evals = np.linalg.eigvalsh(np.asarray(gram, np.float64))
    evals = evals[evals > 1e-12 * evals.max()]
    rate = 1.0 - alpha(gram) * evals.min() ** 2
    return max(0, int(np.ceil(np.log2(np.log(eps) / np.log(rate)))))


def gd_steps_to(gram: Float[Array, "d d"], eps: float) -> int:
    """Steps of GD on 1/2 |Xw - y|^2 with step 1/s_max until (1 - s_min / s_max)^t <= eps."""
    evals = np.linalg.eigvalsh(np.asarray(gram, np.float64))
    evals = evals[evals > 1e-12 * evals.max()]
    return max(0, int(np.ceil(np.log(eps) / np.log(1.0 - evals.min() / evals.max()))))
