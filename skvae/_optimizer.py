"""Adam as training uses it: the fused kernel where torch has one, and its state as plain data."""

import numpy as np
import torch


def optimizer_state_to_numpy(optimizer):
    """Adam's state as plain data (numpy arrays, str keys): picklable and skops-safe."""
    sd = optimizer.state_dict()
    return {
        "state": {str(k): {name: t.detach().cpu().numpy().copy() if torch.is_tensor(t) else t
                           for name, t in v.items()}
                  for k, v in sd["state"].items()},
        "param_groups": [{k: (list(v) if isinstance(v, (list, tuple)) else v)
                          for k, v in g.items()} for g in sd["param_groups"]],
    }


def optimizer_state_from_numpy(optimizer, state, device):
    """Load what :func:`optimizer_state_to_numpy` stored into ``optimizer``."""
    groups = [{**g, "params": list(g["params"])} for g in state["param_groups"]]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    tensors = {int(k): {name: torch.as_tensor(np.asarray(v)).to(
        device if name != "step" else "cpu") for name, v in entry.items()}
        for k, entry in state["state"].items()}
    optimizer.load_state_dict({"state": tensors, "param_groups": groups})


def fused_adam(device):
    """Whether torch has a fused Adam kernel for ``device``'s parameters.

    One kernel for all parameters instead of a loop over them in Python,
    which matters most at small batches (benchmarks/results/speed.md). The
    CPU kernel came with torch 2.4.
    """
    if device.type == "cuda":
        return True
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return device.type == "cpu" and (major, minor) >= (2, 4)
