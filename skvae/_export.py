"""Self-contained torch modules from raw X to the posterior mean and back (torch.export, ONNX)."""

import copy

import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._scaling import inverse_radial, origin_to_e1, radial


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
        rho = radial(r, self.r_min, self.r_max, self.m)
        return origin_to_e1(x * (rho / r.clamp_min(1e-300)), r == 0, self.r_min)


class InverseRadialMap(RadialMap):
    """Decoder outputs back to standardized units: norms clipped to ``[lo, hi]``, then rho^-1."""

    def __init__(self, r_min, r_max, m, lo, hi):
        super().__init__(r_min, r_max, m)
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, y):
        norm = torch.linalg.vector_norm(y, dim=1, keepdim=True)
        # lo, the smallest training norm, is at least r_min.
        r = inverse_radial(norm.clamp(self.lo, self.hi), self.r_min, self.r_max, self.m)
        return y * (r / norm.clamp_min(1e-300))


class PosteriorMean(nn.Module):
    """The mean of an encoder's ``(mean, log-variance)`` output."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, y):
        return self.encoder(y)[0]


class ExportMixin:
    """``export_module`` for the VAE estimators."""

    def export_module(self, part="transform", *, dtype=torch.float64):
        """A self-contained :class:`torch.nn.Module` for serving without skvae.

        ``part="transform"`` maps raw rows (original units, a tensor of shape
        ``(n, n_features)``) to posterior means, standardization and shell
        map included; ``part="inverse_transform"`` maps latent rows back to
        original units. The modules hold copies of the fitted weights and
        statistics as parameters and buffers, and export with
        :func:`torch.export.export` and ``torch.onnx.export``.

        Unlike :meth:`transform`, they do not validate input or check that
        outputs are finite (rows beyond the float64 range of the
        standardization give inf or NaN).

        Parameters
        ----------
        part : {"transform", "inverse_transform"}, default="transform"
            Which map to return.
        dtype : torch.dtype, default=torch.float64
            Dtype of the module's parameters and expected input
            (``torch.float32`` for smaller, faster serving).

        Returns
        -------
        module : torch.nn.Module
            In eval mode, on the CPU, with ``requires_grad=False``.

        Examples
        --------
        >>> import torch
        >>> from sklearn.datasets import make_blobs
        >>> from skvae import VAE
        >>> X, _ = make_blobs(n_samples=100, n_features=4, random_state=0)
        >>> vae = VAE(random_state=0).fit(X)
        >>> encoder = vae.export_module()
        >>> Z = encoder(torch.as_tensor(X)).numpy()
        >>> bool(abs(Z - vae.transform(X)).max() < 1e-10)
        True
        """
        check_is_fitted(self)
        if part not in ("transform", "inverse_transform"):
            raise ValueError(
                f"part must be 'transform' or 'inverse_transform', got {part!r}."
            )
        module = copy.deepcopy(self.module_).cpu().eval()
        forward, inverse = self._export_maps()
        if part == "transform":  # raw rows -> posterior means
            out = nn.Sequential(forward, PosteriorMean(module.encoder))
        else:  # latent rows -> reconstructions in original units
            out = nn.Sequential(module.decoder, inverse)
        return out.to(dtype).eval().requires_grad_(False)

    def _export_maps(self):
        """(raw X -> modelled rows, decoder outputs -> raw X) as torch modules; estimators supply it."""
        raise NotImplementedError
