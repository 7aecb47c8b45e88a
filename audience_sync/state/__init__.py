"""The state database: schema, run ledger, staging, set-based diff, confirmation, run lock."""
