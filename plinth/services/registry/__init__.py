"""Model versions: register (artifact, contract, profile, metrics, lineage), load, edit."""
