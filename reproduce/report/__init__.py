"""The results page a researcher reads: every artifact's table beside the published values, its
verdicts, claims and figure (``reproduce report``), sources cited as papers, and run progress."""
