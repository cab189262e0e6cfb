"""Dynamics kernels: jitted `lax.scan` simulators of one-layer transformer training, one instance per
call, `vmap` for thousands of instances, `workbench.kernels.sharding` to spread them over devices.

- `scan_snap`: Tian et al. 2023's reduced Y/Z model (`Dataset2`, `Model2`) trained by SGD;
  `scan_snap_reduced`: its deterministic long-sequence dynamics.
- `attention_svm`: Tarzanagh et al. 2023's one-layer attention trained by normalised GD;
  `svm_solver`: batched Att-SVM solvers (Frobenius IPM, nuclear-norm PDHG).

The random draws inside the kernels use `jax.threefry_partitionable(False)`: with the partitionable
threefry (JAX's default) these vmapped kernels took 10-30x longer to compile on CPU.
"""

from .attention_svm import SVMData as SVMData
from .attention_svm import correlation as correlation
from .attention_svm import sample_svm_data as sample_svm_data
from .attention_svm import simulate_ngd as simulate_ngd
from .scan_snap import Dataset2 as Dataset2
from .scan_snap import Model2 as Model2
from .scan_snap import simulate as simulate_scan_snap
from .scan_snap import simulate_batch as simulate_scan_snap_batch
from .scan_snap_reduced import simulate_reduced as simulate_scan_snap_reduced
from .sharding import shard_instances as shard_instances
from .svm_solver import solve_att_svm as solve_att_svm
