"""Constructor keywords named like ``to_linen``'s own parameters.

``to_linen(Cls, *args, **kwargs)`` passes ``kwargs`` on to ``Cls``, except
those it takes for itself. An NNX class whose ``__init__`` has a keyword of
such a name never receives it, and nothing says so. The probe class
(conformance/modules/zoo.py ``KwargsProbe``) records every keyword it receives.
"""

import pytest

from conformance.modules import zoo


@pytest.mark.parametrize("keyword", list(zoo.PROBE_KWARGS))
def test_zoo_kwarg_reaches_module_or_is_rejected(keyword):
    value = zoo.PROBE_KWARGS[keyword]
    got = zoo.probe_kwarg(keyword)
    call = f"to_linen(KwargsProbe, {keyword}={value!r}).init(...)"
    if isinstance(got, Exception):
        assert keyword in str(got), f"{call} raised without naming {keyword!r}: {type(got).__name__}: {got}"
        return
    assert got, f"{call} never constructed the module"
    missing = [i for i, seen in enumerate(got) if seen is zoo._UNSET]
    assert not missing, (
        f"{call}: the module was constructed {len(got)} times and never received {keyword}= "
        f"(to_linen consumed it silently); first release taking the name: {zoo.TO_LINEN_PARAMETERS.get(keyword, 'none')}"
    )
    wrong = [seen for seen in got if seen != value]
    assert not wrong, f"{call}: the module received {keyword}={wrong[0]!r}, but should receive {value!r}"
