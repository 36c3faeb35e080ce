// YAML: work in progress.
