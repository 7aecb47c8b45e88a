"""Listrak Email API: models of the published contract, the HTTP client and import building."""
