"""Copies: many jobs run by many agents into one store (plan, leases, agent, copy manifests)."""
