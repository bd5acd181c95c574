"""
Message synchronisation without message_filters: approximate-time matching and a latest slot.

``message_filters`` is not on PyPI, so the node uses these when it cannot import it. Both are
thread-safe: rclpy may run subscription callbacks on several executor threads, and the
inference thread takes frames while callbacks put them.
"""

import itertools
import threading


class ApproximateTimeSynchronizer:
    """
    Match messages of several inputs whose stamps lie within ``slop_s`` of each other.

    Semantics of ``message_filters.ApproximateTimeSynchronizer`` (Python version): each input
    keeps at most ``queue_size`` messages keyed by stamp (the oldest stamp is evicted first, so
    out-of-order arrivals are handled); when a message arrives, the set made of it and one
    queued message of every other input with the smallest stamp spread (max - min <= slop) is
    passed to ``callback`` and removed from the queues. Messages older than a match stay
    queued (a late message of another input can still match them) until evicted.

    The callback runs on the thread that called :meth:`add`, outside the internal lock, so it
    may call :meth:`add` itself.
    """

    def __init__(self, num_inputs, slop_s, queue_size, callback):
        """
        Create the synchroniser.

        :param num_inputs: number of inputs (>= 1).
        :param slop_s: largest accepted stamp spread within a match, seconds (>= 0).
        :param queue_size: messages kept per input (>= 1).
        :param callback: called as ``callback(msg_0, ..., msg_{n-1})`` on each match.
        :raises ValueError: for invalid arguments.
        """
        if int(num_inputs) < 1:
            raise ValueError('num_inputs must be >= 1, got %r' % (num_inputs,))
        if not float(slop_s) >= 0.0:
            raise ValueError('slop_s must be >= 0 seconds, got %r' % (slop_s,))
        if int(queue_size) < 1:
            raise ValueError('queue_size must be >= 1, got %r' % (queue_size,))
        self.num_inputs = int(num_inputs)
        self.slop_s = float(slop_s)
        self.queue_size = int(queue_size)
        self.callback = callback
        self._queues = [{} for _ in range(self.num_inputs)]
        self._lock = threading.Lock()
        self.matched = 0
        self.dropped = 0

    def add(self, index, msg, stamp_s):
        """
        Add a message of input ``index`` and run the callback if it completes a match.

        :param index: input number, 0..num_inputs-1.
        :param msg: the message (any object).
        :param stamp_s: its stamp in seconds (e.g. ``conversions.stamp_to_seconds``).
        :return: True when a match was passed to the callback.
        :raises IndexError: for an input number out of range.
        """
        if not 0 <= index < self.num_inputs:
            raise IndexError('input index %r out of range 0..%d' % (index, self.num_inputs - 1))
        stamp_s = float(stamp_s)
        with self._lock:
            queue = self._queues[index]
            if stamp_s in queue:
                self.dropped += 1  # the same stamp twice on one input: keep the newest
            queue[stamp_s] = msg
            while len(queue) > self.queue_size:
                del queue[min(queue)]
                self.dropped += 1
            match = self._find_match(index, stamp_s)
            if match is None:
                return False
            msgs = [self._queues[i].pop(stamp) for i, stamp in enumerate(match)]
            self.matched += 1
        self.callback(*msgs)
        return True

    def _find_match(self, index, stamp_s):
        """Return the stamps (one per input) of the tightest match containing the new message."""
        candidates = []
        for i, queue in enumerate(self._queues):
            if i == index:
                candidates.append((stamp_s,))
                continue
            near = sorted((s for s in queue if abs(s - stamp_s) <= self.slop_s),
                          key=lambda s: abs(s - stamp_s))
            if not near:
                return None
            candidates.append(near)
        best, best_spread = None, None
        for stamps in itertools.product(*candidates):
            spread = max(stamps) - min(stamps)
            if spread <= self.slop_s and (best_spread is None or spread < best_spread):
                best, best_spread = stamps, spread
        return best

    def queued(self):
        """Return the number of queued messages per input (list of int)."""
        with self._lock:
            return [len(queue) for queue in self._queues]

    def clear(self):
        """Drop every queued message (not counted as dropped)."""
        with self._lock:
            for queue in self._queues:
                queue.clear()


class LatestFrameSlot:
    """
    A one-item mailbox between message callbacks and the inference thread.

    Only the newest item is kept: putting a new item while the previous one has not been taken
    replaces it and counts it in ``dropped``. So a slow consumer always gets the most recent
    frame and memory never grows.
    """

    def __init__(self):
        """Create an empty slot."""
        self._condition = threading.Condition()
        self._item = None
        self._has_item = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0
        self.taken = 0

    def put(self, item):
        """
        Store ``item``, replacing an untaken one.

        :param item: anything (None is a valid item).
        :return: True if it replaced an item that was never taken (a dropped frame).
        """
        with self._condition:
            replaced = self._has_item
            if replaced:
                self.dropped += 1
            self._item = item
            self._has_item = True
            self.put_count += 1
            self._condition.notify()
            return replaced

    def take(self, timeout_s=None):
        """
        Take the newest item, waiting for one up to ``timeout_s``.

        :param timeout_s: seconds to wait; None waits until an item comes or :meth:`close`;
            0 does not wait.
        :return: the item, or None on timeout or when closed and empty.
        """
        with self._condition:
            if not self._has_item and not self._closed:
                self._condition.wait_for(lambda: self._has_item or self._closed, timeout_s)
            if not self._has_item:
                return None
            item = self._item
            self._item = None
            self._has_item = False
            self.taken += 1
            return item

    def has_item(self):
        """Return True when an untaken item is waiting."""
        with self._condition:
            return self._has_item

    def close(self):
        """Wake every waiting :meth:`take` (they return None once the slot is empty)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self):
        """Undo :meth:`close` (e.g. when a lifecycle node is activated again)."""
        with self._condition:
            self._closed = False
