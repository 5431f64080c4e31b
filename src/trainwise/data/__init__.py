"""Data: sources → splits (train-only statistics) → loaders (in-memory fast path or DataLoader)."""

from trainwise.data.loaders import DeviceDataLoader, InMemoryLoader, make_loader
from trainwise.data.sources import EMBEDDED, from_arrays, load_source
from trainwise.data.splits import Preprocess, Split, Splits, split_table
from trainwise.data.table import Table

__all__ = ["EMBEDDED", "DeviceDataLoader", "InMemoryLoader", "Preprocess", "Split", "Splits", "Table",
           "from_arrays", "load_source", "make_loader", "split_table"]
