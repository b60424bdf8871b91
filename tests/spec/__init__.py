"""Tests of lattigo_fleet.spec: fleet.yaml → validated, normalised desired state."""
