"""The modeling wing: the model's stored settings (spec), inputs built from sentences (encoding), batches
(batching), and the model itself: built, loaded, read fast (model)."""
