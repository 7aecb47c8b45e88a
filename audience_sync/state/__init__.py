"""The state database: schema, run ledger, desired state and its deltas, confirmation, run lock."""
