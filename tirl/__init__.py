"""tirl: reinforcement learning for tool-integrated reasoning agents."""

__version__ = "0.1.0"
