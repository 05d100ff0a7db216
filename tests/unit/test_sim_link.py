import pytest

from vibewatch.errors import ProtocolError
from vibewatch.sim import DeviceLink, LinkFaults


@pytest.mark.parametrize("field", ["loss", "duplicate", "reorder"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_fault_probabilities_outside_0_to_1_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"LinkFaults.{field}"):
        LinkFaults(**{field: value})


def test_a_device_id_off_the_contract_is_refused() -> None:
    with pytest.raises(ProtocolError, match="bad_device_id"):
        DeviceLink("pump 7", port=1883)
