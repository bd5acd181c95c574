"""Tests of ros/sync.py: approximate-time matching and the latest-frame slot."""

import threading
import time

import pytest

from hand_object_pose_ros.ros.sync import ApproximateTimeSynchronizer
from hand_object_pose_ros.ros.sync import LatestFrameSlot


def make_sync(num_inputs=2, slop_s=0.01, queue_size=5):
    """Return a synchroniser and the list its callback appends matches to."""
    matches = []
    sync = ApproximateTimeSynchronizer(num_inputs, slop_s, queue_size,
                                       lambda *msgs: matches.append(msgs))
    return sync, matches


def test_matches_within_slop_only():
    sync, matches = make_sync(slop_s=0.01)
    assert not sync.add(0, 'image@1.000', 1.000)
    assert not sync.add(1, 'info@1.020', 1.020)  # 20 ms apart: outside the slop
    assert matches == []
    assert sync.add(1, 'info@1.005', 1.005)
    assert matches == [('image@1.000', 'info@1.005')]
    # The matched messages are consumed; the unmatched one stays.
    assert sync.queued() == [0, 1]


def test_exact_match_and_three_inputs_pick_tightest_set():
    sync, matches = make_sync(num_inputs=3, slop_s=0.05)
    sync.add(0, 'a1', 1.00)
    sync.add(1, 'b1', 1.04)
    sync.add(1, 'b2', 1.01)
    assert matches == []
    sync.add(2, 'c', 1.00)
    # b2 is closer than b1: the spread of (1.00, 1.01, 1.00) is the smallest.
    assert matches == [('a1', 'b2', 'c')]
    assert sync.matched == 1


def test_callback_gets_messages_in_input_order():
    sync, matches = make_sync(num_inputs=3, slop_s=0.0)
    sync.add(2, 'third', 5.0)
    sync.add(0, 'first', 5.0)
    sync.add(1, 'second', 5.0)
    assert matches == [('first', 'second', 'third')]


def test_queue_bound_evicts_oldest_stamp_and_counts():
    sync, matches = make_sync(slop_s=0.001, queue_size=3)
    for k in range(10):
        sync.add(0, 'image%d' % k, float(k))
    assert sync.queued() == [3, 0]
    assert sync.dropped == 7
    sync.add(1, 'info0', 0.0)  # its partner was evicted long ago
    assert matches == []
    sync.add(1, 'info9', 9.0)
    assert matches == [('image9', 'info9')]


def test_out_of_order_stamps():
    sync, matches = make_sync(slop_s=0.001, queue_size=3)
    for stamp in (3.0, 1.0, 2.0):
        sync.add(0, 'image@%g' % stamp, stamp)
    sync.add(0, 'image@0.5', 0.5)  # older than all: it is the one evicted at once
    assert sync.queued() == [3, 0]
    sync.add(1, 'info@1', 1.0)
    sync.add(1, 'info@3', 3.0)
    sync.add(1, 'info@2', 2.0)
    assert matches == [('image@1', 'info@1'), ('image@3', 'info@3'), ('image@2', 'info@2')]


def test_invalid_arguments():
    with pytest.raises(ValueError, match='num_inputs'):
        ApproximateTimeSynchronizer(0, 0.1, 5, print)
    with pytest.raises(ValueError, match='slop_s'):
        ApproximateTimeSynchronizer(2, -0.1, 5, print)
    with pytest.raises(ValueError, match='queue_size'):
        ApproximateTimeSynchronizer(2, 0.1, 0, print)
    sync, _ = make_sync()
    with pytest.raises(IndexError, match='out of range'):
        sync.add(2, 'x', 0.0)


def test_concurrent_adds_match_every_pair_once():
    sync, matches = make_sync(slop_s=0.0001, queue_size=1000)
    count = 500

    def feed(index):
        for k in range(count):
            sync.add(index, (index, k), k * 0.01)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(matches) == count
    assert all(a[1] == b[1] for a, b in matches)
    assert sorted(a[1] for a, _ in matches) == list(range(count))
    assert sync.queued() == [0, 0]


def test_slot_keeps_only_newest_and_counts_drops():
    slot = LatestFrameSlot()
    assert slot.take(0) is None
    assert slot.put('frame1') is False
    assert slot.put('frame2') is True
    assert slot.put('frame3') is True
    assert slot.dropped == 2
    assert slot.take(0) == 'frame3'
    assert slot.take(0) is None
    assert slot.put('frame4') is False
    assert (slot.put_count, slot.taken, slot.dropped) == (4, 1, 2)


def test_slot_take_waits_then_times_out():
    slot = LatestFrameSlot()
    start = time.monotonic()
    assert slot.take(0.05) is None
    assert time.monotonic() - start >= 0.04
    threading.Timer(0.05, slot.put, args=('late',)).start()
    assert slot.take(5.0) == 'late'


def test_slot_close_wakes_waiters():
    slot = LatestFrameSlot()
    results = []
    waiter = threading.Thread(target=lambda: results.append(slot.take(None)))
    waiter.start()
    time.sleep(0.05)
    slot.close()
    waiter.join(5.0)
    assert not waiter.is_alive() and results == [None]
    slot.reopen()
    slot.put('again')
    assert slot.take(0) == 'again'


def test_slot_concurrent_put_take_accounts_for_every_item():
    slot = LatestFrameSlot()
    count = 2000
    received = []
    done = threading.Event()

    def consume():
        while not (done.is_set() and not slot.has_item()):
            item = slot.take(0.01)
            if item is not None:
                received.append(item)

    def produce(offset):
        for k in range(count):
            slot.put(offset + k)

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(p * count,)) for p in range(2)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    done.set()
    consumer.join(10.0)
    assert not consumer.is_alive()
    # Every put is either taken or dropped; nothing is duplicated or lost.
    assert slot.taken == len(received)
    assert slot.taken + slot.dropped == 2 * count == slot.put_count
    assert len(set(received)) == len(received)
    # Items of one producer come out in the order they were put.
    for p in range(2):
        own = [item for item in received if p * count <= item < (p + 1) * count]
        assert own == sorted(own)
