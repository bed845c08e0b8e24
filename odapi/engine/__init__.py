"""Training on TF Model Garden: config resolution, pre-flight checks, the run itself, manifests."""
