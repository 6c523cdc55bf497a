"""Lightning callbacks: divergence guard, metric history, RNG state, histograms, plots, text samples."""
