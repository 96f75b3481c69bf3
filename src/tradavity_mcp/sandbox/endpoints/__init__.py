"""The sandbox's v1 endpoints, one module per family of paths.

Each module holds plain async handlers (`Ctx -> Result`); none registers itself. The
table that maps a method and path to its handler and scope is `sandbox/routes.py`.
"""
