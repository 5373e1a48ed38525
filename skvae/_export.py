"""Self-contained torch modules from raw X to the posterior mean and back (torch.export, ONNX)."""

import copy

import torch
from torch import nn


class Standardize(nn.Module):
    """``(x - mean) / scale`` with the fitted column statistics as buffers."""

    def __init__(self, mean, scale):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float64))

    def forward(self, x):
        return (x - self.mean) / self.scale


class Unstandardize(Standardize):
    """``y * scale + mean``, the inverse of :class:`Standardize`."""

    def forward(self, y):
        return y * self.scale + self.mean


class RadialMap(nn.Module):
    """The paper's map ``y = rho(|x|) x / |x|`` (a row at the origin goes to ``r_min e_1``)."""

    def __init__(self, r_min, r_max, m):
        super().__init__()
        self.r_min, self.r_max, self.m = float(r_min), float(r_max), float(m)

    def forward(self, x):
        r = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        rho = self.r_min + (self.r_max - self.r_min) * r / (r + self.m)
        e1 = torch.zeros_like(x[:1])
        e1[0, 0] = self.r_min
        return torch.where(r > 0, x * (rho / r.clamp_min(1e-300)), e1)


class InverseRadialMap(RadialMap):
    """Decoder outputs back to standardized units: norms clipped to ``[lo, hi]``, then rho^-1."""

    def __init__(self, r_min, r_max, m, lo, hi):
        super().__init__(r_min, r_max, m)
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, y):
        norm = torch.linalg.vector_norm(y, dim=1, keepdim=True)
        clipped = norm.clamp(self.lo, self.hi)
        r = self.m * (clipped - self.r_min).clamp_min(0.0) / (self.r_max - clipped)
        return y * (r / norm.clamp_min(1e-300))


class EncoderMean(nn.Module):
    """Raw rows -> posterior means ``E[z | x]`` (what ``transform`` returns)."""

    def __init__(self, representation, encoder):
        super().__init__()
        self.representation = representation
        self.encoder = encoder

    def forward(self, x):
        return self.encoder(self.representation(x))[0]


class DecoderMean(nn.Module):
    """Latent rows -> reconstructions in original units (what ``inverse_transform`` returns)."""

    def __init__(self, decoder, inverse):
        super().__init__()
        self.decoder = decoder
        self.inverse = inverse

    def forward(self, z):
        return self.inverse(self.decoder(z))


def export_module(estimator, part, dtype):
    """The self-contained module for ``part`` ("transform" or "inverse_transform")."""
    module = copy.deepcopy(estimator.module_).cpu().eval()
    forward, inverse = estimator._export_maps()
    if part == "transform":
        out = EncoderMean(forward, module.encoder)
    else:
        out = DecoderMean(module.decoder, inverse)
    return out.to(dtype).eval().requires_grad_(False)
