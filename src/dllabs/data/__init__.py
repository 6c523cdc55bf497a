"""LightningDataModules and their Datasets: files, splits, transforms, loaders."""
