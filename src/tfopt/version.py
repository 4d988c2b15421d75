"""tfopt's version (its own module: written into every tfopt.json without importing the API)."""

__version__ = "0.1.0"
