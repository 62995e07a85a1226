"""The version of lightkit, in one place (the package, the CLI and the build read it)."""

VERSION = "0.1.0"
