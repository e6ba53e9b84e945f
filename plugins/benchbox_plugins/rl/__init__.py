"""Reinforcement-learning algorithms and environments; nothing here imports benchbox (see tests/test_rl_pure.py)."""
