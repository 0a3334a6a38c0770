"""Live interoperability: keys and data moving between modules (pairwise), and between
each module and the clients people use with it (pkcs11-tool, p11tool, OpenSSL's engine).

`pkcs11-conformance interop A.yaml B.yaml ...` runs these tests through pytest with this
package's plugin; every process opens every module, each on its own throwaway token.
"""
