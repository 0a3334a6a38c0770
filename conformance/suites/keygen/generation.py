"""Helpers shared by the key generation tests: a cache that generates each key (or pair)
once per worker and request, for several tests to check."""

import hashlib

import pytest


class Generated:
    """What the module generated, once per request (session objects, each with a
    destroy(), all destroyed by close() or at the end of a `with` block). A failed
    generation is remembered and reported by every test that needs it, without retrying
    it."""

    function = "C_GenerateKey"  # the call named in the failure report

    def __init__(self, target, session):
        self.session = session
        self.made = target.cache()

    def once(self, what, generate):
        """generate(label, key_id) the first time `what` is asked for, with a label naming
        the request and an 8-byte CKA_ID derived from it; afterwards its result again, or
        its FAIL again."""
        if what not in self.made:
            label = f"conformance keygen {what}"
            key_id = hashlib.sha256(label.encode()).digest()[:8]
            try:
                self.made[what] = generate(label, key_id)
            except Exception as exc:  # noqa: BLE001 - remembered, reported as a FAIL
                self.made[what] = (f"{self.function}({what}) must succeed: "
                                   f"{type(exc).__name__}: {exc}")
        made = self.made[what]
        if isinstance(made, str):
            pytest.fail(made)
        return made

    def close(self):
        for made in self.made.values():
            if not isinstance(made, str):
                made.destroy()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
