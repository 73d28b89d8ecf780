"""The training wing: the loop (loop), the whole step as CUDA graphs (cuda_graphs), checkpoints a killed run
resumes from (checkpoints), and the scores (metrics)."""
