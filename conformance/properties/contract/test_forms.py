"""Constructor-kwargs form (to_linen(Cls, out_features=F)) and closure form agree."""

from conformance.helpers.harness import case_x, dummy_x, given_data, jit_apply, jit_init, numerics, seed_array
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_equal, reporting


@given_data(0.5)
def test_kwargs_form_matches_closure(device, data):
    case = draw_case(data, device, batched=None)
    check = """
    vk = linen_module(x.shape[-1], int(features), 'kwargs').init(prng_key(seed), x)
    vc = linen_module(x.shape[-1], int(features)).init(prng_key(seed), x)
    assert_trees_equal("kwargs-form variables", vk, vc, "closure-form variables")
    assert_equal("kwargs-form y", linen_module(x.shape[-1], int(features), 'kwargs').apply(vk, x), linen_module(x.shape[-1], int(features)).apply(vc, x), "closure-form y")
    """
    with numerics(case), reporting("kwargs form == closure form", case, check):
        x = case_x(case)
        seed = seed_array(case.seed_int)
        dummy = dummy_x(case)
        closure = jit_init(case.width, case.features_int, "closure")(seed, dummy)
        kwargs = jit_init(case.width, case.features_int, "kwargs")(seed, dummy)
        assert_trees_equal("kwargs-form variables", kwargs, closure, "closure-form variables")
        y_closure = jit_apply(case.width, case.features_int, "closure")(closure, x)
        y_kwargs = jit_apply(case.width, case.features_int, "kwargs")(kwargs, x)
        assert_equal("kwargs-form y", y_kwargs, y_closure, "closure-form y")
