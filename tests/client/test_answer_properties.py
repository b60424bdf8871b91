"""Any answer at all, to every endpoint: the client returns a well-typed result or raises a LattigoError.

Arbitrary JSON (biased towards the keys the readers look for, and towards near-valid answers), and bytes
that are not JSON, with an arbitrary status and pagination/Retry-After/Location headers, are fed through
the client's whole reading path (streamed body, bounds, JSON decoding, shape check, reader) by a canned
transport adapter: no socket, no sleeping. ``bench/fuzz_client.py`` runs the same for longer.
"""

from __future__ import annotations

import json
import string
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from devtools.canned_client import ENDPOINTS, HEADERS, ICCIDS, IMEIS, KEYS, NAMES, STATUSES, canned_client
from lattigo_fleet.client import LattigoError

# Hypothesis keeps its files in a temporary directory, not in the working tree.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-client-"))

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["Success", "Error: Device does not exist.", "active", *ICCIDS, *NAMES])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=10,
)
DEVICE = st.fixed_dictionaries(
    {
        "iccid": st.sampled_from(ICCIDS) | JSON,
        "device_name": st.sampled_from(NAMES) | JSON,
        "state": st.text(max_size=8),
    },
    optional={"imei": JSON, "note": JSON, "cost_center": JSON},
)
ROW_ANSWER = st.fixed_dictionaries(
    {
        "processed": st.lists(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=3), max_size=3) | JSON,
        "unprocessed": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "device_index": st.integers(-3, 5) | JSON,
                    "error": st.text(max_size=30) | JSON,
                    "input": st.fixed_dictionaries({}, optional={"iccid": st.sampled_from(ICCIDS), "imei": JSON}),
                },
            ),
            max_size=3,
        )
        | JSON,
    }
)
STATUS_ANSWER = st.dictionaries(
    st.sampled_from(["change_status", "status"]),
    st.dictionaries(st.sampled_from([*ICCIDS, *IMEIS, *NAMES]) | st.text(max_size=4), SCALARS, max_size=4) | JSON,
    min_size=1,
    max_size=2,
)
NEAR_VALID = (
    st.lists(DEVICE, max_size=3)
    | DEVICE
    | ROW_ANSWER
    | STATUS_ANSWER
    | st.lists(st.fixed_dictionaries({"name": st.text(max_size=8) | JSON}), max_size=3)
    | st.lists(st.text(max_size=8), max_size=4)
    | st.dictionaries(st.sampled_from([*ICCIDS, *NAMES]), SCALARS, min_size=1, max_size=2)
)
BODY = (JSON | NEAR_VALID).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64)
HEADER_VALUES = st.text(alphabet=string.digits + "-/:. abcxyz", max_size=8) | st.integers(-2, 12).map(str)


@st.composite
def answers(draw: st.DrawFn) -> tuple[int, dict[str, str], bytes]:
    status = draw(st.sampled_from(STATUSES))
    headers = draw(st.dictionaries(st.sampled_from(HEADERS), HEADER_VALUES, max_size=3))
    return status, headers, draw(BODY)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers())
def test_any_answer_to_any_endpoint_is_a_typed_result_or_a_lattigo_error(
    answer: tuple[int, dict[str, str], bytes],
) -> None:
    """Each generated answer is given to every endpoint in turn (generating is the costly part)."""
    status, headers, body = answer
    for endpoint, (call, well_typed) in ENDPOINTS.items():
        client = canned_client(status, headers, body)
        try:
            result = call(client)
        except LattigoError:
            continue
        except Exception as exc:  # the property: nothing else, ever
            raise AssertionError(f"{endpoint} raised {exc.__class__.__name__}: {exc}") from exc
        finally:
            client.close()
        assert well_typed(result), (endpoint, result)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_a_200_that_is_not_the_documented_shape_is_never_a_full_success(endpoint: str) -> None:
    """The bugs of the issue as a table: the error object, an empty array, a bare string."""
    call, _ = ENDPOINTS[endpoint]
    for body in ({"error": "internal failure"}, "OK"):
        client = canned_client(200, {}, json.dumps(body).encode())
        try:
            result = call(client)
        except LattigoError:
            continue
        # Bulk calls contain a bad answer to the devices of its chunk: none of them succeeded.
        assert not getattr(result, "succeeded", None) and not getattr(result, "accepted", None), (endpoint, body)
        assert getattr(result, "failed", None) or getattr(result, "rejected", None), (endpoint, body)
