"""The batched Kalman filter equals filterpy's KalmanFilter run per track (float64, 1e-9), and its helpers agree
with their matrix definitions."""

from __future__ import annotations

import numpy as np
import pytest
from depthtracker.geometry.boxes import cxcyah_to_xyxy, xyxy_to_cxcyah
from depthtracker.tracking import CHI2_GATE, KalmanBoxFilter
from filterpy.kalman import KalmanFilter
from scipy.stats import chi2

TOL = dict(rtol=1e-9, atol=1e-9)


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) cxcyah measurements of plausible boxes."""
    return np.stack([rng.uniform(0, 640, n), rng.uniform(0, 480, n), rng.uniform(0.3, 1.2, n),
                     rng.uniform(20, 300, n)], axis=1)


def _filterpy_from(kf: KalmanBoxFilter, i: int) -> KalmanFilter:
    ref = KalmanFilter(dim_x=8, dim_z=4)
    ref.x = kf.mean[i].copy()[:, None]
    ref.P = kf.covariance[i].copy()
    ref.H = kf.observation_matrix()
    return ref


@pytest.mark.parametrize("n_tracks,steps,seed,custom_r", [(1, 40, 0, False), (7, 60, 1, False), (13, 50, 2, True)])
def test_equal_to_filterpy(n_tracks: int, steps: int, seed: int, custom_r: bool) -> None:
    rng = np.random.default_rng(seed)
    kf = KalmanBoxFilter(reference_dt_s=0.04)
    kf.initiate(_random_boxes(rng, n_tracks))
    refs = [_filterpy_from(kf, i) for i in range(n_tracks)]
    truth = kf.mean[:, :4].copy()
    vel = rng.normal(0, [40, 30, 0.05, 10], (n_tracks, 4))  # px/s etc.
    for _ in range(steps):
        dt = float(rng.choice([0.0, 0.02, 0.04, 0.1, 0.25]))
        truth = truth + dt * vel
        hs = [ref.x[3, 0] for ref in refs]
        kf.predict(dt)
        for ref, h in zip(refs, hs):
            ref.predict(F=kf.transition_matrix(dt), Q=kf.process_noise(dt, h))
        idx = np.flatnonzero(rng.random(n_tracks) < 0.7)  # some tracks miss their detection
        z = truth[idx] + rng.normal(0, [3, 3, 0.02, 3], (idx.size, 4))
        r = rng.uniform(0.5, 30, (idx.size, 4)) * [1, 1, 1e-4, 1] if custom_r else None
        r_used = kf.measurement_var(idx) if r is None else r
        kf.update(idx, z, r)
        for k, i in enumerate(idx):
            refs[i].update(z[k][:, None], R=np.diag(r_used[k]))
        np.testing.assert_allclose(kf.mean, np.stack([ref.x[:, 0] for ref in refs]), **TOL)
        np.testing.assert_allclose(kf.covariance, np.stack([ref.P for ref in refs]), **TOL)


def test_gating_distance_is_mahalanobis() -> None:
    rng = np.random.default_rng(3)
    kf = KalmanBoxFilter()
    kf.initiate(_random_boxes(rng, 5))
    kf.predict(0.1)
    z = _random_boxes(rng, 4)
    H = kf.observation_matrix()
    d2 = kf.gating_distance(z)
    r = rng.uniform(1, 9, (4, 4))
    d2r = kf.gating_distance(z, r=r)
    d2p = kf.gating_distance(z, index=np.array([3, 1]), only_position=True)
    for i in range(5):
        P = kf.covariance[i]
        for j in range(4):
            y = z[j] - H @ kf.mean[i]
            S = H @ P @ H.T + kf.measurement_noise(kf.mean[i, 3])
            assert d2[i, j] == pytest.approx(y @ np.linalg.solve(S, y), rel=1e-12)
            S = H @ P @ H.T + np.diag(r[j])
            assert d2r[i, j] == pytest.approx(y @ np.linalg.solve(S, y), rel=1e-12)
    i = 3
    y = (z - kf.mean[i, :4])[:, :2]
    S = (H @ kf.covariance[i] @ H.T + kf.measurement_noise(kf.mean[i, 3]))[:2, :2]
    np.testing.assert_allclose(d2p[0], np.einsum("mi,ij,mj->m", y, np.linalg.inv(S), y), rtol=1e-12)


def test_chi2_table_matches_scipy() -> None:
    for p, row in CHI2_GATE.items():
        for dof, value in row.items():
            assert value == pytest.approx(chi2.ppf(p, dof), abs=1e-4)


def test_boxes_velocities_and_keep() -> None:
    rng = np.random.default_rng(4)
    kf = KalmanBoxFilter()
    z = _random_boxes(rng, 6)
    kf.initiate(z)
    np.testing.assert_allclose(kf.boxes_xyxy(), cxcyah_to_xyxy(z), rtol=1e-12)
    np.testing.assert_allclose(xyxy_to_cxcyah(kf.boxes_xyxy()), z, rtol=1e-12)
    kf.mean[:, 4:] = rng.normal(0, [50, 50, 0.1, 20], (6, 4))
    b0, v = kf.boxes_xyxy(), kf.velocities_xyxy()
    eps = 1e-6
    kf.predict(eps)
    np.testing.assert_allclose((kf.boxes_xyxy() - b0) / eps, v, rtol=1e-4, atol=1e-4)
    keep = np.array([4, 0])
    mean, cov = kf.mean[keep].copy(), kf.covariance[keep].copy()
    kf.keep(keep)
    assert len(kf) == 2
    np.testing.assert_array_equal(kf.mean, mean)
    np.testing.assert_array_equal(kf.covariance, cov)


def test_dt_zero_is_identity_and_validation() -> None:
    kf = KalmanBoxFilter()
    kf.initiate(np.array([[10.0, 20.0, 0.5, 40.0]]))
    kf.mean[0, 4:] = 5.0
    mean, cov = kf.mean.copy(), kf.covariance.copy()
    kf.predict(0.0)
    np.testing.assert_array_equal(kf.mean, mean)
    np.testing.assert_array_equal(kf.covariance, cov)
    kf.update(np.zeros(0, int), np.zeros((0, 4)))
    np.testing.assert_array_equal(kf.mean, mean)
    with pytest.raises(ValueError, match="std_weight_position"):
        KalmanBoxFilter(std_weight_position=-1.0)
    with pytest.raises(ValueError, match="reference_dt_s"):
        KalmanBoxFilter(reference_dt_s=float("nan"))
