"""The literature wing: label whole literatures (PubMed/MEDLINE XML, JSON Lines, Parquet; local or S3) on Spark,
the executors reading, labelling and writing, the driver planning and recording (docs/label.md)."""
