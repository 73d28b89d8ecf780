"""The corpus wing: PubMed RCT read from the hub or the text format (sources), the pipeline's Parquet store
(store), the label maps (labels) and the answers to class imbalance (sampling)."""
