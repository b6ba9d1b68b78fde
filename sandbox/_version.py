"""The release number, in a module that imports nothing: the client, the API and pyproject.toml
read it here, so none of them imports the package root (whose IPython hook imports the client)."""

__version__ = "0.1.0"
