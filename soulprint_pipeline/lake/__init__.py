"""Where every asset is kept: versioned partitions and Parquet parts, over fsspec."""
