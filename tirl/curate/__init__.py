"""Data curation between RL rounds: ET-Agent's group-wise Pareto task selection and data
flywheel, AutoTraj's trajectory quality score and repair. Offline pipelines built on the same
tasks, protocol, tools and engines as training."""
