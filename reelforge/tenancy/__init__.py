"""Tenants and their credentials: managed API keys (`keys`) and the in-process view of them
that every API replica authenticates against (`ring`)."""
