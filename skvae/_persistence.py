"""Pickling a fitted VAE: torch weights stored as numpy arrays, loaded on a device that exists."""

import warnings

import torch

from ._networks import module_from_state, module_state


class PersistenceMixin:
    """``__getstate__``/``__setstate__`` that keep ``module_`` CPU-portable and skops-safe."""

    def __getstate__(self):
        # A copy: BaseEstimator returns the instance's own __dict__ for
        # classes outside sklearn, and pickling must not change the model.
        state = dict(super().__getstate__())
        module = state.get("module_")
        if isinstance(module, torch.nn.Module):
            # Stored as numpy weights plus the architecture: CPU-portable, and
            # skops.io loads it trusting only skvae types (no torch objects).
            state["module_"] = module_state(module)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if not isinstance(state.get("module_"), dict):
            return
        target = torch.device(self.device_)
        if target.type == "cuda" and not _cuda_device_exists(target):
            warnings.warn(
                f"{type(self).__name__} was fitted on {self.device_}, which this "
                f"machine does not have ({torch.cuda.device_count()} CUDA "
                "device(s)); it was loaded on the CPU.",
                UserWarning,
            )
            self.device_ = "cpu"
            target = torch.device("cpu")
        self.module_ = module_from_state(state["module_"], target)


def _cuda_device_exists(device):
    """Whether ``device`` (type cuda) names a GPU present on this machine."""
    if not torch.cuda.is_available():
        return False
    return (device.index or 0) < torch.cuda.device_count()
