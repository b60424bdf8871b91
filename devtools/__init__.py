"""The project's own development tools, shared by tests/ and bench/ (never shipped in the wheel): a real
Pulumi stack on a file backend (pulumi_stack), a fleet-file generator for property tests and fuzzing
(fleetgen), and a Lattigo client whose every request gets a canned answer (canned_client).

Both tests/ and bench/ import from here; neither imports the other.
"""
