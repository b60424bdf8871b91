"""lattigo-fleet: a fleet of Lattigo SIMs declared in fleet.yaml and reconciled through Pulumi."""
