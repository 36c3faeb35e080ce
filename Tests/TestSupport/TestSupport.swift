// TestSupport: work in progress.
