"""Rate and ETA from what the store acknowledged, over a sliding window (util/rates.py)."""

from __future__ import annotations

from transferd.util.rates import RateWindow, settled

MIB = 1 << 20


def test_the_rate_is_of_bytes_sent_not_read() -> None:
    window = RateWindow(window=20.0, min_span=5.0)
    # 8 MiB/s acknowledged while the reader is 60 MiB ahead: 80 MiB of source, 1:1 ratio
    for t in range(11):
        sent = 8 * MIB * t
        packed = min(80 * MIB, 60 * MIB + sent)  # the reader is 60 MiB ahead of the uploads
        done = settled(reused=0, deduplicated=0, new=packed, sealed=packed, sent=sent)
        window.add(float(t), sent, done)

    estimate = window.estimate(total=200 * MIB)

    assert estimate.rate == 8 * MIB
    assert estimate.eta_seconds == (200 - 80) / 8  # 80 MiB acknowledged, 8 MiB/s


def test_no_rate_before_the_minimum_span() -> None:
    window = RateWindow(min_span=5.0)
    window.add(0.0, 0, 0)
    window.add(2.0, 16 * MIB, 16 * MIB)  # one pack on the bucket's burst: not a rate

    assert window.estimate(total=None).rate is None


def test_the_window_slides() -> None:
    window = RateWindow(window=10.0, min_span=1.0)
    for t in range(10):
        window.add(float(t), 100 * MIB * t, 0)  # fast at first
    for t in range(10, 40):
        window.add(float(t), 900 * MIB + MIB * (t - 9), 0)  # then 1 MiB/s

    assert window.estimate(total=None).rate == MIB


def test_settled_counts_new_plaintext_in_the_proportion_sent() -> None:
    # 10 MiB new, sealed to 5 MiB of packs of which 1 MiB acknowledged; 2 MiB reused
    assert settled(reused=2 * MIB, deduplicated=0, new=10 * MIB, sealed=5 * MIB, sent=MIB) == (
        4 * MIB
    )
    # deduplicated bytes are held by the store already; read-ahead not yet packed is not
    assert settled(reused=0, deduplicated=3 * MIB, new=0, sealed=0, sent=0) == 3 * MIB
