"""Computed traits: Engage trait values written to typed Listrak profile fields (issue 16)."""
