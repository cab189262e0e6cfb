"""Results with named axes: an array, its axis names and labels; tidy rows and plotly heatmaps."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Named(eqx.Module):
    """An array with named axes: `values` has shape `[len(l) for l in labels]`, axes `axes`."""

    values: Float[Array, "..."]
    axes: tuple[str, ...] = eqx.field(static=True)
    labels: tuple[tuple, ...] = eqx.field(static=True)

    def __check_init__(self):
        shape = tuple(len(l) for l in self.labels)
        if len(self.axes) != len(self.labels) or tuple(self.values.shape) != shape:
            raise ValueError(f"Named: values {tuple(self.values.shape)} do not match axes {self.axes} of sizes {shape}")

    def sel(self, **index: int) -> "Named":
        """The slice at `axis=label` for each keyword (e.g. `pos=-1`, which picks the last label)."""
        values, axes, labels = self.values, list(self.axes), list(self.labels)
        for axis, label in index.items():
            i = axes.index(axis)
            j = label if label < 0 else labels[i].index(label)
            values = jnp.take(values, j, axis=i)
            del axes[i], labels[i]
        return Named(values, tuple(axes), tuple(labels))

    def sum(self, axis: str) -> "Named":
        i = self.axes.index(axis)
        return Named(self.values.sum(i), self.axes[:i] + self.axes[i + 1 :], self.labels[:i] + self.labels[i + 1 :])

    def table(self, value: str = "value") -> list[dict]:
        """Tidy rows, one per cell: `{axis: label, ..., value: float}`."""
        values = np.asarray(self.values)
        rows = []
        for idx in np.ndindex(values.shape):
            row = {axis: self.labels[a][i] for a, (axis, i) in enumerate(zip(self.axes, idx, strict=True))}
            row[value] = float(values[idx])
            rows.append(row)
        return rows


class PatchResult(eqx.Module):
    """A patching sweep: the metric with each site patched, next to the clean and corrupted runs.

    `patched` is the mean metric over prompts per site; `clean` and `corrupted` are the metric of the
    unpatched runs (`corrupted` is None for ablations).
    """

    patched: Named
    clean: Float[Array, ""]
    corrupted: Float[Array, ""] | None

    @property
    def effect(self) -> Named:
        """`patched - clean`: what patching each site changes."""
        return Named(self.patched.values - self.clean, self.patched.axes, self.patched.labels)

    @property
    def normalized(self) -> Named:
        """`(patched - corrupted) / (clean - corrupted)`: 1 where a site restores the clean metric."""
        if self.corrupted is None:
            raise ValueError("normalized needs a corrupted run; ablations have none (use effect)")
        scaled = (self.patched.values - self.corrupted) / (self.clean - self.corrupted)
        return Named(scaled, self.patched.axes, self.patched.labels)


def heatmap(named: Named, *, rows: str, cols: str, title: str = "", colorscale: str = "RdBu") -> dict:
    """A plotly heatmap (JSON-ready dict) of a 2-axis `named` with `rows` on y and `cols` on x.

    Symmetric colour range around 0; e.g. `heatmap(result.effect.sel(pos=-1), rows="layer", cols="head")`.
    """
    if set(named.axes) != {rows, cols}:
        raise ValueError(f"heatmap needs exactly the axes {rows!r} and {cols!r}, got {named.axes}; "
                         "use sel or sum first")
    z = np.asarray(named.values)
    if named.axes.index(rows) != 0:
        z = z.T
    bound = float(np.nanmax(np.abs(z))) if z.size else 0.0
    labels = dict(zip(named.axes, named.labels, strict=True))
    trace = {"type": "heatmap", "z": z.tolist(),
             "x": [str(l) for l in labels[cols]], "y": [str(l) for l in labels[rows]],
             "colorscale": colorscale, "zmid": 0.0, "zmin": -bound, "zmax": bound}
    layout = {"title": {"text": title}, "xaxis": {"title": {"text": cols}, "type": "category"},
              "yaxis": {"title": {"text": rows}, "type": "category", "autorange": "reversed"}}
    return {"data": [trace], "layout": layout}


def layer_head_heatmap(named: Named, title: str = "") -> dict:
    """Layer (rows) x head (columns)."""
    return heatmap(named, rows="layer", cols="head", title=title)


def pos_layer_heatmap(named: Named, title: str = "") -> dict:
    """Position (columns) x layer (rows), the usual residual-stream patching picture."""
    return heatmap(named, rows="layer", cols="pos", title=title)
