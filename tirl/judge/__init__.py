"""Judge, refiner and repairer models: chat models reached through the Engine interface (the
policy's own engine or another local model), with their prompts kept as package files
(``tirl/judge/prompts/*.txt``) so they can be read and changed without touching code."""
