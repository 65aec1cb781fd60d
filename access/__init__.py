"""Access control: principals, roles, purposes, minimization (see docs)."""
