"""The prepared on-disk format every dataset is imported into: arrays (``prepared``), kept JPEG files
(``jpeg``), and re-checking them (``verify``)."""
