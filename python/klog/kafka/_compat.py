"""kafka-python, when it is installed (internal).

klog.kafka uses kafka-python's own classes for the names it shares with it
(TopicPartition, OffsetAndMetadata, ConsumerRecord, RecordMetadata, the
exceptions, NewTopic, ...), so that one set of names serves both a local
directory and ``bootstrap_servers=`` (which kafka-python itself serves):
``isinstance`` checks and ``except`` clauses hold either way.  Without
kafka-python, klog.kafka defines look-alikes with the same fields and names
and works over local directories only.
"""

try:
    import kafka as kafka_python
    import kafka.admin  # noqa: F401
    import kafka.errors  # noqa: F401 - what klog.kafka needs of it, loaded here or not at all
    import kafka.structs  # noqa: F401
    from kafka.consumer.fetcher import ConsumerRecord as KafkaConsumerRecord
    from kafka.producer.future import RecordMetadata as KafkaRecordMetadata
except ImportError:
    kafka_python = None
    KafkaConsumerRecord = KafkaRecordMetadata = None


def remote(name):
    """kafka-python's class ``name`` (KafkaProducer, ...), for bootstrap_servers=."""
    if kafka_python is None:
        from .errors import KafkaConfigurationError
        raise KafkaConfigurationError(
            "klog.kafka: bootstrap_servers= is served by kafka-python, which is not installed "
            "(Debian: python3-kafka; pip: kafka-python); without it, give path= (a klog data directory)")
    return getattr(kafka_python, name)


def default_config(name):
    """kafka-python's DEFAULT_CONFIG of class ``name``, or {} without it."""
    if kafka_python is None:
        return {}
    return dict(getattr(getattr(kafka_python, name), "DEFAULT_CONFIG", {}))
