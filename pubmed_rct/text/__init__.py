"""The text wing: raw text made what the model reads (Unicode clean-up, numbers), structured abstracts' headings
(NLM's list), sentence splitting, and a labelled abstract's sections."""
