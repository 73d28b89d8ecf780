"""Sequential sentence classification of medical abstracts (PubMed RCT)."""
