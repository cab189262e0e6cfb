"""NumPy reference for one minibatch SGD step of the scan-and-snap `Model2` (count form), with
hand-written gradients; an independent check of the JAX kernel and the benchmark's baseline."""

import numpy as np


def _softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def model2_grads(params: dict, counts: np.ndarray, labels: np.ndarray, num_next_per_last: int, out_mask: np.ndarray):
    """Loss and gradients of the batch-mean loss. `params`: Y_common [V, C], Y_distinct [N, V, U],
    Z_common [L, C], Z_distinct [N, U]; `counts` [B, C + U] support counts; `labels` [B] classes n."""
    Yc, Yd, Zc, Zd = (params[k] for k in ("Y_common", "Y_distinct", "Z_common", "Z_distinct"))
    B, nc = counts.shape[0], Yc.shape[1]
    vocab, num_last = Yc.shape[0], Zc.shape[0]
    m = labels // num_next_per_last
    z = np.concatenate([Zc[m], Zd[labels]], axis=1)
    logits_att = np.where(counts > 0, z + np.log(np.maximum(counts, 1.0)), -np.inf)
    c = _softmax(logits_att)
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    f = c / norm
    y_sup = np.concatenate([np.broadcast_to(Yc, (B,) + Yc.shape), Yd[labels]], axis=2)  # [B, V, S]
    logits = np.einsum("bvs,bs->bv", y_sup, f)
    logits = np.where(out_mask, logits, -np.inf)
    alpha = _softmax(logits)
    target = vocab - Yd.shape[0] + labels
    onehot = np.zeros_like(alpha)
    onehot[np.arange(B), target] = 1.0
    loss = float(np.mean(-np.log(alpha[np.arange(B), target])))
    err = (alpha - onehot) / B  # dloss/dlogits
    gYc = err.T @ f[:, :nc]
    gYd = np.zeros_like(Yd)
    np.add.at(gYd, labels, err[:, :, None] * f[:, None, nc:])
    gf = np.einsum("bvs,bv->bs", y_sup, err)
    gc = (gf - f * (f * gf).sum(1, keepdims=True)) / norm
    gz = c * gc - c * (c * gc).sum(1, keepdims=True)
    gZc = np.zeros_like(Zc)
    np.add.at(gZc, m, gz[:, :nc])
    gZd = np.zeros_like(Zd)
    np.add.at(gZd, labels, gz[:, nc:])
    assert num_last == Zc.shape[0]
    return loss, {"Y_common": gYc, "Y_distinct": gYd, "Z_common": gZc, "Z_distinct": gZd}


def sgd_momentum_step(params, velocity, grads, lr_y, lr_z, momentum=0.9):
    """PyTorch SGD with momentum (dampening 0): v <- mu v + g; p <- p - lr v."""
    new_p, new_v = {}, {}
    for k in params:
        new_v[k] = momentum * velocity[k] + grads[k]
        new_p[k] = params[k] - (lr_y if k.startswith("Y") else lr_z) * new_v[k]
    return new_p, new_v
