"""The mutants of the mutation pass, which ``tools/mutants.py`` runs (see its docstring).

Each is one exact text substitution in one file (``old`` must occur there exactly once:
keep it short and distinctive, so that it survives unrelated edits), and the pytest
arguments of the tests that must kill it.  Where the code a mutant names changes, update
the mutant with it.  Grouped by where they apply; the first seven are issue 18's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the checkout
    old: str
    new: str
    tests: Sequence[str]  # pytest arguments: files, node ids, -k expressions
    what: str
    issue: bool = False  # one of issue 18's table
    equivalent: str = ""  # why it survives on purpose


SHARED = "pgwire_pubsub/_shared/pubsub.py"
VERIFYING = "pgwire_pubsub/_shared/verifying.py"
OPENING = "pgwire_pubsub/_shared/opening.py"
RECONNECT = "pgwire_pubsub/_shared/reconnect.py"
FANOUT = "pgwire_pubsub/_shared/fanout.py"
ROUTING = "pgwire_pubsub/_shared/routing.py"
CONNECTION = "pgwire_pubsub/_blocking/connection.py"
SOCKETIO = "pgwire_pubsub/_blocking/socketio.py"
BLOCKING = "pgwire_pubsub/_blocking/pubsub.py"
AIO = "pgwire_pubsub/aio/_connection.py"
EVENTS = "pgwire_pubsub/protocol/events.py"
DROPPING = "pgwire_pubsub/protocol/_dropping.py"

CONNECT_TIMEOUT_TESTS = (
    "tests/test_timeouts.py::test_connect_timeout_ends_a_start_up_that_never_answers",
    "tests/test_connect.py", "-k", "connect_timeout",
)
RECONNECT_TESTS = ("tests/test_reconnect_policy.py",)
BOUND_TESTS = ("tests/test_events_unit.py", "tests/test_backpressure.py")
VERIFY_TESTS = ("tests/test_timeouts.py", "-k", "verify")
FANOUT_TESTS = ("tests/test_fanout_unit.py",)
AFTER_A_LOSS_TESTS = ("tests/test_backpressure.py", "-k", "reconnection")

MUTANTS: List[Mutant] = [
    # -- issue 18's table ---------------------------------------------------------------
    Mutant("connect-timeout-x4", OPENING,
           "yield Deadline(params.connect_timeout)\n    plan",
           "yield Deadline(params.connect_timeout and params.connect_timeout * 4)\n    plan",
           CONNECT_TIMEOUT_TESTS, "connect_timeout multiplied by 4", issue=True),
    Mutant("connect-timeout-ignored", OPENING,
           "yield Deadline(params.connect_timeout)\n    plan",
           "yield Deadline(None)\n    plan",
           CONNECT_TIMEOUT_TESTS, "connect_timeout ignored", issue=True),
    Mutant("reconnect-ignores-max-duration", SHARED,
           "policy.gives_up(attempt, (yield Clock()) - started)",
           "policy.gives_up(attempt, 0.0)",
           RECONNECT_TESTS, "reconnection ignores the policy's max_duration", issue=True),
    Mutant("verify-no-op", VERIFYING,
           "        conn = yield from self._connected()\n        machine = conn.machine",
           "        return\n        conn = yield from self._connected()\n"
           "        machine = conn.machine",
           VERIFY_TESTS, "verify() made a no-op", issue=True),
    Mutant("queue-usage-zero", SHARED,
           "return float(rows[0][0])", "return 0.0",
           ("tests/test_reliability.py", "-k", "queue_usage"), "queue_usage() returns 0.0",
           issue=True),
    Mutant("select-timeout-none-as-0", SHARED,
           "deadline = None if timeout is None else (yield Clock()) + timeout",
           "deadline = (yield Clock()) + (timeout or 0)",
           ("tests/test_timeouts.py", "-k", "select_timeout_none"),
           "select_timeout=None treated as 0", issue=True),
    Mutant("every-target-holds", "benchmarks/bench_report.py",
           'out.append({"target": target, "measured": measured, "holds": holds})',
           'out.append({"target": target, "measured": measured, "holds": True})',
           ("tests/test_bench_targets.py",), "every benchmark target reported as holding",
           issue=True),
    # -- the rest of the pass: reconnection --------------------------------------------
    Mutant("gives-up-ignores-max-duration", RECONNECT,
           "return self.max_duration is not None and elapsed >= self.max_duration",
           "return False",
           RECONNECT_TESTS, "ReconnectPolicy.gives_up ignores max_duration"),
    Mutant("gives-up-ignores-max-attempts", RECONNECT,
           "if self.max_attempts is not None and attempts >= self.max_attempts:",
           "if False:",
           RECONNECT_TESTS, "ReconnectPolicy.gives_up ignores max_attempts"),
    Mutant("no-wait-between-attempts", SHARED,
           "if (yield Sleep(policy.delay(attempt))):", "if (yield Sleep(0)):",
           RECONNECT_TESTS, "no wait between reconnection attempts"),
    Mutant("max-delay-ignored", RECONNECT,
           "base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))",
           "base = self.initial_delay * self.multiplier ** (attempt - 1)",
           RECONNECT_TESTS, "the waits between attempts are not capped by max_delay"),
    Mutant("attempts-miscounted", SHARED,
           "Reconnected(down, conn.get_backend_pid(), attempt)",
           "Reconnected(down, conn.get_backend_pid(), 1)",
           RECONNECT_TESTS, "Reconnected.attempts is always 1"),
    Mutant("channels-not-listened-again", SHARED,
           "                for channel in sorted(self._server):\n"
           "                    yield Execute(\"LISTEN \" + quote_ident(channel), conn=conn)\n",
           "", RECONNECT_TESTS, "a reconnection does not LISTEN again"),
    # -- waits, health checks, verify(), notify_many ----------------------------------
    Mutant("wait-ignores-arrivals", SHARED,
           "if self._queue.items or (deadline is not None and (yield Clock()) >= deadline):",
           "if deadline is not None and (yield Clock()) >= deadline:",
           ("tests/test_timeouts.py", "-k", "select_timeout_none"),
           "a wait goes on after a notification arrived"),
    Mutant("health-check-not-due-within-a-wait", SHARED,
           "timeout = due if timeout is None else min(timeout, due)",
           "timeout = due if timeout is None else timeout",
           ("tests/test_timeouts.py", "-k", "health"),
           "a wait with a timeout puts the health check off to its end"),
    Mutant("health-check-timeout-ignored", SHARED,
           'yield Execute("", timeout=timeout)', 'yield Execute("")',
           ("tests/test_timeouts.py", "-k", "silent_server"),
           "the health check waits for its answer without limit"),
    Mutant("health-check-error-not-explained", SHARED,
           'if conn.closed == 2 and "timeout" in str(exc):',
           'if False:',
           ("tests/test_timeouts.py", "-k", "silent_server"),
           "a health check that times out is not called a dead connection"),
    Mutant("verify-keeps-the-private-channel", VERIFYING,
           "            raise\n        yield Execute(\"UNLISTEN \" + quote_ident(channel), "
           "timeout=timeout, conn=conn)",
           "            raise",
           VERIFY_TESTS, "verify() does not UNLISTEN"),
    Mutant("verify-keeps-the-private-channel-after-a-failure", VERIFYING,
           "            if not conn.closed:\n                yield Execute(\"UNLISTEN \"",
           "            if False:\n                yield Execute(\"UNLISTEN \"",
           VERIFY_TESTS, "a verify() that fails does not UNLISTEN"),
    Mutant("verify-spins-on-waiting-notifications", VERIFYING,
           "self._waited_read(left, lambda: False, more=True)",
           "self._waited_read(left, lambda: False)",
           VERIFY_TESTS, "verify() does not read on while other notifications wait"),
    Mutant("verify-takes-any-notification", VERIFYING,
           "lambda item: item.channel == channel and item.payload == token",
           "lambda item: True",
           VERIFY_TESTS, "verify() takes any notification for its own"),
    Mutant("verify-commands-unbounded", VERIFYING,
           "            yield Execute(sql, timeout=left, conn=conn)",
           "            yield Execute(sql, conn=conn)",
           VERIFY_TESTS, "verify()'s LISTEN and NOTIFY wait for their answers beyond its "
           "timeout, for ever when the peer vanished"),
    Mutant("verify-matches-the-channel-only", VERIFYING,
           "lambda item: item.channel == channel and item.payload == token",
           "lambda item: item.channel == channel",
           VERIFY_TESTS, "verify() does not check its token",
           equivalent="the channel is private (the backend's pid and 48 random bits): no "
           "other notification can come on it"),
    Mutant("notify-many-no-own-transaction", SHARED,
           "own_transaction = len(starts) > 1 and conn.machine.transaction_status == \"I\"",
           "own_transaction = False",
           ("tests/test_notify_many.py",), "notify_many's batches are not one transaction"),
    Mutant("lost-connection-raised-before-the-queue-is-taken", SHARED,
           "        except OperationalError as exc:\n            if has_something():\n"
           "                return\n",
           "        except OperationalError as exc:\n",
           ("tests/test_fake_server.py", "-k", "before_a_bad_message"),
           "a loss is raised before the notifications received ahead of it are taken"),
    # -- added with the shared procedures: _shared/pubsub.py --------------------------
    Mutant("giving-up-is-not-final", SHARED,
           "                    self._gave_up = exc\n", "",
           ("tests/test_reconnect_policy.py", "-k", "max_attempts"),
           "after giving up, the next call tries to reconnect again"),
    Mutant("commands-do-not-reconnect-first", SHARED,
           "if self.conn.closed == 2 and self.policy is not None:", "if False:",
           AFTER_A_LOSS_TESTS, "a command on a lost connection raises instead of reconnecting"),
    Mutant("marker-then-wait", SHARED,
           "        if has_something():  # a reconnection just marked the gap, for one\n"
           "            return\n", "",
           ("tests/test_fanout.py", "-k", "loss_seen"),
           "a wait goes on after the reconnection it made queued a Reconnected marker"),
    Mutant("verify-under-the-bound", VERIFYING,
           "bound, machine.bound = machine.bound, None", "bound = machine.bound",
           ("tests/test_reliability.py", "-k", "verify_with_a_full_bound"),
           "verify()'s own notification is subject to max_pending"),
    Mutant("notify-many-no-rollback", SHARED,
           "            if own_transaction and conn.closed == 0",
           "            if False and conn.closed == 0",
           ("tests/test_notify_many.py", "-k", "more_than_one_statement"),
           "a notify_many that fails half-way leaves its transaction open"),
    Mutant("get-events-crosses-an-overflow", SHARED,
           "            if events and type(queue[0]) is _Overflowed:\n                break\n", "",
           ("tests/test_backpressure.py", "-k", "get_events_stops"),
           "get_events() raises the overflow before handing over what came before it"),
    Mutant("unlisten-drops-a-subscribed-channel", SHARED,
           "        if channel not in wanted:\n", "        if True:\n",
           ("tests/test_fanout.py", "-k", "unlisten"),
           "unlisten() of a channel a subscription still wants sends UNLISTEN"),
    Mutant("close-while-reconnecting-ignored", SHARED,
           "        if self._closing:  # close() came", "        if False:  # close() came",
           ("tests/test_threads.py", "-k", "close_during_a_reconnection"),
           "close() during a connection attempt leaves the new connection open"),
    # -- _shared/opening.py ------------------------------------------------------------
    Mutant("hosts-in-reverse", OPENING,
           "    hosts = list(params.hosts)\n", "    hosts = list(reversed(params.hosts))\n",
           ("tests/test_failover.py", "-k", "first_host_is_skipped or keeps_the_order"),
           "the hosts are tried last to first"),
    Mutant("load-balance-ignored", OPENING,
           "    if shuffle:\n        pick.shuffle(hosts)",
           "    if False:\n        pick.shuffle(hosts)",
           ("tests/test_failover.py", "-k", "load_balance"),
           "load_balance_hosts=random keeps the order"),
    Mutant("prefer-standby-never-settles", OPENING,
           'passes = ("standby", "any") if', 'passes = ("standby",) if',
           ("tests/test_failover.py", "-k", "test_target_session_attrs"),
           "prefer-standby fails when no standby answers"),
    Mutant("target-session-attrs-ignored", OPENING,
           "            if reason is not None:\n", "            if False:\n",
           ("tests/test_failover.py", "-k", "target_session_attrs or no_host_meets"),
           "a session that does not meet target_session_attrs is kept"),
    Mutant("allow-never-tries-tls", OPENING,
           "            if number == len(plan) or not isinstance(exc, OperationalError):",
           "            if True:",
           ("tests/test_connect.py", "-k", "allow_falls_back"),
           "sslmode=allow does not try TLS when the plain attempt is refused"),
    Mutant("require-accepts-plain", OPENING,
           "        if tls.tls_required(params.sslmode):", "        if False:",
           ("tests/test_connect.py", "-k", "nossl_server_refuses"),
           "sslmode=require (verify-ca, verify-full) goes on without TLS when the server "
           "has none"),
    Mutant("verify-full-name-unchecked", OPENING,
           '    if params.sslmode == "verify-full" and not context.check_hostname:',
           "    if False:",
           ("tests/test_connect.py", "-k", "verify_full_rejects"),
           "verify-full does not check the name when the handshake could not (an address, "
           "sslsni=0)"),
    Mutant("deadline-kept-after-opening", OPENING,
           "            yield Deadline(None)\n", "",
           ("tests/test_cancel.py", "-k", "interrupts_a_command"),
           "connect_timeout's deadline is not lifted once the session is open",
           equivalent="no driver consults it after the opening: the blocking one drops its "
           "Opener, the asyncio one reads it only while opening, and cancel() opens anew "
           "with a deadline of its own"),
    # -- _shared/fanout.py and _shared/routing.py --------------------------------------
    Mutant("drop-oldest-count-not-carried", FANOUT,
           "excess += ready.popleft().dropped", "ready.popleft()",
           FANOUT_TESTS, "a subscription's second drop forgets the first one's count"),
    Mutant("raise-keeps-too-many", FANOUT,
           "        self.ready_notes += room\n", "",
           FANOUT_TESTS, "a subscription with overflow=raise holds more than its bound"),
    Mutant("raise-loss-not-carried", FANOUT,
           "excess += ready.pop().lost", "ready.pop()",
           FANOUT_TESTS, "a subscription's second overflow forgets the first one's loss"),
    Mutant("feed-frees-what-a-reader-needs", FANOUT,
           "if reader.cursor < keep_from:", "if reader.cursor > keep_from:",
           FANOUT_TESTS, "the feed frees entries a slow subscription has not read"),
    Mutant("feed-never-freed", FANOUT,
           "if keep_from - self.base > len(self.log) // 2:", "if False:",
           FANOUT_TESTS, "the feed keeps everything ever received"),
    Mutant("own-queue-gets-every-channel", FANOUT,
           "                if keep(channel):\n                    own.append(item)",
           "                own.append(item)",
           FANOUT_TESTS, "the client's queue gets notifications only subscriptions want"),
    Mutant("markers-not-fanned-out", FANOUT,
           "                for feed in self.feeds.values():\n                    feed.add(item)\n"
           "                    touched.add(feed)\n", "",
           FANOUT_TESTS, "subscriptions do not see the Reconnected marker"),
    Mutant("closed-subscription-still-counted", FANOUT,
           "        self._count(feed.channels, -1)\n", "",
           FANOUT_TESTS, "closing a subscription keeps its channels wanted (no UNLISTEN)"),
    Mutant("callback-loss-unreported", FANOUT,
           "            calls = [(cb, Dropped(lost)) for cb in seen] + calls\n", "",
           FANOUT_TESTS, "callbacks are not told that their backlog lost events"),
    Mutant("closing-a-subscription-unlistens-own-channels", ROUTING,
           "wanted = self.hub.wanted() | self.channels", "wanted = self.hub.wanted()",
           ("tests/test_fanout.py", "-k", "listen_follows"),
           "closing a subscription UNLISTENs a channel the client listens on itself"),
    Mutant("verify-lost-while-fanning-out", ROUTING,
           "return channel in self.channels or channel in self._private",
           "return channel in self.channels",
           ("tests/test_fanout.py", "-k", "verify"),
           "verify() fails while subscriptions are open (its notification is not kept)"),
    # -- the asyncio driver (aio/_connection.py) --------------------------------------
    Mutant("aio-commands-not-serialised", AIO,
           "        await self._lock.acquire()\n        release = True",
           "        release = False",
           ("tests/test_aio.py", "-k", "queued_never_interleaved"),
           "commands from several tasks interleave on the wire"),
    Mutant("aio-cancelled-command-left-running", AIO,
           "                    release = False\n"
           "                    self._in_background(self._finish_cancelled())",
           "                    pass",
           ("tests/test_aio.py", "-k", "cancelled_slow_command"),
           "a command cancelled while the server runs it is not finished in the background"),
    Mutant("aio-cancelled-command-not-cancelled", AIO,
           "                await self.cancel()\n", "                pass\n",
           ("tests/test_aio.py", "-k", "cancelled_slow_command"),
           "a command cancelled while the server runs it gets no CancelRequest"),
    Mutant("aio-input-deadline-ignored", AIO,
           "timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)",
           "timer = None",
           ("tests/test_timeouts.py", "-k", "asyncio and idle_wait"),
           "the asyncio client's waits ignore their deadline"),
    Mutant("aio-wait-ignores-more", AIO,
           "if self.machine.notifications.items and not more:",
           "if self.machine.notifications.items:",
           ("tests/test_timeouts.py", "-k", "asyncio and verify_waits"),
           "wait(more=True) returns at once while notifications wait"),
    Mutant("aio-received-bytes-are-not-activity", AIO,
           "        self.last_activity = self._loop.time()\n        self.bytes_received",
           "        self.bytes_received",
           ("tests/test_timeouts.py", "-k", "asyncio and received_traffic"),
           "received bytes do not put the asyncio client's health check off"),
    Mutant("aio-loss-wakes-nobody", AIO,
           "        self._disconnect()\n        self._wake()\n        if self.on_input",
           "        self._disconnect()\n        if self.on_input",
           ("tests/test_aio.py", "-k", "loses_the_connection"),
           "tasks waiting on a connection found lost by a command do not wake"),
    Mutant("aio-close-wakes-nobody", AIO,
           "        self._transport = self._stream = None\n        self._wake()",
           "        self._transport = self._stream = None",
           ("tests/test_aio.py", "-k", "close_from_another_task"),
           "close() does not wake the tasks waiting on the connection"),
    # -- the blocking PubSub (_blocking/pubsub.py) ------------------------------------
    Mutant("wait-beside-subscriptions-never-ends", BLOCKING,
           "                if left is not None and left <= 0:\n                    return\n", "",
           ("tests/test_fanout.py", "-k", "blocking and each_notification"),
           "get_event(select_timeout) never times out while subscriptions are open"),
    # -- the blocking driver ----------------------------------------------------------
    Mutant("received-bytes-are-not-activity", SOCKETIO,
           "        self.last_activity = time.monotonic()\n        machine.take_in()",
           "        machine.take_in()",
           ("tests/test_timeouts.py", "-k", "health"),
           "received bytes do not put the health check off"),
    Mutant("sent-bytes-are-not-activity", SOCKETIO,
           "                    raise TimeoutError(\"timeout expired\") from None\n"
           "        self.last_activity = time.monotonic()\n",
           "                    raise TimeoutError(\"timeout expired\") from None\n",
           ("tests/test_timeouts.py", "-k", "health"),
           "sent bytes do not put the health check off",
           equivalent="every send is a command whose answer is received (and counted) "
           "right after it"),
    Mutant("tls-buffered-bytes-unseen", SOCKETIO,
           "        if isinstance(sock, ssl.SSLSocket) and sock.pending():\n"
           "            return True\n",
           "",
           ("tests/test_pubsub.py", "-k", "burst_over_tls"),
           "select is trusted while the TLS layer holds decrypted bytes"),
    Mutant("interrupts-not-held", SOCKETIO,
           "        masking = _CAN_MASK and threading.get_ident() == _MAIN_THREAD\n",
           "        masking = False\n",
           ("tests/test_threads.py",), "Ctrl-C and SIGTERM are not held while "
           "the ssl module reads"),
    Mutant("read-lands-in-two-steps", SOCKETIO,
           "                any(map(buffer.extend, map(sock.recv, _SIZES)))",
           "                data = sock.recv(RECV_SIZE)\n                buffer.extend(data)",
           ("tests/test_interrupts.py",), "the bytes of a read reach the machine's buffer "
           "through Python code that an interrupt can cut"),
    Mutant("unsent-command-kept", CONNECTION,
           "                self.machine.withdraw_unsent()  # handed out, not a byte of it sent",
           "                pass",
           ("tests/test_interrupts.py", "-k", "command_goes_out"),
           "a command interrupted before a byte of it was written stays BUSY, and the next "
           "call waits for its reply for ever"),
    Mutant("send-deadline-ignored", SOCKETIO,
           "_, writable, _ = select.select([], [sock], [], remaining(deadline))",
           "_, writable, _ = select.select([], [sock], [], None)",
           ("tests/test_timeouts.py", "-k", "full_socket_buffer"),
           "a send blocked on a full socket buffer ignores its deadline"),
    Mutant("close-does-not-wake", CONNECTION,
           "                self._wake_writer.send(CLOSE)  # the busy call finishes the close",
           "                pass",
           ("tests/test_threads.py", "-k", "close"),
           "close() from another thread does not wake the waiting call"),
    # -- the bound (protocol/events.py) ----------------------------------------------
    Mutant("bound-counts-markers", EVENTS,
           "excess = size - _dropping.markers(queue) - self.max_pending",
           "excess = size - self.max_pending",
           BOUND_TESTS, "markers count toward max_pending"),
    Mutant("runs-counted-as-markers", DROPPING,
           " - kinds.count(list) - ", " - ",
           BOUND_TESTS, "a run of one sender's payloads is counted as a marker, so the "
           "queue outgrows max_pending"),
    Mutant("overflow-marker-does-not-raise", EVENTS,
           "        if type(item) is _Overflowed:\n            raise PendingOverflow",
           "        if False:\n            raise PendingOverflow",
           BOUND_TESTS, "taking the overflow marker does not raise PendingOverflow"),
    Mutant("drop-oldest-miscounts", DROPPING,
           "            dropped += 1\n            excess -= 1",
           "            excess -= 1",
           BOUND_TESTS, "Dropped does not count the notifications dropped"),
    Mutant("overflow-markers-do-not-merge", DROPPING,
           "        elif kind is _Overflowed:\n            lost += item.lost",
           "        elif kind is _Overflowed:\n            kept.append(item)",
           BOUND_TESTS, "a second overflow before anything is taken adds a second marker"),
    Mutant("reconnected-marker-dropped", DROPPING,
           "            kept.append(item)  # a reconnection stays visible\n    if dropped:",
           "            pass\n    if dropped:",
           BOUND_TESTS, "drop-oldest drops a Reconnected marker"),
]
