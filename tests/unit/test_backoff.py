import threading

import pytest

from argora_common.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_delays_double_from_the_base_up_to_the_cap(clock: Clock) -> None:
    backoff: Backoff[str] = Backoff(30, 600, clock)
    assert [backoff.failed("a") for _ in range(7)] == [30, 60, 120, 240, 480, 600, 600]
    assert backoff.failures("a") == 7


def test_keys_count_on_their_own(clock: Clock) -> None:
    backoff: Backoff[tuple[str, str]] = Backoff(2, 30, clock)
    backoff.failed(("ns", "a"))
    backoff.failed(("ns", "a"))
    assert backoff.failed(("ns", "b")) == 2
    assert backoff.failed(("ns", "a")) == 8


def test_next_attempt_is_due_once_the_delay_passed(clock: Clock) -> None:
    backoff: Backoff[str] = Backoff(30, 600, clock)
    assert backoff.due("a")  # never failed
    backoff.failed("a")
    clock.now += 29.9
    assert not backoff.due("a")
    clock.now += 0.1
    assert backoff.due("a")
    backoff.failed("a")
    clock.now += 59.9
    assert not backoff.due("a")
    clock.now += 0.1
    assert backoff.due("a")


def test_reset_starts_again_at_the_base_and_empties_the_table(clock: Clock) -> None:
    backoff: Backoff[str] = Backoff(30, 600, clock)
    for key in ("a", "b"):
        backoff.failed(key)
        backoff.failed(key)
    assert len(backoff) == 2
    backoff.reset("a")
    backoff.reset("b")
    backoff.reset("never-failed")
    assert len(backoff) == 0
    assert backoff.due("a") and backoff.failures("a") == 0
    assert backoff.failed("a") == 30


def test_an_outage_of_many_failures_stays_at_the_cap(clock: Clock) -> None:
    backoff: Backoff[str] = Backoff(30, 600, clock)
    assert backoff.delay(1) == 30
    assert backoff.delay(100_000) == 600  # no OverflowError after days of failures


@pytest.mark.parametrize(("base", "maximum"), [(0, 10), (-1, 10), (20, 10)])
def test_base_must_be_positive_and_within_the_cap(base: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="need 0 < base <= max"):
        Backoff(base, maximum)


def test_concurrent_failures_are_all_counted() -> None:
    backoff: Backoff[str] = Backoff(1, 600)
    threads = [threading.Thread(target=lambda: [backoff.failed("a") for _ in range(200)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backoff.failures("a") == 1600
