"""pkcs11-conformance: a PKCS#11 interoperability conformance suite."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pkcs11-conformance")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
