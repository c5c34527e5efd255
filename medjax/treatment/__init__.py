"""Personalised treatment: patient simulators in JAX (agents and training to follow).

Packages:
  envs   the UVA/Padova T1D simulator (simglucose) and the ICU-Sepsis MDP
"""
