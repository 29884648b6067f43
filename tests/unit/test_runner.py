"""The runner tells a broker outage, which a rejoin mends, from other failures."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from quixstreams.exceptions.assignment import PartitionAssignmentError
from quixstreams.kafka.exceptions import KafkaBrokerUnavailableError, KafkaProducerDeliveryError

from processor.runner import TopologyApplication, broker_outage, closed_mid_assignment


def raised_while_closing(cause: BaseException, closing: BaseException) -> BaseException:
    """`closing` raised while the exception handling of `cause` ran, as Quix's exit stack
    closes the consumer after the run failed."""
    try:
        try:
            raise cause
        except BaseException:
            raise closing  # noqa: B904 (a failed close, as Quix raises it)
    except BaseException as raised:
        return raised


def test_an_unknown_member_at_the_commit_is_an_outage() -> None:
    refused = KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID, "Broker: Unknown member"))
    wrapped = RuntimeError("Error during Kafka transaction operation")
    wrapped.__cause__ = refused
    found = broker_outage(wrapped)
    assert found is not None and found.code() == KafkaError.UNKNOWN_MEMBER_ID


def test_a_partition_assignment_the_broker_did_not_answer_is_an_outage() -> None:
    assignment = PartitionAssignmentError("Error during partition assignment")
    assignment.__cause__ = KafkaException(KafkaError(KafkaError._TIMED_OUT))
    found = broker_outage(assignment)
    assert found is not None and found.code() == KafkaError._TIMED_OUT


def test_a_partition_leader_gone_with_its_broker_is_an_outage() -> None:
    assignment = PartitionAssignmentError("Error during partition assignment")
    assignment.__cause__ = KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
    assert broker_outage(assignment) is not None


def test_an_outage_is_found_under_a_failed_close() -> None:
    lost = KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION))
    raised = raised_while_closing(lost, KafkaException(KafkaError(KafkaError._DESTROY)))
    found = broker_outage(raised)
    assert found is not None and found.code() == KafkaError.ILLEGAL_GENERATION


def test_a_record_the_broker_never_acknowledged_is_an_outage() -> None:
    undelivered = KafkaProducerDeliveryError(KafkaError(KafkaError._MSG_TIMED_OUT))
    found = broker_outage(undelivered)  # as the checkpoint's flush raises it
    assert found is not None and found.code() == KafkaError._MSG_TIMED_OUT


def test_brokers_unavailable_past_quixs_timeout_are_an_outage() -> None:
    # A consumer that never reconnected after the broker came back (librdkafka kept
    # probing a dead connection) ends Quix's loop this way; fresh clients mend it.
    unavailable = KafkaBrokerUnavailableError("All Kafka brokers have been unavailable for 120s")
    found = broker_outage(unavailable)
    assert found is not None and found.code() == KafkaError._ALL_BROKERS_DOWN
    assert "120s" in found.str()


def test_other_failures_are_not_mended_by_a_rejoin() -> None:
    for code in (KafkaError._FENCED, KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError._STATE):
        assert broker_outage(KafkaException(KafkaError(code))) is None
    assert broker_outage(ValueError("not Kafka")) is None


def test_the_error_quix_stopped_on_is_kept_for_when_a_close_replaces_it(tmp_path) -> None:
    app = TopologyApplication(
        broker_address="127.0.0.1:1", consumer_group="g", state_dir=tmp_path / "state"
    )
    try:  # Quix stops the application from its exception handler as the run unwinds
        raise KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID))
    except KafkaException:
        app.stop(fail=True)
    found = broker_outage(app.failure)
    assert found is not None and found.code() == KafkaError.UNKNOWN_MEMBER_ID
    assert not app.stop_requested


def test_a_stop_requested_by_a_signal_is_told_apart(tmp_path) -> None:
    app = TopologyApplication(
        broker_address="127.0.0.1:1", consumer_group="g", state_dir=tmp_path / "state"
    )
    app.stop()  # what Quix's SIGTERM handler does
    assert app.stop_requested and app.failure is None


def test_a_stop_asked_for_before_the_loop_is_kept_as_quix_marks_it_running(tmp_path) -> None:
    app = TopologyApplication(
        broker_address="127.0.0.1:1", consumer_group="g", state_dir=tmp_path / "state"
    )
    app.stop()  # a SIGTERM while Quix's run opens the consumer
    app._run_tracker.set_as_running()  # what Quix's run does next, before its loop
    assert not app._run_tracker.running


def test_an_assignment_refused_only_by_the_closing_consumer_ends_a_stop_cleanly() -> None:
    assignment = PartitionAssignmentError("Error during partition assignment")
    assignment.__cause__ = KafkaException(KafkaError(KafkaError._DESTROY))
    assert closed_mid_assignment(assignment)


def test_committed_offsets_unanswered_by_the_closing_consumer_end_a_stop_cleanly() -> None:
    # Seen in CI: SIGTERM as the run subscribed, and the first assignment arrived in
    # the consumer's close, where Quix's look-up of the committed offsets timed out.
    assignment = PartitionAssignmentError("Error during partition assignment")
    assignment.__cause__ = KafkaException(
        KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets: Local: Timed out")
    )
    assert closed_mid_assignment(assignment)


def test_a_failure_under_the_closing_consumers_error_is_not_a_clean_stop() -> None:
    lost = KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION))
    raised = raised_while_closing(lost, KafkaException(KafkaError(KafkaError._DESTROY)))
    assert not closed_mid_assignment(raised)
    assert not closed_mid_assignment(ValueError("not Kafka"))
