// RuleEngine: work in progress.
