"""Property-based tests (hypothesis) of the ingest decoder and the normalizer: whatever
bytes or values arrive, fogd answers with a reading or a clean error, never a crash."""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, settings, strategies as st

from fogd.config import Config
from fogd.errors import invalid_from
from fogd.model import ALERT_LEVELS, INGEST_DECODER, Reading
from fogd.plugins.default_normalize import discomfort_index, fogd_normalize_readings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20)

reading_like = st.fixed_dictionaries(
    {"node": st.text(max_size=70)},
    optional={"temperature": json_values, "humidity": json_values, "power": json_values, "seq": json_values,
              "timestamp": json_values, "extra": json_values, "role": json_values, "source": json_values,
              "junk": json_values})


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200) | json_values.map(msgspec.json.encode) | reading_like.map(msgspec.json.encode)
       | st.lists(reading_like, max_size=5).map(msgspec.json.encode))
def test_the_decoder_accepts_or_names_the_problem(body):
    try:
        decoded = INGEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        err = invalid_from(exc)
        assert err.status == 422 and err.extra["field"].startswith("$") and err.detail
        return
    except msgspec.DecodeError:
        return  # 400 malformed
    readings = decoded if isinstance(decoded, list) else [decoded]
    assert all(isinstance(r, Reading) for r in readings)


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(Reading, node=st.just("n"),
                          temperature=st.none() | st.floats(-90, 150),
                          humidity=st.none() | st.floats(0, 100),
                          power=st.none() | st.floats(0, 1e6)), min_size=1, max_size=20))
def test_the_normalizer_always_sets_a_tier_and_a_sane_comfort_index(readings):
    fogd_normalize_readings(readings, Config())
    for r in readings:
        assert r.alertStatus in ALERT_LEVELS
        if r.temperature is None or r.humidity is None:
            assert r.comfortIndex is None
        else:
            assert math.isfinite(r.comfortIndex)
            # Thom's index pulls the temperature towards 14.5 °C (never past it), and
            # equals the temperature at 100 %RH
            lo, hi = sorted((r.temperature, 14.5))
            assert lo - 0.01 <= r.comfortIndex <= hi + 0.01
            assert abs(discomfort_index(r.temperature, 100.0) - r.temperature) < 1e-9
