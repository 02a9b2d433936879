"""Real orthonormal spherical harmonics from scipy, an independent reference for sphere tests."""

import numpy as np
from scipy.special import sph_harm_y


def real_sph_harm_matrix(pos: np.ndarray, lmax: int) -> np.ndarray:
    """Real orthonormal Y_lm at unit vectors ``pos [N, 3]`` for l <= lmax, shape [N, (lmax+1)^2]."""
    theta = np.arccos(np.clip(pos[:, 2], -1.0, 1.0))
    phi = np.arctan2(pos[:, 1], pos[:, 0])
    cols = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            if m > 0:
                cols.append(np.sqrt(2.0) * (-1) ** m * y.real)
            elif m < 0:
                cols.append(np.sqrt(2.0) * (-1) ** m * y.imag)
            else:
                cols.append(y.real)
    return np.stack(cols, axis=1)


def gram_error(pos: np.ndarray, weights: np.ndarray, lmax: int) -> float:
    """max |int Y_lm Y_l'm' - delta| under the quadrature rule."""
    y = real_sph_harm_matrix(pos, lmax)
    gram = y.T @ (weights[:, None] * y)
    return float(np.abs(gram - np.eye(gram.shape[0])).max())
