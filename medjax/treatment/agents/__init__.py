"""Agents for the treatment task: PPO, its networks and rollouts, and a PID baseline.

`protocol` states the env interface they are written against.
"""
