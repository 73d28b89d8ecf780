"""The tracking wing: where runs are kept (store), a run's life and contents (runs), a stage's run from start to
end (stage_run), metrics sent off the training thread (sender), lineage both ways (lineage), the model registry
(registry) and the model card (card)."""
