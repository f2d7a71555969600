"""The operators' surface over the ledger: read queries, repair actions, the HTTP API and its
dashboard. `read_model` is plain functions over SQLAlchemy Core, shared by the API and the CLI.
"""
