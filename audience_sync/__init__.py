"""audience_sync: keep Listrak CheckBox profile fields in step with Segment Engage audiences."""

__version__ = "0.1.0"
