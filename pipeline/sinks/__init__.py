"""Outputs: Parquet datasets of whole part files."""
