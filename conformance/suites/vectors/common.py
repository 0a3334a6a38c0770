"""What the vector tests share: a short summary of the vectors a case got wrong, and the
verdicts on NIST FAIL vectors and SigVer results."""

from conformance.returncodes import SEVERITIES, judge, severity_of

SHOWN = 3  # failing vectors spelled out in a message; the rest are counted


def summary(problems, vectors):
    """'2 of 25 vectors: <first>; <second>'."""
    shown = "; ".join(problems[:SHOWN])
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return f"{len(problems)} of {len(vectors)} vectors wrong: {shown}{more}"


def judge_refusals(function, condition, accepted, refusals, vectors, what):
    """The verdict on a case's FAIL vectors: each must be refused with the code the spec
    names for `condition`. `accepted` are problem lines of vectors the module accepted (a
    `must` failure); `refusals` are (vector description, CKR name) of the others, of which
    the gravest wrong code is judged (conformance.returncodes), with how many share it."""
    assert not accepted, f"{what} must refuse a NIST FAIL vector: {summary(accepted, vectors)}"
    wrong = [(SEVERITIES.index(severity), description, code)
             for description, code in refusals
             if (severity := severity_of(function, condition, code)) is not None]
    if wrong:
        _, description, code = min(wrong)
        judge(function, condition, code, f"{what} of {len(wrong)} of {len(vectors)} NIST FAIL "
              f"vectors (e.g. {description})")


def judge_sigver(results, vectors, what):
    """The verdict on SigVer vectors, `results` being (description, valid, CKR name) per
    vector: a valid signature must verify and an invalid one must not (`must`); the
    refusals of invalid ones are judged as CKR_SIGNATURE_INVALID (base §5.12.2)."""
    problems = [f"{description}: {'rejected' if code == 'CKR_SIGNATURE_INVALID' else code}"
                for description, valid, code in results if valid and code != "CKR_OK"]
    problems += [f"{description}: accepted" for description, valid, code in results
                 if not valid and code == "CKR_OK"]
    assert not problems, (f"{what} must accept the valid and reject the invalid NIST "
                          f"signatures: {summary(problems, vectors)}")
    judge_refusals("C_Verify", "signature-invalid", [],
                   [(description, code) for description, valid, code in results
                    if not valid], vectors, what)
