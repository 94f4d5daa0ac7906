"""robustrl's benchmarks against its peers: ``python -m benchmarks`` (see ``__main__``)."""
