"""Synthetic datasets in the SPEC section 6 directory format (`pstreams seed generate`)."""

from processor.seed.generate import DATASET_FILES, Dataset, generate, write_dataset
from processor.seed.options import SeedOptions

__all__ = ["DATASET_FILES", "Dataset", "SeedOptions", "generate", "write_dataset"]
