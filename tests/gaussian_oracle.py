"""Test-side oracles for Gaussian KL divergences (float64 NumPy, full covariance matrices)."""

import numpy as np


def gaussian_kl(mu_q: np.ndarray, cov_q: np.ndarray, mu_p: np.ndarray, cov_p: np.ndarray) -> float:
    """KL(N(μ_q, Σ_q) ‖ N(μ_p, Σ_p)) = ½ [tr(Σ_p⁻¹Σ_q) + Δᵀ Σ_p⁻¹ Δ − k + log|Σ_p| − log|Σ_q|]."""
    k = len(mu_q)
    diff = mu_p - mu_q
    trace = np.trace(np.linalg.solve(cov_p, cov_q))
    quad = diff @ np.linalg.solve(cov_p, diff)
    _, logdet_p = np.linalg.slogdet(cov_p)
    _, logdet_q = np.linalg.slogdet(cov_q)
    return float(0.5 * (trace + quad - k + logdet_p - logdet_q))


def pairwise_kl_matrix(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """K[i, j] = KL(q_i ‖ q_j) for q_i = N(loc[i], diag(scale[i]²)), one pair at a time."""
    loc, scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
    covariances = [np.diag(s**2) for s in scale]
    batch = len(loc)
    return np.array(
        [
            [gaussian_kl(loc[i], covariances[i], loc[j], covariances[j]) for j in range(batch)]
            for i in range(batch)
        ]
    )
