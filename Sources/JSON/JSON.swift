// JSON: work in progress.
