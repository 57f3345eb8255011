"""Feeding prepared data to training: the device loader and batches (``loader``), streamed JPEG splits
(``stream``), where the splits live (``placement``), hold-out cuts (``holdout``), mixed batches
(``composite``) and batched colour jitter (``color``)."""
