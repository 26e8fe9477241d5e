"""Trajectory reward model (AutoTraj, arXiv 2601.23032; ALGORITHMS.md §7): a scalar head on the
policy's base model with LoRA, trained with the Bradley-Terry loss on preference pairs, served
as a reward term in RL on exactly the text rendering it was trained on."""
