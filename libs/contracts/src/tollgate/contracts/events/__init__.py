"""Event payload models, one module per producing service.

Each module holds the `EventData` subclasses its service publishes and the value
objects and enums they use. Topic membership lives in `tollgate.contracts.topics`.
"""
