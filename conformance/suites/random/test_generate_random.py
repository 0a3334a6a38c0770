"""Random number generation."""

import pytest

LENGTHS = [1, 16, 32, 1024]


@pytest.mark.function("C_GenerateRandom")
@pytest.mark.parametrize("length", LENGTHS)
def test_generate_random_returns_requested_length(session, length):
    """PKCS#11 v2.40 base §5.15.2 C_GenerateRandom: the output has exactly ulRandomLen
    bytes."""
    got = session.generate_random(length * 8)
    assert len(got) == length, f"C_GenerateRandom({length}) returned {len(got)} bytes"


@pytest.mark.function("C_GenerateRandom")
def test_generate_random_outputs_differ(session):
    """PKCS#11 v2.40 base §5.15.2 C_GenerateRandom: successive 32-byte outputs differ
    (equal outputs have probability 2^-256 from a working generator)."""
    first, second = session.generate_random(256), session.generate_random(256)
    assert first != second, f"two C_GenerateRandom(32) calls both returned {first.hex()}"


@pytest.mark.function("C_GenerateRandom")
def test_generate_random_bits_are_balanced(session):
    """PKCS#11 v2.40 base §5.15.2 C_GenerateRandom: 20,000 output bits hold 10,000 +/- 600
    ones (8.5 standard deviations: a working generator fails this about once in 1e16
    runs; a stuck or biased one fails it at once)."""
    data = session.generate_random(20_000)
    ones = sum(bin(byte).count("1") for byte in data)
    assert 9_400 <= ones <= 10_600, (
        f"C_GenerateRandom output must have balanced bits: {ones} ones in 20,000 bits")
