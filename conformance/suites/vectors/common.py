"""What the vector tests share: a short summary of the vectors a case got wrong."""

SHOWN = 3  # failing vectors spelled out in a message; the rest are counted


def summary(problems, vectors):
    """'2 of 25 vectors: <first>; <second>'."""
    shown = "; ".join(problems[:SHOWN])
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return f"{len(problems)} of {len(vectors)} vectors wrong: {shown}{more}"
