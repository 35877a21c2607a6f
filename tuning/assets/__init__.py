"""Data and teachers ready for trials: pinned sources fetched and cached, data split, teachers fine-tuned."""
