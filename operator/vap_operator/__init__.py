"""VAP orchestrator and runtimes (named vap_operator: `operator` would shadow the standard library)."""
