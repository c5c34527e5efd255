"""A small MDP in icu-sepsis's dynamics.npz layout (last three states: death,
survival, s_inf), for tests of the sepsis code paths without the package."""

import numpy as np

LIVE, ACTIONS = 3, 2


def write(path, seed: int = 0):
  rng = np.random.default_rng(seed)
  s = LIVE + 3
  p = np.zeros((s, ACTIONS, s))
  p[:LIVE] = rng.dirichlet(np.ones(s - 1), size=(LIVE, ACTIONS)) @ np.eye(s - 1, s)
  p[LIVE:, :, s - 1] = 1.0
  r = np.zeros_like(p)
  r[:LIVE, :, s - 2] = 1.0
  d0 = np.r_[np.ones(LIVE) / LIVE, 0, 0, 0]
  expert = np.r_[rng.dirichlet(np.ones(ACTIONS), size=LIVE), np.zeros((3, ACTIONS))]
  np.savez(path, tx_mat=p, r_mat=r, d_0=d0, expert_policy=expert)
  return path


def survival_np(path, policy) -> float:
  """P(reaching survival) under `policy` (S, A): a linear solve over live states."""
  with np.load(path) as d:
    p, d0 = d["tx_mat"], d["d_0"]
  p_pi = np.einsum("sa,sat->st", policy, p)[:LIVE]
  q, b = p_pi[:, :LIVE], p_pi[:, LIVE + 1]
  v = np.linalg.solve(np.eye(LIVE) - q, b)
  return float(d0[:LIVE] @ v)
