"""The optimizers: Adam as training uses it (fused kernel, state as plain data) and the imputer's L-BFGS."""

import numpy as np
import torch

#: The keys of a parameter group in ``torch.optim.Adam``'s state dict, with
#: the values :class:`FusedAdam` has (only ``lr`` and ``betas`` vary).
_GROUP_DEFAULTS = dict(
    eps=1e-8, weight_decay=0, amsgrad=False, maximize=False, foreach=None, capturable=False,
    differentiable=False, fused=True, decoupled_weight_decay=False,
)


class FusedAdam:
    """Adam over a list of parameters, stepped by torch's fused kernel in one call.

    The update, the state and the state dict of
    ``torch.optim.Adam(params, lr=lr, betas=betas, fused=True)``, which
    calls the same kernel, without ``torch.optim``'s wrapping: constructing
    any ``torch.optim`` optimizer imports ``torch._dynamo`` (and sympy) the
    first time in a process, and each of its steps regroups the tensors in
    Python and counts every parameter's step with its own tensor. Here the
    step counts are Python integers, and parameters of one device and dtype
    at the same count share one count tensor, which the kernel reads.

    Only what training uses is here: one parameter group, no weight decay
    or AMSGrad, and ``param_groups[0]["lr"]`` may be changed between steps.
    Parameters without a gradient are skipped, and their state is created
    at their first gradient, as torch does.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999)):
        self.params = list(params)
        self.param_groups = [dict(lr=lr, betas=tuple(betas), **_GROUP_DEFAULTS,
                                  params=list(range(len(self.params))))]
        self.moments = {}  # parameter index -> (exp_avg, exp_avg_sq)
        self.steps = [0] * len(self.params)  # steps taken by each parameter
        self._counters = {}  # (device, dtype) -> (count tensor, its value)

    def zero_grad(self, set_to_none=True):
        """Drop the gradients (``set_to_none=False`` zeroes them in place)."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.zero_()

    def _moments(self, i, p):
        if i not in self.moments:
            self.moments[i] = (torch.zeros_like(p, memory_format=torch.preserve_format),
                               torch.zeros_like(p, memory_format=torch.preserve_format))
        return self.moments[i]

    def _count_tensors(self, key, counts):
        """The kernel's step tensors for parameters of ``key`` whose steps are now ``counts``."""
        device = key[0]
        if any(c != counts[0] for c in counts):  # parameters that skipped steps
            return [torch.full((), float(c), dtype=torch.float32, device=device)
                    for c in counts]
        tensor, value = self._counters.get(key, (None, None))
        if value == counts[0] - 1:
            tensor.add_(1)
        else:
            tensor = torch.full((), float(counts[0]), dtype=torch.float32, device=device)
        self._counters[key] = (tensor, counts[0])
        return [tensor] * len(counts)

    @torch.no_grad()
    def step(self):
        """One Adam step for every parameter that has a gradient."""
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        by_kind = {}  # the kernel takes tensors of one device and dtype per call
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("FusedAdam does not support sparse gradients")
            exp_avg, exp_avg_sq = self._moments(i, p)
            self.steps[i] += 1
            lists = by_kind.setdefault((p.device, p.dtype), ([], [], [], [], []))
            for out, t in zip(lists, (p, p.grad, exp_avg, exp_avg_sq, self.steps[i])):
                out.append(t)
        for key, (params, grads, exp_avgs, exp_avg_sqs, counts) in by_kind.items():
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], self._count_tensors(key, counts),
                amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0,
                eps=group["eps"], maximize=False, grad_scale=None, found_inf=None,
            )

    def state_dict(self):
        """``{"state": {index: {...}}, "param_groups": [...]}``, as ``torch.optim.Adam`` has it."""
        state = {}
        for i, (exp_avg, exp_avg_sq) in self.moments.items():
            step = torch.full((), float(self.steps[i]), dtype=torch.float32,
                              device=self.params[i].device)
            state[i] = {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        return {"state": state,
                "param_groups": [dict(g, params=list(g["params"])) for g in self.param_groups]}

    def load_state_dict(self, state_dict):
        """Load a state dict of this class or of ``torch.optim.Adam`` over the same parameters."""
        (group,) = state_dict["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"The state holds {len(group['params'])} parameters; this "
                             f"optimizer has {len(self.params)}.")
        position = {key: j for j, key in enumerate(group["params"])}
        self.param_groups[0].update(lr=group["lr"], betas=tuple(group["betas"]),
                                    eps=group.get("eps", _GROUP_DEFAULTS["eps"]))
        self.moments, self.steps, self._counters = {}, [0] * len(self.params), {}
        for key, entry in state_dict["state"].items():
            i = position[key]
            p = self.params[i]
            self.steps[i] = int(float(entry["step"]))
            self.moments[i] = tuple(torch.as_tensor(entry[name]).to(dtype=p.dtype, device=p.device)
                                    for name in ("exp_avg", "exp_avg_sq"))


def adam(params, lr, device):
    """The optimizer training uses: :class:`FusedAdam` where torch has the kernel, else torch's Adam."""
    if fused_adam(device):
        return FusedAdam(params, lr)
    return torch.optim.Adam(params, lr=lr)


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


class _LBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` with ``Optimizer.add_param_group`` unwrapped.

    torch wraps ``add_param_group``, which every optimizer's constructor
    calls, in ``torch._disable_dynamo``, and that wrapper imports
    ``torch._dynamo`` (and sympy) at its first call in a process. Eager
    code runs the wrapped function unchanged, so the steps are the same; a
    torch without the ``__wrapped__`` attribute gets its own method.
    """

    add_param_group = getattr(torch.optim.Optimizer.add_param_group, "__wrapped__",
                              torch.optim.Optimizer.add_param_group)


def lbfgs(params, **options):
    """``torch.optim.LBFGS(params, **options)``, without the first-use import of ``torch._dynamo``."""
    return _LBFGS(params, **options)
